package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Server serves HTTP/1.1 requests on accepted connections with Handler,
// and hands every connection whose request it declines to Fallback.
//
// What it does per request, and nothing more: one read deadline while a
// kept connection waits (IdleTimeout) and one for the head
// (ReadHeaderTimeout), a head parsed in place and kept as one string whose
// substrings are the request's fields, and an answer framed by the
// handler's Content-Length or chunked, written through one buffer and sent
// with one write when the handler returns. The Request, its URL and Header
// map, and the ResponseWriter are reused for every request on a connection:
// a handler must not keep them after it returns (net/http asks the same).
//
// The ResponseWriter supports Flush and, through http.ResponseController,
// read and write deadlines; not Hijack: the requests that need it (an
// Upgrade) are declined and served by net/http.
type Server struct {
	Handler http.Handler
	// Fallback takes a connection the fast path declined; reading from it
	// yields the bytes already read first. It must not block.
	Fallback func(net.Conn)

	ReadHeaderTimeout time.Duration // <= 0: none
	IdleTimeout       time.Duration // <= 0: none
	// SendTimeout bounds each wait to hand the client bytes of an answer:
	// a client that stops reading (its window full) is closed after it,
	// rather than holding the connection and the upstream exchange behind
	// it for ever. Not a bound on the whole answer: a slow download that
	// keeps reading is never cut. <= 0: none.
	SendTimeout    time.Duration
	MaxHeaderBytes int // <= 0: 1 MiB, as net/http

	// Logger receives handler panics; nil discards them.
	Logger *slog.Logger

	shutdown atomic.Bool
	mu       sync.Mutex
	ln       []net.Listener
	conns    map[*conn]struct{}
	handed   map[*replayConn]struct{} // given to Fallback, until closed
	date     atomic.Pointer[dateLine]
	pool     sync.Pool // *conn, with its buffers, for the next connection
	writers  sync.Pool // *bufio.Writer, lent to connections while they answer
	start    sync.Once
	clock    *Clock
	sweeping chan struct{} // closed by Shutdown: the sweeper stops
}

// The idle and head timeouts are not read deadlines: moving a deadline on
// every request costs two clock reads and a timer update in the runtime.
// A sweeper instead looks at every connection a few times per timeout and
// closes those past it, so a timeout is enforced within a quarter of
// itself (at most sweepMax late).
const (
	sweepMin = 10 * time.Millisecond
	sweepMax = time.Second
)

// startSweeper starts the clock and the sweeper, once.
func (s *Server) startSweeper() {
	s.start.Do(func() {
		tick := sweepMax
		for _, d := range []time.Duration{s.IdleTimeout, s.ReadHeaderTimeout, s.SendTimeout} {
			if d > 0 {
				tick = min(tick, max(d/4, sweepMin))
			}
		}
		s.clock = NewClock(min(tick, 100*time.Millisecond))
		s.sweeping = make(chan struct{})
		go s.sweep(tick)
	})
}

func (s *Server) sweep(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	defer s.clock.Stop()
	for {
		select {
		case <-s.sweeping:
			return
		case <-t.C:
		}
		now := s.clock.Nanos()
		s.mu.Lock()
		for c := range s.conns {
			if w := c.out.since.Load(); w != 0 && s.SendTimeout > 0 && now-w > int64(s.SendTimeout) {
				// Blocked sending for too long: the close ends the write.
				c.state.Store(stateClosed)
				c.nc.Close()
				continue
			}
			st, since := c.state.Load(), c.since.Load()
			var limit time.Duration
			switch st {
			case stateIdle:
				limit = s.IdleTimeout
			case stateHead:
				limit = s.ReadHeaderTimeout
			default:
				continue
			}
			if limit > 0 && now-since > int64(limit) && c.state.CompareAndSwap(st, stateClosed) {
				c.nc.Close()
			}
		}
		for rc := range s.handed {
			if w := rc.out.since.Load(); w != 0 && s.SendTimeout > 0 && now-w > int64(s.SendTimeout) {
				rc.Conn.Close() // Close would take the lock held here
			}
		}
		s.mu.Unlock()
	}
}

