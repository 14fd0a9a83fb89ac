package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/h1"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// The fast upstream path: a plain-HTTP upstream, spoken to with h1.Pool on
// the handler's own goroutine, for every request that is not an upgrade and
// whose body is small enough to hold (maxBuffered).
//
// Such a body is read in full before any upstream connection is taken, as
// nginx does by default (proxy_request_buffering): a client trickling its
// body holds no upstream connection and cannot make an upstream look slow
// (outcome.go), and a request that met a connection the upstream had just
// closed can be sent again. Everything else (TLS upstreams, upgrades,
// bigger or chunked bodies) goes through httputil.ReverseProxy.
//
// What the upstream gets is what the ReverseProxy path sends: the routed,
// rewritten path, the client's Host (or host_rewrite), the client's fields
// without hop-by-hop ones and without the forwarding claims forwarded.go
// drops, the forwarding headers, X-Request-Id, traceparent (trace.go),
// then the route's header changes; framed by Content-Length.
// TestEnginesAgree holds the two paths to that.

// maxBuffered is the largest request body the fast path holds.
const maxBuffered = 64 << 10

// maxAnswerHead bounds an upstream's head, as net/http's transport does
// (MaxResponseHeaderBytes defaults to 1 MiB there; Envoy's is 60 KiB).
const maxAnswerHead = 64 << 10

// NewPool is the upstream connection pool of the fast path: idle
// connections per endpoint as NewTransport keeps them, each dialled
// through the guard read at the time.
func NewPool(guard func() *upstream.DialGuard) *h1.Pool {
	d := dialer{guard: guard}
	return &h1.Pool{
		Dial: func(addr string, timeout time.Duration) (net.Conn, error) {
			base := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
			return d.guard().Dialer(base).Dial("tcp", upstream.RootedAddr(addr))
		},
		MaxIdlePerAddr: 128,
		MaxIdle:        1024, // as NewTransport's MaxIdleConns
		IdleTimeout:    90 * time.Second,
		CheckAfter:     time.Second,
	}
}

// fastPath reports whether the request goes through the fast path.
func (h *Handler) fastPath(r *http.Request, ex *exchange, upgrade string) bool {
	return h.pool != nil && upgrade == "" && ex.route.Target.Scheme == "http" && !ex.route.HTTP2 &&
		r.ContentLength >= 0 && r.ContentLength <= maxBuffered && len(r.TransferEncoding) == 0
}

// smallBody is the size of the pooled body buffers.
const smallBody = 4 << 10

// bodies are the buffers small request bodies are read into.
type bodies struct{ pool sync.Pool }

func (b *bodies) get() *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return p
	}
	buf := make([]byte, smallBody)
	return &buf
}

