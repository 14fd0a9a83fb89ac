package snapshot

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

func tlsSecret(ns, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS, Data: data}
}

func pairSecret(ns, name string, crt, key []byte) *corev1.Secret {
	return tlsSecret(ns, name, map[string][]byte{"tls.crt": crt, "tls.key": key})
}

func hostDoc(name, hostname, secret string, extra ...string) string {
	return "kind: Host\nname: " + name + "\nhostname: " + hostname + "\ntls_secret: " + secret + "\n" + strings.Join(extra, "\n") + "\n"
}

// leafOf is the SHA-256 the snapshot reports for a PEM pair.
func leafOf(t *testing.T, crt, key []byte) string {
	t.Helper()
	sc, err := loadCert("x", "y", map[string]*corev1.Secret{"x/y": pairSecret("x", "y", crt, key)}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return sc.info.SHA256
}

func certReports(rs []Report) []Report {
	var out []Report
	for _, r := range rs {
		if r.Certificates {
			out = append(out, r)
		}
	}
	return out
}

func TestEdgeTLSOwnership(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	shopCrt, shopKey := ca.Server(t, "shop.example.com")
	evilCrt, evilKey := ca.Server(t, "shop.example.com")
	b := newBuilder()
	owner := service("a", "shop", mapping("shop", "/", "shop", "host: shop.example.com")+"---\n"+hostDoc("shop", "shop.example.com", "shop-tls"))
	owner.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	evil := service("b", "evil", hostDoc("steal", "shop.example.com", "stolen"))
	evil.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	in := Input{
		Services: []*corev1.Service{evil, owner},
		Secrets:  []*corev1.Secret{pairSecret("a", "shop-tls", shopCrt, shopKey), pairSecret("b", "stolen", evilCrt, evilKey)},
	}
	snap, reports := build(t, b, in)
	var denied bool
	for _, r := range reports {
		if r.Service == "b/evil" && r.Rejected {
			for _, p := range r.Problems {
				denied = denied || strings.Contains(p.Message, `belongs to namespace "a"`) && p.Path == `Host "steal".hostname`
			}
		}
	}
	if !denied {
		t.Errorf("the newcomer's Host was not rejected naming the owner: %+v", reports)
	}
	want := leafOf(t, shopCrt, shopKey)
	for _, name := range []string{"shop.example.com", "SHOP.Example.com", "shop.example.com."} {
		h := snap.EdgeTLS().Lookup(name)
		if h == nil || h.Namespace != "a" || h.Cert == nil || h.Cert.SHA256 != want {
			t.Errorf("Lookup(%q) = %+v; want namespace a's certificate", name, h)
		}
	}
	// The webhook decides the same from the snapshot.
	if ps := snap.Review(evil)[annotations.Key]; !ps.HasErrors() {
		t.Errorf("Review of the newcomer: %v; want the ownership error", ps)
	}
	// A Host alone claims its host: a Mapping of another namespace for it
	// is refused afterwards.
	b2 := newBuilder()
	claim := service("a", "claim", hostDoc("shop", "shop.example.com", "shop-tls"))
	claim.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	late := service("b", "late", mapping("m", "/", "late", "host: shop.example.com"))
	late.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	_, reports = build(t, b2, Input{Services: []*corev1.Service{claim, late}, Secrets: in.Secrets})
	rejected := false
	for _, r := range reports {
		rejected = rejected || r.Service == "b/late" && r.Rejected
	}
	if !rejected {
		t.Errorf("a Mapping for a host another namespace's Host claims was accepted")
	}
}

func TestEdgeTLSKeepsLastGood(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	crt, key := ca.Server(t, "shop.example.com")
	otherCrt, _ := ca.Server(t, "shop.example.com")
	wrongCrt, wrongKey := ca.Server(t, "elsewhere.example.com")
	renewedCrt, renewedKey := ca.Server(t, "shop.example.com")
	b := newBuilder()
	svc := service("a", "shop", hostDoc("shop", "shop.example.com", "shop-tls"))
	at := func(sec *corev1.Secret) (*HostTLS, []Report) {
		t.Helper()
		snap, reports := build(t, b, Input{Services: []*corev1.Service{svc}, Secrets: []*corev1.Secret{sec}})
		return snap.EdgeTLS().Lookup("shop.example.com"), certReports(reports)
	}
	good := leafOf(t, crt, key)
	h, reports := at(pairSecret("a", "shop-tls", crt, key))
	if !h.HasCert() || h.Cert.SHA256 != good || h.Problem != "" || len(reports) != 0 {
		t.Fatalf("good Secret: %+v, reports %+v", h, reports)
	}
	first := h
	if h, _ := at(pairSecret("a", "shop-tls", crt, key)); h != first {
		t.Errorf("an unchanged rebuild made a new HostTLS: its tls.Config would be built again")
	}
	for _, c := range []struct {
		what     string
		sec      *corev1.Secret
		mentions string
	}{
		{"a certificate with another key", pairSecret("a", "shop-tls", otherCrt, key), "private key does not match"},
		{"not PEM", pairSecret("a", "shop-tls", []byte("garbage"), []byte("garbage")), "failed to find any PEM data"},
		{"a certificate for another name", pairSecret("a", "shop-tls", wrongCrt, wrongKey), `not "shop.example.com"`},
		{"the Secret deleted", tlsSecret("a", "other", nil), "not found"},
		{"too large (kept without data)", tlsSecret("a", "shop-tls", nil), "256 KiB"},
	} {
		h, reports := at(c.sec)
		if !h.HasCert() || h.Cert.SHA256 != good || !h.Cert.LastGood {
			t.Errorf("%s: %+v; want the last good certificate", c.what, h)
		}
		if !strings.Contains(h.Problem, c.mentions) || !strings.Contains(h.Problem, "last good") {
			t.Errorf("%s: problem %q; want it to mention %q and the last good certificate", c.what, h.Problem, c.mentions)
		}
		if len(reports) != 1 || len(reports[0].Problems) != 1 || !reports[0].Problems[0].Warning || reports[0].Problems[0].Pos.Line != 4 || reports[0].Rejected {
			t.Errorf("%s: reports %+v; want one warning at tls_secret (line 4)", c.what, reports)
		}
	}
	h, reports = at(pairSecret("a", "shop-tls", renewedCrt, renewedKey))
	if want := leafOf(t, renewedCrt, renewedKey); !h.HasCert() || h.Cert.SHA256 != want || h.Cert.LastGood || len(reports) != 0 {
		t.Errorf("renewed: %+v, reports %+v; want the renewed certificate", h, reports)
	}
	// Expiry: what was good and is now expired stays (nothing better);
	// a new expired one does not replace a good one.
	b.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	h, reports = at(pairSecret("a", "shop-tls", renewedCrt, renewedKey))
	if !h.HasCert() || !strings.Contains(h.Problem, "expired") || len(reports) != 1 {
		t.Errorf("expired, nothing better: %+v %+v", h, reports)
	}
}

func TestEdgeTLSWithoutCertificate(t *testing.T) {
	b := newBuilder()
	svc := service("a", "shop", hostDoc("shop", "shop.example.com", "missing", "client_ca_secret: clients"))
	snap, reports := build(t, b, Input{Services: []*corev1.Service{svc}})
	h := snap.EdgeTLS().Lookup("shop.example.com")
	if h == nil || h.HasCert() || !strings.Contains(h.Problem, "not found") {
		t.Fatalf("missing Secret: %+v", h)
	}
	// A Host that asks for client certificates without CAs to check them
	// against refuses every client: an empty pool, never none.
	if h.clientCAs == nil || h.ClientCert != annotations.ClientCertRequired {
		t.Errorf("client CAs missing: pool %v, mode %q; want an empty pool and required", h.clientCAs, h.ClientCert)
	}
	if rs := certReports(reports); len(rs) != 1 || len(rs[0].Problems) != 2 {
		t.Errorf("reports: %+v; want the two Secrets' warnings", rs)
	}
	// The routes of the Service are not affected by a Secret.
	for _, r := range reports {
		if r.Rejected {
			t.Errorf("a missing Secret rejected the Service: %+v", r)
		}
	}
}

func TestEdgeTLSWildcard(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	wc, wk := ca.Server(t, "*.example.com")
	b := newBuilder()
	wild := service("a", "wild", hostDoc("wild", `"*.example.com"`, "wild-tls"))
	wild.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	api := service("b", "api", mapping("api", "/", "api", "host: api.example.com"))
	api.CreationTimestamp = metav1.NewTime(time.Unix(1500, 0))
	rival := service("c", "rival", hostDoc("wild", `"*.example.com"`, "x"))
	rival.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	snap, reports := build(t, b, Input{Services: []*corev1.Service{wild, api, rival}, Secrets: []*corev1.Secret{pairSecret("a", "wild-tls", wc, wk)}})
	e := snap.EdgeTLS()
	for name, want := range map[string]string{
		"www.example.com":   "a",
		"WWW.example.com":   "a",
		"api.example.com":   "", // b owns it: a's wildcard does not answer for it
		"a.b.example.com":   "", // one label only
		"example.com":       "",
		"www.example.org":   "",
		"*.example.com":     "",
		".example.com":      "",
		"www.example.com..": "",
	} {
		h := e.Lookup(name)
		got := ""
		if h != nil {
			got = h.Namespace
		}
		if got != want {
			t.Errorf("Lookup(%q): namespace %q, want %q", name, got, want)
		}
	}
	if h := e.Lookup("www.example.com"); !h.HasCert() || !h.Cert.Covers {
		t.Errorf("wildcard certificate: %+v", h)
	}
	rejected := false
	for _, r := range reports {
		rejected = rejected || r.Service == "c/rival" && r.Rejected
	}
	if !rejected {
		t.Errorf("a second namespace's Host for the same wildcard was accepted")
	}
}

func TestEdgeTLSServerConfig(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	crt, key := ca.Server(t, "api.example.com")
	b := newBuilder()
	svc := service("a", "api", hostDoc("api", "api.example.com", "api-tls", "client_ca_secret: clients", "client_cert: optional", "min_tls_version: v1.3", "hsts:\n  max_age: 60\n  preload: true"))
	snap, _ := build(t, b, Input{Services: []*corev1.Service{svc}, Secrets: []*corev1.Secret{
		pairSecret("a", "api-tls", crt, key),
		tlsSecret("a", "clients", map[string][]byte{"ca.crt": ca.PEM}),
	}})
	h := snap.EdgeTLS().Lookup("api.example.com")
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	c := h.ServerConfig(base)
	if c.MinVersion != tls.VersionTLS13 || c.ClientAuth != tls.VerifyClientCertIfGiven || c.ClientCAs == nil || !c.SessionTicketsDisabled || len(c.Certificates) != 1 || len(c.NextProtos) != 2 {
		t.Errorf("server config: %+v", c)
	}
	if h.ServerConfig(base) != c {
		t.Errorf("ServerConfig built twice")
	}
	if h.HSTS != "max-age=60; preload" || h.Insecure != annotations.InsecureRedirect {
		t.Errorf("HSTS %q, insecure %q", h.HSTS, h.Insecure)
	}
}

func TestEdgeTLSBudget(t *testing.T) {
	var docs []string
	for i := range 3 {
		docs = append(docs, hostDoc(fmt.Sprintf("h%d", i), fmt.Sprintf("h%d.example.com", i), "x"))
	}
	b := newBuilderWith(Options{Budgets: Budgets{MaxHosts: 2}})
	_, reports := build(t, b, Input{Services: []*corev1.Service{service("a", "many", strings.Join(docs, "---\n"))}})
	found := false
	for _, r := range reports {
		for _, p := range r.Problems {
			found = found || strings.Contains(p.Message, "more than 2, the platform's --max-hosts-per-service")
		}
	}
	if !found {
		t.Errorf("three Hosts with a budget of two: %+v", reports)
	}
}

// BenchmarkEdgeTLSLookup is the per-request cost of Host policies (and the
// per-handshake cost of choosing a certificate) with 1,000 Hosts.
func BenchmarkEdgeTLSLookup(b *testing.B) {
	e := &EdgeTLS{exact: map[string]*HostTLS{}, wild: map[string]*HostTLS{"wild.example.com": {Namespace: "w"}}, owners: map[string][]string{}}
	for i := range 1000 {
		name := fmt.Sprintf("host-%d.example.com", i)
		e.exact[name] = &HostTLS{Hostname: name, Namespace: "a"}
	}
	for _, c := range []struct{ name, host string }{
		{"exact", "host-500.example.com"},
		{"wildcard", "www.wild.example.com"},
		{"miss", "nobody.example.org"},
		{"upper case", "HOST-500.example.com"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Lookup(c.host)
			}
		})
	}
}

