package router

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// maxHostLen is the longest DNS name; longer request hosts cannot be valid,
// and the bound lets Match lower-case the host in a stack buffer.
const maxHostLen = 253

// normaliseHost validates a route host and returns its lower-case form.
// IPv6 literals may be bracketed; the brackets are dropped because Match
// strips them from the request host along with the port.
func normaliseHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	lower := strings.ToLower(h)
	if strings.HasPrefix(lower, "[") && strings.HasSuffix(lower, "]") {
		lower = lower[1 : len(lower)-1]
		if strings.IndexByte(lower, ':') < 0 {
			return "", fmt.Errorf("invalid host %q: brackets are only for IPv6 addresses", h)
		}
	}
	if strings.IndexByte(lower, ':') >= 0 {
		if strings.Count(lower, ":") == 1 || strings.Contains(lower, "]:") {
			return "", fmt.Errorf("invalid host %q: remove the port, request ports are ignored", h)
		}
		a, err := netip.ParseAddr(lower)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("invalid host %q: not an IPv6 address without zone", h)
		}
		return lower, nil
	}
	name := lower
	if rest, ok := strings.CutPrefix(lower, "*."); ok {
		name = rest
	}
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("invalid host %q: %w", h, err)
	}
	return lower, nil
}

// checkDNSName accepts lower-case dotted labels of letters, digits, '-' and
// '_' (underscores appear in real service names even though RFC 1123
// forbids them).
func checkDNSName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > maxHostLen {
		return fmt.Errorf("longer than %d bytes", maxHostLen)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q longer than 63 bytes", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return errors.New(`"*" is only allowed as a whole first label ("*.example.com")`)
				}
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

// stripPort returns the host part of a Host header: "[::1]:8080" → "::1",
// "a.example.com:80" → "a.example.com". A bare IPv6 address (more than one
// colon, no brackets) is returned whole.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}
