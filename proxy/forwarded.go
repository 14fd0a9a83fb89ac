package proxy

// Who sent a request, and what the upstream is told about it.
//
// The only address the gateway knows first-hand is its TCP peer's. A peer in
// Options.TrustedProxies (a load balancer, an ingress in front of the
// gateway) is believed about the client it forwards for; anyone else's
// forwarding headers are claims the client made about itself and are
// dropped. From that one decision, made once per request, come the address
// rate limits key on (key: client_ip), the headers the upstream gets, and
// so nothing the upstream reads can disagree with what the gateway
// enforced:
//
//	X-Forwarded-For    the chain the gateway vouches for, then the peer:
//	                   "client, proxy1, …, peer". From an untrusted peer
//	                   that is the peer alone; from a trusted one, the
//	                   addresses it sent, read right to left up to and
//	                   including the first that is not a trusted proxy
//	                   (the client). What lies left of the client was
//	                   written by the client itself and is dropped, so an
//	                   upstream that reads the leftmost address, as most
//	                   frameworks do, gets the vouched-for client.
//	X-Real-IP          the vouched-for client. A trusted peer's X-Real-IP is
//	                   what names the client when it sends no
//	                   X-Forwarded-For (nginx's habit); anyone else's is
//	                   replaced.
//	X-Forwarded-Proto  the scheme the client used: a trusted peer's first
//	                   value when it is http or https, else the scheme of
//	                   the connection to the gateway.
//	X-Forwarded-Host   the Host the client asked for: a trusted peer's first
//	                   value when it is a valid host, else the request's.
//	Forwarded          (RFC 7239) rebuilt, never passed on: the same nodes
//	                   as X-Forwarded-For, one element each, the first
//	                   carrying host and proto. A client-supplied Forwarded
//	                   header is never believed, even from a trusted peer:
//	                   two sources of truth that can disagree are how
//	                   spoofing gets through, so X-Forwarded-For is the one
//	                   the gateway reads and Forwarded is written to match it.
//
// From an untrusted peer, every other header that claims to say where the
// request came from or how it arrived is dropped too: the whole
// X-Forwarded-* family (X-Forwarded-Client-Cert, X-Forwarded-User and
// friends carry identities) and the client-address aliases CDNs and other
// proxies use (True-Client-IP, CF-Connecting-IP, …). Names are compared
// with "_" read as "-", because CGI-style frameworks (WSGI, Rack, PHP) map
// both spellings to one variable: X_Forwarded_For would otherwise smuggle
// a client's claim past the check. A trusted peer's headers are kept,
// except underscore spellings of these names, which no proxy legitimately
// sends.