// forwardFast runs the exchange on the fast path.
func (h *Handler) forwardFast(w http.ResponseWriter, r *http.Request, ex *exchange) {
	rt := ex.route
	var body []byte
	if r.ContentLength > 0 {
		// Pooled for the common small body; a bigger one grows as its
		// bytes arrive, so a client that declares 64 KiB and sends nothing
		// holds a few kilobytes, not 64.
		if r.ContentLength <= smallBody {
			bp := h.bodies.get()
			defer h.bodies.pool.Put(bp)
			body = (*bp)[:r.ContentLength]
		} else {
			body = make([]byte, 0, 2*smallBody)
		}
		// The route's timeout covers waiting for the body, as it does on
		// the ReverseProxy path: a read still waiting when it ends fails.
		limit := rt.Timeout
		if limit <= 0 {
			limit = rt.IdleTimeout
		}
		var timer *time.Timer
		if limit > 0 {
			timer = time.AfterFunc(limit, func() { _ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo) })
		}
		var err error
		body, err = readBody(r.Body, body, r.ContentLength)
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			h.bodyFailed(w, ex, err)
			return
		}
	}
	h.mirror(r, ex, body, r.ContentLength > 0)
	ex.sent = time.Now()
	var deadline time.Time
	if rt.Timeout > 0 {
		deadline = ex.sent.Add(rt.Timeout)
	}
	hdr := w.Header()
	own := ownHeaders{id: hdr["X-Request-Id"], conn: hdr["Connection"], cookie: hdr["Set-Cookie"]}
	delete(hdr, "Connection")

	// A client that goes away ends the exchange (net/http's server says so
	// through the request's context; this package's server has no such
	// context, and finds out when it writes). The connection the
	// cancellation may have touched is never reused.
	var watch *cancelWatch
	if r.Context().Done() != nil {
		watch = watchCancel(r.Context())
		defer watch.stop()
	}
	ctx := r.Context()

	var uc *h1.UpConn
	var a h1.Answer
	var err error
	for {
		var connectFailed bool
		tryDeadline := ex.tryDeadline(deadline)
		uc, a, connectFailed, err = h.tryFast(r, ex, body, hdr, own, watch, tryDeadline)
		if !h.retry(w, r, ex, a, err, connectFailed, deadline) {
			ex.connectFailed = err != nil && connectFailed
			deadline = tryDeadline // what bounds the rest of the exchange
			break
		}
		if uc != nil {
			// An answer that will not be used: its connection goes, rather
			// than reading a body nobody wants.
			h.pool.Discard(uc)
			uc = nil
			own.restore(hdr)
		}
	}
	if err != nil {
		if ctx.Err() != nil || clientHasGone(w) {
			ex.err = err
			ex.clientErr = true
			w.WriteHeader(StatusClientClosed)
			return
		}
		h.upstreamFailed(w, ex, err, deadline)
		return
	}
	ex.upstream = a.Status
	if a.Status >= 500 && (ctx.Err() != nil || clientHasGone(w)) {
		// The upstream's failure may be its answer to the client leaving.
		ex.clientErr = true
	}
	answered := time.Now()
	ex.upstreamTime = answered.Sub(ex.sent)
	if ex.stats != nil {
		ex.stats.upstream.Latency(ex.upstreamTime)
	} else {
		h.metrics.UpstreamLatency(rt.Upstream.ID(), ex.upstreamTime)
	}
	removeHopByHop(hdr)
	if own.conn != nil {
		hdr["Connection"] = own.conn
	}
	if a.Chunked {
		uc.SetTrailers(hdr)
	}
	applyHeaders(hdr, rt.ResponseHeadersRemove, rt.ResponseHeadersAdd)
	w.WriteHeader(a.Status)

	// A body of unknown length is often a stream (server-sent events, long
	// polls): each piece goes to the client as it comes, as ReverseProxy
	// does for them.
	stream := a.Length < 0
	bpp := h.bufs.get()
	defer h.bufs.put(bpp)
	bp := *bpp
	src := uc.Body()
	var copyErr error
	for {
		h.readDeadline(uc, ex, deadline)
		n, rerr := src.Read(bp)
		if n > 0 {
			if _, werr := w.Write(bp[:n]); werr != nil {
				ex.clientErr = true
				copyErr = werr
				break
			}
			if stream {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				ex.clientErr = true
				copyErr = rerr
				break
			}
			if isTimeout(rerr) {
				// Ours: the upstream may have stalled, or the copy waited on
				// a client reading slowly (outcome.go).
				ex.cut = true
				ex.err = fmt.Errorf("response cut short: %w", h.timeoutCause(deadline))
			} else {
				ex.err = fmt.Errorf("reading the upstream's answer: %w", rerr)
			}
			copyErr = rerr
			break
		}
	}
	if copyErr != nil {
		h.pool.Discard(uc)
		if !ex.clientErr {
			// The answer's head is gone: the only way left to tell the
			// client the body is incomplete is to break the connection.
			abortConnection(w, r)
		}
		return
	}
	if watch.fired() {
		h.pool.Discard(uc)
		return
	}
	h.pool.Put(uc, answered)
}

// tryFast sends the request once to ex's endpoint and reads the answer's
// head into hdr. A kept connection the upstream closed just before the
// request arrived is tried once more on a new one, as net/http's transport
// does (nothing was answered); that is not a retry. connectFailed says the
// endpoint could not be connected to. On an error the connection is gone
// and hdr holds only the gateway's own fields again.
func (h *Handler) tryFast(r *http.Request, ex *exchange, body []byte, hdr http.Header, own ownHeaders, watch *cancelWatch, deadline time.Time) (uc *h1.UpConn, a h1.Answer, connectFailed bool, err error) {
	rt := ex.route
	ctx := r.Context()
	ex.ep.Begin()
	for attempt := 0; ; attempt++ {
		uc, err = h.pool.Get(ex.endpoint, rt.ConnectTimeout, ex.sent)
		if err != nil {
			return nil, a, true, err
		}
		watch.track(uc)
		if ctx.Err() != nil {
			h.pool.Discard(uc)
			return nil, a, false, context.Canceled
		}
		_ = uc.SetDeadline(deadline)
		h.writeRequest(uc.Writer(), r, ex, body)
		if err = uc.Flush(); err == nil {
			h.readDeadline(uc, ex, deadline)
			a, err = uc.ReadAnswer(r.Method, hdr, maxAnswerHead, ex.arena)
		}
		if err == nil {
			return uc, a, false, nil
		}
		// A kept connection the upstream closed just before this request
		// arrived: nothing was answered, so the request may go again on a
		// new one. Not once any of an answer came: the upstream had the
		// request.
		stale := uc.Reused() && !uc.GotAnswer() && staleConn(err)
		h.pool.Discard(uc)
		own.restore(hdr)
		if attempt > 0 || !stale || !h1.Retryable(r) {
			return nil, a, false, err
		}
	}
}

