package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clientDeadline is how long a test client waits for anything: generous,
// so a loaded machine never fails a test, and far below every limit a test
// shows is not what answered (a body timeout of minutes, say).
const clientDeadline = 20 * time.Second

// startServer runs a Server on loopback ports until the test ends.
func startServer(t *testing.T, cfg Config) (s *Server, proxyAddr, adminAddr string) {
	t.Helper()
	cfg.Listen, cfg.Admin, cfg.AllowLoopback = "127.0.0.1:0", "127.0.0.1:0", true
	// Connections a test leaves stalled must not hold the cleanup.
	cfg.Drain = 50 * time.Millisecond
	s = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case a := <-addrs:
		return s, a[0], a[1]
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return nil, "", ""
}

// serveGuarded serves h behind a bodyGuard with these limits, as Run does.
func serveGuarded(t *testing.T, l Limits, h http.Handler) (addr string, timeouts prometheus.Counter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	timeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})
	srv := &http.Server{Handler: newBodyGuard(h, l, timeouts), ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), timeouts
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// rawConn is a client speaking HTTP/1.1 by hand, so it can stall, trickle
// and send what a well-behaved client would not.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(clientDeadline))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing %q: %v", s, err)
	}
}

// response reads one response and its body.
func (c *rawConn) response() (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading a response body: %v", err)
	}
	return resp, string(body)
}

// closed reads until the server closes the connection and returns what
// came first; the test fails if the connection is still open at the
// client's deadline.
func (c *rawConn) closed() string {
	c.t.Helper()
	rest, _ := c.closedWith()
	return rest
}

// closedWith is closed, with the error that ended the reading: nil for an
// orderly close, a reset otherwise.
func (c *rawConn) closedWith() (string, error) {
	c.t.Helper()
	rest, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the connection is still open after %s (read %q)", clientDeadline, rest)
	}
	return string(rest), err
}

func TestReadHeaderTimeout(t *testing.T) {
	_, addr, _ := startServer(t, Config{Limits: Limits{ReadHeaderTimeout: 300 * time.Millisecond}})

	// A head that arrives in time is answered (503: no snapshot yet).
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\n")
	c.send("Host: a\r\n\r\n")
	if resp, _ := c.response(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a complete head: %d, want 503", resp.StatusCode)
	}

	// One byte every 50 ms never completes the head before the timeout:
	// the connection is closed, with no answer or (net/http's, when the
	// timeout cuts the request line) a 400.
	slow := dialRaw(t, addr)
	gone := make(chan string, 1)
	go func() { gone <- slow.closed() }()
	head := "GET /" + strings.Repeat("a", 1000) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	for i := 0; ; i++ {
		select {
		case rest := <-gone:
			if rest != "" && !strings.HasPrefix(rest, "HTTP/1.1 400 ") {
				t.Errorf("a trickled head got %q, want no answer or a 400", rest)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if i == len(head) {
			t.Fatal("the whole head was sent, one byte at a time, without the connection being closed")
		}
		// The server may have closed already; the read above reports it.
		slow.c.Write([]byte{head[i]})
	}
}

func TestBodyIdleTimeout(t *testing.T) {
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	var ctxCancelled atomic.Bool
	addr, timeouts := serveGuarded(t, Limits{BodyIdleTimeout: 300 * time.Millisecond, BodyMinRate: -1},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				ctxCancelled.Store(r.Context().Err() != nil)
				return
			}
			b, err := io.ReadAll(r.Body)
			got <- result{len(b), err}
			if err != nil {
				http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			}
		}))

	t.Run("a body that keeps coming is read", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
		for range 10 {
			time.Sleep(20 * time.Millisecond)
			c.send(strings.Repeat("x", 10))
		}
		if r := <-got; r.n != 100 || r.err != nil {
			t.Fatalf("handler read %d bytes, %v; want 100, nil", r.n, r.err)
		}
		resp, _ := c.response()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("answer %d, close %v; want 200 on a kept connection", resp.StatusCode, resp.Close)
		}
		// The connection serves the next request, whose context is alive.
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := c.response(); resp.StatusCode != 200 || ctxCancelled.Load() {
			t.Fatalf("next request: %d, context cancelled %v", resp.StatusCode, ctxCancelled.Load())
		}
	})

	t.Run("a body that stops is cut", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 10))
		r := <-got
		if r.n != 10 || !errors.Is(r.err, ErrBodyTimeout) {
			t.Fatalf("handler read %d bytes, %v; want 10, ErrBodyTimeout", r.n, r.err)
		}
		c.closed()
		if v := counterValue(t, timeouts); v != 1 {
			t.Errorf("timeouts counted: %v, want 1", v)
		}
	})
}

