package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pool keeps idle keep-alive connections to upstream addresses, newest
// first: the most recently used connection is the least likely to have
// been closed by the upstream in the meantime.
type Pool struct {
	// Dial opens a connection to addr within timeout.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)
	// MaxIdlePerAddr caps the idle connections kept per address, and
	// MaxIdle those kept in all: an upstream with many endpoints (a
	// tenant's EndpointSlices) must not make the gateway hold descriptors
	// and buffers without bound. MaxIdle 0 means no overall cap.
	MaxIdlePerAddr int
	MaxIdle        int
	// IdleTimeout is how long an idle connection is kept. Upstreams close
	// idle connections too (Node's default after 5 s), and a request sent
	// just as they do fails; the caller retries those it may (Retryable).
	IdleTimeout time.Duration
	// CheckAfter is how long a connection must have been idle before Get
	// looks whether the upstream closed it meanwhile (one non-blocking
	// peek): without the look, a request that may not be retried (a POST)
	// would fail on every connection an upstream closed at its own idle
	// timeout. net/http's transport notices with a read kept pending on
	// every idle connection; the look costs less, and only after a pause.
	CheckAfter time.Duration

	mu       sync.Mutex
	idle     map[string][]*UpConn // oldest first
	idleN    int                  // connections in idle
	lastReap time.Time
	free     sync.Pool // *UpConn, for new connections
	readers  sync.Pool // *bufio.Reader, lent to connections in use
	writers  sync.Pool // *bufio.Writer, lent while a request is written
}

// UpConn is one connection to an upstream, with its buffers.
type UpConn struct {
	pool      *Pool
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	addr      string
	idleSince time.Time
	reused    bool // it served a request before this one
	got       bool // a byte of the answer arrived
	done      bool // the answer was read to its end and may be followed by another
	body      bodyReader
	chunked   io.Reader
	scratch   []byte
}

