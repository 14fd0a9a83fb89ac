// Package proxy is the data plane: an http.Handler that serves each request
// from the snapshot current when the request arrived. Snapshots are swapped
// with one atomic store; a request in flight finishes on the snapshot it
// started with.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/cors"
	"github.com/gatehouse-dev/gatehouse/grpcweb"
	"github.com/gatehouse-dev/gatehouse/h1"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/tracing"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// StatusClientClosed is logged (never sent: nobody is listening) when the
// client goes away before the upstream answers, following nginx's 499.
const StatusClientClosed = 499

// Options configure a Handler. Zero values mean defaults.
type Options struct {
	// Consumers counts authenticated consumers' usage; nil counts none.
	Consumers *metrics.Consumers
	// Transport reaches upstreams on the ReverseProxy path; nil means
	// NewTransport(Guard). HTTP2Transport reaches the upstreams of routes
	// that speak HTTP/2 (grpc, http2); nil means NewHTTP2Transport(Guard),
	// or Transport when that is given.
	Transport      http.RoundTripper
	HTTP2Transport http.RoundTripper
	// Pool reaches plain-HTTP upstreams on the fast path (fast.go); nil
	// means NewPool(Guard) when Transport is nil too, and no fast path when
	// a Transport is given alone or NoFastPath is set.
	Pool       *h1.Pool
	NoFastPath bool
	// Guard is what the default Transport dials through; nil means
	// upstream.DialGuard's defaults. Ignored when Transport is set.
	Guard *upstream.DialGuard
	// Guards, when set, is read on every dial instead of Guard: the
	// transports the handler makes itself (one per upstream_tls setting)
	// dial through it, as the server's own transports do.
	Guards func() *upstream.DialGuard
	// AccessLog receives one JSON line per request (accesslog.go); nil
	// means no access log. A *LogWriter buffers the lines.
	AccessLog io.Writer
	// Metrics records request metrics; nil records nothing.
	Metrics *metrics.Set
	// Now is the clock for rate limiting; nil means time.Now.
	Now func() time.Time
	// TrustedProxies are the peers (load balancers, ingresses in front of
	// the gateway) whose X-Forwarded-For and X-Real-IP name the client;
	// from anyone else those headers, and every other claim about where a
	// request came from, are dropped and the TCP peer is the client. The
	// client so found is what client_ip rate limits key on and what the
	// upstream is told. Nil trusts nobody. See forwarded.go.
	TrustedProxies []netip.Prefix
	// MaxRequestBody bounds request bodies of routes that set no bound of
	// their own (--max-request-body-bytes); 0 means none.
	MaxRequestBody int64
	// Tracer samples the traces the gateway starts and exports spans of
	// sampled requests (trace.go); nil samples and exports none. Trace
	// context is propagated either way.
	Tracer *tracing.Tracer
}

// Handler serves requests from the current snapshot. Safe for concurrent use.
type Handler struct {
	current atomic.Pointer[published]
	// httpsPort is where plain requests for redirecting Hosts are sent
	// (SetHTTPSPort).
	httpsPort atomic.Int32
	rp        *httputil.ReverseProxy
	pool      *h1.Pool // nil: no fast path
	bufs      *bufferPool
	bodies    bodies
	log       io.Writer  // the access log; nil: none
	logBuf    *LogWriter // log, when it buffers lines
	lines     sync.Pool  // *[]byte: access lines being built
	// exchanges are reused: one is the largest allocation of a request.
	exchanges sync.Pool
	metrics   *metrics.Set
	consumers *metrics.Consumers // nil: usage not counted
	now       func() time.Time
	trust     trust
	maxBody   int64 // Options.MaxRequestBody
	tracer    *tracing.Tracer
	sampler   tracing.Sampler // tracer's
	exporting bool            // tracer exports spans
	guards    func() *upstream.DialGuard
	// tlsTransports are the transports of upstream_tls settings, by
	// TLSClient ID and protocol; Publish drops those no route uses.
	tlsTransports sync.Map // tlsKey → *http.Transport
	mirrors       mirrorer
	// unmatched counts the requests no route matched.
	unmatched *metrics.RouteRequests
}

