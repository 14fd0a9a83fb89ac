package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo answers with what it read of the request.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Query().Has("chunked") {
		io.WriteString(w, "chunked answer")
		return
	}
	out := fmt.Sprintf("%s %s %q host=%s body=%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, body)
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	io.WriteString(w, out)
})

// fallback is net/http serving the connections a Server hands over.
type fallback struct {
	*Handoff
	srv *http.Server
}

func newFallback(h http.Handler) *fallback {
	f := &fallback{Handoff: NewHandoff(), srv: &http.Server{MaxHeaderBytes: 4096, Handler: h}}
	go f.srv.Serve(f.Handoff)
	return f
}

// serve starts a Server with echo behind it and net/http as its fallback,
// which marks its answers.
func serve(t *testing.T, tune func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := newFallback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "net/http")
		echo(w, r)
	}))
	s := &Server{Handler: echo, Fallback: fb.Give, MaxHeaderBytes: 4096}
	if tune != nil {
		tune(s)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		fb.srv.Close()
	})
	return s, ln.Addr().String()
}

// exchange sends raw on a new connection and reads n answers.
func exchange(t *testing.T, addr, raw string, n int) ([]*http.Response, []string, *bufio.Reader, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for len(resps) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(resps), err)
		}
		if resp.StatusCode < 200 {
			continue // 100 Continue
		}
		b, _ := io.ReadAll(resp.Body)
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	return resps, bodies, br, c
}

func TestPipelinedKeepAlive(t *testing.T) {
	_, addr := serve(t, nil)
	raw := "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /b%2Fc HTTP/1.1\r\nHost: h:8\r\n\r\n" +
		"GET /c?chunked HTTP/1.1\r\nHost: h\r\n\r\n" +
		"HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n"
	resps, bodies, _, _ := exchange(t, addr, raw, 3)
	want := []string{`POST /a "x=1" host=h body=abc`, `GET /b/c "" host=h:8 body=`, "chunked answer"}
	for i, w := range want {
		if bodies[i] != w || resps[i].Header.Get("X-Served-By") != "" || resps[i].Close {
			t.Errorf("answer %d: %q (by %q, close %v), want %q from the fast path", i, bodies[i], resps[i].Header.Get("X-Served-By"), resps[i].Close, w)
		}
	}
	if len(resps[2].TransferEncoding) != 1 || resps[0].ContentLength != int64(len(want[0])) {
		t.Errorf("framing: %v, %d", resps[2].TransferEncoding, resps[0].ContentLength)
	}
	if resps[0].Header.Get("Date") == "" {
		t.Errorf("no Date")
	}
}

func TestHeadAnswersHaveNoBody(t *testing.T) {
	_, addr := serve(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "HEAD /d HTTP/1.1\r\nHost: h\r\n\r\nGET /e HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || head.ContentLength != int64(len(`HEAD /d "" host=h body=`)) {
		t.Fatalf("HEAD: %v %v", head, err)
	}
	get, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(get.Body); string(b) != `GET /e "" host=h body=` {
		t.Errorf("the answer after HEAD: %q", b)
	}
}

// TestHandOff: what the fast path does not read itself is served by
// net/http on the same connection, from the first byte of that request.
func TestHandOff(t *testing.T) {
	_, addr := serve(t, nil)
	for _, tc := range []struct{ name, raw, want string }{
		{"chunked body", "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", `POST /p "" host=h body=abc`},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: h\r\n\r\n", `GET /old "" host=h body=`},
		{"absolute form", "GET http://abs/x HTTP/1.1\r\nHost: h\r\n\r\n", `GET /x "" host=abs body=`},
		{"Expect", "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz", `POST /e "" host=h body=z`},
		{"bare LF", "GET /lf HTTP/1.1\nHost: h\n\n", `GET /lf "" host=h body=`},
		{"after a fast one", "GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\nHost: h\n\n", ""},
		{"head past the limit", "GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 10000) + "\r\n\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "after a fast one":
				resps, bodies, _, _ := exchange(t, addr, tc.raw, 2)
				if resps[0].Header.Get("X-Served-By") != "" || resps[1].Header.Get("X-Served-By") != "net/http" || bodies[1] != `GET /second "" host=h body=` {
					t.Errorf("answers %q by %q, %q", bodies, resps[0].Header.Get("X-Served-By"), resps[1].Header.Get("X-Served-By"))
				}
			case "head past the limit":
				resps, _, _, _ := exchange(t, addr, tc.raw, 1)
				if resps[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("status %d, want 431 from net/http", resps[0].StatusCode)
				}
			default:
				resps, bodies, _, _ := exchange(t, addr, tc.raw, 1)
				if resps[0].Header.Get("X-Served-By") != "net/http" || bodies[0] != tc.want {
					t.Errorf("%q by %q, want %q by net/http", bodies[0], resps[0].Header.Get("X-Served-By"), tc.want)
				}
			}
		})
	}
}

