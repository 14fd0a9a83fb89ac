package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// compile builds a snapshot of one Service "app" in namespace "t" with
// config, whose endpoints are the given addresses.
func compile(tb testing.TB, config string, endpoints ...string) *snapshot.Snapshot {
	tb.Helper()
	return compileWith(tb, upstream.NewRegistry(upstream.RegistryOptions{
		Breaker: upstream.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: time.Hour},
		Guard:   loopbackGuard(tb),
	}), config, endpoints...)
}

// compileWith is compile with the upstreams (and so their breakers) kept
// in ups, for tests that read an upstream's state.
func compileWith(tb testing.TB, ups *upstream.Registry, config string, endpoints ...string) *snapshot.Snapshot {
	tb.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app", Annotations: map[string]string{annotations.Key: config}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	// One slice per endpoint: a slice has one port for all its endpoints,
	// and test upstreams differ in port.
	var slices []*discoveryv1.EndpointSlice
	for i, e := range endpoints {
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app-" + strconv.Itoa(i),
			Labels: map[string]string{"kubernetes.io/service-name": "app"}}}
		host, port, _ := net.SplitHostPort(e)
		p, _ := strconv.Atoi(port)
		p32, name := int32(p), "http"
		slice.Ports = []discoveryv1.EndpointPort{{Name: &name, Port: &p32}}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{host}})
		slices = append(slices, slice)
	}
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), ups, snapshot.Options{})
	s, reports := b.Build(snapshot.Input{Services: []*corev1.Service{svc}, Slices: slices})
	for _, r := range reports {
		if r.Rejected {
			tb.Fatalf("config rejected: %v", r.Problems)
		}
	}
	return s
}

func serve(h http.Handler, method, target string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestNoSnapshotIs503(t *testing.T) {
	h := New(Options{Guard: loopbackGuard(t)})
	if w := serve(h, "GET", "/x"); w.Code != 503 || w.Header().Get("X-Request-Id") == "" {
		t.Errorf("status %d, request id %q", w.Code, w.Header().Get("X-Request-Id"))
	}
}

func TestServe(t *testing.T) {
	var lastPath, lastHost, lastXFF string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastPath, lastHost, lastXFF = r.URL.RequestURI(), r.Host, r.Header.Get("X-Forwarded-For")
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer up.Close()
	addr := up.Listener.Addr().String()
	cfg := `kind: Mapping
name: app
prefix: /app/
service: app
rate_limits: [two]
---
kind: Mapping
name: none
prefix: /none/
service: app:81
---
kind: RateLimit
name: two
rate: 2
unit: hour
key: header
header: x-user
`
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, cfg, addr))

	w := serve(h, "GET", "http://example.com/app/a/b?q=1", "X-User", "u1")
	if w.Code != 200 || w.Body.String() != "hello" || lastPath != "/a/b?q=1" || lastHost != "example.com" || lastXFF != "192.0.2.1" {
		t.Errorf("proxied: %d %q; upstream saw path %q host %q xff %q", w.Code, w.Body.String(), lastPath, lastHost, lastXFF)
	}
	if w := serve(h, "GET", "/app/../app/c", "X-User", "u1"); w.Code != 200 || lastPath != "/c" {
		t.Errorf("dot segments: %d, upstream path %q", w.Code, lastPath)
	}
	// An encoded slash is refused by default (snapshot.RejectEscapedSlashes;
	// more in path_test.go).
	if w := serve(h, "GET", "/app/group%2Fproject/issues", "X-User", "u3"); w.Code != 400 || lastPath != "/c" {
		t.Errorf("encoded slash: %d, upstream path %q", w.Code, lastPath)
	}
	if w := serve(h, "GET", "/app%2Fx", "X-User", "u3"); w.Code != 400 {
		t.Errorf("/app%%2Fx: %d, want 400", w.Code)
	}
	if w := serve(h, "GET", "/app/x", "X-User", "u1"); w.Code != 429 || w.Header().Get("Retry-After") != "1800" {
		t.Errorf("third request of u1: %d Retry-After %q, want 429 and 1800", w.Code, w.Header().Get("Retry-After"))
	}
	if w := serve(h, "GET", "/app/x", "X-User", "u2"); w.Code != 200 {
		t.Errorf("another key is limited separately: %d", w.Code)
	}
	if w := serve(h, "GET", "/elsewhere"); w.Code != 404 {
		t.Errorf("no route: %d", w.Code)
	}
	if w := serve(h, "GET", "/none/x"); w.Code != 503 || !strings.Contains(w.Body.String(), "no ready endpoints") {
		t.Errorf("no endpoints: %d %q", w.Code, w.Body.String())
	}
}