// Conn states. The sweeper closes a connection that has been idle (waiting
// for a request) or reading a head for longer than the timeouts allow, and
// Shutdown closes idle ones; a connection serving a request is never
// closed under its handler's feet.
const (
	stateActive int32 = iota
	stateIdle
	stateHead
	stateClosed
)

// closeDrainLimit and closeDrainTime bound what a connection reads of a
// body nobody consumed before it closes (net/http's figures): unread data
// at close makes the kernel send a reset, which can destroy the answer
// before the client reads it.
const (
	closeDrainLimit = 256 << 10
	closeDrainTime  = 500 * time.Millisecond
)

// Serve accepts connections on l until Shutdown, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = append(s.ln, l)
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.mu.Unlock()
	s.startSweeper()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of descriptors, for instance: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, lets the others finish
// the request they are on (their answers say Connection: close), and
// returns when none is left or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	var err error
	for _, l := range s.ln {
		err = errors.Join(err, l.Close())
	}
	s.ln = nil
	s.mu.Unlock()
	s.start.Do(func() {}) // no sweeper after this
	if s.sweeping != nil {
		select {
		case <-s.sweeping:
		default:
			defer close(s.sweeping)
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and returns how
// many connections are still open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		nc.Close()
		return nil
	}
	c, _ := s.pool.Get().(*conn)
	if c == nil {
		c = &conn{buf: make([]byte, 4096), hdr: http.Header{}}
		c.rw.header = http.Header{}
		c.rw.c = c
		c.body.c = c
	}
	c.srv, c.nc = s, nc
	c.remote = nc.RemoteAddr().String()
	// A connection that arrives over TLS has finished its handshake (the
	// server's TLS engine does it before handing it over): its state is the
	// same for every request on it, so it is read once.
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.out.nc, c.out.clock = nc, s.clock
	c.out.since.Store(0)
	// The first request's head is due from the accept on, as net/http
	// counts ReadHeaderTimeout: a connection that sends nothing is a
	// slow head, not an idle keep-alive.
	c.since.Store(s.clock.Nanos())
	c.state.Store(stateHead)
	s.conns[c] = struct{}{}
	return c
}

// release forgets c; when it still owns its buffers they go back to the
// pool.
func (s *Server) release(c *conn, reuse bool) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if !reuse {
		return
	}
	c.releaseWriter()
	c.nc, c.srv, c.remote, c.tls = nil, nil, "", nil
	c.out.nc = nil
	c.r, c.w, c.broken = 0, 0, false
	clear(c.hdr)
	clear(c.rw.header)
	clear(c.vals)
	c.vals = c.vals[:0]
	c.req = http.Request{}
	c.arena.reset()
	if cap(c.buf) > 4096 {
		c.buf = make([]byte, 4096)
	}
	s.pool.Put(c)
}

// conn is one client connection and everything reused across its
// requests.
type conn struct {
	srv    *Server
	nc     net.Conn
	remote string
	tls    *tls.ConnectionState // nil for plain HTTP
	state  atomic.Int32
	since  atomic.Int64 // when state was entered, by the server's clock

	// buf[r:w] is read but not yet parsed or consumed as body.
	buf  []byte
	r, w int

	bw     *bufio.Writer
	out    sendWatch // what bw writes to
	broken bool      // a read or write failed: the connection cannot be reused

	req   http.Request
	url   url.URL
	hdr   http.Header
	vals  []string
	body  body
	rw    response
	arena Arena
}

