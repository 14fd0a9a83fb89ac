package proxy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Mirroring (shadow Mappings), fire and forget.
//
// A copy of a request goes to each shadow of its route (its share of them,
// by the shadow's weight), from a goroutine of its own: the primary's
// answer never waits for a shadow, and nothing a shadow does (answer,
// latency, failure) reaches the client, the primary's breaker or its
// outlier detection. What mirroring may cost is bounded: at most
// maxMirrors copies in flight in the whole gateway and maxMirrorsPerShadow
// per shadow upstream (a slow shadow fills its own share and then its
// copies are dropped, not queued), each with a body of at most maxBuffered
// bytes (only bodies the fast path read whole are copied; a request whose
// body streams is not mirrored), and each bounded by the shadow Mapping's
// timeout. As Envoy does, the copy's Host gets "-shadow" appended, so the
// shadow can tell a mirrored request from a real one.
const (
	maxMirrors          = 64
	maxMirrorsPerShadow = 16
)

// mirrorer sends the copies; one per Handler.
type mirrorer struct {
	transport http.RoundTripper
	inFlight  atomic.Int64
}

// mirror sends r's copies to the shadows of ex's route. body is the
// request's body when it was read whole (nil for none); hasBody says the
// request has one that was not (then nothing is mirrored).
func (h *Handler) mirror(r *http.Request, ex *exchange, body []byte, hasBody bool) {
	shadows := ex.route.Shadows
	if len(shadows) == 0 || hasBody && body == nil {
		return
	}
	for i := range shadows {
		s := &shadows[i]
		if s.Percent < 100 && rand.IntN(100) >= s.Percent {
			continue
		}
		h.mirrorOne(r, ex, s, body)
	}
}

func (h *Handler) mirrorOne(r *http.Request, ex *exchange, s *snapshot.Shadow, body []byte) {
	u := s.Route.Upstream
	id := u.ID()
	if h.mirrors.inFlight.Add(1) > maxMirrors {
		h.mirrors.inFlight.Add(-1)
		h.metrics.Mirrored(id, "dropped")
		return
	}
	if !u.TryMirror(maxMirrorsPerShadow) {
		h.mirrors.inFlight.Add(-1)
		h.metrics.Mirrored(id, "dropped")
		return
	}
	ep, ok := u.Pick(upstream.RoundRobin, 0, nil)
	if !ok {
		u.MirrorDone()
		h.mirrors.inFlight.Add(-1)
		h.metrics.Mirrored(id, "no_endpoint")
		return
	}
	transport := h.mirrors.transport
	if s.Route.TLS != nil {
		c := ex.snap.TLSClient(s.Route)
		if c.Err != nil {
			u.MirrorDone()
			h.mirrors.inFlight.Add(-1)
			h.metrics.Mirrored(id, "failed")
			return
		}
		transport = h.tlsTransport(c, s.Route.HTTP2)
	}
	req, err := h.mirrorRequest(r, ex, s.Route, ep.Addr(), body)
	if err != nil {
		u.MirrorDone()
		h.mirrors.inFlight.Add(-1)
		h.metrics.Mirrored(id, "failed")
		return
	}
	timeout := s.Route.Timeout
	if timeout <= 0 {
		timeout = snapshot.DefaultTimeout
	}
	go func() {
		defer h.mirrors.inFlight.Add(-1)
		defer u.MirrorDone()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := transport.RoundTrip(req.WithContext(ctx))
		if err != nil {
			h.metrics.Mirrored(id, "failed")
			return
		}
		// Read (a little of) the answer so the connection can be kept.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		h.metrics.Mirrored(id, "sent")
	}()
}

// mirrorRequest builds the copy: its own strings throughout (the
// original's may live in memory its connection reuses, h1.Arena), the
// shadow's rewrite of the routed path, the client's fields less the
// hop-by-hop ones, the forwarding fields and traceparent the primary gets,
// and Host with "-shadow" appended.
func (h *Handler) mirrorRequest(r *http.Request, ex *exchange, rt *snapshot.Route, endpoint string, body []byte) (*http.Request, error) {
	path, err := rt.ForwardPath(ex.routed)
	if err != nil {
		return nil, err
	}
	target := rt.Target.Scheme + "://" + endpoint + path
	if q := r.URL.RawQuery; q != "" {
		target += "?" + q
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(bytes.Clone(body))
	}
	req, err := http.NewRequest(strings.Clone(r.Method), target, rd)
	if err != nil {
		return nil, err
	}
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if forwardSkips(k) || ex.origin.dropped(k) || anyHasToken(conn, k) || k == "Te" || ex.origin.clientCert != "" && k == clientCertHeader || ex.trace.skips(k) {
			continue
		}
		c := make([]string, len(vs))
		for i, v := range vs {
			c[i] = strings.Clone(v)
		}
		req.Header[strings.Clone(k)] = c
	}
	f := ex.origin.forwarding(r, nil)
	for i, name := range forwardingNames {
		if f[i] != "" {
			req.Header[name] = []string{strings.Clone(f[i])}
		}
	}
	if ex.origin.clientCert != "" {
		req.Header[clientCertHeader] = []string{ex.origin.clientCert}
	}
	if ex.origin.consumer != "" {
		req.Header[consumerHeader] = []string{strings.Clone(ex.origin.consumer)}
	}
	req.Header.Set("X-Request-Id", strings.Clone(ex.requestID))
	// Another child of the gateway's span, as the primary's request is.
	req.Header["Traceparent"] = []string{string(ex.trace.header[:])}
	host := r.Host
	if rt.HostRewrite != "" {
		host = rt.HostRewrite
	}
	req.Host = shadowHost(host)
	req.ContentLength = int64(len(body))
	return req, nil
}

// shadowHost appends "-shadow" to host's name, before any port, as Envoy
// does with the authority of mirrored requests.
func shadowHost(host string) string {
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i:]
	}
	return name + "-shadow" + port
}