// published is a snapshot with the metric recorders of its routes, swapped
// together so a request never looks a metric up by its labels.
type published struct {
	snap  *snapshot.Snapshot
	stats map[*snapshot.Route]*routeStats // nil without metrics
	ext   externals                       // external auth clients, made on first use
}

// routeStats is what a route's requests record into.
type routeStats struct {
	requests *metrics.RouteRequests
	upstream *metrics.UpstreamObserver // nil for a redirect
}

// NewTransport returns the upstream transport: each route's connect timeout
// (Emissary's connect_timeout_ms, 3 s by default) and a larger idle pool than
// net/http's default of 2 per host, which would make a busy gateway reconnect
// constantly. Every connection goes through guard, checked on the address
// actually connected after any name lookup; nil means DialGuard's defaults
// (no loopback, link-local, metadata or unspecified addresses, nothing
// allowed beyond them).
func NewTransport(guard *upstream.DialGuard) *http.Transport {
	return NewGuardedTransport(func() *upstream.DialGuard { return guard })
}

// NewGuardedTransport is NewTransport with the guard read on every dial,
// for a server whose own listeners (which the guard refuses) are known only
// once they are bound.
func NewGuardedTransport(guard func() *upstream.DialGuard) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never send upstream traffic through an environment proxy
		DialContext:           dialer{guard: guard}.dial,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// NewHTTP2Transport is NewGuardedTransport speaking HTTP/2 only: with
// prior knowledge to http:// upstreams (gRPC servers listen so), by ALPN
// to https:// ones. An HTTP/2 connection carries many requests at once.
func NewHTTP2Transport(guard func() *upstream.DialGuard) *http.Transport {
	t := NewGuardedTransport(guard)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	t.Protocols = p
	return t
}

// byProtocol sends each exchange through the transport its route speaks:
// its own TLS client (upstream_tls, tls.go), HTTP/2, or HTTP/1.1.
type byProtocol struct {
	h            *Handler
	http1, http2 http.RoundTripper
}

func (b byProtocol) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, ok := req.Context().Value(exchangeKey{}).(*exchange)
	switch {
	case !ok:
	case ex.tls != nil:
		return b.h.tlsTransport(ex.tls, ex.route.HTTP2).RoundTrip(req)
	case ex.route.HTTP2:
		return b.http2.RoundTrip(req)
	}
	return b.http1.RoundTrip(req)
}

// dialer connects to endpoints through a DialGuard.
type dialer struct{ guard func() *upstream.DialGuard }

// dial connects to an endpoint within the route's connect timeout, which
// reaches it through the request context. A name (an external upstream) is
// dialled fully qualified, so resolv.conf's search domains cannot turn it
// into an in-cluster Service.
func (d dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	base := net.Dialer{Timeout: snapshot.DefaultConnectTimeout, KeepAlive: 30 * time.Second}
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok && ex.route.ConnectTimeout > 0 {
		base.Timeout = ex.route.ConnectTimeout
	}
	return d.guard().Dialer(base).DialContext(ctx, network, upstream.RootedAddr(addr))
}

// New returns a Handler with no snapshot; it answers 503 until Publish.
func New(opts Options) *Handler {
	h := &Handler{log: opts.AccessLog, metrics: opts.Metrics, consumers: opts.Consumers, now: opts.Now, trust: newTrust(opts.TrustedProxies), maxBody: opts.MaxRequestBody}
	h.logBuf, _ = opts.AccessLog.(*LogWriter)
	h.tracer, h.sampler, h.exporting = opts.Tracer, opts.Tracer.Sampler(), opts.Tracer.Exporting()
	h.lines.New = func() any { b := make([]byte, 0, 1024); return &b }
	h.exchanges.New = func() any { return new(exchange) }
	h.unmatched = h.metrics.Route("")
	if h.now == nil {
		h.now = time.Now
	}
	transport, h2 := opts.Transport, opts.HTTP2Transport
	if transport == nil {
		transport = NewTransport(opts.Guard)
		if opts.Pool == nil {
			opts.Pool = NewPool(func() *upstream.DialGuard { return opts.Guard })
		}
		if h2 == nil {
			h2 = NewHTTP2Transport(func() *upstream.DialGuard { return opts.Guard })
		}
	}
	if h2 == nil {
		h2 = transport
	}
	h.guards = opts.Guards
	if h.guards == nil {
		h.guards = func() *upstream.DialGuard { return opts.Guard }
	}
	transport = byProtocol{h: h, http1: transport, http2: h2}
	if !opts.NoFastPath {
		h.pool = opts.Pool
	}
	h.bufs = newBufferPool()
	h.mirrors.transport = transport
	h.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      retryTransport{h: h, next: transport},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		BufferPool:     h.bufs,
		// Errors are logged once, in the access log line, not by net/http.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return h
}

