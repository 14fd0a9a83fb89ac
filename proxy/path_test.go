package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is an upstream that remembers every request target exactly as
// it arrived on the wire.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.seen = append(rec.seen, r.RequestURI)
	rec.mu.Unlock()
	io.WriteString(w, "ok")
}

// take returns the targets seen since the last call.
func (rec *recorder) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.seen
	rec.seen = nil
	return s
}

func pathGateway(t *testing.T, config string) (*Handler, *recorder) {
	t.Helper()
	rec := &recorder{}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, config, up.Listener.Addr().String()))
	return h, rec
}

// TestPathTraversalThroughRewrite: an encoded or disguised ".." never
// reaches an upstream behind a prefix rewrite; it is resolved before
// routing (and then needs a route of its own) or refused.
func TestPathTraversalThroughRewrite(t *testing.T) {
	h, rec := pathGateway(t, "kind: Mapping\nname: static\nprefix: /static/\nrewrite: /public/\nservice: app\n")
	check := func(target string, status int, upstream string) {
		t.Helper()
		w := serve(h, "GET", target)
		seen := rec.take()
		if w.Code != status {
			t.Errorf("%s: status %d, want %d (%s)", target, w.Code, status, strings.TrimSpace(w.Body.String()))
		}
		for _, s := range seen {
			if strings.Contains(s, "..") || !strings.HasPrefix(s, "/public/") {
				t.Errorf("%s: upstream got %q", target, s)
			}
		}
		if got := strings.Join(seen, " "); got != upstream {
			t.Errorf("%s: upstream got %q, want %q", target, got, upstream)
		}
	}
	check("/static/%2e%2e/secret.txt", 404, "")
	check("/static/%2E%2E/secret.txt", 404, "")
	check("/static/.%2e/secret.txt", 404, "")
	check("/static/%2e./secret.txt", 404, "")
	check("/static/../secret.txt", 404, "")
	check("/static/css/%2e%2e/app.js", 200, "/public/app.js")
	check("/static/css/./%2e/app.js", 200, "/public/css/app.js")
	check("/static/%2e%2e/static/a.css", 200, "/public/a.css")
	check("/static/..%2fsecret.txt", 400, "")
	check("/static/%2e%2e%2fsecret.txt", 400, "")
	check("/static/..%5csecret.txt", 400, "")
	check(`/static/..\secret.txt`, 400, "")
	check("/static/..;/secret.txt", 400, "")
	check("/static/%2e%2e;x=1/secret.txt", 400, "")
	check("/static/a%00.txt", 400, "")

	// With a catch-all route, the resolved path is served by it, as any
	// other request for /secret.txt would be.
	h, rec = pathGateway(t, "kind: Mapping\nname: static\nprefix: /static/\nrewrite: /public/\nservice: app\n---\n"+
		"kind: Mapping\nname: root\nprefix: /\nrewrite: /root/\nservice: app\n")
	if w := serve(h, "GET", "/static/%2e%2e/secret.txt"); w.Code != 200 || strings.Join(rec.take(), " ") != "/root/secret.txt" {
		t.Errorf("catch-all: %d", w.Code)
	}
}

// TestPathRewriteJoiningDots: a plain-string rewrite that would glue a dot
// segment together is refused rather than forwarded.
func TestPathRewriteJoiningDots(t *testing.T) {
	h, rec := pathGateway(t, "kind: Mapping\nname: files\nprefix: /files\nrewrite: /srv/\nservice: app\n")
	for _, c := range []struct {
		target   string
		status   int
		upstream string
	}{
		{"/files../etc/passwd", 400, ""},
		{"/files./x", 400, ""},
		{"/files%2e%2e/x", 400, ""},
		{"/files/x", 200, "/srv//x"}, // a rewrite's own "//" is the Mapping's to fix
		{"/files.d/x", 200, "/srv/.d/x"},
	} {
		w := serve(h, "GET", c.target)
		if got := strings.Join(rec.take(), " "); w.Code != c.status || got != c.upstream {
			t.Errorf("%s: %d, upstream got %q; want %d, %q", c.target, w.Code, got, c.status, c.upstream)
		}
	}
}

// TestPathAliasesShareTheRateLimit: every spelling of /api/admin/... is
// matched by the /api/admin/ Mapping and draws from its bucket.
func TestPathAliasesShareTheRateLimit(t *testing.T) {
	h, rec := pathGateway(t, `kind: Mapping
name: admin
prefix: /api/admin/
service: app
rewrite: /admin/
rate_limits: [once]
---
kind: Mapping
name: api
prefix: /api/
service: app
---
kind: RateLimit
name: once
rate: 1
unit: hour
key: header
header: x-user
`)
	if w := serve(h, "GET", "/api/admin/users", "X-User", "a"); w.Code != 200 {
		t.Fatalf("first request: %d", w.Code)
	}
	for _, alias := range []string{
		"/api/%61dmin/users", "/api/%61%64%6D%69%6E/users", "/api/%61%64%6d%69%6e/users", "//api//admin/users",
		"/api/./admin/users", "/api/x/../admin/users", "/api/%2e/admin/users", "/%61pi/admin/users", "/api/admin//users",
	} {
		if w := serve(h, "GET", alias, "X-User", "a"); w.Code != 429 {
			t.Errorf("%s: %d, want 429 from the admin Mapping's limit", alias, w.Code)
		}
	}
	// The bucket is per key; another user's alias is admitted and forwarded
	// in canonical form.
	if w := serve(h, "GET", "/api/%61dmin//users", "X-User", "b"); w.Code != 200 {
		t.Errorf("another user: %d", w.Code)
	}
	if got := strings.Join(rec.take(), " "); got != "/admin/users /admin/users" {
		t.Errorf("upstream got %q", got)
	}
	// An encoded slash could make /api/admin/ look like /api/: refused.
	if w := serve(h, "GET", "/api/admin%2Fusers", "X-User", "c"); w.Code != 400 {
		t.Errorf("/api/admin%%2Fusers: %d, want 400", w.Code)
	}
}