// TestSweeper: a connection idle past IdleTimeout, or sending its head
// slower than ReadHeaderTimeout (the first one counted from the accept),
// is closed; one serving a request is not.
func TestSweeper(t *testing.T) {
	release := make(chan struct{})
	_, addr := serve(t, func(s *Server) {
		s.IdleTimeout, s.ReadHeaderTimeout = 200*time.Millisecond, 200*time.Millisecond
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, "ok")
		})
	})
	closedWithin := func(c net.Conn, limit time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(limit))
		_, err := io.Copy(io.Discard, c)
		return err == nil // EOF: the server closed it
	}
	// Idle after one request.
	_, _, _, c := exchange(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	if !closedWithin(c, 5*time.Second) {
		t.Errorf("an idle keep-alive connection stayed open")
	}
	// Nothing sent at all.
	c2, _ := net.Dial("tcp", addr)
	defer c2.Close()
	if !closedWithin(c2, 5*time.Second) {
		t.Errorf("a connection that sent nothing stayed open")
	}
	// A head that never ends.
	c3, _ := net.Dial("tcp", addr)
	defer c3.Close()
	io.WriteString(c3, "GET /x HTTP/1.1\r\nHost: h\r\n")
	if !closedWithin(c3, 5*time.Second) {
		t.Errorf("a slow head stayed open")
	}
	// A request the handler takes its time over is not cut.
	c4, _ := net.Dial("tcp", addr)
	defer c4.Close()
	io.WriteString(c4, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.AfterFunc(time.Second, func() { close(release) })
	c4.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c4), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("a request served for longer than the timeouts: %v %v", resp, err)
	}
}

// TestSendTimeout: a client that stops reading its answer is closed after
// SendTimeout, and the handler's writes fail; one that reads slowly but
// keeps reading gets all of it.
func TestSendTimeout(t *testing.T) {
	failed := make(chan error, 2)
	big := strings.Repeat("x", 64<<10)
	_, addr := serve(t, func(s *Server) {
		s.SendTimeout = 200 * time.Millisecond
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := 256 // 16 MiB: more than the socket buffers hold
			if r.URL.Path == "/small" {
				n = 64 // 4 MiB, read slowly
			}
			w.Header().Set("Content-Length", fmt.Sprint(n*len(big)))
			for range n {
				if _, err := io.WriteString(w, big); err != nil {
					failed <- err
					return
				}
			}
			failed <- nil
		})
	})
	stuck, _ := net.Dial("tcp", addr)
	defer stuck.Close()
	io.WriteString(stuck, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
	select {
	case err := <-failed:
		if err == nil {
			t.Fatalf("16 MiB were sent to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a client that reads nothing held its connection")
	}
	slow, _ := net.Dial("tcp", addr)
	defer slow.Close()
	io.WriteString(slow, "GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 256<<10)
	total := 0
	for total < 4<<20 {
		n, err := slow.Read(buf)
		total += n
		if err != nil {
			t.Fatalf("a client reading slowly was cut after %d bytes: %v", total, err)
		}
		time.Sleep(5 * time.Millisecond) // reading slowly is the point
	}
	if err := <-failed; err != nil {
		t.Errorf("the slow reader's answer: %v", err)
	}
}

// TestSendTimeoutHandedOver: a connection net/http serves after the fast
// path handed it over is bounded the same way.
func TestSendTimeoutHandedOver(t *testing.T) {
	failed := make(chan error, 1)
	big := strings.Repeat("x", 64<<10)
	// An HTTP/1.0 request, which the fast path hands over, to a handler
	// that writes 16 MiB.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := newFallback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 256 {
			if _, err := io.WriteString(w, big); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	}))
	defer fb.srv.Close()
	s := &Server{Handler: echo, Fallback: fb.Give, SendTimeout: 200 * time.Millisecond}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	stuck, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	io.WriteString(stuck, "GET /big HTTP/1.0\r\nHost: h\r\n\r\n")
	select {
	case err := <-failed:
		if err == nil {
			t.Fatalf("16 MiB were sent to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a handed-over client that reads nothing held its connection")
	}
}