// Publish makes s the snapshot for requests that arrive from now on.
func (h *Handler) Publish(s *snapshot.Snapshot) {
	if s == nil {
		h.current.Store(&published{})
		return
	}
	p := &published{snap: s}
	h.retainTLS(s)
	if h.metrics != nil {
		p.stats = make(map[*snapshot.Route]*routeStats, s.Table.Len())
		byRoute := map[string]*metrics.RouteRequests{}
		byUpstream := map[string]*metrics.UpstreamObserver{}
		for r := range s.Table.All() {
			rt := r.Value
			st := &routeStats{requests: byRoute[rt.Mapping]}
			if st.requests == nil {
				st.requests = h.metrics.Route(rt.Mapping)
				byRoute[rt.Mapping] = st.requests
			}
			if rt.Upstream != nil {
				id := rt.Upstream.ID()
				if st.upstream = byUpstream[id]; st.upstream == nil {
					st.upstream = h.metrics.Upstream(id)
					byUpstream[id] = st.upstream
				}
			}
			p.stats[rt] = st
		}
	}
	h.current.Store(p)
	h.metrics.Snapshot(s.Generation, s.Table.Len())
	if h.metrics == nil {
		return
	}
	routes := make(map[string]bool, s.Table.Len())
	upstreams := make(map[string]bool, s.Table.Len())
	policies := map[string]bool{}
	for r := range s.Table.All() {
		routes[r.Value.Mapping] = true
		if r.Value.Upstream != nil {
			upstreams[r.Value.Upstream.ID()] = true
		}
		for _, p := range r.Value.RateLimits {
			policies[p] = true
		}
	}
	h.metrics.Retain(
		func(v string) bool { return routes[v] },
		func(v string) bool { return upstreams[v] },
		func(v string) bool { return policies[v] })
}

// Current returns the snapshot being served, nil before the first Publish.
func (h *Handler) Current() *snapshot.Snapshot {
	if p := h.current.Load(); p != nil {
		return p.snap
	}
	return nil
}

// exchange is one request's state, shared with the ReverseProxy callbacks
// through the request context.
type exchange struct {
	route     *snapshot.Route
	stats     *routeStats // nil without metrics or a route
	endpoint  string
	routed    string // the canonical request path, "" until it is known
	path      string // what the upstream gets: routed, rewritten
	requestID string
	arena     *h1.Arena // the fast path's strings (h1.Arena), nil on the other
	req       *http.Request
	upgrade   string // the protocol the request upgrades to, "" for none
	attempt   upstream.Attempt
	panicked  any // what forward recovered
	// The endpoint of the current try, the ones tried before it, how many
	// retries were sent, and the request's balancing hash (retry.go).
	ep            *upstream.Endpoint
	tried         [maxTried]*upstream.Endpoint
	ntried, tries int
	hash          uint64
	connectFailed bool                // the last try could not connect
	tls           *snapshot.TLSClient // the route's upstream TLS client, nil for plain HTTP
	// clientDeadline is when the client's grpc-timeout ends (zero: none).
	clientDeadline time.Time
	snap           *snapshot.Snapshot // what the request is served from
	// clientCert is the verified client certificate's identity, for the
	// access log ("" without one).
	clientCert string
	// reason is why the gateway answered itself where the status alone
	// does not say (a circuit_breakers overflow), for the access log.
	reason string
	// The X-Request-Id header values, to the client and to the upstream,
	// in one array the exchange already holds: Header.Set would allocate a
	// one-element slice for each.
	requestIDs [2]string
	// rateLimit holds the RateLimit-Policy and RateLimit values.
	rateLimit [2]string
	sent      time.Time
	// upstreamTime is from the last try's request sent to its answer's
	// head, for the access log (0: no answer came).
	upstreamTime time.Duration
	upstream     int   // status the upstream answered, 0 when none
	err          error // transport error, nil when the upstream answered
	clientErr    bool  // the client went away, or its request body broke
	idle         *time.Timer
	origin       origin // who sent the request (forwarded.go)
	w            http.ResponseWriter
	sw           statusWriter
	// What outcome (outcome.go) judges the upstream by: the request body
	// as the transport read it, whether it was still partial when the
	// upstream answered or the exchange failed, and whether the answer
	// was cut short by a timeout.
	body    requestBody
	resp    responseBody
	partial bool
	cut     bool
	fast    bool       // served by the fast path (fast.go)
	trace   traceState // trace.go
}

