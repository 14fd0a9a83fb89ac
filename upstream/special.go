package upstream

import "net/netip"

// This file decides which IP addresses are never upstreams unless the
// platform says otherwise: the ones that reach the gateway's own machine or
// the cloud's metadata services rather than an application. A route that
// could reach them would let any tenant read the admin port, the kubelet or
// the node's cloud credentials through the gateway (server-side request
// forgery).

// Addresses of cloud metadata services outside the link-local range, which
// link-local already covers (169.254.169.254: AWS, GCP, Azure, OpenStack;
// 169.254.170.2: ECS task credentials).
var metadataAddrs = [...]netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure WireServer, which hands out VM secrets
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud Classic
}

var (
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")    // "this host on this network": Linux connects 0.x to itself
	reserved4     = netip.MustParsePrefix("240.0.0.0/4")  // reserved; 255.255.255.255 (broadcast) is in it
	v4Compatible  = netip.MustParsePrefix("::/96")        // deprecated IPv4-compatible IPv6, with :: and ::1 in it
	nat64         = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64: carries an IPv4 address in its last 32 bits
	sixToFour     = netip.MustParsePrefix("2002::/16")    // 6to4: carries an IPv4 address in bits 16–48
	broadcastAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// Rules name why an address is refused; they are the text after
// "dialing ADDR: " in a ForbiddenError.
const (
	ruleInvalid     = "not an IP address"
	ruleSelf        = "it is one of the gateway's own listeners"
	ruleLoopback    = "loopback addresses are not upstreams"
	ruleUnspecified = "unspecified addresses (0.0.0.0, ::) reach the gateway's own machine and are not upstreams"
	ruleThisNetwork = `addresses in 0.0.0.0/8 ("this network") are not upstreams`
	ruleLinkLocal   = "link-local addresses (169.254.0.0/16, fe80::/10, home of cloud metadata services) are not upstreams"
	ruleMetadata    = "cloud metadata addresses are not upstreams"
	ruleMulticast   = "multicast addresses are not upstreams"
	ruleBroadcast   = "the broadcast address is not an upstream"
	ruleReserved    = "reserved addresses (240.0.0.0/4) are not upstreams"
	ruleCompatible  = "IPv4-compatible IPv6 addresses (::/96) are deprecated and not upstreams"
)

// deniedRule returns why a is not an upstream by default, "" when it may
// be one. a must be unmapped (netip.Addr.Unmap) and without a zone: the
// caller normalises once, so ::ffff:127.0.0.1 is judged as 127.0.0.1.
func deniedRule(a netip.Addr, allowLoopback bool) string {
	if !a.IsValid() {
		return ruleInvalid
	}
	for _, m := range metadataAddrs {
		if a == m {
			return ruleMetadata
		}
	}
	switch {
	case a.IsLoopback():
		if allowLoopback {
			return ""
		}
		return ruleLoopback
	case a.IsUnspecified():
		return ruleUnspecified
	case a.IsLinkLocalUnicast():
		return ruleLinkLocal
	case a.IsMulticast():
		return ruleMulticast
	}
	if a.Is4() {
		switch {
		case thisNetwork.Contains(a):
			return ruleThisNetwork
		case a == broadcastAddr:
			return ruleBroadcast
		case reserved4.Contains(a):
			return ruleReserved
		}
		return ""
	}
	switch {
	case v4Compatible.Contains(a):
		return ruleCompatible
	case nat64.Contains(a):
		// A NAT64 gateway would connect to the embedded IPv4 address; judge
		// that one. Its loopback is never ours, so AllowLoopback does not
		// extend to it.
		b := a.As16()
		return deniedRule(netip.AddrFrom4([4]byte(b[12:16])), false)
	case sixToFour.Contains(a):
		b := a.As16()
		return deniedRule(netip.AddrFrom4([4]byte(b[2:6])), false)
	}
	return ""
}

// Ranges that are neither special nor private by netip's reckoning but are
// still not "the public Internet", which is all ExternalPolicy's "*" means.
var notPublic = [...]netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, and Alibaba's metadata
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo: hides an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
}

// isPublic reports whether a (unmapped, no zone) is a global unicast address
// of the public Internet: not denied by default, not private (RFC 1918,
// fc00::/7), not in a special-purpose range, and not one that embeds an
// IPv4 address (NAT64, 6to4), whose destination depends on a translator.
func isPublic(a netip.Addr) bool {
	if deniedRule(a, false) != "" || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	if a.Is6() && (nat64.Contains(a) || sixToFour.Contains(a)) {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
