package upstream

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CanonicalHost returns host as the gateway compares and dials it: an IP
// address in netip's form (IPv4-mapped IPv6 unmapped, brackets dropped), or
// a DNS name in lower case without its one optional trailing dot. It refuses
// anything else with an error saying why: ports, schemes, zones, empty or
// over-long labels, characters outside letters, digits and hyphens (write
// internationalised names in their xn-- form), and names whose last label
// does not start with a letter. No top-level domain does, and C resolvers
// read such names as numbers ("127.1" and "0x7f.1" are 127.0.0.1), so
// allowing them would let text that looks like a name reach loopback.
func CanonicalHost(host string) (string, error) {
	h, addr, kind := classifyHost(host)
	switch kind {
	case hostIP:
		return addr.String(), nil
	case hostName:
		return strings.ToLower(h), nil
	}
	return "", fmt.Errorf("%q is neither an IP address nor a host name: %s", host, h)
}

type hostKind int

const (
	hostInvalid hostKind = iota
	hostIP
	hostName
)

// classifyHost tells an IP literal (returned unmapped) from a valid DNS
// name (returned without its trailing dot, case unchanged) from anything
// else (the reason returned in place of the name). It does not allocate for
// valid input, so ExternalPolicy.Allows stays allocation-free.
func classifyHost(host string) (string, netip.Addr, hostKind) {
	h := host
	if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "brackets hold an IPv6 address without a zone", netip.Addr{}, hostInvalid
		}
		return "", a.Unmap(), hostIP
	}
	// netip's parse error is allocated; names, the common case, skip it.
	if mayBeAddr(h) {
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() != "" {
				return "an IPv6 zone names an interface of one machine, not an upstream", netip.Addr{}, hostInvalid
			}
			return "", a.Unmap(), hostIP
		}
	}
	h = strings.TrimSuffix(h, ".")
	if reason := nameProblem(h); reason != "" {
		return reason, netip.Addr{}, hostInvalid
	}
	return h, netip.Addr{}, hostName
}

// nameProblem returns why name (no trailing dot) is not a host name, "" when
// it is one.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > 253:
		return "longer than 253 characters"
	case strings.Contains(name, "://"):
		return "a host, without a scheme"
	case strings.ContainsAny(name, ":/"):
		return "a host, without a port or path"
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return "only letters, digits, hyphens and dots make a host name"
			}
			continue
		}
		label := name[start:i]
		switch {
		case label == "":
			return "empty label"
		case len(label) > 63:
			return "label longer than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "a label starts or ends with a hyphen"
		}
		if i == len(name) && !isLetter(label[0]) {
			return "the last label must start with a letter (no top-level domain is numeric; resolvers may read the name as an address)"
		}
		start = i + 1
	}
	return ""
}

// mayBeAddr reports whether s could parse as an IP address: IPv6 has a
// colon, IPv4 only digits and dots.
func mayBeAddr(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// RootedAddr returns a "host:port" dial address with a name host made fully
// qualified (a trailing dot added), and any other address unchanged. A
// rooted name is looked up as written: resolv.conf's search domains never
// turn an external "users.shop" into users.shop.<namespace>.svc.cluster.local,
// an in-cluster Service the route was not granted. (Go's resolver also skips
// /etc/hosts for rooted names, so a pod's hostAliases do not apply to them.)
func RootedAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.HasSuffix(host, ".") {
		return addr
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return addr
	}
	return net.JoinHostPort(host+".", port)
}
