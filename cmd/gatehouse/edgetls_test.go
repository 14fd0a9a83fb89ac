package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// The edge TLS fixture: one Service whose Hosts cover each case routes,
// explain and validate tell apart, and the Secrets they name.
var (
	clientsCA = certSpec{seed: 1, cn: "Shop clients CA", notBefore: longAgo, notAfter: farEnd, ca: true}
	shopCA    = certSpec{seed: 2, cn: "Shop test CA", notBefore: longAgo, notAfter: farEnd, ca: true}

	goodCert    = certSpec{seed: 10, cn: "good.example.com", dns: []string{"good.example.com", "www.good.example.com"}, notBefore: longAgo, notAfter: farEnd, parent: &shopCA}
	expiredCert = certSpec{seed: 11, cn: "expired.example.com", dns: []string{"expired.example.com"}, notBefore: longAgo, notAfter: pastEnd, parent: &shopCA}
	wrongCert   = certSpec{seed: 12, cn: "other.example.com", dns: []string{"other.example.com"}, notBefore: longAgo, notAfter: farEnd, parent: &shopCA}
	earlyCert   = certSpec{seed: 13, cn: "early.example.com", dns: []string{"early.example.com"}, notBefore: farAhead, notAfter: farEnd, parent: &shopCA}
	wildCert    = certSpec{seed: 14, cn: "*.apps.example.com", dns: []string{"*.apps.example.com"}, notBefore: longAgo, notAfter: farEnd, parent: &shopCA}
)

const edgeAnnotation = `kind: Mapping
name: web
prefix: /
service: web
---
kind: Host
name: good
hostname: good.example.com
tls_secret: good-tls
hsts:
  max_age: 31536000
  include_subdomains: true
client_ca_secret: clients-ca
client_cert: optional
---
kind: Host
name: expired
hostname: expired.example.com
tls_secret: expired-tls
insecure: reject
---
kind: Host
name: wrong
hostname: wrong.example.com
tls_secret: wrong-tls
insecure: route
---
kind: Host
name: early
hostname: early.example.com
tls_secret: early-tls
min_tls_version: v1.3
---
kind: Host
name: missing
hostname: missing.example.com
tls_secret: missing-tls
---
kind: Host
name: apps
hostname: "*.apps.example.com"
tls_secret: apps-tls
client_ca_secret: clients-ca
`

// edgeHeader steers TestGolden and states what validate must find:
// TestEdgeTLSGoldenExpectations checks the "# warning" lines.
const edgeHeader = `# Edge TLS: routes lists which certificate serves which host, flagging the
# expired, not yet valid, misnamed and missing ones; validate warns at each
# such Host's tls_secret; explain tells what plain HTTP and HTTPS get.
# Written by TestEdgeTLSFixture -update from the certificates of edgetls_test.go.
# explain: GET http://good.example.com/a/b?q=1
# explain: POST http://good.example.com/a
# explain: GET http://expired.example.com/a
# explain: GET http://expired.example.com/.well-known/acme-challenge/token
# explain: GET http://wrong.example.com/a
# explain: GET https://good.example.com/a
# explain: GET https://expired.example.com/a
# explain: GET https://x.apps.example.com/a -H 'Host: good.example.com'
# warning 42:19 Host "expired".tls_secret: the certificate expired at 2001-01-01T00:00:00Z
# warning 48:19 Host "wrong".tls_secret: the certificate is for other.example.com, not "wrong.example.com"
# warning 54:19 Host "early".tls_secret: the certificate is not valid before 2190-01-01T00:00:00Z
# warning 60:19 Host "missing".tls_secret: Secret shop/missing-tls (type kubernetes.io/tls) not found
`

const edgeFixture = "testdata/golden/tls/edge-certificates.yaml"

func edgeManifests(t testing.TB, header string) string {
	t.Helper()
	docs := []string{
		header + manifest("web", edgeAnnotation),
		tlsSecret(t, "shop", "good-tls", goodCert),
		tlsSecret(t, "shop", "expired-tls", expiredCert),
		tlsSecret(t, "shop", "wrong-tls", wrongCert),
		tlsSecret(t, "shop", "early-tls", earlyCert),
		tlsSecret(t, "shop", "apps-tls", wildCert),
		tlsSecret(t, "shop", "clients-ca", clientsCA),
	}
	docs[0] = strings.Replace(docs[0], "  name: web\n", "  name: web\n  namespace: shop\n", 1)
	return strings.Join(docs, "---\n")
}

