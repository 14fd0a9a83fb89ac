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
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// StatusClientClosed is logged (never sent: nobody is listening) when the
// client goes away before the upstream answers, following nginx's 499.
const StatusClientClosed = 499

// Options configure a Handler. Zero values mean defaults.
type Options struct {
	// Transport reaches upstreams; nil means NewTransport().
	Transport http.RoundTripper
	// Logger receives one access log line per request; nil means no access log.
	Logger *slog.Logger
	// Metrics records request metrics; nil records nothing.
	Metrics *metrics.Set
	// Now is the clock for rate limiting; nil means time.Now.
	Now func() time.Time
}

// Handler serves requests from the current snapshot. Safe for concurrent use.
type Handler struct {
	current atomic.Pointer[snapshot.Snapshot]
	rp      *httputil.ReverseProxy
	log     *slog.Logger
	metrics *metrics.Set
	now     func() time.Time
}

// NewTransport returns the upstream transport: a connect timeout like
// Emissary's default (3 s) and a larger idle pool than net/http's default of
// 2 per host, which would make a busy gateway reconnect constantly.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never send upstream traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// New returns a Handler with no snapshot; it answers 503 until Publish.
func New(opts Options) *Handler {
	h := &Handler{log: opts.Logger, metrics: opts.Metrics, now: opts.Now}
	if h.now == nil {
		h.now = time.Now
	}
	transport := opts.Transport
	if transport == nil {
		transport = NewTransport()
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      transport,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		// Errors are logged once, in the access log line, not by net/http.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return h
}

// Publish makes s the snapshot for requests that arrive from now on.
func (h *Handler) Publish(s *snapshot.Snapshot) {
	h.current.Store(s)
	if s != nil {
		h.metrics.Snapshot(s.Generation, s.Table.Len())
	}
}

// Current returns the snapshot being served, nil before the first Publish.
func (h *Handler) Current() *snapshot.Snapshot { return h.current.Load() }

// exchange is one request's state, shared with the ReverseProxy callbacks
// through the request context.
type exchange struct {
	route     *snapshot.Route
	endpoint  string
	path      string
	requestID string
	sent      time.Time
	upstream  int   // status the upstream answered, 0 when none
	err       error // transport error, nil when the upstream answered
	clientErr bool  // the client went away
}

type exchangeKey struct{}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{requestID: requestID(r.Header.Get("X-Request-Id"))}
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("X-Request-Id", ex.requestID)
	defer func() { h.logRequest(r, ex, sw, start) }()

	snap := h.current.Load()
	if snap == nil {
		h.fail(sw, http.StatusServiceUnavailable, "no configuration loaded yet")
		return
	}
	reqPath, ok := cleanPath(r.URL.Path)
	if !ok {
		h.fail(sw, http.StatusBadRequest, "request path must be absolute")
		return
	}
	route, ok := snap.Table.Match(r.Host, r.Method, reqPath, r.Header)
	if !ok {
		h.fail(sw, http.StatusNotFound, "no route for this host and path")
		return
	}
	ex.route = route.Value
	rt := route.Value

	now := h.now()
	for i, l := range rt.Limiters {
		if ok, retry := l.Allow(now, l.Key(r)); !ok {
			h.metrics.RateLimited(rt.RateLimits[i])
			sw.Header().Set("Retry-After", strconv.Itoa(limiter.RetryAfterSeconds(retry)))
			h.fail(sw, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
	}

	endpoint, ok := rt.Upstream.Pick()
	if !ok {
		h.fail(sw, http.StatusServiceUnavailable, "no ready endpoints")
		return
	}
	done, err := rt.Upstream.Allow()
	if err != nil {
		h.fail(sw, http.StatusServiceUnavailable, "upstream circuit breaker open")
		return
	}
	// done runs even if the ReverseProxy aborts the response with a panic
	// (http.ErrAbortHandler), so a half-open breaker always gets its answer.
	defer func() { done(ex.outcome()) }()

	ex.endpoint = endpoint
	ex.path = rt.UpstreamPath(reqPath)
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	ex.sent = time.Now()
	h.rp.ServeHTTP(sw, r.WithContext(ctx))
}

// errUpstreamStatus marks an upstream 5xx answer as a breaker failure.
var errUpstreamStatus = errors.New("upstream answered 5xx")

// outcome is what the breaker learns from the exchange. A client that went
// away says nothing about the upstream's health.
func (ex *exchange) outcome() error {
	switch {
	case ex.clientErr:
		return upstream.ErrExcluded
	case ex.err != nil:
		return ex.err
	case ex.upstream >= 500:
		return errUpstreamStatus
	}
	return nil
}

func rewrite(pr *httputil.ProxyRequest) {
	ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
	out := pr.Out.URL
	out.Scheme = ex.route.Target.Scheme
	out.Host = ex.endpoint
	out.Path = ex.path
	out.RawPath = ""
	// Keep the client's Host header, as Emissary does without host_rewrite:
	// upstreams often serve several names.
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Set("X-Request-Id", ex.requestID)
}

func (h *Handler) modifyResponse(resp *http.Response) error {
	ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	ex.upstream = resp.StatusCode
	h.metrics.UpstreamLatency(ex.route.Upstream.ID(), time.Since(ex.sent))
	return nil
}

func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex := r.Context().Value(exchangeKey{}).(*exchange)
	switch {
	case ex.clientGone(r):
		ex.clientErr = true
		w.WriteHeader(StatusClientClosed)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(r.Context().Err(), context.DeadlineExceeded):
		ex.err = err
		h.fail(w, http.StatusGatewayTimeout, "upstream timed out")
	default:
		ex.err = err
		h.fail(w, http.StatusBadGateway, "upstream unreachable or answered badly")
	}
}

// clientGone tells a client's cancellation from our own timeout: the client
// going away cancels the request context, our deadline expires it.
func (ex *exchange) clientGone(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.Canceled)
}

func (h *Handler) fail(w http.ResponseWriter, status int, msg string) {
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
	h.metrics.Request(route, status)
	if h.log == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", ex.requestID),
		slog.String("client", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if ex.route != nil {
		attrs = append(attrs, slog.String("route", route), slog.String("upstream", ex.route.Upstream.ID()))
	}
	if ex.endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", ex.endpoint), slog.String("upstream_path", ex.path))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("error", ex.err.Error()))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// requestID keeps a caller's id when it is sane and otherwise makes one, so
// every log line and upstream request can be correlated.
func requestID(given string) string {
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
	return hex.EncodeToString(b[:])
}

// cleanPath removes dot segments so "/public/../admin" is routed as "/admin",
// the path an upstream would resolve, and cannot slip past a route's prefix.
// A trailing slash is kept because prefixes often end in one.
func cleanPath(p string) (string, bool) {
	if p == "" || p[0] != '/' {
		return "", false
	}
	if !strings.Contains(p, "/.") {
		return p, true
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c, true
}

// statusWriter records the status and size of the response for logs and
// metrics. Unwrap lets http.ResponseController reach Flush and Hijack.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