func TestBodyMinRate(t *testing.T) {
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	// Each gap below is far shorter than the idle timeout: only the rate
	// bound can end a body.
	addr, _ := serveGuarded(t, Limits{BodyIdleTimeout: 2 * time.Second, BodyMinRate: 1000},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			got <- result{len(b), err}
		}))

	t.Run("faster than the rate", func(t *testing.T) {
		// 100 bytes per 20 ms is 5,000 bytes/s.
		c := dialRaw(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n")
		for range 40 {
			time.Sleep(20 * time.Millisecond)
			c.send(strings.Repeat("x", 100))
		}
		if r := <-got; r.n != 4000 || r.err != nil {
			t.Fatalf("handler read %d bytes, %v; want 4000, nil", r.n, r.err)
		}
	})

	t.Run("a trickle", func(t *testing.T) {
		// One byte per 20 ms is 50 bytes/s: the 2 s allowance runs out
		// after about a hundred bytes.
		c := dialRaw(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for range 1000 {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		r := <-got
		if r.n >= 1000 || !errors.Is(r.err, ErrBodyTimeout) {
			t.Fatalf("handler read %d bytes, %v; want fewer than 1000, ErrBodyTimeout", r.n, r.err)
		}
		c.closed()
	})
}

// TestUnreadBodyDoesNotDelayTheAnswer: an answer given without reading the
// body leaves at once, even though the body never comes, and closes the
// connection; a body read to its end keeps the connection. The body
// timeout is ten minutes, so nothing here is answered by it.
func TestUnreadBodyDoesNotDelayTheAnswer(t *testing.T) {
	var nextCtxCancelled atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		// Larger than net/http's buffers: the head leaves while the
		// handler still runs.
		io.WriteString(w, strings.Repeat("y", 64<<10))
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		http.NewResponseController(w).Flush()
		io.WriteString(w, "flushed")
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, strings.Repeat("z", 64<<10))
	})
	mux.HandleFunc("/next", func(w http.ResponseWriter, r *http.Request) {
		nextCtxCancelled.Store(r.Context().Err() != nil)
	})
	addr, timeouts := serveGuarded(t, Limits{BodyIdleTimeout: 10 * time.Minute}, mux)

	// Each connection drains for closeGrace after its answer: in parallel,
	// in a group that ends before the counter is checked.
	t.Run("answers", func(t *testing.T) { answers(t, addr) })

	t.Run("a body read to its end keeps the connection", func(t *testing.T) {
		c := dialRaw(t, addr)
		for _, framing := range []string{
			"Content-Length: 10\r\n\r\n0123456789",
			"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		} {
			c.send("POST /read HTTP/1.1\r\nHost: a\r\n" + framing)
			resp, body := c.response()
			if resp.StatusCode != 200 || resp.Close || len(body) != 64<<10 {
				t.Fatalf("%q: status %d, close %v, %d bytes", framing, resp.StatusCode, resp.Close, len(body))
			}
		}
		c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := c.response(); resp.StatusCode != 200 || nextCtxCancelled.Load() {
			t.Fatalf("next request: %d, context cancelled %v", resp.StatusCode, nextCtxCancelled.Load())
		}
	})

	if v := counterValue(t, timeouts); v != 0 {
		t.Errorf("body timeouts counted: %v, want 0 (no answer waited for a body)", v)
	}
}