// Get returns an idle connection to addr, or a new one; now is the time
// (the caller has it: reading the clock costs).
func (p *Pool) Get(addr string, connectTimeout time.Duration, now time.Time) (*UpConn, error) {
	p.mu.Lock()
	for {
		list := p.idle[addr]
		if len(list) == 0 {
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		// An emptied list stays, with its room, for the Put to come:
		// deleting it would cost an allocation per request whenever an
		// address's connections are all busy. reap drops empty lists.
		p.idle[addr] = list[:len(list)-1]
		p.idleN--
		p.mu.Unlock()
		idle := now.Sub(c.idleSince)
		if p.IdleTimeout > 0 && idle > p.IdleTimeout || idle >= p.CheckAfter && peerGone(c.nc) {
			c.close()
			p.recycle(c)
			p.mu.Lock()
			continue
		}
		c.reused, c.got, c.done = true, false, false
		return c, nil
	}
	p.mu.Unlock()
	nc, err := p.Dial(addr, connectTimeout)
	if err != nil {
		return nil, err
	}
	c, _ := p.free.Get().(*UpConn)
	if c == nil {
		c = &UpConn{pool: p}
		c.body.c = c
	}
	c.nc, c.addr = nc, addr
	c.reused, c.got, c.done = false, false, false
	return c, nil
}

// Put returns c after an exchange at about now: kept when its answer was
// read to the end and the upstream did not ask to close, closed otherwise.
func (p *Pool) Put(c *UpConn, now time.Time) {
	if !c.done || c.br != nil && c.br.Buffered() > 0 {
		// Bytes after the answer: the upstream sent something it should
		// not have, and nothing more on this connection can be trusted.
		c.close()
		p.recycle(c)
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.releaseBuffers()
	c.idleSince = now
	p.mu.Lock()
	if p.idle == nil {
		p.idle = map[string][]*UpConn{}
	}
	expired := p.reap(now)
	kept := false
	if list := p.idle[c.addr]; len(list) < p.MaxIdlePerAddr && (p.MaxIdle <= 0 || p.idleN < p.MaxIdle) {
		p.idle[c.addr] = append(list, c)
		p.idleN++
		kept = true
	}
	p.mu.Unlock()
	if !kept {
		expired = append(expired, c)
	}
	for _, x := range expired {
		x.close()
		p.recycle(x)
	}
}

// reap takes out the connections idle for longer than IdleTimeout, at
// most twice per IdleTimeout; Get would drop them too, but only for an
// address still asked for, and an endpoint that went away is never asked
// for again. Called with mu held; the caller closes what it returns.
func (p *Pool) reap(now time.Time) []*UpConn {
	if p.IdleTimeout <= 0 || now.Sub(p.lastReap) < p.IdleTimeout/2 {
		return nil
	}
	p.lastReap = now
	var out []*UpConn
	for addr, list := range p.idle {
		if len(list) == 0 {
			delete(p.idle, addr)
			continue
		}
		n := 0
		for n < len(list) && now.Sub(list[n].idleSince) > p.IdleTimeout {
			n++
		}
		if n == 0 {
			continue
		}
		out = append(out, list[:n]...)
		p.idleN -= n
		if n == len(list) {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = append(list[:0:0], list[n:]...)
		}
	}
	return out
}

// Discard closes c, whatever its state.
func (p *Pool) Discard(c *UpConn) {
	c.close()
	p.recycle(c)
}

func (p *Pool) recycle(c *UpConn) {
	c.nc = nil
	c.releaseBuffers()
	c.chunked = nil
	p.free.Put(c)
}

func (c *UpConn) close() { _ = c.nc.Close() }

// Writer is where the request is written; Flush sends it.
func (c *UpConn) Writer() *bufio.Writer {
	if c.bw == nil {
		c.bw, _ = c.pool.writers.Get().(*bufio.Writer)
		if c.bw == nil {
			c.bw = bufio.NewWriterSize(nil, 4096)
		}
		c.bw.Reset(c.nc)
	}
	return c.bw
}

// Flush sends what was written to Writer.
func (c *UpConn) Flush() error {
	if c.bw == nil {
		return nil
	}
	err := c.bw.Flush()
	c.bw.Reset(nil)
	c.pool.writers.Put(c.bw)
	c.bw = nil
	return err
}

// reader returns the buffer answers are read through.
func (c *UpConn) reader() *bufio.Reader {
	if c.br == nil {
		c.br, _ = c.pool.readers.Get().(*bufio.Reader)
		if c.br == nil {
			c.br = bufio.NewReaderSize(nil, 4096)
		}
		c.br.Reset(c.nc)
	}
	return c.br
}

// releaseBuffers gives c's buffers back to the pool. An idle connection
// holds none: a buffer's 4 KiB per idle connection, doubled by the
// collector's headroom, was a good part of the gateway's memory under
// load; the buffers are taken again when the connection is.
func (c *UpConn) releaseBuffers() {
	if c.br != nil {
		c.br.Reset(nil)
		c.pool.readers.Put(c.br)
		c.br = nil
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		c.pool.writers.Put(c.bw)
		c.bw = nil
	}
}

// Reused reports whether the connection carried an earlier exchange.
func (c *UpConn) Reused() bool { return c.reused }

// GotAnswer reports whether any byte of an answer arrived.
func (c *UpConn) GotAnswer() bool { return c.got || c.br != nil && c.br.Buffered() > 0 }

// SetDeadline bounds everything that follows on the connection.
func (c *UpConn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline bounds the reads that follow.
func (c *UpConn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Answer is the head of an upstream's answer, as framing needs it.
type Answer struct {
	Status int
	// Length is the body's length, -1 when it is chunked or runs to the
	// connection's close.
	Length  int64
	Chunked bool
	// Close is set when the connection cannot carry another exchange after
	// this one (the upstream said so, or framed the body by closing).
	Close bool
}

// maxInterim bounds the 1xx answers read before the final one.
const maxInterim = 8

// ErrBadAnswer wraps every way an upstream's head can be malformed.
var ErrBadAnswer = errors.New("malformed answer from the upstream")

// ReadAnswer reads the head of the answer to a request with method into h
// (its fields are added to what h holds; h is the client's header map, so
// the caller removes hop-by-hop fields after). Interim (1xx) answers are
// skipped. max bounds the head's size. The fields' strings live in arena
// (nil: allocated), as long as h is used for this request.
func (c *UpConn) ReadAnswer(method string, h http.Header, max int, arena *Arena) (Answer, error) {
	// 100 Continue, 103 Early Hints: skipped, and so are their fields; a
	// few, as real upstreams send, not an endless stream of them.
	for range maxInterim {
		a, err := c.readHead(method, h, max, arena)
		if err != nil || a.Status >= 200 {
			return a, err
		}
	}
	return Answer{}, fmt.Errorf("%w: more than %d interim answers", ErrBadAnswer, maxInterim)
}

func (c *UpConn) readHead(method string, h http.Header, max int, arena *Arena) (Answer, error) {
	buf := c.scratch[:0]
	br := c.reader()
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			c.got = true
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, line...)
			if len(buf) > max {
				return Answer{}, fmt.Errorf("%w: a head over %d bytes", ErrBadAnswer, max)
			}
			continue
		}
		if err != nil {
			return Answer{}, err
		}
		buf = append(buf, line...)
		if len(buf) > max {
			return Answer{}, fmt.Errorf("%w: a head over %d bytes", ErrBadAnswer, max)
		}
		if len(line) == 2 && line[0] == '\r' || len(line) == 1 {
			break
		}
	}
	if cap(buf) <= 16<<10 {
		c.scratch = buf[:0]
	}
	if bareLF(buf, 0) {
		return Answer{}, fmt.Errorf("%w: lines not ended by CRLF", ErrBadAnswer)
	}
	head := arena.String(buf)
	i := strings.Index(head, "\r\n")
	if i < 0 || !strings.HasSuffix(head, "\r\n\r\n") {
		return Answer{}, fmt.Errorf("%w: lines not ended by CRLF", ErrBadAnswer)
	}
	status, minor, ok := statusLine(head[:i])
	if !ok {
		return Answer{}, fmt.Errorf("%w: status line %q", ErrBadAnswer, truncate(head[:i]))
	}
	a := Answer{Status: status, Length: -1}
	if status < 200 {
		h = http.Header{}
	}
	// The caller's map holds no framing fields of its own: what is there
	// after parsing is the upstream's.
	var vals []string
	if arena != nil {
		vals = arena.vals
	} else {
		vals = make([]string, 0, strings.Count(head, "\n")-2)
	}
	ok = fields(head[i+2:len(head)-2], h, &vals, nil)
	if arena != nil {
		// Kept, with the values it holds, until the arena's reset.
		arena.vals = vals
	}
	if !ok {
		return Answer{}, fmt.Errorf("%w: a malformed field", ErrBadAnswer)
	}
	te, cl, conn := h["Transfer-Encoding"], h["Content-Length"], h["Connection"]
	if status < 200 {
		return a, nil
	}
	a.Close = minor == 0
	for _, v := range conn {
		if HasToken(v, "close") {
			a.Close = true
		} else if minor == 0 && HasToken(v, "keep-alive") {
			a.Close = false
		}
	}
	if minor == 0 && len(te) > 0 {
		// RFC 9112 §6.1: an HTTP/1.0 message's Transfer-Encoding means its
		// framing is faulty; it is read to the close, as net/http does.
		te, cl, a.Close = nil, nil, true
	}
	if len(te) > 0 && (len(te) != 1 || !strings.EqualFold(te[0], "chunked")) {
		return Answer{}, fmt.Errorf("%w: Transfer-Encoding %q", ErrBadAnswer, truncate(strings.Join(te, ", ")))
	}
	var length int64
	if len(cl) > 0 {
		n, ok := parseLength(cl[0])
		for _, v := range cl[1:] {
			if v != cl[0] {
				ok = false
			}
		}
		if !ok {
			return Answer{}, fmt.Errorf("%w: Content-Length %q", ErrBadAnswer, truncate(strings.Join(cl, ", ")))
		}
		length = n
	}
	switch {
	case method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified:
		a.Length = 0
	case len(te) > 0:
		// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length. Only
		// a lone "chunked" is read (as net/http's transport reads it);
		// anything else is refused rather than guessed at. With both
		// fields, nothing after this answer is trusted.
		a.Chunked = true
		if len(cl) > 0 {
			a.Close = true
		}
	case len(cl) > 0:
		a.Length = length
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1]
		}
	default:
		a.Close = true
	}
	c.body = bodyReader{c: c, a: a, remaining: a.Length}
	if a.Chunked {
		c.chunked = httputil.NewChunkedReader(c.br)
	}
	if a.Length == 0 && !a.Close {
		c.done = true
	}
	return a, nil
}