// TestEdgeTLSFixture: the golden fixture holds exactly the certificates
// this file makes, so its fingerprints and dates come from code, not from
// a file someone pasted.
func TestEdgeTLSFixture(t *testing.T) {
	want := edgeManifests(t, edgeHeader)
	if *update {
		if err := os.MkdirAll(filepath.Dir(edgeFixture), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(edgeFixture, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(edgeFixture)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != want {
		t.Errorf("%s differs from what edgeManifests makes; run with -update", edgeFixture)
	}
}

// TestEdgeTLSGoldenExpectations checks validate against the warnings the
// fixture's header promises, position and text, so the golden cannot be
// blessed with one missing, moved or added.
func TestEdgeTLSGoldenExpectations(t *testing.T) {
	var want []string
	for _, line := range strings.Split(edgeHeader, "\n") {
		if w, ok := strings.CutPrefix(line, "# warning "); ok {
			want = append(want, w)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"validate", edgeFixture}, &stdout, &stderr); code != 0 {
		t.Errorf("exit %d, want 0: certificate problems are warnings\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("validate printed %d lines, the header promises %d:\n%s", len(lines), len(want), stdout.String())
	}
	for i, w := range want {
		pos, msg, _ := strings.Cut(w, " ")
		if prefix := edgeFixture + ":" + pos + ": warning: "; !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], msg) {
			t.Errorf("line %d = %q\nwant %q then %q", i+1, lines[i], prefix, msg)
		}
	}
	// Each position is the tls_secret line of the Host it names.
	data, err := os.ReadFile(edgeFixture)
	if err != nil {
		t.Fatal(err)
	}
	fileLines := strings.Split(string(data), "\n")
	for _, w := range want {
		var line, col int
		pos, _, _ := strings.Cut(w, " ")
		if _, err := fmt.Sscanf(pos, "%d:%d", &line, &col); err != nil || line > len(fileLines) {
			t.Fatalf("bad position %q", pos)
		}
		if l := fileLines[line-1]; !strings.HasPrefix(strings.TrimSpace(l), "tls_secret:") || strings.Index(l, ": ")+3 != col {
			t.Errorf("%s is not at a tls_secret value: %q", pos, l)
		}
	}
}

// hostRows parses the host table routes prints after the routes: the
// cells of each line under the HOSTNAME header, by column.
func hostRows(t *testing.T, out string) map[string]map[string]string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\n\nHOSTNAME")
	if !ok {
		t.Fatalf("no host table in\n%s", out)
	}
	lines := strings.Split(strings.TrimRight("HOSTNAME"+table, "\n"), "\n")
	header := lines[0]
	var cols []string
	var starts []int
	for i := 0; i < len(header); {
		j := i
		for j < len(header) && !(header[j] == ' ' && j+1 < len(header) && header[j+1] == ' ') {
			j++
		}
		cols, starts = append(cols, header[i:j]), append(starts, i)
		for j < len(header) && header[j] == ' ' {
			j++
		}
		i = j
	}
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		row := map[string]string{}
		for k, c := range cols {
			end := len(l)
			if k+1 < len(starts) {
				end = starts[k+1]
			}
			row[c] = strings.TrimSpace(l[starts[k]:min(end, len(l))])
		}
		rows[row["HOSTNAME"]] = row
	}
	return rows
}