type exchangeKey struct{}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time // only the access log's duration and spans need it: reading the clock costs
	if h.log != nil || h.exporting {
		start = time.Now()
	}
	ex := h.exchanges.Get().(*exchange)
	// Non-nil for a request h1's server reads: its strings, and the ones
	// this handler builds for the fast path, live in the connection's
	// reused memory (detach.go says what the other path does about it).
	arena := h1.ArenaOf(w)
	*ex = exchange{requestID: requestID(r.Header.Get("X-Request-Id"), arena), attempt: ex.attempt}
	h.beginTrace(r, ex)
	if ex.attempt == nil {
		ex.attempt = h.attempt(ex)
	}
	// Registered first, so it runs after every other deferred use of ex.
	// Only an exchange the fast path served is reused: on the
	// ReverseProxy path, callbacks tied to the request's context may
	// still look at it after this handler returns.
	defer func() {
		if ex.fast {
			h.exchanges.Put(ex)
		}
	}()
	// The writer lives in the exchange: one allocation per request, not two.
	sw := &ex.sw
	sw.ResponseWriter = w
	// gRPC is HTTP/2 only: an HTTP/1.1 request spares the header lookup.
	sw.grpc = r.ProtoMajor == 2 && isGRPC(r)
	ex.requestIDs = [2]string{ex.requestID, ex.requestID}
	// Header.Set, without its allocation; the full slice expression makes
	// a later Add copy rather than write into the array.
	sw.Header()["X-Request-Id"] = ex.requestIDs[0:1:1]
	if closeAfter(r) {
		closeConnection(sw.Header()) // framing.go
	}
	ex.origin = h.trust.resolve(r)
	ex.w = sw
	defer func() { h.logRequest(r, ex, sw, start) }()

	var snap *snapshot.Snapshot
	pub := h.current.Load()
	if pub != nil {
		snap = pub.snap
	}
	if snap == nil {
		h.fail(sw, http.StatusServiceUnavailable, "no configuration loaded yet")
		return
	}
	// The canonical path is what is matched, limited, rewritten, logged and
	// forwarded, read with the snapshot's options as explain reads it.
	req, err := snapshot.RouterRequest(r, snap.Paths())
	if err != nil {
		h.fail(sw, http.StatusBadRequest, "bad request path: "+err.Error())
		return
	}
	ex.routed, ex.snap = req.Path, snap
	if edge := snap.Edge; edge.Len() > 0 && !h.edgePolicy(sw, r, ex, edge, req.Path) {
		return
	}
	route, ok, preflight := snapshot.MatchPreflight(snap.Table, &req, snapshot.PreflightMethod(r), -1)
	if !ok {
		h.fail(sw, http.StatusNotFound, "no route for this host and path")
		return
	}
	ex.route = route.Value
	ex.stats = pub.stats[route.Value]
	rt := route.Value
	if preflight && rt.CORS.Preflight(sw, r) {
		// Answered here, before limits and the upstream: a preflight
		// carries no credentials and the upstream never agreed to CORS.
		return
	}
	// Every answer from here on, the gateway's own included (429, 503…),
	// gets the route's CORS headers, so a browser sees the real status.
	sw.cors, sw.req = rt.CORS, r
	if rt.GRPCWeb {
		if ok, _ := grpcweb.Is(r); ok {
			// A browser's gRPC-Web call becomes gRPC for the upstream, and
			// everything answered from here on, the gateway's own refusals
			// included, becomes gRPC-Web for the browser. sw stays outermost:
			// it logs the real status and gives CORS the same header map.
			if limit := h.bodyLimit(rt); limit > 0 {
				r.Body = http.MaxBytesReader(sw, r.Body, limit) // the client's bytes, before decoding
			}
			ww, out, finish := grpcweb.Translate(sw.ResponseWriter, r)
			sw.ResponseWriter, sw.grpc = ww, true
			r = out
			defer func() {
				if ex.panicked == nil { // a broken stream stays broken
					finish()
				}
			}()
		}
	}

	// Authentication before limits: a consumer's quota needs the
	// consumer, and an unauthenticated flood spends no one's tokens.
	if ra := snap.AuthFor(rt); ra != nil || rt.RequireConsumer {
		ok := h.authenticate(sw, r, ex, pub, rt, ra)
		ex.trace.authed(ra, ok)
		if !ok {
			return
		}
	}

	if len(rt.Limiters) > 0 && !h.limit(sw, r, ex, rt) {
		return
	}

	if rt.Redirect != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		sw.Header().Set("Location", rt.RedirectLocation(scheme, req.Path, req.RawQuery))
		sw.WriteHeader(rt.Redirect.Code)
		return
	}

	if limit := h.bodyLimit(rt); limit > 0 {
		if r.ContentLength > limit {
			// Before the upstream is contacted; the body is never read.
			h.fail(sw, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		if r.ContentLength < 0 {
			// Chunked: counted as it goes (413 if nothing was answered yet).
			r.Body = http.MaxBytesReader(sw, r.Body, limit)
		}
	}

	// Go's ReverseProxy would tunnel any upgrade; Emissary (like Envoy)
	// only allows the protocols a Mapping lists.
	up := upgradeProtocol(r.Header)
	if up != "" && !rt.AllowsUpgrade(up) {
		h.fail(sw, http.StatusForbidden, "upgrade to "+up+" is not allowed on this route")
		return
	}
	fast := h.fastPath(r, ex, up)
	if fast {
		ex.arena = arena
	}
	ex.path, err = rt.ForwardPathWith(req.Path, ex.arena.Concat)
	if err != nil {
		h.fail(sw, http.StatusBadRequest, "bad request path: "+err.Error())
		return
	}

	if g := rt.Gate; g != nil {
		// circuit_breakers: a slot, or a wait for one within the route's
		// timeout (max_pending_requests), or 503 at once.
		wait := rt.Timeout
		if wait <= 0 {
			wait = snapshot.DefaultTimeout // timeout_ms: 0 does not mean queue forever
		}
		if why := g.Enter(wait); why != "" {
			ex.reason = why
			h.metrics.Overflow(rt.Upstream.ID(), why)
			h.fail(sw, http.StatusServiceUnavailable, "too many concurrent requests for this route ("+why+")")
			return
		}
		defer g.Leave()
	}

	if rt.TLS != nil {
		if ex.tls = snap.TLSClient(rt); ex.tls.Err != nil {
			// Fail closed: never reach the upstream with weaker TLS than
			// the Mapping asked for.
			ex.err = ex.tls.Err
			h.fail(sw, http.StatusBadGateway, "upstream TLS is not configured: "+ex.tls.Err.Error())
			return
		}
	}
	ex.hash = h.balanceKey(sw, r, ex)
	ep, ok := rt.Upstream.Pick(rt.Balance, ex.hash, nil)
	if !ok {
		ex.reason = "no ready endpoints"
		h.fail(sw, http.StatusServiceUnavailable, "no ready endpoints")
		return
	}
	ex.ep, ex.endpoint, ex.req, ex.upgrade, ex.fast = ep, ep.Addr(), r, up, fast
	if err := rt.Upstream.Do(ex.attempt); errors.Is(err, upstream.ErrBreakerOpen) {
		ex.reason = "circuit breaker open"
		h.fail(sw, http.StatusServiceUnavailable, "upstream circuit breaker open")
		return
	}
	if ex.panicked != nil {
		// The breaker has the exchange's outcome; the server gets the panic.
		panic(ex.panicked)
	}
}

// attempt runs the exchange ex for the upstream's circuit breaker
// (upstream.Do) and judges it (outcome.go). Each exchange makes its own once:
// a closure per request would be an allocation per request.
func (h *Handler) attempt(ex *exchange) upstream.Attempt {
	return func() (struct{}, error) {
		// Only requests the breaker let through earn retries (upstream's
		// retry budget).
		ex.route.Upstream.RequestStarted()
		h.forward(ex)
		outcome := ex.outcome()
		ex.ep.End(endpointOutcome(outcome))
		if ex.tries > 0 {
			ex.route.Gate.RetryDone()
		}
		return struct{}{}, outcome
	}
}

// forward sends the request to the endpoint chosen, on the fast path or
// through the ReverseProxy. A panic (the ReverseProxy aborts a response with
// http.ErrAbortHandler) is kept for ServeHTTP to raise again once the
// breaker has the outcome, which outcome.go judges as for any other failure.
func (h *Handler) forward(ex *exchange) {
	defer func() {
		if v := recover(); v != nil {
			ex.panicked = v
		}
	}()
	sw, r, w, rt, up := &ex.sw, ex.req, ex.sw.ResponseWriter, ex.route, ex.upgrade
	if ex.fast {
		h.forwardFast(sw, r, ex) // Begins each try itself
		return
	}
	ex.ep.Begin()
	h.mirror(r, ex, nil, r.ContentLength != 0)
	if h1.ArenaOf(w) != nil {
		var body *detachedBody
		r, body = detach(r)
		defer body.end(func() { _ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo) })
		ex.requestID = strings.Clone(ex.requestID)
		ex.requestIDs = [2]string{ex.requestID, ex.requestID}
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	// An upgraded connection (a WebSocket, say) lives as long as its peers
	// want: the request timeouts bound the exchange, not the tunnel after it.
	if rt.Timeout > 0 && up == "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	if rt.GRPC {
		// The client's deadline, when sooner, ends the exchange here too:
		// DEADLINE_EXCEEDED from the gateway rather than a stream left to
		// an upstream nobody waits for.
		if d, ok := grpcTimeout(firstElement(r.Header["Grpc-Timeout"])); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, d, errClientDeadline)
			defer cancel()
			ex.clientDeadline = time.Now().Add(d)
		}
	}
	if rt.IdleTimeout > 0 && up == "" {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		ex.idle = time.AfterFunc(rt.IdleTimeout, func() { cancel(errIdleTimeout) })
		defer func() {
			ex.idle.Stop()
			cancel(nil)
		}()
	}
	ex.sent = time.Now()
	h.rp.ServeHTTP(sw, r.WithContext(ctx))
}