import (
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// maxForwardHops bounds how far back the gateway follows a trusted chain:
// past that many trusted proxies the last one read stands for the client,
// so a trusted peer cannot make the gateway build (and send upstream) an
// arbitrarily long chain. Real chains are two or three hops.
const maxForwardHops = 16

// trust is the set of proxies whose forwarding headers are believed.
type trust []netip.Prefix

// newTrust normalises the configured prefixes: masked, and IPv4-mapped IPv6
// prefixes turned into IPv4 ones, because peers are compared unmapped (a
// dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d).
func newTrust(prefixes []netip.Prefix) trust {
	t := make(trust, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		t = append(t, p.Masked())
	}
	return t
}

// has reports whether a is a trusted proxy. A linear scan: lists are short
// (a load balancer's subnets), and this runs only on addresses a request
// names, a bounded number per request.
func (t trust) has(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// origin is who sent a request, as far as the gateway can vouch.
type origin struct {
	// peer is the TCP peer, IPv4-mapped addresses unmapped; invalid when
	// RemoteAddr is not an address (a unix socket, a test).
	peer netip.Addr
	// peerText is peer as Addr.String writes it, when RemoteAddr already
	// holds that text (net/http writes it so): X-Forwarded-For then needs
	// no allocation of its own. "" otherwise.
	peerText string
	// client is the address the gateway vouches for: the peer, or the
	// client a trusted peer names. Rate limits key on it.
	client netip.Addr
	// trusted is set when peer is a trusted proxy.
	trusted bool
	// clientCert is the X-Forwarded-Client-Cert value of a client
	// certificate this gateway verified (edge.go), "" for none. It
	// replaces what a trusted proxy in front sent under that name; an
	// untrusted client's is dropped like the rest of the family.
	clientCert string
	// consumer is who the route's authentication says the request is for
	// (proxy/auth.go), "" for nobody: X-Gatehouse-Consumer upstream.
	consumer string
	// chain holds what a trusted peer vouches for, client first: the
	// addresses of X-Forwarded-For from the client on. Empty when the
	// peer is not trusted or named nobody.
	chain []netip.Addr
}

// resolve works out a request's origin. For an untrusted peer (the common
// case without a load balancer in front) it does not allocate.
func (t trust) resolve(r *http.Request) origin {
	o := origin{peer: peerAddr(r.RemoteAddr)}
	o.peerText = addrText(r.RemoteAddr, o.peer)
	o.client = o.peer
	if !o.peer.IsValid() || !t.has(o.peer) {
		return o
	}
	o.trusted = true
	xff := r.Header["X-Forwarded-For"]
	if len(xff) == 0 {
		if v := r.Header["X-Real-Ip"]; len(v) == 1 {
			if a, ok := parseNode(strings.TrimSpace(v[0])); ok {
				o.client = a
				o.chain = []netip.Addr{a}
			}
		}
		return o
	}
	// Right to left: each address was written by the hop to its right, so
	// an address is only as believable as the hop that wrote it. Several
	// header lines are one list, in order (RFC 9110 §5.3).
walk:
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var elem string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				list, elem = list[:j], list[j+1:]
			} else {
				list, elem = "", list
			}
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue // empty list elements are allowed, and mean nothing
			}
			a, ok := parseNode(elem)
			if !ok {
				// "unknown", an obfuscated name, garbage: nothing left of it
				// can be attributed, so the hop that wrote it is the client.
				break walk
			}
			o.chain = append(o.chain, a)
			o.client = a
			if !t.has(a) || len(o.chain) == maxForwardHops {
				break walk
			}
		}
	}
	slices.Reverse(o.chain)
	return o
}

// addrText returns the part of remote ("ip:port" or "[ip]:port") that is
// a's canonical text, "" when there is none.
func addrText(remote string, a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	host := remote
	if i := strings.LastIndexByte(remote, ':'); i > 0 && remote[0] == '[' && remote[i-1] == ']' {
		host = remote[1 : i-1]
	} else if a.Is4() && i > 0 {
		host = remote[:i]
	}
	var buf [64]byte
	if string(a.AppendTo(buf[:0])) != host {
		return ""
	}
	return host
}

// peerAddr parses a RemoteAddr, "ip:port" from net/http, or a bare address.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// parseNode reads one X-Forwarded-For element: an address, bracketed or not,
// with or without a port (some proxies add one).
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// setHeaders writes the forwarding headers of pr.Out (see the top of this
// file). httputil.ReverseProxy has already removed X-Forwarded-For, -Host,
// -Proto and Forwarded from pr.Out, but not the rest of the family, nor
// X-Real-IP; the client's values are still in pr.In.
func (o *origin) setHeaders(pr *httputil.ProxyRequest) {
	out := pr.Out.Header
	for name := range out {
		if o.dropped(name) {
			delete(out, name)
		}
	}
	// Not the fast path's arena: the transport writes these strings from
	// its own goroutine.
	f := o.forwarding(pr.In, nil)
	// One backing array for the values: this runs on every request.
	vals := f[:]
	for i, name := range forwardingNames {
		if f[i] == "" {
			delete(out, name)
		} else {
			out[name] = vals[i : i+1 : i+1]
		}
	}
	if o.clientCert != "" {
		out[clientCertHeader] = []string{o.clientCert}
	}
	delete(out, consumerHeader)
	if o.consumer != "" {
		out[consumerHeader] = []string{o.consumer}
	}
}

// forwarding holds what the upstream is told of a request's origin: the
// values of forwardingNames, "" for a header not sent.
type forwarding [5]string

// forwardingNames are the headers the gateway writes itself, whatever the
// client sent.
var forwardingNames = [5]string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"}