func TestBreakerOpensOnUpstream5xx(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	defer up.Close()
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n", up.Listener.Addr().String()))
	for i := 0; i < 2; i++ {
		if w := serve(h, "GET", "/x"); w.Code != 502 {
			t.Fatalf("request %d: %d, want the upstream's 502", i, w.Code)
		}
	}
	if w := serve(h, "GET", "/x"); w.Code != 503 || !strings.Contains(w.Body.String(), "circuit breaker") {
		t.Errorf("after 2 failures: %d %q, want 503 from the open breaker", w.Code, w.Body.String())
	}
}

func TestRequestID(t *testing.T) {
	if got := requestID("abc", nil); got != "abc" {
		t.Errorf("kept id: %q", got)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 129), "nul\x00"} {
		if got := requestID(bad, nil); len(got) != 32 || got == bad {
			t.Errorf("requestID(%q) = %q, want a fresh 32-hex id", bad, got)
		}
	}
}

// BenchmarkProxy measures a request through the gateway's handler to a real
// upstream on loopback, against net/http/httputil's ReverseProxy alone to the
// same upstream: the difference is what routing, rate limiting, the breaker
// and bookkeeping cost.
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	addr := up.Listener.Addr().String()

	var routes strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&routes, "kind: Mapping\nname: r%d\nprefix: /api/v%d/\nservice: app\nrate_limits: [lots]\n---\n", i, i)
	}
	routes.WriteString("kind: RateLimit\nname: lots\nrate: 1000000000\nunit: second\nkey: client_ip\n")
	h := New(Options{Guard: loopbackGuard(b)})
	h.Publish(compile(b, routes.String(), addr))

	target, _ := url.Parse("http://" + addr)
	baseline := httputil.NewSingleHostReverseProxy(target)
	baseline.Transport = NewTransport(loopbackGuard(b))

	run := func(b *testing.B, handler http.Handler, path string) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("GET", path, nil)
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	}
	b.Run("httputil-baseline", func(b *testing.B) { run(b, baseline, "/api/v57/users") })
	b.Run("gatehouse", func(b *testing.B) { run(b, h, "/api/v57/users") })

	// As hack/bench's gatehouse-full row runs it: with the JSON access log
	// and metrics, whose per-request cost the rows above leave out.
	full := New(Options{
		Guard:     loopbackGuard(b),
		AccessLog: io.Discard,
		Metrics:   metrics.New(prometheus.NewRegistry()),
	})
	full.Publish(compile(b, routes.String(), addr))
	b.Run("gatehouse-log-metrics", func(b *testing.B) { run(b, full, "/api/v57/users") })
}

func TestMappingFeatures(t *testing.T) {
	type seen struct {
		path, host, xa, xb, xc string
	}
	last := make(chan seen, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case last <- seen{r.URL.RequestURI(), r.Host, r.Header.Get("X-A"), strings.Join(r.Header.Values("X-B"), ","), r.Header.Get("X-C")}:
		default:
		}
		w.Header().Set("Server", "upstream")
		w.Header().Set("X-Internal", "secret")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := `kind: Mapping
name: rx
prefix: /rx/
regex_rewrite:
  pattern: ^/rx/([a-z]+)/([0-9]+)$
  substitution: /items/${2}/${1}
host_rewrite: internal.example
service: app
---
kind: Mapping
name: headers
prefix: /h/
remove_request_headers: [x-c]
add_request_headers:
  x-a: one
  x-b: {value: two, append: true}
remove_response_headers: [x-internal]
add_response_headers:
  server: {value: gatehouse, append: false}
service: app
---
kind: Mapping
name: moved
prefix: /old/
host_redirect: true
service: https://new.example.com
prefix_redirect: /new/
redirect_response_code: 308
---
kind: Mapping
name: ws
prefix: /ws/
allow_upgrade: [websocket]
service: app
`
	// With an access log, so every kind of route is logged once.
	h := New(Options{AccessLog: io.Discard, Guard: loopbackGuard(t)})
	h.Publish(compile(t, cfg, up.Listener.Addr().String()))

	w := serve(h, "GET", "http://client.example/rx/abc/42")
	if s := <-last; w.Code != 200 || s.path != "/items/42/abc" || s.host != "internal.example" {
		t.Errorf("regex_rewrite + host_rewrite: %d, upstream saw %+v", w.Code, s)
	}

	w = serve(h, "GET", "/h/x", "X-B", "zero", "X-C", "drop-me")
	s := <-last
	if s.xa != "one" || s.xb != "zero,two" || s.xc != "" {
		t.Errorf("request headers: upstream saw %+v", s)
	}
	if w.Header().Get("Server") != "gatehouse" || w.Header().Get("X-Internal") != "" {
		t.Errorf("response headers: %v", w.Header())
	}

	w = serve(h, "GET", "http://a.example/old/page?q=1")
	if w.Code != 308 || w.Header().Get("Location") != "https://new.example.com/new/page?q=1" {
		t.Errorf("redirect: %d Location %q", w.Code, w.Header().Get("Location"))
	}

	if w := serve(h, "GET", "/h/x", "Connection", "Upgrade", "Upgrade", "websocket"); w.Code != 403 {
		t.Errorf("upgrade on a route without allow_upgrade: %d, want 403", w.Code)
	}
	select {
	case s := <-last:
		t.Errorf("a refused upgrade reached the upstream: %+v", s)
	default:
	}
}