func (c *conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler && c.srv.Logger != nil {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.Logger.Error("panic serving a request", "client", c.remote, "panic", v, "stack", string(buf))
			}
			c.nc.Close()
			c.srv.release(c, false)
			return
		}
		if !handedOff {
			c.nc.Close()
		}
		c.srv.release(c, !handedOff)
	}()
	for {
		head, ok := c.readHead()
		if !ok {
			return
		}
		if head < 0 || !c.parse(head) {
			c.handOff()
			handedOff = true
			return
		}
		c.rw.reset(c.req.Method == http.MethodHead)
		c.arena.reset()
		c.srv.Handler.ServeHTTP(&c.rw, &c.req)
		if !c.finish() {
			return
		}
		if c.req.ContentLength > 0 {
			// Whatever deadline the body's limits left behind is not the
			// next request's.
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		c.shrink()
	}
}

// What a connection keeps between requests is bounded: a map cleared for
// reuse keeps the room it grew to, and so do slices, so one request with
// thousands of fields (or an upstream answering with them) would leave its
// connection holding that memory while it idles. Past these sizes they are
// dropped instead, for the collector.
const (
	keepFields = 64
	keepBuffer = 4096
)

func (c *conn) shrink() {
	if len(c.hdr) > keepFields {
		c.hdr = http.Header{}
	}
	if len(c.rw.header) > keepFields {
		c.rw.header = http.Header{}
	}
	if cap(c.vals) > 4*keepFields {
		c.vals = nil
	}
	if len(c.buf) > keepBuffer && c.w-c.r <= keepBuffer {
		buf := make([]byte, keepBuffer)
		c.w = copy(buf, c.buf[c.r:c.w])
		c.r = 0
		c.buf = buf
	}
}

