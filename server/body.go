package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrBodyTimeout is what reading a request body returns once its client
// stopped sending for longer than Limits allow; it wraps the connection's
// deadline error.
var ErrBodyTimeout = errors.New("request body timed out")

// closeGrace is how long a connection whose answer is sent may still read
// the body its handler left, before it closes. net/http drains up to
// 256 KiB of it after the answer has left: reading what a fast client
// already sent avoids closing on unread data, which makes the kernel send
// a reset that can destroy the answer before the client reads it. A
// stalled client holds its connection no longer than this. net/http's own
// delay before closing for the same reason (rstAvoidanceDelay) is 500 ms.
const closeGrace = 500 * time.Millisecond

// bodyGuard bounds the time a request body may take, and makes sure an
// answer never waits for a body its handler did not read.
//
// net/http bounds only the head (ReadHeaderTimeout); after it, reading the
// body has no deadline. Worse, when a handler answers without reading the
// body (a 404, a 429, a redirect), net/http tries to drain up to 256 KiB of
// it before sending the answer, so that the connection can be reused: a
// client that sent "Content-Length: 100" and nothing more holds the
// connection, and gets no answer, for ever.
//
// The guard needs no goroutine or timer: each Read of the body first moves
// the connection's read deadline (Limits.BodyIdleTimeout, shortened by the
// BodyMinRate allowance). When the head of the answer is released and the
// handler has not read the body to its end, the answer says
// "Connection: close", which stops net/http from draining the body before
// the answer. Once the handler returns, the read deadline is set closeGrace
// ahead: net/http sends the answer, then drains what the client already
// sent for at most that long, and any read still waiting for the body (the
// upstream transport's) ends. The connection then closes: what remains of
// the body can never be parsed as a next request.
//
// Once the body has been read to its end, the deadline is net/http's again:
// it clears it and keeps a read pending on the connection to notice a
// client that goes away, and a deadline of ours would end that read and
// cancel the context of every later request on the connection. So the
// guard never touches the deadline after the end of the body, nor after the
// handler returned unless the connection is closing anyway.
type bodyGuard struct {
	next   http.Handler
	limits bodyLimits
}

// bodyLimits are Limits' body fields as the guard uses them.
type bodyLimits struct {
	idle     time.Duration // each wait; <= 0: none
	rate     int64         // bytes per second of waiting; <= 0: none
	grace    time.Duration // the rate bound's initial allowance
	close    time.Duration // how long a closing connection may drain the body
	timeouts prometheus.Counter
}

func newBodyGuard(next http.Handler, l Limits, timeouts prometheus.Counter) *bodyGuard {
	grace := l.BodyIdleTimeout
	if grace <= 0 {
		grace = DefaultBodyIdleTimeout
	}
	drain := closeGrace
	if l.BodyIdleTimeout > 0 {
		drain = min(drain, l.BodyIdleTimeout)
	}
	return &bodyGuard{next: next, limits: bodyLimits{idle: l.BodyIdleTimeout, rate: l.BodyMinRate, grace: grace, close: drain, timeouts: timeouts}}
}

func (b *bodyGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		// Nothing to wait for, and net/http already reads ahead on the
		// connection: the deadline is not ours to touch.
		b.next.ServeHTTP(w, r)
		return
	}
	g := &guard{limits: &b.limits, w: w, body: r.Body, credit: b.limits.grace}
	// net/http looks at the request's Body after the handler (to recognise
	// its own body types); give it back what it put there.
	orig := r.Body
	r.Body = (*guardedBody)(g)
	defer g.finish(r, orig)
	b.next.ServeHTTP((*guardedWriter)(g), r)
}

// guard is one request's state, seen as the request body by the handler
// (guardedBody) and as its ResponseWriter (guardedWriter): one allocation
// per request with a body, none for the others.
type guard struct {
	limits *bodyLimits
	w      http.ResponseWriter
	body   io.ReadCloser

	released atomic.Bool // the head of the answer was let through

	// Read may run in the upstream transport's goroutine while the
	// handler answers.
	mu       sync.Mutex
	credit   time.Duration // waiting the rate bound still allows
	eof      bool          // the body was read to its end
	closed   bool          // Close was called: no more reads through the guard
	done     bool          // the handler returned
	closing  bool          // the answer says Connection: close
	hijacked bool
}

