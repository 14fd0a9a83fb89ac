package annotations

import (
	"fmt"
	"strings"
	"unicode"
)

// dnsLabelProblem says what is wrong with s as a DNS-1123 label, or returns ""
// when it is one. Names, Service names and namespaces must be labels because
// they end up in "namespace/name" identities, cluster DNS names and metric
// labels.
func dnsLabelProblem(s string) string {
	const rule = "(lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 63:
		return fmt.Sprintf("is %d characters long; must be a DNS label %s", len(s), rule)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
		case r >= 'A' && r <= 'Z':
			return "must be lowercase; must be a DNS label " + rule
		default:
			return fmt.Sprintf("contains %q; must be a DNS label %s", r, rule)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return "must start and end with a letter or digit; must be a DNS label " + rule
	}
	return ""
}

func isSpaceOrControl(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2), the
// syntax of both header names and methods.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

const tokenRule = "letters, digits and !#$%&'*+-.^_`|~"

// normalizeHost checks a Mapping host and returns it in lower case. Problems
// are phrased for the user because the reason is shown as is.
func normalizeHost(h string) (string, string) {
	if h == "" {
		return "", ""
	}
	switch {
	case strings.Contains(h, "://"):
		return "", "must be a host name without a scheme"
	case strings.ContainsAny(h, "/?#"):
		return "", "must be a host name without a path"
	case strings.Contains(h, ":"):
		return "", "must not include a port: the gateway ignores the port of a request's Host header"
	case strings.IndexFunc(h, isSpaceOrControl) >= 0:
		return "", "must not contain whitespace or control characters"
	}
	rest := h
	if strings.HasPrefix(h, "*.") {
		rest = h[2:]
	}
	if strings.Contains(rest, "*") {
		return "", `a wildcard "*" is only allowed as the whole leftmost label, as in "*.example.com"`
	}
	if len(rest) > 253 {
		return "", fmt.Sprintf("is %d characters long; a host name has at most 253", len(rest))
	}
	for _, label := range strings.Split(rest, ".") {
		switch {
		case label == "":
			return "", "has an empty label (check for a leading, trailing or doubled dot)"
		case len(label) > 63:
			return "", fmt.Sprintf("label %q is longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", fmt.Sprintf("label %q must start and end with a letter or digit", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return "", fmt.Sprintf("contains %q; a host name has only letters, digits, '-' and '.'", r)
			}
		}
	}
	// Only ASCII is left, so ToLower cannot change the length or map a
	// look-alike rune (like the Kelvin sign) onto a letter.
	return strings.ToLower(h), ""
}

// standardMethods are the methods of RFC 9110 and PATCH; others are legal
// tokens but more often a typo than an extension method.
var standardMethods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}

func isStandardMethod(m string) bool {
	for _, s := range standardMethods {
		if s == m {
			return true
		}
	}
	return false
}