// answers sends requests whose bodies never come (or come whole, unread)
// to the handlers of TestUnreadBodyDoesNotDelayTheAnswer that answer
// without reading them.
func answers(t *testing.T, addr string) {
	for _, tc := range []struct {
		name, path, headers, body string
		status                    int
	}{
		{"404", "/404", "Content-Length: 100\r\n", "", 404},
		{"429", "/429", "Content-Length: 100\r\n", "", 429},
		{"503", "/503", "Content-Length: 100\r\n", "", 503},
		{"redirect", "/redirect", "Content-Length: 100\r\n", "", 301},
		{"handler writes nothing", "/silent", "Content-Length: 100\r\n", "", 200},
		{"head sent mid-handler", "/large", "Content-Length: 100\r\n", "", 200},
		{"flush", "/flush", "Content-Length: 100\r\n", "", 202},
		{"part of the body", "/404", "Content-Length: 100\r\n", strings.Repeat("x", 50), 404},
		{"chunked", "/404", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", 404},
		{"expect continue", "/404", "Content-Length: 100\r\nExpect: 100-continue\r\n", "", 404},
		// The whole body came, but nobody read it: closing is the price of
		// never waiting (documented).
		{"whole body unread", "/404", "Content-Length: 10\r\n", "0123456789", 404},
		// Beyond net/http's buffer, in the kernel's: drained after the
		// answer, so the close is orderly and cannot destroy the answer
		// with a reset.
		{"large body unread", "/404", "Content-Length: 200000\r\n", strings.Repeat("x", 200000), 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr)
			c.send("POST " + tc.path + " HTTP/1.1\r\nHost: a\r\n" + tc.headers + "\r\n" + tc.body)
			resp, _ := c.response()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !resp.Close {
				t.Errorf("the answer does not close the connection; header %v", resp.Header)
			}
			if rest, err := c.closedWith(); rest != "" || err != nil {
				t.Errorf("after the answer: %q, %v; want the connection closed in order", rest, err)
			}
		})
	}
}

// TestUnreadBodyThroughTheGateway: the same through Server, whose proxy
// answers 503 before it has a snapshot.
func TestUnreadBodyThroughTheGateway(t *testing.T) {
	_, addr, _ := startServer(t, Config{Limits: Limits{BodyIdleTimeout: 10 * time.Minute}})
	c := dialRaw(t, addr)
	c.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
	if resp, _ := c.response(); resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Fatalf("status %d, close %v; want 503 closing the connection", resp.StatusCode, resp.Close)
	}
	c.closed()
}