// errIdleTimeout ends an exchange in which no bytes moved for a route's
// idle_timeout_ms.
var errIdleTimeout = errors.New("upstream idle timeout")

// upgradeProtocol returns the protocol a request asks to upgrade to, "" when
// it asks for none.
func upgradeProtocol(h http.Header) string {
	for _, v := range h["Connection"] {
		// strings.Split would allocate for every keep-alive client.
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				up := h.Get("Upgrade")
				if up == "" {
					return "unknown"
				}
				return up
			}
		}
	}
	return ""
}

func rewrite(pr *httputil.ProxyRequest) {
	ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
	out := pr.Out.URL
	out.Scheme = ex.route.Target.Scheme
	out.Host = ex.endpoint
	// Path and RawPath both, so net/http writes exactly the routed,
	// rewritten path, escapes as they are, rather than re-escaping Path.
	snapshot.SetEscapedPath(out, ex.path)
	// Keep the client's Host header, as Emissary does without host_rewrite:
	// upstreams often serve several names.
	pr.Out.Host = pr.In.Host
	if ex.route.HostRewrite != "" {
		pr.Out.Host = ex.route.HostRewrite
	}
	ex.origin.setHeaders(pr)
	ex.track(pr.Out)
	pr.Out.Header["X-Request-Id"] = ex.requestIDs[1:2:2] // Set, as in ServeHTTP
	ex.trace.setHeaders(pr.Out.Header)
	applyHeaders(pr.Out.Header, ex.route.RequestHeadersRemove, ex.route.RequestHeadersAdd)
}

