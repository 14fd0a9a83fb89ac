package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// breakerGateway is a Handler serving one Service "t/app" with config, its
// upstreams' breakers set up by settings; it returns the Upstream too, so a
// test can read the breaker's state.
func breakerGateway(t *testing.T, settings upstream.BreakerSettings, config string, endpoints ...string) (*Handler, *upstream.Upstream) {
	return breakerGatewayOn(t, false, settings, config, endpoints...)
}

// breakerGatewayOn is breakerGateway with the fast path off when streaming
// is set: every request then goes through httputil.ReverseProxy.
func breakerGatewayOn(t *testing.T, streaming bool, settings upstream.BreakerSettings, config string, endpoints ...string) (*Handler, *upstream.Upstream) {
	t.Helper()
	ups := upstream.NewRegistry(upstream.RegistryOptions{Breaker: settings, Guard: loopbackGuard(t)})
	h := New(Options{Guard: loopbackGuard(t), NoFastPath: streaming})
	h.Publish(compileWith(t, ups, config, endpoints...))
	return h, ups.Get("t/app:80")
}

// mapping is one catch-all Mapping to t/app with extra fields.
func mapping(extra string) string {
	return "kind: Mapping\nname: app\nprefix: /\nrewrite: \"\"\nservice: app\n" + extra
}

// stalledBody is a request body whose client sent head, then nothing more:
// Read blocks until release, like a stalled socket without a deadline.
type stalledBody struct {
	head    string
	release chan struct{}
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if b.head != "" {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

// brokenBody sends head, then fails as a client that disconnects or sends
// malformed chunks does.
type brokenBody struct {
	head string
	err  error
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.head != "" {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	return 0, b.err
}

// request serves one request with body (declared length cl; -1 chunked) and
// returns the status.
func request(h http.Handler, ctx context.Context, method string, body io.Reader, cl int64) int {
	req := httptest.NewRequest(method, "/x", body).WithContext(ctx)
	req.ContentLength = cl
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

func wantState(t *testing.T, u *upstream.Upstream, want upstream.State, after string) {
	t.Helper()
	if got := u.State(); got != want {
		t.Fatalf("after %s: breaker %v, want %v", after, got, want)
	}
}

// TestBreakerIgnoresStalledBodies: clients that send part of a body and
// stall until the route's timeout say nothing about the upstream, whatever
// the upstream then does: waits for the rest, or gives up and answers 5xx.
// Through a real server, whose connection deadline is what ends the stall.
func TestBreakerIgnoresStalledBodies(t *testing.T) {
	waits := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer waits.Close()
	// An upstream whose own body read gives up after the first bytes, as a
	// server with a short read timeout does, and answers 500.
	givesUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, 4))
		w.Header().Set("Connection", "close") // else net/http drains the body before answering
		w.WriteHeader(500)
	}))
	defer givesUp.Close()
	const (
		withLength = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial"
		chunked    = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"
	)
	for _, tc := range []struct {
		name     string
		endpoint string
		timeout  string // timeout_ms; the 500 comes without waiting for one
		sent     string
		want     int
		// streaming runs the case with the fast path off. On the fast path
		// a body of known, small size is read in full before the upstream
		// is contacted, so an upstream never sees a partial one: it gets
		// the waiting cases (their 408 comes from the route's timeout) and
		// has nothing to show in the others.
		streaming bool
	}{
		{"waiting upstream, Content-Length", waits.Listener.Addr().String(), "50", withLength, 408, false},
		{"waiting upstream, Content-Length, streaming", waits.Listener.Addr().String(), "50", withLength, 408, true},
		{"waiting upstream, chunked", waits.Listener.Addr().String(), "50", chunked, 408, false},
		{"upstream answers 500", givesUp.Listener.Addr().String(), "600000", withLength, 500, true},
		{"upstream answers 500, chunked", givesUp.Listener.Addr().String(), "600000", chunked, 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, u := breakerGatewayOn(t, tc.streaming, upstream.BreakerSettings{}, mapping("timeout_ms: "+tc.timeout+"\n"), tc.endpoint)
			gw := httptest.NewServer(h)
			defer gw.Close()
			for i := 1; i <= 10; i++ {
				if code := stall(t, gw.Listener.Addr().String(), tc.sent); code != tc.want {
					t.Fatalf("stalled request %d: %d, want %d", i, code, tc.want)
				}
				// Checked each time: an open breaker's 503 is answered without
				// reading the body, and (without the server's body limits)
				// net/http would wait for ever to drain it first.
				wantState(t, u, upstream.StateClosed, strconv.Itoa(i)+" stalled bodies")
			}
			if code := request(h, context.Background(), "POST", strings.NewReader("whole"), 5); code == 503 {
				t.Fatalf("a whole request after stalled ones: %d", code)
			}
		})
	}
}

// stall sends sent on a new connection to addr, sends nothing more, and
// returns the status of the answer, which must close the connection: what
// the client might send next is the rest of a body, never a request.
func stall(t *testing.T, addr, sent string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, sent)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("the answer to a stalled body (%d) keeps the connection", resp.StatusCode)
	}
	io.WriteString(conn, strings.Repeat("x", 93)+"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the connection carried another request (%d) after a stalled body", resp.StatusCode)
	}
	return resp.StatusCode
}