type guardedBody guard

func (b *guardedBody) Read(p []byte) (int, error) {
	g := (*guard)(b)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if g.eof || g.done {
		g.mu.Unlock()
		return g.body.Read(p)
	}
	wait, limited := g.limits.wait(g.credit)
	start := time.Now()
	if limited {
		// Not supported only under a ResponseWriter that is not net/http's
		// (a test's recorder), where there is no connection to bound.
		_ = http.NewResponseController(g.w).SetReadDeadline(start.Add(wait))
	}
	g.mu.Unlock()

	n, err := g.body.Read(p)

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limits.rate > 0 {
		g.credit += time.Duration(n)*time.Second/time.Duration(g.limits.rate) - time.Since(start)
	}
	switch {
	case err == io.EOF:
		g.eof = true
	case err != nil && limited && !g.done && errors.Is(err, os.ErrDeadlineExceeded):
		// Ours, not the one finish sets to end the connection.
		g.limits.timeouts.Inc()
		err = fmt.Errorf("%w: %w", ErrBodyTimeout, err)
	}
	return n, err
}

// Close stops reads through the guard without draining the body: the
// transport and httputil.ReverseProxy close it when they are done, and
// net/http's drain would wait for a body nobody reads. net/http closes the
// real body itself after the handler.
func (b *guardedBody) Close() error {
	g := (*guard)(b)
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return nil
}

// wait is how long the next read may wait for body bytes, and whether
// there is a bound at all.
func (l *bodyLimits) wait(credit time.Duration) (time.Duration, bool) {
	switch {
	case l.idle > 0 && l.rate > 0:
		return min(l.idle, credit), true
	case l.idle > 0:
		return l.idle, true
	case l.rate > 0:
		return credit, true
	}
	return 0, false
}

// release is called before the head of the answer can leave: if the body
// has not been read to its end, the answer closes the connection, so
// net/http does not drain the body first.
func (g *guard) release() {
	if !g.released.CompareAndSwap(false, true) {
		return
	}
	g.mu.Lock()
	g.closing = !g.eof && !g.hijacked
	closing := g.closing
	g.mu.Unlock()
	if closing {
		g.w.Header().Set("Connection", "close")
	}
}

// finish runs when the handler returns, before net/http completes the
// answer.
func (g *guard) finish(r *http.Request, orig io.ReadCloser) {
	r.Body = orig
	g.mu.Lock()
	g.done = true
	hijacked := g.hijacked
	g.mu.Unlock()
	if hijacked {
		return
	}
	// A handler that wrote nothing: net/http writes the head after this, and
	// takes the header as it is now.
	g.release()
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	if closing {
		_ = http.NewResponseController(g.w).SetReadDeadline(time.Now().Add(g.limits.close))
	}
}

type guardedWriter guard

func (w *guardedWriter) Header() http.Header { return w.w.Header() }

func (w *guardedWriter) WriteHeader(code int) {
	// 1xx heads other than 101 are informational: the final one follows.
	if code >= 200 || code == http.StatusSwitchingProtocols {
		(*guard)(w).release()
	}
	w.w.WriteHeader(code)
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	(*guard)(w).release()
	return w.w.Write(p)
}

// FlushError is found by http.ResponseController before it unwraps: a
// flush sends the head.
func (w *guardedWriter) FlushError() error {
	(*guard)(w).release()
	return http.NewResponseController(w.w).Flush()
}

func (w *guardedWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection over; its deadlines are the new owner's.
func (w *guardedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	g := (*guard)(w)
	g.mu.Lock()
	g.hijacked = true
	g.mu.Unlock()
	return http.NewResponseController(w.w).Hijack()
}

// Unwrap lets http.ResponseController reach net/http's writer for the
// rest (deadlines, full duplex).
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.w }