// ownHeaders are the fields of the answer the gateway set before the
// upstream's arrive in the same map.
type ownHeaders struct{ id, conn, cookie []string }

func (o ownHeaders) restore(h http.Header) {
	clear(h)
	if o.id != nil {
		h["X-Request-Id"] = o.id
	}
	if o.cookie != nil {
		h["Set-Cookie"] = o.cookie
	}
	if o.conn != nil {
		h["Connection"] = o.conn
	}
}

// readDeadline moves the upstream connection's read deadline for the next
// wait: the route's whole-exchange deadline, or its idle timeout from now
// when that comes first.
func (h *Handler) readDeadline(uc *h1.UpConn, ex *exchange, deadline time.Time) {
	if ex.route.IdleTimeout <= 0 {
		return
	}
	t := time.Now().Add(ex.route.IdleTimeout)
	if !deadline.IsZero() && deadline.Before(t) {
		t = deadline
	}
	_ = uc.SetReadDeadline(t)
}

// timeoutCause says which of the route's timeouts ended an exchange.
func (h *Handler) timeoutCause(deadline time.Time) error {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return errTimeout
	}
	return errIdleTimeout
}

var errTimeout = errors.New("upstream timeout")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// staleConn reports whether err is how a kept connection that the upstream
// had closed fails: the request went nowhere.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// upstreamFailed answers for an exchange that got no answer.
func (h *Handler) upstreamFailed(w http.ResponseWriter, ex *exchange, err error, deadline time.Time) {
	ex.err = err
	switch {
	case isTimeout(err) && errors.Is(h.timeoutCause(deadline), errIdleTimeout) && ex.route.IdleTimeout > 0:
		ex.err = errIdleTimeout
		h.fail(w, http.StatusGatewayTimeout, "upstream idle for too long")
	case isTimeout(err) && !deadline.IsZero() && !time.Now().Before(deadline):
		h.fail(w, http.StatusGatewayTimeout, "upstream timed out")
	default:
		h.fail(w, http.StatusBadGateway, "upstream unreachable or answered badly")
	}
}

// bodyFailed answers for a request whose body could not be read; what is
// left of it on the connection is not a request, so the connection closes.
func (h *Handler) bodyFailed(w http.ResponseWriter, ex *exchange, err error) {
	ex.clientErr = true
	ex.err = fmt.Errorf("reading the request body: %w", err)
	closeConnection(w.Header())
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, http.StatusRequestEntityTooLarge, "request body too large")
	case isTimeout(err):
		h.fail(w, http.StatusRequestTimeout, "request body not received in time")
	default:
		h.fail(w, http.StatusBadRequest, "request body could not be read")
	}
}

// hopByHop are the fields that describe one connection, never forwarded
// (RFC 9110 §7.6.1, and the ones net/http's ReverseProxy adds).
var hopByHop = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop deletes the hop-by-hop fields of h and those its
// Connection field names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

// writeRequest writes the upstream request (see the top of this file).
func (h *Handler) writeRequest(bw *bufio.Writer, r *http.Request, ex *exchange, body []byte) {
	rt := ex.route
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(ex.path)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if rt.HostRewrite != "" {
		bw.WriteString(rt.HostRewrite)
	} else {
		bw.WriteString(r.Host)
	}
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if forwardSkips(k) || ex.origin.dropped(k) || anyHasToken(conn, k) || routeReplaces(rt.RequestHeadersRemove, rt.RequestHeadersAdd, k) || ex.origin.clientCert != "" && k == clientCertHeader || ex.trace.skips(k) {
			continue
		}
		if k == "Te" {
			// Hop-by-hop; "trailers" is the one value a proxy passes on.
			if anyHasToken(vs, "trailers") {
				bw.WriteString("Te: trailers\r\n")
			}
			continue
		}
		for _, v := range vs {
			h1.WriteField(bw, k, v)
		}
	}
	f := ex.origin.forwarding(r, ex.arena)
	for i, name := range forwardingNames {
		if f[i] != "" && !routeReplaces(rt.RequestHeadersRemove, rt.RequestHeadersAdd, name) {
			h1.WriteField(bw, name, f[i])
		}
	}
	if ex.origin.clientCert != "" {
		h1.WriteField(bw, clientCertHeader, ex.origin.clientCert)
	}
	if ex.origin.consumer != "" {
		h1.WriteField(bw, consumerHeader, ex.origin.consumer)
	}
	if !routeReplaces(rt.RequestHeadersRemove, rt.RequestHeadersAdd, "X-Request-Id") {
		h1.WriteField(bw, "X-Request-Id", ex.requestID)
	}
	if !routeReplaces(rt.RequestHeadersRemove, rt.RequestHeadersAdd, "Traceparent") {
		ex.trace.write(bw) // trace.go
	}
	for _, op := range rt.RequestHeadersAdd {
		if !reservedField(op.Name) {
			h1.WriteField(bw, http.CanonicalHeaderKey(op.Name), op.Value)
		}
	}
	if len(body) > 0 || bodyExpected(r.Method) {
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(body)
}