func TestIdleTimeout(t *testing.T) {
	_, addr, _ := startServer(t, Config{Limits: Limits{IdleTimeout: 300 * time.Millisecond}})
	c := dialRaw(t, addr)
	// A next request sent at once is served on the same connection...
	for range 2 {
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := c.response(); resp.StatusCode != http.StatusServiceUnavailable || resp.Close {
			t.Fatalf("status %d, close %v; want 503 on a kept connection", resp.StatusCode, resp.Close)
		}
	}
	// ...and an idle one is closed.
	if rest := c.closed(); rest != "" {
		t.Errorf("idle connection got %q", rest)
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	const limit = 8 << 10
	_, addr, _ := startServer(t, Config{Limits: Limits{MaxHeaderBytes: limit}})
	// head is a request whose line and headers take exactly n bytes.
	head := func(n int) string {
		h := "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n"
		return strings.Replace(h, "X-Pad: ", "X-Pad: "+strings.Repeat("p", n-len(h)), 1)
	}
	// net/http reads 4 KiB beyond MaxHeaderBytes (its allowance for the
	// request line) before refusing, and, serving HTTP/2 with prior
	// knowledge too, a few bytes more that its look for the HTTP/2 preface
	// takes (14 with Go 1.26): the exact edge is net/http's.
	for _, tc := range []struct {
		size, status int
	}{
		{limit, http.StatusServiceUnavailable},
		{limit + 4096, http.StatusServiceUnavailable},
		{limit + 4096 + 64, http.StatusRequestHeaderFieldsTooLarge},
		{4 * limit, http.StatusRequestHeaderFieldsTooLarge},
	} {
		c := dialRaw(t, addr)
		c.send(head(tc.size))
		if resp, _ := c.response(); resp.StatusCode != tc.status {
			t.Errorf("a head of %d bytes: %d, want %d", tc.size, resp.StatusCode, tc.status)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	s, addr, adminAddr := startServer(t, Config{Limits: Limits{MaxConnections: 3}})
	served := func(c *rawConn) bool {
		t.Helper()
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, _ := c.response()
		return resp.StatusCode == http.StatusServiceUnavailable
	}
	// Up to the cap, every connection is served, and stays open.
	var conns []*rawConn
	for i := range 3 {
		c := dialRaw(t, addr)
		if !served(c) {
			t.Fatalf("connection %d not served", i+1)
		}
		conns = append(conns, c)
	}
	// Beyond it, a connection is reset unanswered; the reset can come
	// before the dial returns, or before the request is written.
	if c, err := net.Dial("tcp", addr); err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(clientDeadline))
		c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
		extra := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
		if rest := extra.closed(); rest != "" {
			t.Fatalf("a connection beyond the cap got %q", rest)
		}
	}
	deadline := time.Now().Add(clientDeadline)
	for counterValue(t, s.conns.rejected) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the connection beyond the cap was not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range conns {
		if !served(c) {
			t.Fatal("a connection within the cap stopped being served")
		}
	}
	// Once one closes, a new one gets its slot.
	conns[0].c.Close()
	for s.conns.open.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("open connections: %d, want 2 after one closed", s.conns.open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !served(dialRaw(t, addr)) {
		t.Fatal("a connection after one closed was not served")
	}

	_, metrics := get(t, "http://"+adminAddr+"/metrics")
	for _, want := range []string{"gatehouse_connections_open 3", "gatehouse_connections_rejected_total 1", "gatehouse_request_body_timeouts_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{}.withDefaults()
	want := Limits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		BodyIdleTimeout:   DefaultBodyIdleTimeout,
		BodyMinRate:       DefaultBodyMinRate,
		IdleTimeout:       DefaultIdleTimeout,
		MaxConnections:    DefaultMaxConnections,
		SendTimeout:       DefaultSendTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
	if got != want {
		t.Errorf("zero Limits: %+v, want %+v", got, want)
	}
	off := Limits{ReadHeaderTimeout: -1, BodyIdleTimeout: -1, BodyMinRate: -1, IdleTimeout: -1, MaxConnections: -1, MaxHeaderBytes: -1}.withDefaults()
	if off.MaxHeaderBytes != DefaultMaxHeaderBytes || off.ReadHeaderTimeout != -1 || off.MaxConnections != -1 {
		t.Errorf("negative Limits: %+v; want them kept, but the header cap", off)
	}
	for _, tc := range []struct {
		l       bodyLimits
		credit  time.Duration
		wait    time.Duration
		limited bool
	}{
		{bodyLimits{idle: 5, rate: 1}, 3, 3, true},
		{bodyLimits{idle: 5, rate: 1}, 9, 5, true},
		{bodyLimits{idle: 5, rate: 1}, -2, -2, true},
		{bodyLimits{idle: 5, rate: -1}, 3, 5, true},
		{bodyLimits{idle: -1, rate: 1}, 3, 3, true},
		{bodyLimits{idle: -1, rate: -1}, 3, 0, false},
	} {
		if w, ok := tc.l.wait(tc.credit); w != tc.wait || ok != tc.limited {
			t.Errorf("%+v.wait(%d) = %d, %v; want %d, %v", tc.l, tc.credit, w, ok, tc.wait, tc.limited)
		}
	}
}