func TestRoutesHosts(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"routes", "-f", edgeFixture}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	rows := hostRows(t, stdout.String())
	check := func(host, col, want string) {
		t.Helper()
		row := rows[host]
		if row == nil {
			t.Errorf("no row for %s in\n%s", host, stdout.String())
			return
		}
		if got := row[col]; got != want && !(strings.HasSuffix(want, "…") && strings.HasPrefix(got, strings.TrimSuffix(want, "…"))) {
			t.Errorf("%s %s = %q, want %q", host, col, got, want)
		}
	}
	check("good.example.com", "STATUS", "ok")
	check("good.example.com", "OWNER", "shop/web Host good")
	check("good.example.com", "SECRET", "good-tls")
	check("good.example.com", "CERTIFICATE", "good.example.com,www.good.example.com")
	check("good.example.com", "NOT AFTER", "2199-12-31")
	check("good.example.com", "PLAIN HTTP", "redirect")
	check("good.example.com", "HSTS", "max-age=31536000; includeSubDomains")
	check("good.example.com", "CLIENT CA", "clients-ca (optional)")
	check("expired.example.com", "STATUS", "EXPIRED")
	check("expired.example.com", "PLAIN HTTP", "reject")
	check("wrong.example.com", "STATUS", "NAME MISMATCH")
	check("wrong.example.com", "CERTIFICATE", "other.example.com")
	check("early.example.com", "STATUS", "NOT YET VALID")
	check("early.example.com", "MIN TLS", "v1.3")
	check("missing.example.com", "STATUS", "NO CERTIFICATE: Secret shop/missing-tls (type kubernetes.io/tls) not found…")
	check("missing.example.com", "SHA256", "-")
	check("*.apps.example.com", "STATUS", "ok")
	check("*.apps.example.com", "CLIENT CA", "clients-ca (required)")
	if sum := rows["good.example.com"]["SHA256"]; len(sum) != 16 || strings.Trim(sum, "0123456789abcdef") != "" {
		t.Errorf("SHA256 = %q, want 16 hex digits", sum)
	}

	// Without a Host, routes prints what it always did.
	stdout.Reset()
	file := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(file, []byte(manifest("ok", validMapping)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(context.Background(), []string{"routes", "-f", file}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "HOSTNAME") || strings.Count(stdout.String(), "\n") != 2 {
		t.Errorf("no Hosts, yet:\n%s", stdout.String())
	}
}

// explainJSON is explain -o json's answer, as far as these tests read it.
type explainJSON struct {
	Matched  bool
	Status   int
	Redirect string
	Mapping  string
	TLS      *struct {
		Scheme     string
		Hostname   string
		ServerName string `json:"server_name"`
		Policy     string
		Host       *struct {
			Host        string
			Flags       []string
			Certificate *struct {
				SHA256   string
				NotAfter time.Time `json:"not_after"`
				DNSNames []string  `json:"dns_names"`
			}
		}
	}
}

func TestExplainEdge(t *testing.T) {
	for _, c := range []struct {
		args     string
		text     []string // substrings of the text answer, in order
		status   int
		redirect string
		flags    string // of the Host, joined by ","; "-" for no Host
	}{
		{"GET http://good.example.com/a/b?q=1&r=%2F",
			[]string{"tls        good.example.com: Host \"good\" of Service shop/web, Secret good-tls", "the gateway answers 301 before any route", "redirect   301 https://good.example.com/a/b?q=1&r=%2F"},
			301, "https://good.example.com/a/b?q=1&r=%2F", ""},
		{"HEAD http://good.example.com:8080/a", []string{"redirect   301 https://good.example.com/a"}, 301, "https://good.example.com/a", ""},
		{"POST http://good.example.com/a", []string{"answers 308", "redirect   308 https://good.example.com/a"}, 308, "https://good.example.com/a", ""},
		{"GET http://good.example.com/.well-known/acme-challenge/t",
			[]string{"ACME HTTP-01", "mapping    shop/web"}, 0, "", ""},
		{"GET http://expired.example.com/a", []string{"insecure: reject", "answer     403 this host is served over HTTPS only"}, 403, "", "EXPIRED"},
		{"GET http://wrong.example.com/a", []string{"insecure: route", "mapping    shop/web"}, 0, "", "NAME MISMATCH"},
		{"GET http://elsewhere.example.com/a", []string{"mapping    shop/web"}, 0, "", "-"},
		{"GET https://good.example.com/a",
			[]string{"cert       good.example.com,www.good.example.com, sha256 ", ", not after 2199-12-31: ok",
				"Strict-Transport-Security: max-age=31536000; includeSubDomains", "a client certificate is asked for", "clients-ca", "mapping    shop/web"},
			0, "", ""},
		{"GET https://expired.example.com/a", []string{"not after 2001-01-01: EXPIRED", "mapping    shop/web"}, 0, "", "EXPIRED"},
		{"GET https://wrong.example.com/a", []string{"cert       other.example.com, ", ": NAME MISMATCH"}, 0, "", "NAME MISMATCH"},
		{"GET https://early.example.com/a", []string{": NOT YET VALID", "TLS 1.3 or later"}, 0, "", "NOT YET VALID"},
		{"GET https://missing.example.com/a", []string{"cert       NO CERTIFICATE: Secret shop/missing-tls (type kubernetes.io/tls) not found"}, 0, "", "NO CERTIFICATE"},
		{"GET https://x.apps.example.com/a", []string{"Host \"apps\"", "*.apps.example.com, sha256", "a client certificate is required"}, 0, "", ""},
		{"GET https://x.apps.example.com/a -H Host:good.example.com",
			[]string{"cert       for TLS server name x.apps.example.com: *.apps.example.com", "answers 421", "answer     421 "}, 421, "", ""},
		{"GET https://elsewhere.example.com/a", []string{"elsewhere.example.com: no Host", "default certificate", "mapping    shop/web"}, 0, "", "-"},
	} {
		t.Run(c.args, func(t *testing.T) {
			args := append([]string{"explain", "-f", edgeFixture}, strings.Fields(c.args)...)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			text := stdout.String()
			rest := text
			for _, s := range c.text {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Errorf("want %q (in this order) in\n%s", s, text)
					break
				}
				rest = rest[i+len(s):]
			}

			stdout.Reset()
			if code := run(context.Background(), append(args, "-o", "json"), &stdout, &stderr); code != 0 {
				t.Fatalf("-o json: exit %d", code)
			}
			var e explainJSON
			if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
				t.Fatalf("-o json: %v\n%s", err, stdout.String())
			}
			if e.Status != c.status || e.Redirect != c.redirect || e.Matched != (c.status == 0) {
				t.Errorf("-o json: status %d redirect %q matched %v; want %d %q\n%s", e.Status, e.Redirect, e.Matched, c.status, c.redirect, stdout.String())
			}
			if plainNoHost := c.flags == "-" && strings.HasPrefix(c.args, "GET http:"); plainNoHost || e.TLS == nil {
				if plainNoHost != (e.TLS == nil) {
					t.Errorf("-o json: tls %v, want it only with a Host or TLS\n%s", e.TLS != nil, stdout.String())
				}
				return
			}
			switch {
			case c.flags == "-" && e.TLS.Host != nil:
				t.Errorf("-o json: a Host, want none\n%s", stdout.String())
			case c.flags != "-" && (e.TLS.Host == nil || strings.Join(e.TLS.Host.Flags, ",") != c.flags):
				t.Errorf("-o json: host flags, want %q\n%s", c.flags, stdout.String())
			case e.TLS.Policy == "":
				t.Errorf("-o json: no policy\n%s", stdout.String())
			}
		})
	}

	// Without a Host and without TLS, explain answers as it always did.
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"explain", "-o", "json", "-f", edgeFixture, "GET", "/a"}, &stdout, &stderr)
	if got := stdout.String(); strings.Contains(got, `"tls"`) || !strings.HasPrefix(got, `{"matched":true,"mapping":"shop/web"`) {
		t.Errorf("GET /a: %s", got)
	}
}