// forwardSkips are the client's fields the upstream never gets as they
// are: hop-by-hop ones, framing (the gateway frames the request itself),
// and those the gateway writes itself.
func forwardSkips(k string) bool {
	switch k {
	case "Te":
		return false // writeRequest passes "trailers" on
	case "Host", "Content-Length", "X-Request-Id",
		"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", consumerHeader:
		return true
	}
	return slices.Contains(hopByHop[:], k)
}

// reservedField reports whether a route may not set the field on the
// fast path: the request's framing and Host are the gateway's (the
// ReverseProxy path ignores such changes the same way).
func reservedField(name string) bool {
	return strings.EqualFold(name, "Host") || strings.EqualFold(name, "Content-Length") ||
		strings.EqualFold(name, "Transfer-Encoding") || strings.EqualFold(name, "Connection")
}

// routeReplaces reports whether a route removes field k or sets it anew.
func routeReplaces(remove []string, add []snapshot.HeaderOp, k string) bool {
	for _, name := range remove {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	for _, op := range add {
		if !op.Append && strings.EqualFold(op.Name, k) {
			return true
		}
	}
	return false
}

// anyHasToken reports whether any of a field's values lists tok.
func anyHasToken(vs []string, tok string) bool {
	for _, v := range vs {
		if h1.HasToken(v, tok) {
			return true
		}
	}
	return false
}

// bodyExpected reports whether a method's request says Content-Length: 0
// when it has no body, as net/http's transport writes it.
func bodyExpected(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// abortConnection breaks the client's connection after a handler whose
// answer broke off: h1's server closes it when asked; net/http's does for
// a panic with http.ErrAbortHandler, which ReverseProxy raises too (and,
// like it, not outside a server, where nobody would recover it).
func abortConnection(w http.ResponseWriter, r *http.Request) {
	if a, ok := beneath[interface{ AbortConnection() }](w); ok {
		a.AbortConnection()
		return
	}
	if r.Context().Value(http.ServerContextKey) != nil {
		panic(http.ErrAbortHandler)
	}
}

// beneath finds the first writer of type T in w's chain of wrappers
// (Unwrap, as http.ResponseController follows it).
func beneath[T any](w http.ResponseWriter) (T, bool) {
	for {
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			var zero T
			return zero, false
		}
		w = u.Unwrap()
	}
}

// readBody reads a body of n bytes into buf, growing it as bytes arrive.
func readBody(r io.Reader, buf []byte, n int64) ([]byte, error) {
	buf = buf[:0]
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(n-int64(len(buf)), int64(cap(buf)))))
		}
		end := int(min(int64(cap(buf)), n))
		m, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if err == io.EOF && int64(len(buf)) == n {
			break
		}
		if err == io.EOF {
			return buf, io.ErrUnexpectedEOF
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// clientHasGone asks the server's ResponseWriter, when it can tell,
// whether the client closed its connection.
func clientHasGone(w http.ResponseWriter) bool {
	g, ok := beneath[interface{ ClientGone() bool }](w)
	return ok && g.ClientGone()
}

// cancelWatch ends the exchange on the upstream connection it tracks when
// the request's context is cancelled (net/http's server does that when the
// client goes away). h1's server has no context to cancel: a handler asks
// it (clientHasGone) where an exchange failed, so that what a client did
// is never counted against the upstream (outcome.go).
type cancelWatch struct {
	cur  atomic.Pointer[h1.UpConn]
	stop func() bool
}

func watchCancel(ctx context.Context) *cancelWatch {
	w := &cancelWatch{}
	w.stop = context.AfterFunc(ctx, func() {
		if c := w.cur.Load(); c != nil {
			_ = c.SetDeadline(aLongTimeAgo)
		}
	})
	return w
}

// track makes c the connection a cancellation ends; nil-safe.
func (w *cancelWatch) track(c *h1.UpConn) {
	if w != nil {
		w.cur.Store(c)
	}
}

// fired reports whether the cancellation ran or is running, in which case
// the connection it may have touched must not be reused; nil-safe.
func (w *cancelWatch) fired() bool { return w != nil && !w.stop() }