// readHead waits for a request and reads its head into buf. It returns the
// index in buf just past the head's blank line, or -1 when the head is not
// one the fast path reads (too big); false when the connection is done.
func (c *conn) readHead() (int, bool) {
	s := c.srv
	if poison {
		// The last request's strings end here (Arena).
		clear(c.buf[:c.r])
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else if c.r > 0 {
		// A pipelined request: move it to the front.
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == 0 {
		if c.state.Load() == stateActive {
			c.since.Store(s.clock.Nanos())
			if !c.state.CompareAndSwap(stateActive, stateIdle) {
				return 0, false
			}
		}
		if s.shutdown.Load() {
			return 0, false
		}
		n, err := c.nc.Read(c.buf)
		if n == 0 || err != nil && n == 0 {
			return 0, false
		}
		c.w = n
	}
	max := s.MaxHeaderBytes
	if max <= 0 {
		max = 1 << 20
	}
	searched := 0
	for {
		// RFC 9112 §2.2 lets a server take a bare LF as a line end;
		// net/http does, and so a head with one is its. Only this head
		// counts: what follows it is the next request's business.
		end := endOfHead(c.buf[:c.w], searched)
		if end >= 0 && bareLF(c.buf[:end], 0) || end < 0 && bareLF(c.buf[:c.w], searched) {
			if !c.activate() {
				return 0, false
			}
			return -1, true
		}
		if end >= 0 {
			if !c.activate() {
				return 0, false
			}
			return end, true
		}
		searched = c.w
		if c.w > max {
			if !c.activate() {
				return 0, false
			}
			return -1, true
		}
		if st := c.state.Load(); st != stateHead {
			// The head's time runs from its first byte.
			c.since.Store(s.clock.Nanos())
			if st == stateClosed || !c.state.CompareAndSwap(st, stateHead) {
				return 0, false
			}
		}
		if c.w == len(c.buf) {
			grown := make([]byte, min(2*len(c.buf), max+4096))
			copy(grown, c.buf[:c.w])
			c.buf = grown
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			if n > 0 {
				continue
			}
			// A head cut short: net/http would answer nothing either.
			return 0, false
		}
	}
}

// activate marks the connection busy with a request, unless the sweeper
// or Shutdown closed it first.
func (c *conn) activate() bool {
	st := c.state.Load()
	return st == stateActive || st != stateClosed && c.state.CompareAndSwap(st, stateActive)
}

// handOff gives the connection, with what was read of it, to net/http.
func (c *conn) handOff() {
	pending := make([]byte, c.w-c.r)
	copy(pending, c.buf[c.r:c.w])
	_ = c.nc.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: c.nc, pending: pending, srv: c.srv}
	// net/http bounds no single wait to send: the sweeper keeps doing it
	// (SendTimeout) for the connections handed over, upgraded ones too.
	rc.out.nc, rc.out.clock = c.nc, c.srv.clock
	c.srv.mu.Lock()
	if c.srv.handed == nil {
		c.srv.handed = map[*replayConn]struct{}{}
	}
	c.srv.handed[rc] = struct{}{}
	c.srv.mu.Unlock()
	c.srv.Fallback(rc)
}

// parse reads the head in buf[r:end] into the connection's Request. It
// returns false for anything that is not a plain HTTP/1.1 request, which
// is then net/http's to answer.
func (c *conn) parse(end int) bool {
	b := c.buf[c.r:end]
	// The head as a string without copying it: every field below is a
	// substring of the connection's buffer, valid until the next request
	// is read into it (the rule and its check in race builds: Arena).
	head := unsafe.String(&b[0], len(b))
	i := strings.Index(head, "\r\n")
	line := head[:i]
	fieldsText := head[i+2 : len(head)-2]

	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	method := line[:sp]
	for j := 0; j < len(method); j++ {
		if !token(method[j]) {
			return false
		}
	}
	rest := line[sp+1:]
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 || rest[sp+1:] != "HTTP/1.1" {
		return false
	}
	target := rest[:sp]
	if target[0] != '/' {
		return false // absolute-form, asterisk-form, authority-form
	}
	for j := 0; j < len(target); j++ {
		if !targetByte(target[j]) {
			return false
		}
	}

	var f framing
	clear(c.hdr)
	clear(c.vals)
	c.vals = c.vals[:0]
	if !fields(fieldsText, c.hdr, &c.vals, f.see) || !f.plain() {
		return false
	}

	path, query, hasQuery := strings.Cut(target, "?")
	c.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	if !plainPath(path) {
		// As net/url keeps it: RawPath is the client's spelling whenever
		// escaping Path again would not give it back.
		p, err := url.PathUnescape(path)
		if err != nil {
			return false // net/http answers 400
		}
		c.url.Path = p
		if p != path || url.PathEscape(p) != path {
			c.url.RawPath = path
		}
	}
	c.req = http.Request{
		Method:        method,
		URL:           &c.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        c.hdr,
		Body:          http.NoBody,
		ContentLength: f.length,
		Close:         f.close,
		Host:          f.host,
		RemoteAddr:    c.remote,
		RequestURI:    target,
		TLS:           c.tls,
	}
	c.r = end
	c.body.remaining.Store(f.length)
	if f.length > 0 {
		c.req.Body = &c.body
	}
	return true
}

// framing is what the fields of a request say about how it is framed and
// whether the fast path takes it.
type framing struct {
	host     string
	hosts    int
	length   int64
	lengths  int
	close    bool
	declined bool
}

func (f *framing) see(key, value string) bool {
	switch key {
	case "Host":
		f.hosts++
		f.host = value
		if !ValidHost(value) {
			return false
		}
	case "Content-Length":
		f.lengths++
		n, ok := parseLength(value)
		if !ok {
			return false
		}
		f.length = n
	case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
		// Chunked bodies, 100-continue, protocol switches and trailers
		// are net/http's.
		return false
	case "Connection":
		if HasToken(value, "upgrade") {
			return false
		}
		if HasToken(value, "close") {
			f.close = true
		}
	}
	return true
}

// plain reports whether the request is one the fast path serves: one Host,
// at most one Content-Length.
func (f *framing) plain() bool { return f.hosts == 1 && f.lengths <= 1 }

// finish completes the answer after the handler returned and reports
// whether the connection may carry another request.
func (c *conn) finish() bool {
	w := &c.rw
	if c.broken {
		return false
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		c.bw.WriteString("0\r\n")
		w.writeTrailers()
		c.bw.WriteString("\r\n")
	} else if w.length >= 0 && w.written < w.length && !w.noBody {
		// The handler wrote less than it declared: the client cannot find
		// the end of this answer but by the connection's.
		w.closeAfter = true
	}
	if c.bw.Flush() != nil {
		c.broken = true
	}
	c.releaseWriter()
	if c.broken {
		return false
	}
	if w.closeAfter || c.body.remaining.Load() > 0 {
		c.closeGracefully()
		return false
	}
	return true
}

// closeGracefully half-closes after the answer and reads for a short while
// what the client still sends, so that the close does not reset a
// connection holding unread data (which can destroy the answer in flight).
func (c *conn) closeGracefully() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeDrainTime))
	rest := c.w - c.r
	if rest >= closeDrainLimit {
		return
	}
	_, _ = io.CopyN(io.Discard, c.nc, int64(closeDrainLimit-rest))
}

