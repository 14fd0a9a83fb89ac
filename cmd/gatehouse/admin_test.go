package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/server"
)

// adminCases are the configurations routes --admin and explain --admin
// are compared on: edge TLS, each kind of Auth, canary weights, header and
// query conditions, rewrites and redirects, the Emissary dialect (flags
// for the build), a rejected annotation, and paths the gateway reads
// with care.
var adminCases = []string{
	"testdata/golden/tls/edge-certificates.yaml",
	"testdata/admin/auth.yaml",
	"testdata/golden/fields/weight-trio.yaml",
	"testdata/golden/fields/headers.yaml",
	"testdata/golden/fields/query_parameters.yaml",
	"testdata/golden/fields/regex_rewrite.yaml",
	"testdata/golden/fields/prefix_redirect-exact-regex.yaml",
	"testdata/golden/fields/cors.yaml",
	"testdata/golden/fields/shadow.yaml",
	"testdata/golden/fields/rate_limits-policy.yaml",
	"testdata/golden/fields/prefix-encoded-slash.yaml",
	"testdata/golden/fields/invalid-weights.yaml",
	"testdata/golden/emissary/order-host-method.yaml",
	"testdata/golden/emissary/cors-and-friends.yaml",
}

var adminAll = flag.Bool("admin-all", false, "TestAdminAgrees: compare on every golden case, not only adminCases")

// TestAdminAgrees: for a gateway serving the same manifests as files,
// routes --admin and explain --admin print what routes -f and explain -f
// print, byte for byte, in text and in JSON. The gateway is loaded as
// serve --from-dir loads it (files.ParseWith, manifestInput), with the
// build flags of the case's "# args:" line; the explains are the case's
// "# explain:" lines and GET /. Every golden case with -admin-all.
func TestAdminAgrees(t *testing.T) {
	cases := adminCases
	if *adminAll {
		all, err := filepath.Glob("testdata/golden/*/*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cases = append(all, "testdata/admin/auth.yaml")
	}
	for _, file := range cases {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "testdata/"), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			args, explains := caseHeader(data)
			explains = append(explains, []string{"GET", "/"})
			admin := serveFile(t, file, data, args)

			same := func(fileCmd, adminCmd []string) {
				t.Helper()
				var fout, ferr, aout, aerr bytes.Buffer
				fcode := run(context.Background(), fileCmd, &fout, &ferr)
				acode := run(context.Background(), adminCmd, &aout, &aerr)
				if acode != 0 || aerr.Len() > 0 {
					t.Fatalf("gatehouse %s: exit %d\n%s", strings.Join(adminCmd, " "), acode, aerr.String())
				}
				if fcode > 1 || fout.Len() == 0 {
					t.Fatalf("gatehouse %s: exit %d, nothing printed\n%s", strings.Join(fileCmd, " "), fcode, ferr.String())
				}
				if fout.String() != aout.String() {
					t.Errorf("gatehouse %s printed\n%s\ngatehouse %s printed\n%s", strings.Join(fileCmd, " "), fout.String(), strings.Join(adminCmd, " "), aout.String())
				}
			}
			fromFiles := append(append([]string{}, args...), "-f", file)
			fromAdmin := []string{"--admin", admin}
			for _, format := range []string{"text", "json"} {
				o := []string{"-o", format}
				same(append(append([]string{"routes"}, o...), fromFiles...), append(append([]string{"routes"}, o...), fromAdmin...))
				for _, e := range explains {
					same(append(append(append([]string{"explain"}, o...), fromFiles...), e...), append(append(append([]string{"explain"}, o...), fromAdmin...), e...))
				}
			}
		})
	}
}

// caseHeader reads a manifest's leading comments as TestGolden does:
// "# args:" flags for the build, "# explain:" requests.
func caseHeader(data []byte) (args []string, explains [][]string) {
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if a, ok := strings.CutPrefix(line, "# args:"); ok {
			args = append(args, strings.Fields(a)...)
		}
		if e, ok := strings.CutPrefix(line, "# explain:"); ok {
			explains = append(explains, splitShell(strings.TrimSpace(e)))
		}
	}
	return args, explains
}

// serveFile runs a gateway serving the manifests of file, built with the
// pipeline flags args, until the test ends; it returns the admin
// listener's address.
func serveFile(t *testing.T, file string, data []byte, args []string) string {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var d pipelineFlags
	d.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	opts, err := d.options()
	if err != nil {
		t.Fatal(err)
	}
	hash := keyHasher(&opts)
	m, _ := files.ParseWith(file, data, files.Options{Emissary: opts.Emissary, HashKey: hash})
	srv := server.New(server.Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Build: opts, AllowLoopback: true, Drain: time.Second})
	srv.Apply(manifestInput(m))
	return runServer(t, srv)
}

// runServer runs srv until the test ends and returns its admin address.
func runServer(t *testing.T, srv *server.Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(_, admin string) { addr <- admin }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	return ""
}

// TestAdminErrors: what the commands say when the gateway cannot answer,
// or when --admin is asked for with what only files mean.
func TestAdminErrors(t *testing.T) {
	// A port nothing listens on: one just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	notAdmin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/routes" {
			io.WriteString(w, "routes, but not in JSON\n")
			return
		}
		http.NotFound(w, r)
	}))
	defer notAdmin.Close()
	empty := runServer(t, server.New(server.Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Drain: time.Second}))

	for _, c := range []struct {
		args   string
		code   int
		stderr string
	}{
		{"routes --admin " + closed, 1, "cannot reach the gateway's admin API at " + closed + ": "},
		{"explain --admin " + closed + " GET /", 1, "cannot reach the gateway's admin API at " + closed},
		{"routes --admin " + empty, 1, "answered 503 Service Unavailable: no snapshot served yet"},
		{"explain --admin http://" + empty + "/ GET /", 1, "answered 503 Service Unavailable: no snapshot served yet"},
		{"routes --admin " + notAdmin.URL, 1, `answered "text/plain; charset=utf-8", not JSON: is ` + notAdmin.URL + " the gateway's admin address"},
		{"explain --admin " + notAdmin.URL + " GET /", 1, "answered 404 Not Found: 404 page not found (is this the gateway's admin address"},
		{"routes --admin ftp://" + empty, 2, "want HOST:PORT or http://HOST:PORT"},
		{"routes --admin " + empty + " -f testdata/admin/auth.yaml", 2, "cannot be combined with -f or files"},
		{"routes --admin " + empty + " --compat=emissary", 2, "--compat: only for files"},
		{"explain --admin " + empty + " GET ftp://x/", 2, "want http://host/path?query"},
		{"explain --admin " + empty + " GET /", 1, "no snapshot served yet"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.stderr) || stdout.Len() > 0 {
			t.Errorf("gatehouse %s: exit %d\n%s%s\nwant exit %d and %q", c.args, code, stdout.String(), stderr.String(), c.code, c.stderr)
		}
	}
}
