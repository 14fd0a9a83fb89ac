package upstream

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ExternalPolicy says which hosts outside the cluster routes may reach: the
// platform's --external-upstreams flag, a comma-separated list of patterns.
//
//	api.example.com   that name exactly
//	*.example.com     any name ending in .example.com, with at least one more label
//	*                 any public name or address (see below)
//	203.0.113.7       that address exactly (IPv6 too, with or without brackets)
//
// Names compare case-insensitively and without one trailing dot.
//
// "*" stops where the public Internet does. It does not cover single-label
// names, names under special-use or private top-level domains (.local, which
// holds cluster.local, .internal, .localhost, .test, .arpa, .lan, ...), the
// names of cloud metadata services (metadata.google.internal,
// instance-data, ...), nor addresses that are private, special-purpose or
// denied by DialGuard (loopback, link-local, metadata, unspecified). It
// cannot know a cluster domain other than cluster.local: a platform with
// one should list names rather than use "*".
//
// localhost, *.localhost and the metadata names are allowed only by a
// pattern that names them: "localhost", "metadata.google.internal", or
// "*.localhost" for the names under localhost. An address outside "*" is
// allowed only when listed literally; Literals returns those for
// DialGuard.Allow, since the dial is checked again on the address actually
// connected. Parsing resolves nothing.
//
// The zero value allows nothing. An ExternalPolicy never changes after
// ParseExternalPolicy and is safe for concurrent use.
type ExternalPolicy struct {
	patterns []string            // canonical, in the order given, without repeats
	exact    map[string]struct{} // names listed exactly
	suffixes []string            // ".example.com" for "*.example.com"
	any      bool                // "*"
	addrs    []netip.Addr        // addresses listed, unmapped
}

// ParseExternalPolicy parses the value of --external-upstreams. An empty (or
// blank) value allows nothing. An error names the first bad pattern.
func ParseExternalPolicy(s string) (ExternalPolicy, error) {
	var p ExternalPolicy
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	seen := map[string]bool{}
	for i, raw := range strings.Split(s, ",") {
		pat := strings.TrimSpace(raw)
		canon, err := p.add(pat)
		if err != nil {
			return ExternalPolicy{}, fmt.Errorf("external upstream pattern %d %q: %w", i+1, pat, err)
		}
		if !seen[canon] {
			seen[canon] = true
			p.patterns = append(p.patterns, canon)
		}
	}
	return p, nil
}

// add records one pattern and returns its canonical text.
func (p *ExternalPolicy) add(pat string) (string, error) {
	if pat == "" {
		return "", errors.New("empty pattern (two commas in a row, or one at an end?)")
	}
	if pat == "*" {
		p.any = true
		return pat, nil
	}
	name, wildcard := strings.CutPrefix(pat, "*.")
	if strings.Contains(name, "*") {
		return "", errors.New(`"*" stands alone or as the whole first label, as in "*.example.com"`)
	}
	if !wildcard && strings.Contains(pat, "/") {
		if _, err := netip.ParsePrefix(pat); err == nil {
			return "", errors.New("address ranges are not supported; list each address")
		}
	}
	h, addr, kind := classifyHost(name)
	switch {
	case kind == hostInvalid:
		return "", errors.New("neither an IP address nor a host name: " + h)
	case kind == hostIP && wildcard:
		return "", errors.New(`"*." covers names under a domain, not addresses`)
	case kind == hostIP:
		for _, a := range p.addrs {
			if a == addr {
				return addr.String(), nil
			}
		}
		p.addrs = append(p.addrs, addr)
		return addr.String(), nil
	}
	h = strings.ToLower(h)
	if wildcard {
		p.suffixes = append(p.suffixes, "."+h)
		return "*." + h, nil
	}
	if p.exact == nil {
		p.exact = map[string]struct{}{}
	}
	p.exact[h] = struct{}{}
	return h, nil
}

// Allows reports whether routes may send traffic to host, a name or an IP
// address as it appears in a URL's host (no port). Anything that is neither
// is refused. It does not allocate unless host has upper-case letters.
func (p ExternalPolicy) Allows(host string) bool {
	h, addr, kind := classifyHost(host)
	switch kind {
	case hostIP:
		for _, a := range p.addrs {
			if a == addr {
				return true
			}
		}
		return p.any && isPublic(addr)
	case hostName:
		h = strings.ToLower(h)
		if _, ok := p.exact[h]; ok {
			return true
		}
		zone := sensitiveZone(h)
		for _, s := range p.suffixes {
			if len(h) > len(s) && strings.HasSuffix(h, s) && (zone == "" || within(s[1:], zone)) {
				return true
			}
		}
		return p.any && zone == "" && isPublicName(h)
	}
	return false
}

// String returns the policy as a flag value that parses back to it: the
// canonical patterns, comma-separated, in the order first given.
func (p ExternalPolicy) String() string { return strings.Join(p.patterns, ",") }

// Literals returns the addresses the policy lists, as single-address
// prefixes for GuardOptions.Allow: an address the platform named may be
// dialled even inside a range DialGuard denies by default.
func (p ExternalPolicy) Literals() []netip.Prefix {
	if len(p.addrs) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(p.addrs))
	for i, a := range p.addrs {
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

// sensitiveZone returns the zone of names that reach the machine itself or
// a cloud metadata service when name (lower case) is one, "" otherwise.
// Such a name is allowed only by a pattern inside its zone.
func sensitiveZone(name string) string {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return "localhost" // RFC 6761: resolvers answer loopback
	}
	switch name {
	case "metadata", "metadata.google.internal", "metadata.goog", // GCP
		"instance-data", "instance-data.ec2.internal": // AWS
		return name
	}
	return ""
}

// within reports whether domain is zone or a name under it.
func within(domain, zone string) bool {
	return domain == zone || len(domain) > len(zone) && strings.HasSuffix(domain, zone) && domain[len(domain)-len(zone)-1] == '.'
}

// isPublicName reports whether name (lower case, valid) can be a name on
// the public Internet: it has a dot, and its top-level domain is not one
// reserved for special or private use (RFC 6761, 6762, 7686, 8375, 9476,
// ICANN's .internal) or used privately so often that a public answer would
// be a surprise.
func isPublicName(name string) bool {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return false
	}
	switch name[dot+1:] {
	case "alt", "arpa", "corp", "example", "home", "internal", "intranet", "invalid",
		"lan", "local", "localdomain", "localhost", "onion", "test":
		return false
	}
	return true
}
