package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// TestDetachCopies: the copy shares no bytes with the request it came from,
// whose strings (as h1's are) live in memory that is reused.
func TestDetachCopies(t *testing.T) {
	buf := []byte("POST/p/a?q=1h.example/p/a?q=1X-Abb")
	view := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	r := &http.Request{
		Method: view(0, 4), Host: view(12, 21), RequestURI: view(21, 29),
		URL:    &url.URL{Path: view(4, 8), RawQuery: view(9, 12)},
		Header: http.Header{view(29, 33): {view(33, 34)}},
		Body:   io.NopCloser(strings.NewReader("body")),
	}
	d, body := detach(r)
	for i := range buf {
		buf[i] = '#'
	}
	if d.Method != "POST" || d.URL.Path != "/p/a" || d.URL.RawQuery != "q=1" || d.Host != "h.example" ||
		d.RequestURI != "/p/a?q=1" || d.Header.Get("X-Ab") != "b" {
		t.Fatalf("the copy changed with the original's memory: %s %s?%s host %s uri %s header %v",
			d.Method, d.URL.Path, d.URL.RawQuery, d.Host, d.RequestURI, d.Header)
	}
	if b, err := io.ReadAll(d.Body); err != nil || string(b) != "body" {
		t.Fatalf("body %q, %v", b, err)
	}
	body.end(func() { t.Error("interrupted with no read in progress") })
	if _, err := d.Body.Read(make([]byte, 1)); !errors.Is(err, errDetached) {
		t.Fatalf("read after end: %v, want errDetached", err)
	}
}

// TestDetachedBodyInterruptsRead: end does not wait for a read blocked on
// the client; it interrupts it.
func TestDetachedBodyInterruptsRead(t *testing.T) {
	pr, pw := io.Pipe()
	b := &detachedBody{rc: pr}
	reading := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 8))
		reading <- err
	}()
	// Wait until the read holds the lock.
	for b.mu.TryLock() {
		b.mu.Unlock()
	}
	b.end(func() { pw.CloseWithError(errors.New("interrupted")) })
	if err := <-reading; err == nil || err.Error() != "interrupted" {
		t.Fatalf("blocked read ended with %v", err)
	}
	if _, err := b.Read(make([]byte, 8)); !errors.Is(err, errDetached) {
		t.Fatalf("read after end: %v", err)
	}
}

// TestEarlyAnswerOnTheReverseProxyPath: a request h1's server read goes
// through the ReverseProxy path (a body over the fast path's bound), and the
// upstream answers before reading it. The transport may still be writing the
// request when the handler returns; with the race detector, any use of the
// connection's reused memory after that is reported. The client gets the
// upstream's answer, and the connection serves the next request.
func TestEarlyAnswerOnTheReverseProxyPath(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprint(w, "small")
	}))
	defer up.Close()
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: m\nprefix: /\nservice: app\n", up.Listener.Addr().String()))
	ln := listen(t)
	gw := &h1.Server{Handler: h}
	go gw.Serve(ln)
	defer gw.Shutdown(context.Background())

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	size := 4 * maxBuffered
	go func() {
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: h\r\nX-Long: %s\r\nContent-Length: %d\r\n\r\n", strings.Repeat("v", 2000), size)
		c.Write(make([]byte, size))
	}()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want the upstream's 413", resp.StatusCode)
	}
	if !resp.Close {
		// The body was sent in full: the connection may carry on.
		fmt.Fprint(c, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "small" {
			t.Fatalf("next request: %d %q", resp.StatusCode, b)
		}
	}
}
