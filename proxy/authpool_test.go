package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// TestExternalAuthPooled: with the fast engine's pool, checks to a plain
// HTTP/1.1 auth service reuse keep-alive connections and carry what
// net/http's transport carried: method, prefixed path and query, Host,
// the allowed headers, the start of the body; an allow's headers reach the
// upstream, a denial's status, headers and body reach the client, a 5xx
// becomes 403, a service that closes after each answer or answers late
// is handled, and a check cut off by its timeout does not poison the pool.
func TestExternalAuthPooled(t *testing.T) {
	var (
		mu     sync.Mutex
		checks []*http.Request
		bodies []string
		conns  atomic.Int64
		upHdr  http.Header
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/check") {
			mu.Lock()
			upHdr = r.Header.Clone()
			mu.Unlock()
			io.WriteString(w, "app")
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		checks = append(checks, r)
		bodies = append(bodies, string(b))
		mu.Unlock()
		switch r.Header.Get("X-Case") {
		case "deny":
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "who are you")
		case "fail":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "stack trace")
		case "close":
			w.Header().Set("Connection", "close")
			w.Header().Set("X-User", "carol")
		case "slow":
			time.Sleep(300 * time.Millisecond)
		default:
			w.Header().Set("X-User", "alice")
			w.Header().Set("X-Other", "not copied")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	pool := NewPool(func() *upstream.DialGuard { return loopbackGuard(t) })
	h := New(Options{Guard: loopbackGuard(t), Pool: pool})
	h.Publish(compile(t, `kind: Mapping
name: app
prefix: /
rewrite: ""
service: app
auth: sso
---
kind: Auth
name: sso
external:
  service: app
  path_prefix: /check
  timeout_ms: 100
  allowed_request_headers: [x-case]
  allowed_upstream_headers: [x-user]
  include_body_bytes: 4
`, srv.Listener.Addr().String()))

	for i := range 10 {
		w := serve(h, "GET", "/orders/1?q=a%20b")
		if w.Code != 200 || w.Body.String() != "app" {
			t.Fatalf("allow %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	mu.Lock()
	first := checks[0]
	if first.Method != "GET" || first.URL.Path != "/check/orders/1" || first.URL.RawQuery != "q=a%20b" || upHdr.Get("X-User") != "alice" || upHdr.Get("X-Other") != "" {
		t.Errorf("check %s %s?%s; upstream got X-User %q, X-Other %q", first.Method, first.URL.Path, first.URL.RawQuery, upHdr.Get("X-User"), upHdr.Get("X-Other"))
	}
	mu.Unlock()
	// One connection for the upstream, one for the checks (the fast path's
	// pool keeps both), however many requests.
	if n := conns.Load(); n > 2 {
		t.Errorf("%d connections for 10 requests and their checks; want keep-alive (2)", n)
	}

	w := serve(h, "GET", "/x", "X-Case", "deny")
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer realm="x"` || w.Body.String() != "who are you" {
		t.Errorf("deny: %d %q %q", w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String())
	}
	if w := serve(h, "GET", "/x", "X-Case", "fail"); w.Code != 403 || strings.Contains(w.Body.String(), "stack trace") {
		t.Errorf("5xx: %d %q", w.Code, w.Body.String())
	}
	for i := range 3 {
		if w := serve(h, "GET", "/x", "X-Case", "close"); w.Code != 200 {
			t.Errorf("a service that closes after each answer, %d: %d", i, w.Code)
		}
	}
	if w := serve(h, "GET", "/x", "X-Case", "slow"); w.Code != 403 {
		t.Errorf("a check past timeout_ms: %d, want 403 (deny)", w.Code)
	}
	// The connection the slow check was cut off on is not reused: the next
	// check gets its own answer, not the late one.
	if w := serve(h, "GET", "/x"); w.Code != 200 {
		t.Errorf("after a timed-out check: %d", w.Code)
	}

	// The body's first bytes go with a POST's check; the upstream gets all.
	w = serveBody(h, "POST", "/x", "hello world")
	mu.Lock()
	last := bodies[len(bodies)-1]
	mu.Unlock()
	if w.Code != 200 || last != "hell" {
		t.Errorf("POST: %d, the check carried %q, want %q", w.Code, last, "hell")
	}
}

func serveBody(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// BenchmarkAuthCheck is one external-auth check over a keep-alive
// connection (the auth service's own time included), through h1's pool
// and through net/http's transport as before.
func BenchmarkAuthCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-User", "alice") }))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	pool := NewPool(func() *upstream.DialGuard { return loopbackGuard(b) })
	h := New(Options{Guard: loopbackGuard(b), Pool: pool})
	newCheck := func() *http.Request {
		r, _ := http.NewRequest("GET", "http://"+addr+"/check/orders/1?q=1", nil)
		r.Header.Set("Authorization", "Bearer x")
		return r
	}
	for _, tc := range []struct {
		name string
		do   func(*http.Request) (*http.Response, error)
	}{
		{"pool", func(r *http.Request) (*http.Response, error) { return h.poolRoundTrip(r, addr, time.Second) }},
		{"transport", h.mirrors.transport.RoundTrip},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.do(newCheck())
				if err != nil || resp.Header.Get("X-User") != "alice" {
					b.Fatalf("%v %v", err, resp)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
