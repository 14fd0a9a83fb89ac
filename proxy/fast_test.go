package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// TestPoolSkipsConnectionsTheUpstreamClosed: an upstream that closes idle
// connections sooner than the gateway (Node's default is 5 s) must not cost
// a request that may not be retried: the pool looks before reusing a
// connection that has rested, and dials anew.
func TestPoolSkipsConnectionsTheUpstreamClosed(t *testing.T) {
	var closed atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	}))
	up.Config.IdleTimeout = 50 * time.Millisecond
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	pool := NewPool(func() *upstream.DialGuard { return loopbackGuard(t) })
	pool.CheckAfter = 0 // look every time: the test cannot wait a second per request
	h := New(Options{Guard: loopbackGuard(t), Pool: pool})
	h.Publish(compile(t, "kind: Mapping\nname: app\nprefix: /\nrewrite: \"\"\nservice: app\n", up.Listener.Addr().String()))
	for i := range 3 {
		if code := request(h, t.Context(), "POST", strings.NewReader("x"), 1); code != 200 {
			t.Fatalf("POST %d: %d", i, code)
		}
		deadline := time.Now().Add(10 * time.Second)
		for closed.Load() <= int64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("the upstream never closed its idle connection")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
