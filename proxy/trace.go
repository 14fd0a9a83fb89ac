package proxy

// Traces (package tracing): every request is in one.
//
// A client's valid traceparent is continued: same trace id and flags, the
// gateway's own span id as the parent the upstream is given, the client's
// tracestate passed on unchanged. Without one (or with an invalid one, or
// two) the gateway starts a trace, sampled at Options.Tracer's ratio, and
// drops any tracestate, which belongs to no trace anyone continues. The
// upstream's traceparent is written on every path: by writeRequest on the
// fast path (from the exchange's array: nothing is allocated), by rewrite
// on the ReverseProxy path, and into shadow copies (mirror.go), which are
// further children of the gateway's span. As with the forwarding headers,
// a Mapping that removes or sets traceparent itself has the last word.
// The client's own traceparent never reaches the upstream. The access log
// line has the trace id (trace_id).
//
// With an exporting Tracer, a sampled request also gets a span, made once
// its answer has ended (exportSpan, in logRequest): a server span named
// "METHOD route" ("no route" when none matched), with the ids the upstream
// was given (its parent is the client's span, or none), the request's
// start and end, status Error for a 5xx, and these attributes:
//
//	http.request.method        GET, POST…; _OTHER for a method HTTP does
//	                           not define (then http.request.method_original)
//	url.path                   the canonical path every decision was made on
//	http.response.status_code  the status sent (499: the client left)
//	server.address             the Host asked for, without a port
//	gatehouse.route            the Mapping, namespace/name, or "no route"
//	gatehouse.upstream         the route's upstream, when it has one
//	gatehouse.endpoint         the endpoint of the last try, once one was picked
//	gatehouse.retries          retries sent (0 for a request tried once)
//	gatehouse.ratelimit        allowed, limited, or none (no rate limit ran)
//	gatehouse.auth             allowed, refused, or none (no Auth ran)
//	gatehouse.auth.kind        jwt, api_key or external, when an Auth ran
//	gatehouse.consumer         the consumer an Auth named
//	gatehouse.reason           why the gateway answered itself (the access
//	                           log's reason)
//
// Only that path allocates (the SDK's span, the attributes, copies of the
// request's strings, which live in the connection's reused memory on the
// fast path); an unsampled request, or one without an exporting Tracer,
// costs the parse, two or three random numbers and 55 bytes of hex.

import (
	"bufio"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/tracing"
)

// traceState is an exchange's trace.
type traceState struct {
	ctx tracing.Context
	// header is the traceparent the upstream gets; value holds it as a
	// string for the ReverseProxy path's header map (set in rewrite).
	header [tracing.TraceparentLen]byte
	value  [1]string
	// auth is what the route's authentication decided: authNone when it
	// did not run. authKind is the Auth's kind ("" without one).
	auth     string
	authKind string
}

const (
	authNone    = "none"
	authAllowed = "allowed"
	authRefused = "refused"
)

// beginTrace continues or starts the request's trace (see the top of this
// file).
func (h *Handler) beginTrace(r *http.Request, ex *exchange) {
	ex.trace.ctx = tracing.Begin(r.Header["Traceparent"], h.sampler)
	ex.trace.ctx.Put(&ex.trace.header)
}

// traceID is the trace's id in hex, for the access log; it lives in the
// exchange.
func (t *traceState) traceID() []byte { return t.header[3:35] }

// skips reports whether the client's field k is left out of what the
// upstream gets: its traceparent always, its tracestate when the trace is
// not the client's.
func (t *traceState) skips(k string) bool {
	return k == "Traceparent" || k == "Tracestate" && !t.ctx.Continued()
}

// write writes the upstream's traceparent field (the fast path).
func (t *traceState) write(bw *bufio.Writer) {
	bw.WriteString("Traceparent: ")
	bw.Write(t.header[:])
	bw.WriteString("\r\n")
}