// applyHeaders removes, then adds, so a Mapping can replace a header by
// removing it and adding it back.
func applyHeaders(h http.Header, remove []string, add []snapshot.HeaderOp) {
	for _, name := range remove {
		h.Del(name)
	}
	for _, op := range add {
		if op.Append {
			h.Add(op.Name, op.Value)
		} else {
			h.Set(op.Name, op.Value)
		}
	}
}

func (h *Handler) modifyResponse(resp *http.Response) error {
	ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	ex.upstreamTime = time.Since(ex.sent)
	if ex.stats != nil {
		ex.stats.upstream.Latency(ex.upstreamTime)
	} else {
		h.metrics.UpstreamLatency(ex.route.Upstream.ID(), ex.upstreamTime) // without metrics, a no-op
	}
	applyHeaders(resp.Header, ex.route.ResponseHeadersRemove, ex.route.ResponseHeadersAdd)
	ex.answered(resp)
	return nil
}

func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	h.failed(w, r, r.Context().Value(exchangeKey{}).(*exchange), err)
}

// limit takes a token from each of the route's rate limits and tells the
// client where it stands (the RateLimit-Policy and RateLimit fields of the
// policy closest to refusing, Retry-After when refused). It returns false
// when it refused the request (429).
func (h *Handler) limit(sw *statusWriter, r *http.Request, ex *exchange, rt *snapshot.Route) bool {
	now := h.now()
	var tightest limiter.Decision
	name := ""
	for i, l := range rt.Limiters {
		d := l.Decide(now, r, ex.origin.client, ex.origin.consumer)
		if !d.Allowed {
			h.metrics.RateLimited(rt.RateLimits[i])
			h.rateLimitFields(sw, ex, d, rt.RateLimits[i])
			sw.Header()["Retry-After"] = []string{strconv.Itoa(limiter.RetryAfterSeconds(d.RetryAfter))}
			ex.reason = "rate limited"
			h.fail(sw, http.StatusTooManyRequests, "rate limit exceeded")
			return false
		}
		if name == "" || d.Remaining < tightest.Remaining {
			tightest, name = d, rt.RateLimits[i]
		}
	}
	h.rateLimitFields(sw, ex, tightest, name)
	return true
}