// statusLine parses "HTTP/1.x NNN reason".
func statusLine(s string) (status, minor int, ok bool) {
	if len(s) < 12 || !strings.HasPrefix(s, "HTTP/1.") || s[8] != ' ' || (len(s) > 12 && s[12] != ' ') {
		return 0, 0, false
	}
	switch s[7] {
	case '0':
	case '1':
		minor = 1
	default:
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[9:12])
	if err != nil || n < 100 || n > 999 {
		return 0, 0, false
	}
	return n, minor, true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Body is the answer's body, framed as ReadAnswer found it. It reaches
// io.EOF only at the true end of the body; a body cut short (the upstream
// closed before its Content-Length, a broken chunk) is an error.
func (c *UpConn) Body() io.Reader { return &c.body }

// Trailers reads what follows a chunked body's last chunk, adding the
// fields to h under http.TrailerPrefix; it must be called once Body reached
// io.EOF.
func (c *UpConn) trailers(h http.Header) error {
	total := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		total += len(line)
		if total > 16<<10 {
			return fmt.Errorf("%w: trailers over 16 KiB", ErrBadAnswer)
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return fmt.Errorf("%w: a trailer line not ended by CRLF", ErrBadAnswer)
		}
		if len(line) == 2 {
			return nil
		}
		if h == nil {
			continue
		}
		s := string(line[:len(line)-2])
		k, v, ok := strings.Cut(s, ":")
		if !ok || k == "" {
			return fmt.Errorf("%w: a malformed trailer", ErrBadAnswer)
		}
		for j := 0; j < len(k); j++ {
			if !token(k[j]) {
				return fmt.Errorf("%w: a malformed trailer", ErrBadAnswer)
			}
		}
		v = trimOWS(v)
		for j := 0; j < len(v); j++ {
			if !fieldValueByte(v[j]) {
				return fmt.Errorf("%w: a malformed trailer", ErrBadAnswer)
			}
		}
		h.Add(http.TrailerPrefix+canonicalKey(k), v)
	}
}

