package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrForbiddenAddress is what every refusal of a DialGuard matches with
// errors.Is, wherever it surfaces (a dial error inside *net.OpError, a
// transport error inside *url.Error).
var ErrForbiddenAddress = errors.New("forbidden upstream address")

// ForbiddenError says which address a DialGuard refused and by which rule.
type ForbiddenError struct {
	Addr   string // the address refused, "ip:port" (or as given, when it did not parse)
	Reason string // the rule, e.g. "loopback addresses are not upstreams"
}

func (e *ForbiddenError) Error() string { return "dialing " + e.Addr + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrForbiddenAddress) hold.
func (e *ForbiddenError) Unwrap() error { return ErrForbiddenAddress }

// GuardOptions configure a DialGuard. The zero value denies every default
// range and allows nothing more: what a Kubernetes deployment wants.
type GuardOptions struct {
	// AllowLoopback lets upstreams live on 127.0.0.0/8 and ::1. File mode
	// sets it: demos and tests run their upstreams on the same machine, and
	// nobody but the operator writes the manifests. The gateway's own
	// listeners (Self) stay denied.
	AllowLoopback bool
	// Allow lists addresses the platform named literally (the IP literals of
	// --external-upstreams, see ExternalPolicy.Literals). They are allowed
	// even inside a denied range, Self excepted.
	Allow []netip.Prefix
	// Self are the gateway's own listeners (proxy, admin, webhook), as
	// bound: a port of 0 is an error, since the port the kernel picks is the
	// one to deny. They are denied whatever AllowLoopback and Allow say.
	// A listener on 0.0.0.0 or :: is reachable on every address of the
	// machine, so its port is denied on every loopback and unspecified
	// address and on every address net.InterfaceAddrs reports when the
	// guard is built. Whatever its address, every listener's port is denied
	// on loopback and unspecified addresses too: that costs at most a
	// loopback upstream sharing a port number with the gateway, and it
	// needs no knowledge of how the kernel routes connections to itself.
	Self []netip.AddrPort
}

// DialGuard decides whether the gateway may open a connection to an address.
// It is meant to run on the address actually being connected, after name
// resolution (Control, Dialer), so a DNS answer pointing at 127.0.0.1 is
// caught as surely as the literal.
//
// By default it refuses addresses that reach the gateway's own machine or a
// cloud's metadata service rather than an application: loopback,
// unspecified, 0.0.0.0/8, link-local (169.254.169.254 included), the other
// metadata addresses (fd00:ec2::254, 100.100.100.200, 168.63.129.16,
// 192.0.0.192), multicast, broadcast and 240.0.0.0/4, the deprecated
// IPv4-compatible ::/96, and NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
// addresses that embed any of these. IPv4-mapped IPv6 addresses
// (::ffff:127.0.0.1) are judged as the IPv4 address they map.
//
// A nil *DialGuard, like the zero value, applies exactly those defaults. A
// DialGuard never changes after NewDialGuard and is safe for concurrent use.
type DialGuard struct {
	allowLoopback bool
	allow         []netip.Prefix   // unmapped and masked
	self          []netip.AddrPort // exact addresses denied, unmapped
	selfPorts     []uint16         // denied on every loopback and unspecified address
}

// NewDialGuard builds a DialGuard from o. It fails when a Self address is
// not a bound listener (invalid, or port 0), or when a listener is bound to
// every address and the machine's addresses cannot be listed: a guard that
// does not know them cannot keep the gateway from dialling itself.
func NewDialGuard(o GuardOptions) (*DialGuard, error) {
	return newDialGuard(o, net.InterfaceAddrs)
}

