package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// routesInput is one Service per route, each sending its prefix to the
// upstream at its address (127.0.0.1:port).
func routesInput(t *testing.T, routes ...struct{ name, prefix, addr string }) snapshot.Input {
	t.Helper()
	var in snapshot.Input
	for _, r := range routes {
		_, portStr, _ := net.SplitHostPort(r.addr)
		p, err := strconv.Atoi(portStr)
		if err != nil {
			t.Fatal(err)
		}
		port := int32(p)
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: r.name, Annotations: map[string]string{
				annotations.Key: fmt.Sprintf("kind: Mapping\nname: %s\nprefix: %s\nservice: %s\n", r.name, r.prefix, r.name)}},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})
		in.Slices = append(in.Slices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: r.name + "-1", Labels: map[string]string{"kubernetes.io/service-name": r.name}},
			Ports:      []discoveryv1.EndpointPort{{Port: &port}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
		})
	}
	return in
}

// sink accepts connections and holds them without reading: an upstream
// that never answers, or the far end of a bare socket pair.
type sink struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.drop()
	})
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *sink) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// footprint is the process's Go heap, its goroutine stacks and its
// resident set, after collecting garbage.
type footprint struct{ heap, stacks, rss int64 }

func measure() footprint {
	// Two collections empty sync.Pools (net/http keeps its buffers there),
	// and freed pages go back to the system, so that one kind of connection
	// does not reuse what an earlier one left.
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return footprint{heap: int64(ms.HeapInuse), stacks: int64(ms.StackInuse), rss: residentBytes()}
}

// residentBytes is VmRSS from /proc/self/status; 0 where there is none.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConnectionMemory measures what idle and stalled client connections
// cost and logs the figures quoted in docs/benchmarks.md ("Idle and slow
// connections"). GATEHOUSE_MEMCONNS sets how many connections of each
// kind (default 200). The bounds it asserts are loose: they catch a
// per-connection buffer growing by an order of magnitude, not noise.
func TestConnectionMemory(t *testing.T) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("GATEHOUSE_MEMCONNS")); err == nil && v > 0 {
		n = v
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	stall, pairs := newSink(t), newSink(t)
	s, addr, _ := startServer(t, Config{Limits: Limits{BodyIdleTimeout: 10 * time.Minute, MaxConnections: -1}})
	s.Apply(routesInput(t,
		struct{ name, prefix, addr string }{"app", "/app/", up.Listener.Addr().String()},
		struct{ name, prefix, addr string }{"stall", "/stall/", stall.ln.Addr().String()}))

	var clients []net.Conn
	dial := func(to string) net.Conn {
		c, err := net.Dial("tcp", to)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		clients = append(clients, c)
		return c
	}
	closeClients := func() {
		for _, c := range clients {
			c.Close()
		}
		clients = nil
	}
	defer closeClients()
	var report bytes.Buffer
	// perConn logs the growth from before, per connection, in KiB, and
	// returns heap plus stacks.
	perConn := func(what string, before footprint) float64 {
		after := measure()
		kib := func(a, b int64) float64 { return float64(a-b) / float64(n) / 1024 }
		heap, stacks := kib(after.heap, before.heap), kib(after.stacks, before.stacks)
		fmt.Fprintf(&report, "| %s | %.1f | %.1f | %.1f | %.1f |\n", what, heap, stacks, heap+stacks, kib(after.rss, before.rss))
		return heap + stacks
	}
	// Goroutines of a phase (the gateway's, the upstream transport's) end
	// after its connections close; the next phase starts once they have.
	// A first request opens the pooled upstream connection that stays.
	if code, _ := get(t, "http://"+addr+"/app/warm"); code != 200 {
		t.Fatalf("warm-up request: %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
	waitUntil(t, "the warm-up connection is closed", func() bool { return s.conns.open.Load() == 0 })
	idleGoroutines := runtime.NumGoroutine()
	gatewayIdle := func() {
		closeClients()
		stall.drop()
		waitUntil(t, "the gateway's connections are closed", func() bool { return s.conns.open.Load() == 0 })
		waitUntil(t, "the phase's goroutines end", func() bool { return runtime.NumGoroutine() <= idleGoroutines })
	}

	// The test's own share: bare socket pairs, both ends in this process.
	before := measure()
	for range n {
		dial(pairs.ln.Addr().String())
	}
	waitUntil(t, "the pairs are accepted", func() bool { return pairs.count() == n })
	perConn("bare socket pair, both ends in the test (its own share)", before)
	closeClients()
	pairs.drop()
	waitUntil(t, "the pairs' goroutines end", func() bool { return runtime.NumGoroutine() <= idleGoroutines })

	// Keep-alive connections idle after one proxied request.
	before = measure()
	for range n {
		c := dial(addr)
		io.WriteString(c, "GET /app/x HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("proxied request: %d", resp.StatusCode)
		}
	}
	idle := perConn("idle keep-alive after one proxied request", before)
	gatewayIdle()

	// A head with Content-Length and no body, to a proxied route: held
	// until --body-idle-timeout. The fast path reads a small body before
	// it connects upstream, so such a request holds no upstream connection
	// there; a big one (past what the fast path holds) streams, and does.
	before = measure()
	for range n {
		io.WriteString(dial(addr), "POST /stall/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
	}
	waitUntil(t, "every stalled request is being served", func() bool { return s.inFlight.Load() == int64(n) })
	stalled := perConn("stalled small body, proxied route (fast path: no upstream connection)", before)
	gatewayIdle()

	before = measure()
	for range n {
		io.WriteString(dial(addr), "POST /stall/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
	}
	waitUntil(t, "every stalled request reaches the upstream", func() bool { return stall.count() == n })
	streamed := perConn("stalled big body, proxied route (with its upstream connection)", before)
	gatewayIdle()

	// The same to a path with no route, served as before this change
	// (the proxy handler, no guard): held for ever.
	var active atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	old := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateActive {
				active.Add(1)
			}
		}}
	go old.Serve(ln)
	defer old.Close()
	before = measure()
	for range n {
		io.WriteString(dial(ln.Addr().String()), "POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
	}
	waitUntil(t, "every request is read", func() bool { return active.Load() == int64(n) })
	perConn("stalled body, no route, before this change: held for ever", before)
	closeClients()

	// And now: answered at once, connection closed, nothing held. (Each
	// closes closeGrace after its answer: all are sent before any is read.)
	for range n {
		io.WriteString(dial(addr), "POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
	}
	for _, c := range clients[len(clients)-n:] {
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, br); resp.StatusCode != 404 || err != nil {
			t.Fatalf("stalled body to no route: %d, then %v; want 404, then the connection closed", resp.StatusCode, err)
		}
	}
	waitUntil(t, "the gateway's connections are closed", func() bool { return s.conns.open.Load() == 0 })
	fmt.Fprintf(&report, "| stalled body, no route, now: answered 404 and closed | 0 | 0 | 0 | 0 |\n")

	t.Logf("%d connections of each kind, KiB per connection (GOARCH %s, race detector %v)\n| connection | heap | stacks | heap+stacks | RSS |\n|---|---:|---:|---:|---:|\n%s",
		n, runtime.GOARCH, raceEnabled, report.String())
	if idle > 64 || stalled > 256 || streamed > 256 {
		t.Errorf("per connection: idle %.1f KiB, stalled %.1f and %.1f KiB; want under 64 and 256", idle, stalled, streamed)
	}
}