// bodyReader reads one answer's body.
type bodyReader struct {
	c         *UpConn
	a         Answer
	remaining int64
	err       error
	// Trailers, when set, receives a chunked body's trailers.
	Trailers http.Header
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	c := b.c
	switch {
	case b.a.Chunked:
		n, err := c.chunked.Read(p)
		if err == io.EOF {
			if terr := c.trailers(b.Trailers); terr != nil {
				err = terr
			} else if !b.a.Close {
				c.done = true
			}
		} else if err == io.ErrUnexpectedEOF || err != nil {
			err = fmt.Errorf("reading a chunked answer: %w", err)
		}
		if err != nil {
			b.err = err
		}
		return n, err
	case b.remaining >= 0:
		if b.remaining == 0 {
			b.err = io.EOF
			return 0, io.EOF
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := c.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			if !b.a.Close {
				c.done = true
			}
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.err = err
		}
		return n, err
	default:
		// Until the close: the only end there is.
		n, err := c.br.Read(p)
		if err != nil {
			b.err = err
		}
		return n, err
	}
}

// SetTrailers makes a chunked body's trailers land in h.
func (c *UpConn) SetTrailers(h http.Header) { c.body.Trailers = h }

// Retryable reports whether a request may be sent again after its
// connection failed before any answer, the rule net/http follows: its
// method is idempotent or it carries an idempotency key.
func Retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := r.Header["Idempotency-Key"]
	_, k2 := r.Header["X-Idempotency-Key"]
	return k1 || k2
}
