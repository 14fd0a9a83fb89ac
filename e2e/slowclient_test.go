package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Slow and greedy clients against a live `gatehouse serve --from-dir`:
// raw TCP clients that stall, trickle and flood, as no well-behaved HTTP
// client would.

// slowDeadline bounds every wait of these clients: generous for a loaded
// machine, and far below any limit a test shows was not what answered.
const slowDeadline = 20 * time.Second

type slowConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialSlow(t *testing.T, g *gateway) *slowConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(slowDeadline))
	return &slowConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *slowConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing %q: %v", s, err)
	}
}

// response reads one response and its body.
func (c *slowConn) response() (*http.Response, string) {
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

// get sends a GET and says whether it was answered 200.
func (c *slowConn) get(path string) bool {
	c.t.Helper()
	c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, _ := c.response()
	return resp.StatusCode == http.StatusOK
}

// closed reads until the gateway closes the connection (an end of file or
// a reset) and returns what came before; the test fails if it is still
// open at the deadline.
func (c *slowConn) closed() string {
	c.t.Helper()
	rest, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the connection is still open after %s (read %q)", slowDeadline, rest)
	}
	return string(rest)
}

// metric reads one unlabelled series from the gateway's /metrics.
func metric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// bodyCounter is an upstream that reads each request's body to its end and
// counts the POSTs it completed and those whose body never completed.
type bodyCounter struct {
	*upstreamServer
	completed, abandoned atomic.Int64
}

func startBodyCounter(t *testing.T) *bodyCounter {
	t.Helper()
	bc := &bodyCounter{}
	bc.upstreamServer = startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			switch {
			case r.Method != http.MethodPost:
			case err != nil:
				bc.abandoned.Add(1)
				return
			default:
				bc.completed.Add(1)
			}
			fmt.Fprintf(w, "got %d bytes", len(b))
		})
	})
	return bc
}

