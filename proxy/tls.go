package proxy

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// Upstream TLS. Every https:// upstream is verified by name (the Service's
// DNS name, the external host, or upstream_tls.sni), against the system
// roots or the Mapping's CA Secret, and may present a client certificate
// (mTLS). Each distinct setting gets a transport of its own, made on first
// use and keyed by what it was built from, so a renewed Secret gives new
// connections the new certificates while requests in flight finish on the
// old ones; Publish closes the transports no route uses any more.

// tlsKey names a transport: a TLS client and whether it speaks HTTP/2.
type tlsKey struct {
	id    string
	http2 bool
}

// tlsTransport returns the transport for TLS client c.
func (h *Handler) tlsTransport(c *snapshot.TLSClient, http2 bool) http.RoundTripper {
	k := tlsKey{c.ID, http2}
	if t, ok := h.tlsTransports.Load(k); ok {
		return t.(*http.Transport)
	}
	var t *http.Transport
	if http2 {
		t = NewHTTP2Transport(h.guards)
	} else {
		t = NewGuardedTransport(h.guards)
	}
	t.TLSClientConfig = c.Config.Clone()
	actual, loaded := h.tlsTransports.LoadOrStore(k, t)
	if loaded {
		t.CloseIdleConnections()
	}
	return actual.(*http.Transport)
}

// retainTLS closes and forgets the transports of TLS clients s no longer
// has.
func (h *Handler) retainTLS(s *snapshot.Snapshot) {
	live := map[string]bool{}
	for _, c := range s.TLS {
		live[c.ID] = true
	}
	h.tlsTransports.Range(func(k, v any) bool {
		if !live[k.(tlsKey).id] {
			h.tlsTransports.Delete(k)
			v.(*http.Transport).CloseIdleConnections()
		}
		return true
	})
}