// TestBreakerIgnoresClients: clients that go away, or whose bodies break
// off or are malformed, say nothing about the upstream.
func TestBreakerIgnoresClients(t *testing.T) {
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("wait") {
			entered <- struct{}{}
			<-r.Context().Done()
			return
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	h, u := breakerGateway(t, upstream.BreakerSettings{}, mapping(""), up.Listener.Addr().String())

	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("GET", "/x?wait", nil).WithContext(ctx)
		go func() { <-entered; cancel() }()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != StatusClientClosed {
			t.Fatalf("cancelled request %d: %d, want %d", i, w.Code, StatusClientClosed)
		}
	}
	wantState(t, u, upstream.StateClosed, "10 cancelled requests")

	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"disconnect mid-body", io.ErrUnexpectedEOF, 400},
		{"malformed chunks", errors.New("invalid byte in chunk length"), 400},
		{"body over the server's limit", &http.MaxBytesError{Limit: 4}, 413},
		{"body read timed out", &net.OpError{Op: "read", Err: timeoutErr{}}, 408},
	} {
		for i := 0; i < 10; i++ {
			if code := request(h, context.Background(), "POST", &brokenBody{head: "part", err: tc.err}, 100); code != tc.want {
				t.Fatalf("%s, request %d: %d, want %d", tc.name, i, code, tc.want)
			}
		}
		wantState(t, u, upstream.StateClosed, "10 requests with "+tc.name)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestBreakerCountsUpstreamFaults: what the upstream does to a request it had
// in full opens the breaker after ConsecutiveFailures (5 by default).
func TestBreakerCountsUpstreamFaults(t *testing.T) {
	fails := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(500)
	}))
	defer fails.Close()
	hangs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hangs.Close()
	refused := refusedAddr(t)

	for _, tc := range []struct {
		name, endpoint, extra string
		body                  func() (io.Reader, int64)
		want                  int
		streaming             bool // the fast path off: see TestBreakerIgnoresStalledBodies
	}{
		{"500 to a GET", fails.Listener.Addr().String(), "", nil, 500, false},
		{"500 to a whole POST", fails.Listener.Addr().String(), "", whole, 500, false},
		{"500 to a whole chunked POST", fails.Listener.Addr().String(), "", wholeChunked, 500, false},
		{"no answer in time to a whole POST", hangs.Listener.Addr().String(), "timeout_ms: 50\n", whole, 504, false},
		{"connection refused", refused, "", nil, 502, false},
		// The transport reads no body before it has a connection: a client
		// that would stall changes nothing about a refused connection.
		// (The fast path reads such a body before it connects, so there the
		// client's stall is the client's: a 408 from the server's limits.)
		{"connection refused, stalling client", refused, "", stalled, 502, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, u := breakerGatewayOn(t, tc.streaming, upstream.BreakerSettings{}, mapping(tc.extra), tc.endpoint)
			for i := 1; i <= 5; i++ {
				var body io.Reader
				var cl int64
				if tc.body != nil {
					body, cl = tc.body()
				}
				if code := request(h, context.Background(), "POST", body, cl); code != tc.want {
					t.Fatalf("request %d: %d, want %d", i, code, tc.want)
				}
				if i == 4 {
					wantState(t, u, upstream.StateClosed, "4 failures")
				}
			}
			wantState(t, u, upstream.StateOpen, "5 failures")
			if code := request(h, context.Background(), "GET", nil, 0); code != 503 {
				t.Fatalf("with the breaker open: %d, want 503", code)
			}
		})
	}
}

func whole() (io.Reader, int64) { return strings.NewReader("whole body"), 10 }

func wholeChunked() (io.Reader, int64) { return strings.NewReader("whole body"), -1 }

func stalled() (io.Reader, int64) {
	return &stalledBody{head: "partial", release: make(chan struct{})}, 100
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBreakerCountsBrokenAnswers: an upstream that breaks off its answer
// after the head (a reset, a body shorter than it declared) fails.
func TestBreakerCountsBrokenAnswers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		buf.Flush()
		conn.Close()
	}))
	defer up.Close()
	h, u := breakerGateway(t, upstream.BreakerSettings{}, mapping(""), up.Listener.Addr().String())
	gw := httptest.NewServer(h) // net/http recovers the ErrAbortHandler a broken copy ends in
	defer gw.Close()
	for i := 0; i < 5; i++ {
		// The client sees an aborted connection, before or after the head
		// (the gateway's buffer may not have been flushed).
		resp, err := http.Get(gw.URL + "/x")
		if err == nil {
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Errorf("request %d: a truncated answer read as whole", i)
			}
			resp.Body.Close()
		}
	}
	wantState(t, u, upstream.StateOpen, "5 truncated answers")
}

// TestBreakerFailureRatio: an upstream failing every other request never
// fails 5 times in a row, and is caught by the ratio: 10 failures in 20.
func TestBreakerFailureRatio(t *testing.T) {
	var n atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(500)
		}
	}))
	defer up.Close()
	h, u := breakerGateway(t, upstream.BreakerSettings{}, mapping(""), up.Listener.Addr().String())
	for i := 1; i <= 20; i++ {
		want := 200
		if i%2 == 0 {
			want = 500
		}
		if code := request(h, context.Background(), "GET", nil, 0); code != want {
			t.Fatalf("request %d: %d, want %d", i, code, want)
		}
		if i == 19 {
			wantState(t, u, upstream.StateClosed, "9 failures in 19")
		}
	}
	wantState(t, u, upstream.StateOpen, "10 failures in 20")

	// Below the ratio, and below the volume, it stays closed.
	n.Store(0)
	h, u = breakerGateway(t, upstream.BreakerSettings{FailureRatio: 0.6, MinRequests: 10}, mapping(""), up.Listener.Addr().String())
	for i := 0; i < 40; i++ {
		request(h, context.Background(), "GET", nil, 0)
	}
	wantState(t, u, upstream.StateClosed, "20 failures in 40 with ratio 0.6")
}