// TestSlowClientAnswersWithoutTheBody: answers the gateway gives itself
// (no route, rate limited, redirect) leave at once although the body
// announced never comes, and close the connection. The body timeout is ten
// minutes: it is not what answers.
func TestSlowClientAnswersWithoutTheBody(t *testing.T) {
	up := startBodyCounter(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.yaml"), serviceYAML("app", `kind: Mapping
name: app
prefix: /app/
service: app
---
kind: Mapping
name: limited
prefix: /limited/
service: app
rate_limits: [one-per-hour]
---
kind: RateLimit
name: one-per-hour
rate: 1
unit: hour
---
kind: Mapping
name: old
prefix: /old/
service: new.example.com
host_redirect: true
`, up.upstreamServer))
	g := startGateway(t, dir, "--body-idle-timeout", "10m")
	g.eventually("the routes serve", func() bool { return g.do("GET", "", "/app/x").status == 200 })
	if r := g.do("GET", "", "/limited/x"); r.status != 200 {
		t.Fatalf("the rate limit's one request: %d", r.status)
	}
	before := up.hits.Load()

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/nothing/here", http.StatusNotFound},
		{"/limited/x", http.StatusTooManyRequests},
		{"/old/x", http.StatusMovedPermanently},
	} {
		c := dialSlow(t, g)
		c.send("POST " + tc.path + " HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
		resp, _ := c.response()
		if resp.StatusCode != tc.status || !resp.Close {
			t.Errorf("%s with a body that never comes: %d, close %v; want %d closing the connection", tc.path, resp.StatusCode, resp.Close, tc.status)
		}
		if rest := c.closed(); rest != "" {
			t.Errorf("%s: after the answer %q, want the connection closed", tc.path, rest)
		}
	}
	if n := up.hits.Load(); n != before {
		t.Errorf("the upstream saw %d requests; answers of the gateway's own reach no upstream", n-before)
	}
}

// TestSlowClientBodyTimeout: a body that stops coming to a proxied route is
// abandoned after --body-idle-timeout: the connection is closed and the
// upstream never completes the request.
func TestSlowClientBodyTimeout(t *testing.T) {
	up := startBodyCounter(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.yaml"), serviceYAML("app", "kind: Mapping\nname: app\nprefix: /app/\nservice: app\n", up.upstreamServer))
	g := startGateway(t, dir, "--body-idle-timeout", "300ms")
	g.eventually("the route serves", func() bool { return g.do("GET", "", "/app/x").status == 200 })

	// A body that comes is forwarded whole.
	c := dialSlow(t, g)
	c.send("POST /app/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	if resp, body := c.response(); resp.StatusCode != 200 || body != "got 100 bytes" {
		t.Fatalf("a whole body: %d %q", resp.StatusCode, body)
	}

	// A small body is read whole before the upstream is contacted (the
	// fast path): a stalled one never reaches the upstream, and gets 408.
	stalled := dialSlow(t, g)
	stalled.send("POST /app/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 10))
	rest := stalled.closed()
	t.Logf("the stalled client read %q before the connection closed", rest)
	if !strings.HasPrefix(rest, "HTTP/1.1 408") {
		t.Errorf("a stalled small body: %q, want 408", rest)
	}
	// A big one streams (httputil.ReverseProxy): the upstream sees it
	// start, and never complete.
	stalled = dialSlow(t, g)
	stalled.send("POST /app/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 10))
	rest = stalled.closed()
	t.Logf("the stalled client read %q before the connection closed", rest)
	if strings.HasPrefix(rest, "HTTP/1.1 2") {
		t.Errorf("a stalled body was answered as a success: %q", rest)
	}
	g.eventually("the upstream gives the big request up", func() bool { return up.abandoned.Load() == 1 })
	if n := up.completed.Load(); n != 1 {
		t.Errorf("the upstream completed %d requests, want only the whole one", n)
	}
	if v := metric(t, g, "gatehouse_request_body_timeouts_total"); v != 2 {
		t.Errorf("gatehouse_request_body_timeouts_total %v, want 2", v)
	}
}

// TestSlowClientHead: a head sent one byte every 100 ms is cut off after
// --read-header-timeout.
func TestSlowClientHead(t *testing.T) {
	up := startBodyCounter(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.yaml"), serviceYAML("app", "kind: Mapping\nname: app\nprefix: /app/\nservice: app\n", up.upstreamServer))
	g := startGateway(t, dir, "--read-header-timeout", "1s")
	g.eventually("the route serves", func() bool { return g.do("GET", "", "/app/x").status == 200 })
	before := up.hits.Load()

	c := dialSlow(t, g)
	gone := make(chan string, 1)
	go func() { gone <- c.closed() }()
	// At ten bytes a second this head takes half a minute.
	head := "GET /app/" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	for i := 0; ; i++ {
		select {
		case rest := <-gone:
			// net/http answers 400 when the timeout cuts a request line.
			if rest != "" && !strings.HasPrefix(rest, "HTTP/1.1 400 ") {
				t.Errorf("a trickled head got %q, want no answer or a 400", rest)
			}
			if n := up.hits.Load(); n != before {
				t.Errorf("the upstream saw %d requests from a head never finished", n-before)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i == len(head) {
			t.Fatal("the whole head was sent, a byte at a time, and the connection is still open")
		}
		c.c.Write([]byte{head[i]}) // once closed, the read above says so
	}
}

// TestConnectionFlood: with --max-connections 20, the 21st connection is
// reset unanswered while the 20 open ones, and a client already connected,
// keep being served; a slot freed is taken by the next connection.
func TestConnectionFlood(t *testing.T) {
	up := startBodyCounter(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.yaml"), serviceYAML("app", "kind: Mapping\nname: app\nprefix: /app/\nservice: app\n", up.upstreamServer))
	g := startGateway(t, dir, "--max-connections", "20")
	g.eventually("the route serves", func() bool { return g.do("GET", "", "/app/x").status == 200 })
	g.eventually("the probe's connection is closed", func() bool {
		// g.do's client keeps its connection; drop it so the count is ours.
		http.DefaultClient.CloseIdleConnections()
		return metric(t, g, "gatehouse_connections_open") == 0
	})

	// A normal client on one keep-alive connection, asking all along.
	normal := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer normal.CloseIdleConnections()
	ask := func() error {
		resp, err := normal.Get(g.base + "/app/x")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := ask(); err != nil {
		t.Fatalf("the normal client: %v", err)
	}
	stop := make(chan struct{})
	var asked, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			asked.Add(1)
			if err := ask(); err != nil {
				if failed.Add(1) == 1 {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}
	})

	// Nineteen more fill the cap; each is served.
	var flood []*slowConn
	for i := range 19 {
		c := dialSlow(t, g)
		if !c.get("/app/x") {
			t.Fatalf("connection %d of 20 not served", i+2)
		}
		flood = append(flood, c)
	}
	if v := metric(t, g, "gatehouse_connections_open"); v != 20 {
		t.Fatalf("gatehouse_connections_open %v, want 20", v)
	}
	// The 21st is reset without an answer; the reset can come before the
	// dial returns, or before the request is written.
	if c, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://")); err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(slowDeadline))
		c.Write([]byte("GET /app/x HTTP/1.1\r\nHost: a\r\n\r\n"))
		extra := &slowConn{t: t, c: c, br: bufio.NewReader(c)}
		if rest := extra.closed(); rest != "" {
			t.Fatalf("the 21st connection got %q", rest)
		}
	}
	// The open ones are still served.
	for i, c := range flood {
		if !c.get("/app/x") {
			t.Fatalf("connection %d stopped being served", i+2)
		}
	}
	// Closing five frees five slots for newcomers.
	for _, c := range flood[:5] {
		c.c.Close()
	}
	g.eventually("five slots are free", func() bool { return metric(t, g, "gatehouse_connections_open") == 15 })
	for i := range 5 {
		if !dialSlow(t, g).get("/app/x") {
			t.Fatalf("newcomer %d after slots were freed not served", i+1)
		}
	}

	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 || asked.Load() == 0 {
		mu.Lock()
		t.Errorf("the normal client failed %d of %d requests during the flood (first: %v)", n, asked.Load(), firstErr)
		mu.Unlock()
	}
	if v := metric(t, g, "gatehouse_connections_rejected_total"); v != 1 {
		t.Errorf("gatehouse_connections_rejected_total %v, want 1", v)
	}
}