// TestPathDoubleSlashes: empty segments are merged before matching, so
// "//api//admin" is the /api/admin of an exact route, and forwarded merged.
func TestPathDoubleSlashes(t *testing.T) {
	h, rec := pathGateway(t, "kind: Mapping\nname: admin\nprefix: /api/admin\nprefix_exact: true\nrewrite: \"\"\nservice: app\n")
	for _, target := range []string{"//api//admin", "/api///admin", "///api/admin"} {
		if w := serve(h, "GET", target); w.Code != 200 {
			t.Errorf("%s: %d", target, w.Code)
		}
	}
	if got := strings.Join(rec.take(), " "); got != "/api/admin /api/admin /api/admin" {
		t.Errorf("upstream got %q", got)
	}
	if w := serve(h, "GET", "/api/admin/"); w.Code != 404 {
		t.Errorf("trailing slash is kept: %d", w.Code)
	}
}

// TestPathForwardedExactly: the upstream receives the canonical path
// byte for byte: escapes that remain are upper-cased, never re-encoded or
// decoded, and characters Go would escape on its own are left alone.
func TestPathForwardedExactly(t *testing.T) {
	h, rec := pathGateway(t, "kind: Mapping\nname: app\nprefix: /app/\nrewrite: /\nservice: app\n")
	for target, want := range map[string]string{
		"/app/a!b*(c)'[d]":         "/a!b*(c)'%5Bd%5D",
		"/app/caf%c3%a9":           "/caf%C3%A9",
		"/app/café":                "/caf%C3%A9",
		"/app/a%3bb%3Dc;d=e":       "/a%3Bb%3Dc;d=e",
		"/app/%7euser/%7Bx%7D":     "/~user/%7Bx%7D",
		"/app/a%20b?q=%2e%2e&x=1":  "/a%20b?q=%2e%2e&x=1", // the query is not the path
		"/app/%252e%252e/x":        "/%252e%252e/x",
		"/app/x/":                  "/x/",
		"/app/x/%2e":               "/x/",
		"/app/":                    "/",
		"http://h.example/app/a:b": "/a:b",
	} {
		if w := serve(h, "GET", target); w.Code != 200 {
			t.Errorf("%s: %d", target, w.Code)
		}
		if got := strings.Join(rec.take(), " "); got != want {
			t.Errorf("%s: upstream got %q, want %q", target, got, want)
		}
	}
}

// TestPathRefused: requests without one reading answer 400 and reach no
// upstream.
func TestPathRefused(t *testing.T) {
	h, rec := pathGateway(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n")
	for _, target := range []string{"/a%2Fb", "/a%2fb", "/a%5Cb", `/a\b`, "/a%00", "/..;/x", "/a/.;/b", "*"} {
		w := serve(h, "GET", target)
		if w.Code != 400 || !strings.HasPrefix(w.Body.String(), "bad request path: ") {
			t.Errorf("%s: %d %q", target, w.Code, w.Body.String())
		}
	}
	if seen := rec.take(); len(seen) != 0 {
		t.Errorf("upstream got %q", seen)
	}
}

// TestPathAccessLog: the access log shows the path that was routed, and the
// client's spelling beside it when that differs.
func TestPathAccessLog(t *testing.T) {
	var buf bytes.Buffer
	h := New(Options{Guard: loopbackGuard(t), AccessLog: &buf})
	rec := &recorder{}
	up := httptest.NewServer(rec)
	defer up.Close()
	h.Publish(compile(t, "kind: Mapping\nname: api\nprefix: /api/\nrewrite: /v2/\nservice: app\n", up.Listener.Addr().String()))

	type line struct {
		Status                      int
		Path, RawPath, UpstreamPath string
		Route                       string
	}
	logged := func(target string) line {
		t.Helper()
		buf.Reset()
		serve(h, "GET", target)
		var l struct {
			Status       int    `json:"status"`
			Path         string `json:"path"`
			RawPath      string `json:"raw_path"`
			UpstreamPath string `json:"upstream_path"`
			Route        string `json:"route"`
		}
		if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
			t.Fatalf("%s: log %q: %v", target, buf.String(), err)
		}
		return line(l)
	}
	for target, want := range map[string]line{
		"/api/users":           {200, "/api/users", "", "/v2/users", "t/api"},
		"/api/%61dmin/users":   {200, "/api/admin/users", "/api/%61dmin/users", "/v2/admin/users", "t/api"},
		"//api/x/%2e%2e/admin": {200, "/api/admin", "//api/x/%2e%2e/admin", "/v2/admin", "t/api"},
		"/api/caf%c3%a9":       {200, "/api/caf%C3%A9", "/api/caf%c3%a9", "/v2/caf%C3%A9", "t/api"},
		"/api/a%2Fb":           {400, "/api/a%2Fb", "", "", ""},
		"/static/%2e%2e/api/x": {200, "/api/x", "/static/%2e%2e/api/x", "/v2/x", "t/api"},
		"/%2e%2e/nowhere":      {404, "/nowhere", "/%2e%2e/nowhere", "", ""},
	} {
		if got := logged(target); got != want {
			t.Errorf("%s: logged %+v, want %+v", target, got, want)
		}
	}
}