// forwarding works out the forwarding headers of in.
// Strings it builds live in arena (nil: allocated).
func (o *origin) forwarding(in *http.Request, arena *h1.Arena) forwarding {
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	host := in.Host
	if o.trusted {
		if p := firstElement(in.Header["X-Forwarded-Proto"]); strings.EqualFold(p, "http") || strings.EqualFold(p, "https") {
			proto = strings.ToLower(p)
		}
		if h := firstElement(in.Header["X-Forwarded-Host"]); h1.ValidHost(h) {
			host = h
		}
	}
	var f forwarding
	if o.peer.IsValid() {
		f[0] = o.forwardedFor()
	}
	switch {
	case !o.client.IsValid():
	case len(o.chain) == 0:
		f[1] = f[0] // the peer, already formatted
	default:
		f[1] = o.client.String()
	}
	f[2] = proto
	if h1.ValidHost(host) {
		f[3] = host
	}
	f[4] = o.forwarded(host, proto, arena)
	return f
}

// nodes is the vouched-for chain followed by the peer.
func (o *origin) nodes() []netip.Addr {
	if !o.peer.IsValid() {
		return o.chain
	}
	return append(o.chain[:len(o.chain):len(o.chain)], o.peer)
}

func (o *origin) forwardedFor() string {
	if len(o.chain) == 0 {
		if o.peerText != "" {
			return o.peerText
		}
		return o.peer.String()
	}
	var b strings.Builder
	for i, a := range o.nodes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// forwarded renders the Forwarded header: one element per node, the first
// (the client's) with the host and proto it used, which is where RFC 7239
// readers (Spring, Tomcat, …) look for them. An address-less origin is
// "for=unknown" (RFC 7239 §6.2).
func (o *origin) forwarded(host, proto string, arena *h1.Arena) string {
	// Built in a stack buffer and copied out once: this runs on every
	// request, and a Builder plus Addr.String cost two allocations.
	var stack [128]byte
	b := stack[:0]
	n := 0
	for i := 0; i <= len(o.chain); i++ {
		var a netip.Addr
		if i < len(o.chain) {
			a = o.chain[i]
		} else if a = o.peer; !a.IsValid() {
			break
		}
		if n > 0 {
			b = append(b, ", "...)
		}
		b = append(b, "for="...)
		if a.Is6() {
			// An IPv6 node is bracketed, and then must be quoted (§6).
			b = append(b, `"[`...)
			b = a.AppendTo(b)
			b = append(b, `]"`...)
		} else {
			b = a.AppendTo(b)
		}
		if n == 0 {
			b = appendHostProto(b, host, proto)
		}
		n++
	}
	if n == 0 {
		b = append(b, "for=unknown"...)
		b = appendHostProto(b, host, proto)
	}
	return arena.String(b)
}

func appendHostProto(b []byte, host, proto string) []byte {
	if h1.ValidHost(host) {
		// Always quoted: a host may hold ':' (a port) or '[', which a token
		// may not; h1.ValidHost leaves out '"' and '\', so no escaping is needed.
		b = append(b, `;host="`...)
		b = append(b, host...)
		b = append(b, '"')
	}
	b = append(b, ";proto="...)
	return append(b, proto...)
}

// dropped reports whether a request header is removed before it goes
// upstream: from an untrusted peer, every claim about where the request came
// from; from a trusted one, only the underscore spellings of such claims.
func (o *origin) dropped(name string) bool {
	if o.trusted && strings.IndexByte(name, '_') < 0 {
		return false
	}
	if hasNamePrefix(name, "x-forwarded-") {
		return true
	}
	for _, claim := range clientClaims {
		if sameName(name, claim) {
			return true
		}
	}
	return false
}

// clientClaims are the headers besides the X-Forwarded-* family that
// gateways, CDNs and frameworks read as the client's address. Lower case,
// with "-".
var clientClaims = []string{
	"forwarded",
	"x-real-ip",
	"true-client-ip",
	"x-client-ip",
	"x-cluster-client-ip",
	"client-ip",
	"cf-connecting-ip",
	"fastly-client-ip",
	"x-original-forwarded-for",
	"x-originating-ip",
	"x-remote-ip",
	"x-remote-addr",
	"x-envoy-external-address",
}

// sameName compares a header name with a lower-case, dashed one, ignoring
// case and reading '_' as '-'.
func sameName(name, want string) bool {
	return len(name) == len(want) && hasNamePrefix(name, want)
}

func hasNamePrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// firstElement is the first element of a comma-separated header, trimmed:
// in X-Forwarded-Proto and -Host the first proxy's value, the one the client
// used.
func firstElement(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[0]
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
