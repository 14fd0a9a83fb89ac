package proxy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// What a Host document asks of requests for its hostname, before routing:
// plain HTTP redirected, refused or served; HSTS on answers over TLS; and,
// where the Host authenticates clients, a verified client certificate
// whose identity the upstream is told of.

// clientCertHeader tells the upstream who the client is, as Envoy's
// x-forwarded-client-cert does. A client's own is dropped with the rest
// of the X-Forwarded family (origin.dropped); a trusted proxy's is passed
// on unless this gateway verified a certificate itself, which replaces it.
const clientCertHeader = "X-Forwarded-Client-Cert"

// acmePrefix is where ACME HTTP-01 challenges are answered (RFC 8555
// 8.3). They come over plain HTTP by definition, so they are never
// redirected or refused: cert-manager can issue and renew a Host's
// certificate through a Mapping for this path.
const acmePrefix = "/.well-known/acme-challenge/"

// edgePolicy applies the Host of r's host, if any. It returns false when
// it answered the request itself. path is the canonical path.
func (h *Handler) edgePolicy(sw *statusWriter, r *http.Request, ex *exchange, edge *snapshot.EdgeTLS, path string) bool {
	ht := edge.Lookup(snapshot.HostName(r.Host))
	if ht == nil {
		return true
	}
	secure := r.TLS != nil || ex.origin.trusted && strings.EqualFold(firstElement(r.Header["X-Forwarded-Proto"]), "https")
	if !secure {
		if ht.Insecure == annotations.InsecureRoute || strings.HasPrefix(path, acmePrefix) {
			return true
		}
		if ht.Insecure == annotations.InsecureReject {
			ex.reason = "plain HTTP refused for this host"
			h.fail(sw, http.StatusForbidden, "this host is served over HTTPS only")
			return false
		}
		ex.reason = "redirected to HTTPS"
		h.redirectHTTPS(sw, r)
		return false
	}
	if ht.HSTS != "" {
		sw.Header()["Strict-Transport-Security"] = []string{ht.HSTS}
	}
	if ht.ClientCA == "" || r.TLS == nil {
		// Behind a trusted proxy that terminated TLS, the proxy checked
		// (or did not check) client certificates; nothing here can.
		return true
	}
	// The handshake was made for the server name the client sent (SNI);
	// a request for a Host that authenticates clients must have come on a
	// connection whose handshake was this Host's, or its client was never
	// asked for a certificate this Host's CAs verified.
	if !edge.Lookup(r.TLS.ServerName).Same(ht) {
		ex.reason = "client certificate host mismatch"
		h.fail(sw, http.StatusMisdirectedRequest, "this host needs a client certificate: connect with its name as the TLS server name")
		return false
	}
	if len(r.TLS.VerifiedChains) == 0 {
		if ht.ClientCert == annotations.ClientCertRequired {
			ex.reason = "client certificate required"
			h.fail(sw, http.StatusForbidden, "this host needs a client certificate")
			return false
		}
		return true
	}
	leaf := r.TLS.VerifiedChains[0][0]
	ex.clientCert = certIdentity(leaf)
	ex.origin.clientCert = forwardedClientCert(leaf)
	return true
}

// redirectHTTPS answers a plain request with its https URL: 301 for GET
// and HEAD as browsers expect, 308 otherwise so the method and body are
// sent again as they were.
func (h *Handler) redirectHTTPS(sw *statusWriter, r *http.Request) {
	host := strings.ToLower(snapshot.HostName(r.Host))
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if p := h.httpsPort.Load(); p != 0 && p != 443 {
		host += ":" + strconv.Itoa(int(p))
	}
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		target = r.URL.RequestURI()
	}
	status := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		status = http.StatusMovedPermanently
	}
	sw.Header()["Location"] = []string{"https://" + host + target}
	sw.Header()["Content-Length"] = []string{"0"}
	sw.WriteHeader(status)
}

// SetHTTPSPort sets the port plain-HTTP requests are redirected to (0 or
// 443: none in the URL).
func (h *Handler) SetHTTPSPort(port int) { h.httpsPort.Store(int32(port)) }

// certIdentity is what the access log says of a verified client: its
// first URI or DNS name (SPIFFE IDs and service names live there), else
// its subject.
func certIdentity(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

// forwardedClientCert is the X-Forwarded-Client-Cert value for a verified
// client certificate, in Envoy's format: the certificate's SHA-256, its
// subject, and its URI and DNS names.
func forwardedClientCert(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(xfccEscape(c.Subject.String()))
	b.WriteByte('"')
	for _, u := range c.URIs {
		b.WriteString(`;URI="`)
		b.WriteString(xfccEscape(u.String()))
		b.WriteByte('"')
	}
	for _, d := range c.DNSNames {
		b.WriteString(`;DNS="`)
		b.WriteString(xfccEscape(d))
		b.WriteByte('"')
	}
	return b.String()
}

// xfccEscape makes s the inside of a quoted string: quotes and
// backslashes escaped, and bytes a header value cannot carry (controls)
// or that some upstreams refuse (non-ASCII) percent-encoded. A subject is
// the certificate holder's to write, and must not end the value early.
func xfccEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