func TestIdleTimeout(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/before-headers" {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: idle\nprefix: /\nrewrite: \"\"\nidle_timeout_ms: 50\ntimeout_ms: 0\nservice: app\n", up.Listener.Addr().String()))
	if w := serve(h, "GET", "/before-headers"); w.Code != 504 {
		t.Errorf("idle before headers: %d, want 504", w.Code)
	}
	// After the headers the status is sent; the idle timeout ends the body.
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		defer func() { recover() }() // ReverseProxy aborts a broken body with http.ErrAbortHandler
		done <- serve(h, "GET", "/stalls-mid-body")
	}()
	select {
	case w := <-done:
		if w != nil && w.Body.String() != "partial" {
			t.Errorf("body %q", w.Body.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an idle body was not cut off")
	}
}

func TestMaxRequests(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer up.Close()
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: capped\nprefix: /\ncircuit_breakers:\n- max_requests: 1\n  max_pending_requests: 1\nservice: app\n", up.Listener.Addr().String()))
	first, second := make(chan int), make(chan int)
	go func() { first <- serve(h, "GET", "/a").Code }()
	<-entered
	// The second waits for the slot (max_pending_requests: 1)…
	go func() { second <- serve(h, "GET", "/b").Code }()
	waitUntil(t, "the second request queued", func() bool { return h.current.Load().snap.Table.Routes()[0].Value.Gate.Pending() == 1 })
	// …and the third finds the slot and the queue taken.
	if w := serve(h, "GET", "/c"); w.Code != 503 || !strings.Contains(w.Body.String(), "too many concurrent") {
		t.Errorf("third concurrent request: %d %q, want 503", w.Code, w.Body.String())
	}
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("first request: %d", code)
	}
	if code := <-second; code != 200 {
		t.Errorf("queued request: %d, want it served once the slot freed", code)
	}
	if w := serve(h, "GET", "/c"); w.Code != 200 {
		t.Errorf("after the first finished: %d, want 200 (the slot is free again)", w.Code)
	}
}

func TestRefusedConnectionIs502(t *testing.T) {
	// Port 1 on loopback refuses at once; the connect timeout bounds the
	// other way a dial fails.
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: far\nprefix: /\nconnect_timeout_ms: 50\nservice: app\n", "127.0.0.1:1"))
	if w := serve(h, "GET", "/"); w.Code != 502 {
		t.Errorf("refused connection: %d, want 502", w.Code)
	}
}

func TestUpgrade(t *testing.T) {
	// The upstream switches protocols and then echoes what it reads.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		buf.Flush()
		io.Copy(conn, buf)
	}))
	defer up.Close()
	h := New(Options{Guard: loopbackGuard(t)})
	// timeout_ms 1 would cut any exchange short; it must not apply to the tunnel.
	h.Publish(compile(t, "kind: Mapping\nname: ws\nprefix: /ws/\nallow_upgrade: [websocket]\ntimeout_ms: 1\nservice: app\n", up.Listener.Addr().String()))
	gw := httptest.NewServer(h)
	defer gw.Close()

	conn, err := net.Dial("tcp", gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"ping\n", "pong\n", "again\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("through the tunnel: got %q, %v; want %q", got, err, msg)
		}
	}
}

// loopbackGuard lets tests reach upstreams on 127.0.0.1, as file mode does.
func loopbackGuard(tb testing.TB) *upstream.DialGuard {
	tb.Helper()
	g, err := upstream.NewDialGuard(upstream.GuardOptions{AllowLoopback: true})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}