// setHeaders puts the upstream's traceparent in hdr and takes out what of
// the client's must not go on (the ReverseProxy path, which copied them).
func (t *traceState) setHeaders(hdr http.Header) {
	t.value[0] = string(t.header[:])
	hdr["Traceparent"] = t.value[0:1:1] // Set, without its slice
	if !t.ctx.Continued() {
		delete(hdr, "Tracestate")
	}
}

// authed records what the route's authentication decided.
func (t *traceState) authed(ra *snapshot.RouteAuth, ok bool) {
	t.auth = authRefused
	if ok {
		t.auth = authAllowed
	}
	if ra != nil && ra.Spec != nil {
		t.authKind = ra.Spec.Kind
	}
}

// exportSpan hands the request's span to the Tracer (see the top of this
// file); the request is sampled and the Tracer exporting. Strings that
// may live in the connection's memory are copied: the span outlives the
// request.
func (h *Handler) exportSpan(r *http.Request, ex *exchange, status int, start time.Time) {
	route := "no route"
	if ex.route != nil {
		route = ex.route.Mapping
	}
	path := ex.routed
	if path == "" {
		path = snapshot.WirePath(r.URL)
	}
	attrs := make([]attribute.KeyValue, 0, 16)
	method := knownMethod(r.Method)
	if method == "_OTHER" {
		attrs = append(attrs, attribute.String("http.request.method_original", strings.Clone(r.Method)))
	}
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.path", strings.Clone(path)),
		attribute.Int("http.response.status_code", status),
		attribute.String("server.address", strings.Clone(hostOnly(r.Host))),
		attribute.String("gatehouse.route", route))
	if ex.route != nil && ex.route.Upstream != nil {
		attrs = append(attrs, attribute.String("gatehouse.upstream", ex.route.Upstream.ID()))
	}
	if ex.endpoint != "" {
		attrs = append(attrs, attribute.String("gatehouse.endpoint", strings.Clone(ex.endpoint)))
	}
	limit := "none"
	switch {
	case ex.reason == "rate limited":
		limit = "limited"
	case ex.rateLimit[0] != "": // limit set the fields: every policy let the request through
		limit = "allowed"
	}
	auth := ex.trace.auth
	if auth == "" {
		auth = authNone
	}
	attrs = append(attrs,
		attribute.Int("gatehouse.retries", ex.tries),
		attribute.String("gatehouse.ratelimit", limit),
		attribute.String("gatehouse.auth", auth))
	if ex.trace.authKind != "" {
		attrs = append(attrs, attribute.String("gatehouse.auth.kind", ex.trace.authKind))
	}
	if ex.origin.consumer != "" {
		attrs = append(attrs, attribute.String("gatehouse.consumer", strings.Clone(ex.origin.consumer)))
	}
	if ex.reason != "" {
		attrs = append(attrs, attribute.String("gatehouse.reason", ex.reason))
	}
	span := tracing.Span{Name: method + " " + route, Start: start, End: time.Now(), Attributes: attrs}
	if method == "_OTHER" {
		span.Name = "HTTP " + route
	}
	if ex.trace.ctx.Continued() {
		span.TraceState = strings.Clone(strings.Join(r.Header["Tracestate"], ","))
	}
	if status >= 500 {
		span.Failed = true
		switch {
		case ex.err != nil:
			span.Status = ex.err.Error()
		case ex.reason != "":
			span.Status = ex.reason
		default:
			span.Status = http.StatusText(status)
		}
	}
	h.tracer.Export(&ex.trace.ctx, &span)
}

// knownMethod is the method for http.request.method: one HTTP defines, or
// _OTHER, so that a client cannot mint span names and attribute values.
func knownMethod(m string) string {
	// The constants, not m: on the fast path m lives in the connection's
	// buffer, and the span outlives the request.
	for _, k := range [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace} {
		if m == k {
			return k
		}
	}
	return "_OTHER"
}

// hostOnly is a Host header without its port.
func hostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		return host[:i]
	}
	return host
}