// newDialGuard is NewDialGuard with the machine's addresses injected, so
// tests can give a listener on 0.0.0.0 a known set of them.
func newDialGuard(o GuardOptions, interfaceAddrs func() ([]net.Addr, error)) (*DialGuard, error) {
	g := &DialGuard{allowLoopback: o.AllowLoopback}
	for _, p := range o.Allow {
		if !p.IsValid() {
			return nil, fmt.Errorf("allowed upstream range %v is not valid", p)
		}
		u, ok := unmapPrefix(p)
		if !ok {
			return nil, fmt.Errorf("allowed upstream range %v mixes IPv4-mapped and other IPv6 addresses; write the IPv4 range", p)
		}
		g.allow = append(g.allow, u)
	}
	var local []netip.Addr // fetched once, and only if a listener needs them
	for _, s := range o.Self {
		a := s.Addr().Unmap().WithZone("")
		if !a.IsValid() || s.Port() == 0 {
			return nil, fmt.Errorf("gateway listener %v: not a bound address (the guard must know the port the kernel picked)", s)
		}
		g.self = append(g.self, netip.AddrPortFrom(a, s.Port()))
		g.selfPorts = appendPort(g.selfPorts, s.Port())
		if !a.IsUnspecified() {
			continue
		}
		if local == nil {
			addrs, err := interfaceAddrs()
			if err != nil {
				return nil, fmt.Errorf("gateway listener %v is bound to every address, and listing them failed: %w", s, err)
			}
			local = make([]netip.Addr, 0, len(addrs))
			for _, ia := range addrs {
				if a, ok := netAddrIP(ia); ok {
					local = append(local, a)
				}
			}
		}
		for _, la := range local {
			g.self = append(g.self, netip.AddrPortFrom(la, s.Port()))
		}
	}
	return g, nil
}

// netAddrIP returns the IP of an address net.InterfaceAddrs reports.
func netAddrIP(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPNet:
		ip = v.IP
	case *net.IPAddr:
		ip = v.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

func appendPort(ports []uint16, p uint16) []uint16 {
	for _, q := range ports {
		if q == p {
			return ports
		}
	}
	return append(ports, p)
}

// unmapPrefix turns ::ffff:10.0.0.0/104 into 10.0.0.0/8, so an allowed range
// written either way matches the unmapped addresses Check compares. A mapped
// prefix shorter than /96 reaches outside the mapped space and has no
// IPv4 equivalent.
func unmapPrefix(p netip.Prefix) (netip.Prefix, bool) {
	a := p.Addr().WithZone("")
	if a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), true
	}
	return netip.PrefixFrom(a, p.Bits()).Masked(), true
}

// Check returns nil when the gateway may connect to addr, and otherwise a
// *ForbiddenError (matching ErrForbiddenAddress) naming the rule. It does
// not allocate unless it refuses.
func (g *DialGuard) Check(addr netip.AddrPort) error {
	if rule := g.rule(addr); rule != "" {
		return &ForbiddenError{Addr: addr.String(), Reason: rule}
	}
	return nil
}

func (g *DialGuard) rule(addr netip.AddrPort) string {
	a := addr.Addr().Unmap().WithZone("")
	if !a.IsValid() {
		return ruleInvalid
	}
	if g == nil {
		return deniedRule(a, false)
	}
	port := addr.Port()
	for _, p := range g.selfPorts {
		if p == port && (a.IsLoopback() || a.IsUnspecified()) {
			return ruleSelf
		}
	}
	for _, s := range g.self {
		if s.Port() == port && s.Addr() == a {
			return ruleSelf
		}
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return ""
		}
	}
	return deniedRule(a, g.allowLoopback)
}

// Control has the signature of net.Dialer.Control: the dialer calls it with
// the resolved "ip:port" after creating the socket and before connecting, so
// a refused address never sees a packet.
func (g *DialGuard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Only IP networks are upstreams; a Unix socket path is not.
		return &ForbiddenError{Addr: address, Reason: ruleInvalid + " and port (" + network + ")"}
	}
	return g.Check(ap)
}

// Dialer returns a copy of base that checks every address it connects to
// with g before connecting. A Control or ControlContext base already has
// runs after g's check.
func (g *DialGuard) Dialer(base net.Dialer) *net.Dialer {
	d := base
	prevCtx, prev := base.ControlContext, base.Control
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		switch {
		case prevCtx != nil:
			return prevCtx(ctx, network, address, c)
		case prev != nil:
			return prev(network, address, c)
		}
		return nil
	}
	return &d
}