// TestShutdown closes idle connections at once and lets a request in
// flight finish, its answer saying Connection: close.
func TestShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, addr := serve(t, func(s *Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(entered)
				<-release
			}
			io.WriteString(w, "ok")
		})
	})
	_, _, _, idle := exchange(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	busy, _ := net.Dial("tcp", addr)
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, idle); err != nil {
		t.Errorf("the idle connection was not closed: %v", err)
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Errorf("the request in flight: %v %v", resp, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// loopConn is a connection that reads the same request for ever (until
// n requests) and discards what is written: the server's own cost alone.
type loopConn struct {
	net.Conn
	req  []byte
	n    int
	mu   sync.Mutex
	sent int
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	c.n--
	return copy(p, c.req), nil
}
func (c *loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4242} }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkServe is the fast path's own cost per request: read a head,
// parse it, call the handler, frame and write a small answer.
func BenchmarkServe(b *testing.B) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"2"}
		w.Write([]byte("ok"))
	})}
	s.conns = map[*conn]struct{}{}
	s.clock = NewClock(time.Second)
	defer s.clock.Stop()
	req := []byte("GET /api/users/42?x=1 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	c := s.newConn(&loopConn{req: req, n: b.N})
	c.serve()
}

// TestConnectionSheds: a request with thousands of fields and a big head,
// answered with thousands of fields, leaves its connection holding no more
// than an ordinary one for the next request: fresh maps, a small buffer.
func TestConnectionSheds(t *testing.T) {
	var c *conn
	var firstReq, firstAnswer uintptr
	var checked bool
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			for i := range 2000 {
				w.Header()[fmt.Sprintf("X-Answer-%d", i)] = []string{"v"}
			}
			firstReq, firstAnswer = reflect.ValueOf(r.Header).Pointer(), reflect.ValueOf(w.Header()).Pointer()
		} else {
			checked = true
			if reflect.ValueOf(r.Header).Pointer() == firstReq || reflect.ValueOf(w.Header()).Pointer() == firstAnswer {
				t.Errorf("the maps that grew to 2,000 fields are kept for the next request")
			}
			if len(c.buf) > keepBuffer || cap(c.vals) > 4*keepFields {
				t.Errorf("the connection keeps a %d-byte buffer and room for %d values", len(c.buf), cap(c.vals))
			}
		}
		w.Header()["Content-Length"] = []string{"0"}
	}), MaxHeaderBytes: 1 << 20}
	s.conns = map[*conn]struct{}{}
	s.clock = NewClock(time.Second)
	defer s.clock.Stop()
	var big strings.Builder
	big.WriteString("GET /big HTTP/1.1\r\nHost: h\r\n")
	for i := range 2000 {
		fmt.Fprintf(&big, "X-F-%d: v\r\n", i)
	}
	big.WriteString("\r\n")
	c = s.newConn(&seqConn{reqs: []string{big.String(), "GET /small HTTP/1.1\r\nHost: h\r\n\r\n"}})
	c.serve()
	if !checked {
		t.Fatal("the second request was not served")
	}
}

// seqConn reads its requests one after the other, in pieces of at most
// 4 KiB, as a socket would deliver them.
type seqConn struct {
	loopConn
	reqs []string
}

func (c *seqConn) Read(p []byte) (int, error) {
	if len(c.reqs) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4096)], c.reqs[0])
	if c.reqs[0] = c.reqs[0][n:]; c.reqs[0] == "" {
		c.reqs = c.reqs[1:]
	}
	return n, nil
}