// BenchmarkEdgeTLSRebuild is what Hosts add to a build when nothing about
// them changed (another Service's edit, an EndpointSlice): 500 Hosts, each
// Secret hashed, none parsed again.
func BenchmarkEdgeTLSRebuild(b *testing.B) {
	ca := testpki.NewCA(b, "ca")
	// hsts: every Host asks for HSTS on its subdomains, and each has one
	// owned by another namespace, so every build indexes the hosts and
	// copies each Host without includeSubDomains.
	for _, hsts := range []bool{false, true} {
		b.Run(fmt.Sprintf("hsts=%v", hsts), func(b *testing.B) {
			var in Input
			for i := range 500 {
				host := fmt.Sprintf("h%d.example.com", i)
				crt, key := ca.Server(b, host)
				doc := hostDoc(fmt.Sprintf("h%d", i), host, fmt.Sprintf("s%d", i))
				if hsts {
					doc = hostDoc(fmt.Sprintf("h%d", i), host, fmt.Sprintf("s%d", i), "hsts:\n  max_age: 600\n  include_subdomains: true")
					in.Services = append(in.Services, service("b", fmt.Sprintf("sub%d", i), mapping("sub", "/", "x", "host: api."+host)))
				}
				in.Services = append(in.Services, service("a", fmt.Sprintf("s%d", i), doc))
				in.Secrets = append(in.Secrets, pairSecret("a", fmt.Sprintf("s%d", i), crt, key))
			}
			bl := newBuilder()
			bl.Build(in)
			b.ReportAllocs()
			for b.Loop() {
				snap, _ := bl.Build(in)
				if snap.EdgeTLS().Len() != 500 || hsts && snap.EdgeTLS().Lookup("h7.example.com").HSTS != "max-age=600" {
					b.Fatal(snap.EdgeTLS().Len())
				}
			}
		})
	}
}

