package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// consumerHeader tells the upstream which consumer a request is for, when
// a route authenticates. The gateway's own: a client's is never passed on
// (forwardSkips, setHeaders), on any route, so no upstream can be told a
// consumer nobody authenticated.
const consumerHeader = "X-Gatehouse-Consumer"

// externals are the auth.External of one published snapshot, made on
// first use: they need the proxy's transports, which the snapshot does not
// know.
type externals struct {
	mu sync.Mutex
	m  map[string]*auth.External
}

// authenticate runs the route's authentication. It returns false when it
// answered the request itself (401, 403, or the auth service's answer).
func (h *Handler) authenticate(sw *statusWriter, r *http.Request, ex *exchange, pub *published, rt *snapshot.Route, ra *snapshot.RouteAuth) bool {
	var res auth.Result
	var den *auth.Denial
	switch {
	case ra == nil:
		// RequireConsumer on an Emissary Mapping whose namespace has no
		// AuthService: nobody can be a consumer.
	case ra.JWT != nil:
		res, den = ra.JWT.Authenticate(r, h.now())
	case ra.APIKeys != nil:
		res, den = ra.APIKeys.Authenticate(r)
	case ra.Spec.Kind == snapshot.AuthExternal:
		e := h.external(pub, ra.Spec)
		var prefix []byte
		if n := e.BodyBytes(); n > 0 && r.Body != nil && r.Body != http.NoBody {
			prefix = make([]byte, n)
			k, err := io.ReadFull(r.Body, prefix)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				ex.clientErr = true
				h.fail(sw, http.StatusBadRequest, "request body could not be read")
				return false
			}
			prefix = prefix[:k]
			// What was read goes to the upstream too, first.
			r.Body = prefixedBody{Reader: io.MultiReader(bytes.NewReader(prefix), r.Body), Closer: r.Body}
		}
		res, den = e.Authenticate(r.Context(), r, prefix)
	}
	if den != nil {
		ex.reason = "authentication refused"
		h.deny(sw, den)
		return false
	}
	if rt.RequireConsumer && res.Consumer == "" {
		ex.reason = "no consumer"
		h.fail(sw, http.StatusForbidden, "this route needs an authenticated consumer")
		return false
	}
	for _, name := range res.Remove {
		delete(r.Header, name)
	}
	for _, kv := range res.Set {
		r.Header[kv[0]] = []string{kv[1]}
	}
	if res.RemoveQuery != "" {
		r.URL.RawQuery = withoutQueryParam(r.URL.RawQuery, res.RemoveQuery)
	}
	ex.origin.consumer = res.Consumer
	return true
}

// deny writes a Denial: its headers (never the gateway's framing), its
// status and its body.
func (h *Handler) deny(sw *statusWriter, d *auth.Denial) {
	hdr := sw.Header()
	if sw.grpc {
		// A gRPC client reads the status from the trailers-only answer
		// (UNAUTHENTICATED, PERMISSION_DENIED); the challenge is kept.
		if c := d.Header["Www-Authenticate"]; c != nil {
			hdr["Www-Authenticate"] = append([]string(nil), c...)
		}
		failGRPC(sw, d.Status, strings.TrimSpace(string(d.Body)))
		return
	}
	for k, vs := range d.Header {
		hdr[k] = append([]string(nil), vs...)
	}
	sw.WriteHeader(d.Status)
	sw.Write(d.Body)
}

// external returns the auth.External of spec in this publication.
func (h *Handler) external(pub *published, spec *snapshot.AuthSpec) *auth.External {
	pub.ext.mu.Lock()
	defer pub.ext.mu.Unlock()
	if e := pub.ext.m[spec.ID]; e != nil {
		return e
	}
	if pub.ext.m == nil {
		pub.ext.m = map[string]*auth.External{}
	}
	e := auth.NewExternal(spec.External, h.authDoer(pub.snap, spec.Target))
	pub.ext.m[spec.ID] = e
	return e
}

// errNoAuthEndpoint is a check that could not be sent: the auth Service
// has no ready endpoint. The failure mode decides, as for a timeout.
var errNoAuthEndpoint = errors.New("the auth service has no ready endpoint")

// authDoer sends check requests to an endpoint of the auth service, as a
// mirror is sent: balanced, through the dial guard, over TLS when the
// service is https.
func (h *Handler) authDoer(snap *snapshot.Snapshot, t *snapshot.Route) auth.Doer {
	return func(req *http.Request) (*http.Response, error) {
		ep, ok := t.Upstream.Pick(upstream.RoundRobin, 0, nil)
		if !ok {
			return nil, errNoAuthEndpoint
		}
		if t.TLS == nil && !t.HTTP2 && h.pool != nil {
			return h.poolRoundTrip(req, ep.Addr(), t.ConnectTimeout)
		}
		transport := h.mirrors.transport
		req.URL.Scheme = "http"
		if t.TLS != nil {
			c := snap.TLSClient(t)
			if c.Err != nil {
				return nil, c.Err
			}
			transport = h.tlsTransport(c, t.HTTP2)
			req.URL.Scheme = "https"
		}
		req.URL.Host = ep.Addr()
		return transport.RoundTrip(req)
	}
}

// prefixedBody is a request body of which the first bytes were read (for
// an auth service) and are given back first.
type prefixedBody struct {
	io.Reader
	io.Closer
}

// withoutQueryParam removes every parameter named name (after unescaping)
// from a raw query, keeping the others exactly as sent.
func withoutQueryParam(raw, name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if u, err := url.QueryUnescape(k); err == nil && u == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}
