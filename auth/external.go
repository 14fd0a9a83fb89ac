package auth

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultExternalTimeout bounds a check request when ExternalSettings
// leaves Timeout zero (Emissary's default for an AuthService).
const DefaultExternalTimeout = 5 * time.Second

// MaxDenialBodyBytes bounds the body of an external service's refusal that
// the gateway passes on; a longer body is cut.
const MaxDenialBodyBytes = 64 << 10

// DefaultRequestHeaders are the request headers every check request
// carries (when the request has them): the credentials and who the client
// is. ExternalSettings.AllowedRequestHeaders adds to them.
var DefaultRequestHeaders = []string{
	"Authorization", "Cookie", "From", "Proxy-Authorization", "User-Agent",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
}

// ExternalSettings describe a route's external authorization service. The
// zero value asks the service about the request's own path, with the
// default headers and no body, waits DefaultExternalTimeout, fails closed
// and copies nothing from its answers.
type ExternalSettings struct {
	// PathPrefix goes before the request's path in the check request's
	// path: "/check" asks about "/orders/1" at "/check/orders/1". A
	// trailing slash is dropped, so that the two never meet as "//".
	PathPrefix string
	// Timeout bounds a check, connection to last byte
	// (DefaultExternalTimeout if 0).
	Timeout time.Duration
	// FailOpen lets requests through when the service cannot be asked (a
	// transport error, a timeout). By default they are refused with 403.
	// Either way, an answer the service gives, 5xx included, is obeyed.
	FailOpen bool
	// AllowedRequestHeaders are request headers sent to the service besides
	// DefaultRequestHeaders.
	AllowedRequestHeaders []string
	// AllowedUpstreamHeaders are the headers of the service's 2xx answer
	// copied onto the request sent upstream (several values joined with
	// ", "). Those the answer lacks are removed from the request, so that
	// the client cannot supply them; so are all of them when the service
	// could not be asked and FailOpen let the request through.
	AllowedUpstreamHeaders []string
	// ConsumerHeader is the header of the service's 2xx answer naming the
	// consumer; "" for none. A value that is empty after trimming blanks,
	// longer than MaxClaimHeaderBytes or holding a control character
	// names nobody.
	ConsumerHeader string
	// IncludeBodyBytes is how much of the request body the check request
	// carries: 0 for none.
	IncludeBodyBytes int
}

// Validate reports the problems with s, one *FieldError each, joined.
func (s ExternalSettings) Validate() error {
	var p problems
	if s.PathPrefix != "" && (!strings.HasPrefix(s.PathPrefix, "/") || strings.ContainsAny(s.PathPrefix, "?#")) {
		p.add("PathPrefix", "must be a path, starting with /")
	}
	if s.Timeout < 0 {
		p.add("Timeout", "must not be negative")
	}
	if s.IncludeBodyBytes < 0 {
		p.add("IncludeBodyBytes", "must not be negative")
	}
	for i, h := range s.AllowedRequestHeaders {
		if !validName(h) {
			p.add(field("AllowedRequestHeaders", i), "not a valid header name")
		} else if !sendable(textproto.CanonicalMIMEHeaderKey(h)) {
			p.add(field("AllowedRequestHeaders", i), "describes the connection or the message framing; it is never sent")
		}
	}
	for i, h := range s.AllowedUpstreamHeaders {
		if reason := checkSetHeader(h); reason != "" {
			p.add(field("AllowedUpstreamHeaders", i), reason)
		}
	}
	if s.ConsumerHeader != "" && !validName(s.ConsumerHeader) {
		p.add("ConsumerHeader", "not a valid header name")
	}
	return p.err()
}