// TestEdgeTLSHSTSSubdomains: a Host's HSTS goes without includeSubDomains
// (and preload) while another namespace owns a host under it, with a
// warning naming that host; once it does not, the Host's own HSTS is sent
// again; a host of its own namespace under it changes nothing.
func TestEdgeTLSHSTSSubdomains(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	crt, key := ca.Server(t, "example.com")
	hsts := "hsts:\n  max_age: 31536000\n  include_subdomains: true\n  preload: true"
	apex := service("a", "site", mapping("site", "/", "site", "host: example.com")+"---\n"+hostDoc("apex", "example.com", "apex-tls", hsts)+
		"---\n"+mapping("own", "/", "site", "host: docs.example.com"))
	apex.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	other := service("b", "blog", mapping("blog", "/", "blog", "host: blog.example.com"))
	other.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	secrets := []*corev1.Secret{pairSecret("a", "apex-tls", crt, key)}
	full := "max-age=31536000; includeSubDomains; preload"

	b := newBuilder()
	snap, reports := build(t, b, Input{Services: []*corev1.Service{apex}, Secrets: secrets})
	if h := snap.EdgeTLS().Lookup("example.com"); h == nil || h.HSTS != full {
		t.Fatalf("alone (its own docs.example.com under it): %+v", h)
	}
	snap, reports = build(t, b, Input{Services: []*corev1.Service{apex, other}, Secrets: secrets})
	if h := snap.EdgeTLS().Lookup("example.com"); h == nil || h.HSTS != "max-age=31536000" {
		t.Errorf("with b's blog.example.com: HSTS %q", h.HSTS)
	}
	warned := false
	for _, r := range certReports(reports) {
		for _, p := range r.Problems {
			warned = warned || r.Service == "a/site" && p.Warning && p.Path == `Host "apex".hsts.include_subdomains` &&
				strings.Contains(p.Message, `blog.example.com belongs to namespace "b"`)
		}
	}
	if !warned {
		t.Errorf("no warning naming blog.example.com: %+v", reports)
	}
	snap, _ = build(t, b, Input{Services: []*corev1.Service{apex}, Secrets: secrets})
	if h := snap.EdgeTLS().Lookup("example.com"); h == nil || h.HSTS != full {
		t.Errorf("after b's Service went: HSTS %q", h.HSTS)
	}
}