// rateLimitFields sets RateLimit-Policy and RateLimit from d, their
// values built in the connection's arena (h1's; nil on net/http) and held
// by the exchange, as X-Request-Id is: a limited route's answers allocate
// nothing for them. The answer's head is written before the handler
// returns, on either path, so the arena outlives its use.
func (h *Handler) rateLimitFields(sw *statusWriter, ex *exchange, d limiter.Decision, name string) {
	var buf [192]byte
	b, split := d.AppendHeaders(buf[:0], name)
	arena := h1.ArenaOf(sw.ResponseWriter)
	ex.rateLimit = [2]string{arena.String(b[:split]), arena.String(b[split:])}
	hdr := sw.Header()
	hdr["Ratelimit-Policy"] = ex.rateLimit[0:1:1]
	hdr["Ratelimit"] = ex.rateLimit[1:2:2]
}

func (h *Handler) fail(w http.ResponseWriter, status int, msg string) {
	if sw, ok := w.(*statusWriter); ok && sw.grpc {
		failGRPC(w, status, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func (h *Handler) logRequest(r *http.Request, ex *exchange, sw *statusWriter, start time.Time) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := ""
	if ex.route != nil {
		route = ex.route.Mapping
	}
	if ex.origin.consumer != "" && ex.route != nil {
		h.consumers.Record(ex.route.Namespace(), ex.origin.consumer, status, sw.bytes)
	}
	if ex.stats != nil {
		ex.stats.requests.Request(status)
	} else if ex.route == nil {
		h.unmatched.Request(status)
	} else {
		h.metrics.Request(route, status) // without metrics, a no-op

	}
	if h.exporting && ex.trace.ctx.Sampled() {
		h.exportSpan(r, ex, status, start)
	}
	if h.log == nil {
		return
	}
	// The path every decision was made on; the client's own spelling only
	// when it differs ("/api/%61dmin"), or when none was routed.
	raw := snapshot.WirePath(r.URL)
	path := ex.routed
	if path == "" {
		path = raw
	}
	now := time.Now()
	// Built in a pooled buffer (one on the stack escapes through the
	// writer), copied once into the log's.
	bp := h.lines.Get().(*[]byte)
	a := accessLine{b: (*bp)[:0]}
	defer func() {
		if cap(a.b) <= 4096 {
			*bp = a.b[:0]
			h.lines.Put(bp)
		}
	}()
	a.begin(now)
	a.str("request_id", ex.requestID)
	a.str("trace_id", string(ex.trace.traceID())) // 32 bytes: converted on the stack
	a.str("client", r.RemoteAddr)
	if ex.origin.trusted && ex.origin.client != ex.origin.peer && ex.origin.client.IsValid() {
		// The client a trusted proxy in front vouched for: the address
		// rate limits keyed on and the upstream was told of.
		var ip [64]byte
		a.str("client_ip", string(ex.origin.client.AppendTo(ip[:0])))
	}
	a.str("method", r.Method)
	a.str("host", r.Host)
	a.str("path", path)
	a.int("status", int64(status))
	a.int("bytes", sw.bytes)
	a.int("duration_us", now.Sub(start).Microseconds())
	if raw != path {
		a.str("raw_path", raw)
	}
	if ex.route != nil {
		a.str("route", route)
		if ex.route.Upstream != nil { // redirect routes have none
			a.str("upstream", ex.route.Upstream.ID())
		}
	}
	if ex.endpoint != "" {
		a.str("endpoint", ex.endpoint)
		a.str("upstream_path", ex.path)
	}
	if ex.upstreamTime > 0 {
		a.int("upstream_us", ex.upstreamTime.Microseconds())
	}
	if ex.err != nil {
		a.str("error", ex.err.Error())
	}
	if ex.reason != "" {
		a.str("reason", ex.reason)
	}
	if ex.clientCert != "" {
		a.str("client_cert", ex.clientCert)
	}
	if ex.origin.consumer != "" {
		a.str("consumer", ex.origin.consumer)
	}
	a.end()
	if h.logBuf != nil {
		h.logBuf.line(a.b)
	} else {
		_, _ = h.log.Write(a.b)
	}
}

// requestID keeps a caller's id when it is sane and otherwise makes one, so
// every log line and upstream request can be correlated.
func requestID(given string, arena *h1.Arena) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n; i++ {
			if c := given[i]; c <= ' ' || c >= 0x7f {
				ok = false
				break
			}
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	// Encoded on the stack: the string is the only allocation.
	var x [32]byte
	hex.Encode(x[:], b[:])
	return arena.String(x[:])
}

// statusWriter records the status and size of the response for logs and
// metrics. Unwrap lets http.ResponseController reach Flush and Hijack.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	// grpc: the request is gRPC, so the gateway's own answers are gRPC
	// statuses (grpc.go).
	grpc bool
	// cors, when set, adds the route's CORS headers to the answer's head
	// (after the upstream's fields and the route's own changes, so the
	// policy has the last word); req is the request it answers.
	cors *cors.Policy
	req  *http.Request
}

func (w *statusWriter) WriteHeader(code int) {
	// Interim answers (103 Early Hints) pass through; the final one, or a
	// protocol switch, is the status recorded.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		if w.cors != nil && code >= 200 {
			w.cors.Apply(w.Header(), w.req)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