// body is a request body framed by Content-Length: first what is already
// in the connection's buffer, then the connection.
//
// remaining is atomic: a handler may pass the body to a goroutine of its
// own (a ReverseProxy's transport writes it while the answer comes back)
// and write its answer meanwhile, and WriteHeader asks what is left.
type body struct {
	c         *conn
	remaining atomic.Int64
}

func (b *body) Read(p []byte) (int, error) {
	left := b.remaining.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	c := b.c
	if int64(len(p)) > left {
		p = p[:left]
	}
	var n int
	var err error
	if c.r < c.w {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
	} else {
		n, err = c.nc.Read(p)
	}
	left = b.remaining.Add(-int64(n))
	if err != nil {
		// The rest of the body will never be read: finish closes the
		// connection after the answer, which can still be sent.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	if left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// Close leaves the rest unread; finish closes the connection if any is
// left.
func (b *body) Close() error { return nil }

// sendWatch writes to the connection and says, while a write waits, since
// when: the sweeper closes a connection whose client stopped reading for
// longer than SendTimeout. Two atomic stores per write, no deadline.
type sendWatch struct {
	nc    net.Conn
	clock *Clock
	since atomic.Int64
}

func (s *sendWatch) Write(p []byte) (int, error) {
	s.since.Store(max(s.clock.Nanos(), 1))
	n, err := s.nc.Write(p)
	s.since.Store(0)
	return n, err
}

// replayConn is a connection whose first reads return bytes read before it
// was handed over.
type replayConn struct {
	net.Conn
	pending []byte
	out     sendWatch
	srv     *Server
	once    sync.Once
}

func (r *replayConn) Write(p []byte) (int, error) { return r.out.Write(p) }

// NetConn is the connection handed over: a *tls.Conn when the client came
// over TLS, which is how the fallback server learns it (net/http itself
// only looks for a *tls.Conn at the top).
func (r *replayConn) NetConn() net.Conn { return r.Conn }

// Close forgets the connection in the server's list of handed-over ones.
func (r *replayConn) Close() error {
	r.once.Do(func() {
		r.srv.mu.Lock()
		delete(r.srv.handed, r)
		r.srv.mu.Unlock()
	})
	return r.Conn.Close()
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// CloseWrite keeps net/http's half-close, which it finds on the connection.
func (r *replayConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// dateLine is a Date field for the current second.
type dateLine struct {
	unix int64
	line string
}

func (s *Server) dateField() string {
	now := time.Unix(0, s.clock.Nanos())
	if d := s.date.Load(); d != nil && d.unix == now.Unix() {
		return d.line
	}
	d := &dateLine{unix: now.Unix(), line: "Date: " + now.UTC().Format(http.TimeFormat) + "\r\n"}
	s.date.Store(d)
	return d.line
}

// response is the ResponseWriter of a fast-path request.
type response struct {
	c           *conn
	header      http.Header
	status      int
	wroteHeader bool
	head        bool  // the request was HEAD: the head only
	noBody      bool  // no body may be sent (HEAD, 1xx, 204, 304)
	chunked     bool  // the body is sent chunked
	length      int64 // the declared Content-Length, -1 when none
	written     int64
	closeAfter  bool
}

func (w *response) reset(head bool) {
	clear(w.header)
	*w = response{c: w.c, header: w.header, head: head, length: -1}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		// As net/http's ResponseWriter does.
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader || code < 200 {
		// Interim answers are not relayed on the fast path.
		return
	}
	w.wroteHeader = true
	w.status = code
	c := w.c
	h := w.header
	bodyAllowed := code != http.StatusNoContent && code != http.StatusNotModified
	w.noBody = w.head || !bodyAllowed
	if v, ok := h["Content-Length"]; ok {
		if n, valid := parseLength(firstOf(v)); valid && len(v) == 1 && bodyAllowed {
			w.length = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if !w.noBody && w.length < 0 {
		w.chunked = true
	}
	w.closeAfter = c.req.Close || c.srv.shutdown.Load() || c.body.remaining.Load() > 0 || HasToken(firstOf(h["Connection"]), "close")

	bw := c.writer()
	bw.WriteString("HTTP/1.1 ")
	// Digit by digit: a buffer passed to bw.Write would escape.
	bw.WriteByte(byte('0' + code/100%10))
	bw.WriteByte(byte('0' + code/10%10))
	bw.WriteByte(byte('0' + code%10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	for k, vs := range h {
		switch k {
		case "Connection", "Transfer-Encoding", "Keep-Alive":
			continue // the framing of this connection is ours
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			WriteField(bw, k, v)
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString(c.srv.dateField())
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.head {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		writeHex(bw, len(p))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.c.broken = true
	}
	return n, err
}

// writeHex writes n in hexadecimal, a chunk's size, digit by digit: a
// buffer passed to bw.Write would escape.
func writeHex(bw *bufio.Writer, n int) {
	shift := 0
	for n>>shift >= 16 {
		shift += 4
	}
	for ; shift >= 0; shift -= 4 {
		bw.WriteByte("0123456789abcdef"[n>>shift&15])
	}
}

// writer returns the buffer the answer is written through, taking one
// from the server's pool when the answer starts: a connection waiting for
// its next request holds none. A gateway's connections spend most of their
// time waiting, and 4 KiB each, doubled by the collector's headroom, was a
// good part of its memory under load (docs/benchmarks.md).
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw, _ = c.srv.writers.Get().(*bufio.Writer)
		if c.bw == nil {
			c.bw = bufio.NewWriterSize(nil, 4096)
		}
		c.bw.Reset(&c.out)
	}
	return c.bw
}

// releaseWriter gives the answer's buffer back once it is flushed.
func (c *conn) releaseWriter() {
	if c.bw != nil {
		c.bw.Reset(nil)
		c.srv.writers.Put(c.bw)
		c.bw = nil
	}
}

func (w *response) writeTrailers() {
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && name != "" {
			for _, v := range vs {
				WriteField(w.c.bw, name, v)
			}
		}
	}
}

// FlushError sends what is buffered, the head first if need be.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.c.bw.Flush()
	if err != nil {
		w.c.broken = true
	}
	return err
}

func (w *response) Flush() { _ = w.FlushError() }

// ClientGone reports whether the client has closed or reset its side of
// the connection, without waiting or consuming anything: net/http tells a
// handler through the request's context, which this server does not keep
// (watching every connection for that costs a read in the background); a
// handler that needs to know asks. One non-blocking peek.
func (w *response) ClientGone() bool { return peerGone(w.c.nc) }

// AbortConnection closes the connection once the handler returns, without
// completing the answer: for a handler whose body broke off after the head
// was sent, the client must not take what it got for the whole answer.
// (net/http's equivalent is panicking with http.ErrAbortHandler.)
func (w *response) AbortConnection() { w.c.broken = true }

// SetReadDeadline and SetWriteDeadline are for http.ResponseController:
// the request body's limits are enforced by moving the read deadline.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }
