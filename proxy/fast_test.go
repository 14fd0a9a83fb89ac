package proxy

import (
	"bufio"
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

// TestRetryOnlyWhatNeverArrived: a kept connection that turns out dead when
// the request is sent is retried on a new one for a GET; not for a POST
// (no idempotency key), and not once any of an answer came back.
func TestRetryOnlyWhatNeverArrived(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Keep-alive, except: /close-after is answered as if the connection
	// stayed open, then closed; /partial gets half a head, then the close.
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					switch req.URL.Path {
					case "/partial":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
						return
					case "/close-after":
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}(c)
		}
	}()
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: app\nprefix: /\nrewrite: \"\"\nservice: app\n", ln.Addr().String()))
	for i, tc := range []struct {
		method, path string
		want         int
		dials        int64 // new connections the request made
	}{
		{"GET", "/close-after", 200, 1}, // leaves a dead connection in the pool
		{"GET", "/b", 200, 1},           // the dead one, then a new one, kept
		{"GET", "/close-after", 200, 0}, // the kept one, now dead too
		{"POST", "/c", 502, 0},          // the dead one; a POST is not sent again
		{"GET", "/d", 200, 1},           // a new one, kept
		{"GET", "/partial", 502, 0},     // the kept one answers in part: not sent again
	} {
		before := conns.Load()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.method == "POST" {
			req = httptest.NewRequest(tc.method, tc.path, strings.NewReader("x"))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("%d: %s %s: %d, want %d", i, tc.method, tc.path, w.Code, tc.want)
		}
		if got := conns.Load() - before; got != tc.dials {
			t.Errorf("%d: %s %s made %d connections, want %d", i, tc.method, tc.path, got, tc.dials)
		}
	}
}