func field(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// sendable reports whether a request header (canonical name) may be sent
// to the service. Proxy-Authorization is hop-by-hop, but it is a
// credential the client meant for the gateway, which is what the service
// is asked about.
func sendable(h string) bool {
	return validName(h) && (!hopHeaders[h] || h == "Proxy-Authorization")
}

// Doer sends a check request to an endpoint of the auth Service. It fills
// in the URL's scheme and host and picks the transport; it must not
// follow redirects, since a redirect (to a login page, say) is an answer
// for the client.
type Doer func(*http.Request) (*http.Response, error)

// External asks an external authorization service about each request, as
// Emissary's AuthService (and Envoy's ext_authz filter in HTTP mode) do:
// a 2xx answer lets the request through, any other answer is given to the
// client. It is immutable and safe for concurrent use.
type External struct {
	prefix   string
	timeout  time.Duration
	failOpen bool
	reqHdrs  []string // canonical, without repeats
	upHdrs   []string // canonical, without repeats; also the Remove of a failed-open check
	consumer string   // canonical
	body     int
	do       Doer
}

// NewExternal returns an External that asks the service through do.
// Header names Validate refuses are left out.
func NewExternal(s ExternalSettings, do Doer) *External {
	e := &External{
		prefix:   strings.TrimSuffix(s.PathPrefix, "/"),
		timeout:  s.Timeout,
		failOpen: s.FailOpen,
		body:     max(s.IncludeBodyBytes, 0),
		do:       do,
	}
	if e.timeout <= 0 {
		e.timeout = DefaultExternalTimeout
	}
	for _, h := range slices.Concat(DefaultRequestHeaders, s.AllowedRequestHeaders) {
		h = textproto.CanonicalMIMEHeaderKey(h)
		if sendable(h) && !slices.Contains(e.reqHdrs, h) {
			e.reqHdrs = append(e.reqHdrs, h)
		}
	}
	for _, h := range s.AllowedUpstreamHeaders {
		h = textproto.CanonicalMIMEHeaderKey(h)
		if checkSetHeader(h) == "" && !slices.Contains(e.upHdrs, h) {
			e.upHdrs = append(e.upHdrs, h)
		}
	}
	if validName(s.ConsumerHeader) {
		e.consumer = textproto.CanonicalMIMEHeaderKey(s.ConsumerHeader)
	}
	return e
}

// BodyBytes returns how much of a request's body the check request
// carries: what the caller should read ahead and pass to Authenticate.
func (e *External) BodyBytes() int { return e.body }

var (
	denyUnavailable = plainDenial(http.StatusForbidden, "", "authorization service unavailable")
	denyFailed      = plainDenial(http.StatusForbidden, "", "authorization service failed")
)

// Authenticate asks the service about r. body is the start of r's body as
// the caller has already read it (nil for none); at most BodyBytes of it
// are sent, and r's own body is not touched, so the caller keeps it intact
// for the upstream.
//
// The check request has r's method, the path PathPrefix + r's path (as r
// spelled it, escapes kept), r's raw query, Host r.Host, the allowed
// request headers that r has, and the body. It ends with ctx or after
// Timeout, whichever is first.
//
// A 2xx answer gives a Result with the allowed upstream headers and the
// consumer. Any other answer is the Denial: its status, headers (but those
// of the connection and the framing) and up to MaxDenialBodyBytes of
// body, except that a 5xx becomes a 403 with a body of our own, since the
// gateway never answers 5xx for authentication and a failing service's
// error page is not for clients. When no answer comes, FailOpen decides.
func (e *External) Authenticate(ctx context.Context, r *http.Request, body []byte) (Result, *Denial) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.do(e.checkRequest(ctx, r, body))
	if err != nil {
		return e.unanswered()
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain a little, so the connection can carry the next check.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return e.allowed(resp.Header), nil
	}
	if resp.StatusCode >= 500 || resp.StatusCode < 200 {
		return Result{}, denyFailed
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDenialBodyBytes))
	if err != nil {
		return e.unanswered()
	}
	return Result{}, &Denial{Status: resp.StatusCode, Header: endToEnd(resp.Header), Body: b}
}

// checkRequest builds the request that asks the service about r.
func (e *External) checkRequest(ctx context.Context, r *http.Request, body []byte) *http.Request {
	u := &url.URL{Scheme: "http", Path: e.prefix + r.URL.Path, RawQuery: r.URL.RawQuery}
	if r.URL.RawPath != "" {
		u.RawPath = e.prefix + r.URL.EscapedPath()
	}
	h := make(http.Header, len(e.reqHdrs)+1)
	for _, name := range e.reqHdrs {
		if vals := r.Header[name]; len(vals) > 0 {
			h[name] = slices.Clip(vals) // shared with r: a Doer that appends copies
		}
	}
	var rd io.Reader
	if body != nil && e.body > 0 {
		rd = bytes.NewReader(body[:min(len(body), e.body)])
	}
	// The method and URL are known good (r's own, and built here), so
	// NewRequestWithContext cannot fail; the placeholder URL is replaced.
	req, err := http.NewRequestWithContext(ctx, r.Method, "/", rd)
	if err != nil {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "/", rd)
	}
	req.URL, req.Host, req.Header = u, r.Host, h
	return req
}

// allowed makes the Result of a 2xx answer.
func (e *External) allowed(h http.Header) Result {
	var res Result
	if e.consumer != "" {
		if c := strings.Trim(h.Get(e.consumer), " \t"); validValue(c, MaxClaimHeaderBytes) {
			res.Consumer = c
		}
	}
	for _, name := range e.upHdrs {
		vals := h[name]
		v := strings.Join(vals, ", ")
		if len(vals) > 0 && validValue(v, -1) {
			res.Set = append(res.Set, [2]string{name, v})
		} else {
			res.Remove = append(res.Remove, name)
		}
	}
	return res
}

// unanswered is the outcome of a check that got no answer.
func (e *External) unanswered() (Result, *Denial) {
	if e.failOpen {
		return Result{Remove: e.upHdrs}, nil
	}
	return Result{}, denyUnavailable
}

// endToEnd copies the headers of h that may pass from the service's answer
// to the client's: not those of the connection or the framing, nor any
// the Connection header names (RFC 9110 section 7.6.1).
func endToEnd(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for name, vals := range h {
		if !hopHeaders[name] {
			out[name] = slices.Clone(vals)
		}
	}
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			delete(out, textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)))
		}
	}
	return out
}