// TestServedCertFindings: a certificate that was good when the build
// judged it and is not at the command's clock is warned about at its
// Host's tls_secret, once; one the build warned about is not warned about
// again.
func TestServedCertFindings(t *testing.T) {
	all, snap, findings, err := compileFiles([]string{edgeFixture}, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if extra := servedCertFindings(all, snapshot.Options{}, snap.EdgeTLS().Hosts(), findings, time.Now()); len(extra) != 0 {
		t.Errorf("now: %v, want none (the build said it all)", extra)
	}
	later := farEnd.Add(24 * time.Hour)
	extra := servedCertFindings(all, snapshot.Options{}, snap.EdgeTLS().Hosts(), findings, later)
	var got []string
	for _, f := range extra {
		got = append(got, f.String())
	}
	want := []string{
		edgeFixture + `:32:19: warning: Host "good".tls_secret: the certificate expired at 2199-12-31T00:00:00Z`,
		// wrong and early: the build's warning stands, their fault named first.
		edgeFixture + `:65:19: warning: Host "apps".tls_secret: the certificate expired at 2199-12-31T00:00:00Z`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("in 2200:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLastGood: a Secret whose new contents are unusable leaves the host
// on its last good certificate; routes and explain say so. Two builds of
// one Builder, as serve makes them.
func TestLastGood(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "app.yaml")
	svc := strings.Replace(manifest("web", "kind: Mapping\nname: web\nprefix: /\nservice: web\n---\nkind: Host\nname: good\nhostname: good.example.com\ntls_secret: good-tls\n"),
		"  name: web\n", "  name: web\n  namespace: shop\n", 1)
	good := tlsSecret(t, "shop", "good-tls", goodCert)
	// The certificate of one key with the key of another: tls.X509KeyPair
	// refuses it.
	_, otherKey := wrongCert.pem(t)
	crt, key := goodCert.pem(t)
	broken := strings.Replace(good, indentPEM(key), indentPEM(otherKey), 1)
	if broken == good || !strings.Contains(broken, indentPEM(crt)) {
		t.Fatal("could not swap the key")
	}

	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{}), snapshot.Options{})
	var snap *snapshot.Snapshot
	var all *files.Manifests
	for _, secret := range []string{good, broken} {
		if err := os.WriteFile(app, []byte(svc+"---\n"+secret), 0o644); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(app)
		var problems []files.Problem
		all, problems = files.Parse(app, data)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		snap, _ = b.Build(manifestInput(all))
	}
	hosts := snap.EdgeTLS().Hosts()
	if len(hosts) != 1 || hosts[0].Cert == nil || !hosts[0].Cert.LastGood {
		t.Fatalf("hosts %+v, want one on its last good certificate", hosts)
	}
	var out bytes.Buffer
	if err := writeHosts(&out, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	row := hostRows(t, "\n"+out.String())["good.example.com"]
	if !strings.HasPrefix(row["STATUS"], "LAST GOOD: Secret shop/good-tls: ") || !strings.Contains(row["STATUS"], "serving the last good certificate") || row["CERTIFICATE"] != "good.example.com,www.good.example.com" {
		t.Errorf("row %v", row)
	}
	if s := certSummary(describeHost(hosts[0], time.Now())); !strings.Contains(s, ": LAST GOOD (Secret shop/good-tls: ") {
		t.Errorf("explain's cert line %q", s)
	}
	// The last good certificate going bad is validate's to say: the
	// build's warning is about the Secret.
	extra := servedCertFindings(all, snapshot.Options{}, hosts, nil, farEnd.Add(time.Hour))
	if len(extra) != 1 || !strings.Contains(extra[0].String(), `:16:19: warning: Host "good".tls_secret: the certificate expired at 2199-12-31T00:00:00Z (the last good certificate`) {
		t.Errorf("in 2200: %v", extra)
	}
}

func indentPEM(b []byte) string {
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
}

// TestExplainHTTPSScheme: an https:// URL is a request over TLS, so a
// Mapping's redirect keeps https, as the gateway's does.
func TestExplainHTTPSScheme(t *testing.T) {
	file := filepath.Join(t.TempDir(), "moved.yaml")
	m := manifest("moved", "kind: Mapping\nname: moved\nprefix: /old/\nhost_redirect: true\nservice: www.example.com\nprefix_redirect: /new/\n")
	if err := os.WriteFile(file, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	for scheme, want := range map[string]string{"http": "http://www.example.com/new/x", "https": "https://www.example.com/new/x"} {
		var stdout, stderr bytes.Buffer
		run(context.Background(), []string{"explain", "-o", "json", "-f", file, "GET", scheme + "://example.com/old/x"}, &stdout, &stderr)
		var e explainJSON
		if err := json.Unmarshal(stdout.Bytes(), &e); err != nil || e.Redirect != want {
			t.Errorf("%s: %s (%v), want redirect %s", scheme, stdout.String(), err, want)
		}
	}
}
