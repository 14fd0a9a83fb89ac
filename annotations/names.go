package annotations

import (
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"
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

// emissaryNameProblem says what is wrong with s as the name of an Emissary
// document of kind (Mapping, Host, TLSContext), or returns "". Emissary
// takes any string from an annotation, and its own documentation writes
// names such as qotm_mapping, so only what would break Gatehouse's
// "namespace/name" identities, its logs and its route tables is refused:
// '/', whitespace and control characters, and a length no Kubernetes
// object name has.
func emissaryNameProblem(kind, s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 253:
		return fmt.Sprintf("is %d characters long; %s name has at most 253", len(s), article(kind))
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r == '/' || isSpaceOrControl(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Sprintf("contains %q; %s name must not contain '/', whitespace or control characters", r, article(kind))
	}
	return ""
}

// article puts "a" or "an" in front of a kind: "a Mapping", "an
// AuthService".
func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOU", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
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
	return normalizeHostGlob(h, false)
}

// normalizeHostname checks a Mapping hostname, Emissary v3's DNS glob: "*",
// "*.example.com" or an exact host name.
func normalizeHostname(h string) (string, string) {
	return normalizeHostGlob(h, true)
}

func normalizeHostGlob(h string, hostname bool) (string, string) {
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
	if hostname && h == "*" {
		return h, ""
	}
	rest := h
	if strings.HasPrefix(h, "*.") {
		rest = h[2:]
	}
	if strings.Contains(rest, "*") {
		if hostname {
			return "", `supported hostnames are "*" (any host), "*.example.com" (a wildcard as the whole leftmost label) and exact host names`
		}
		return "", `a wildcard "*" is only allowed as the whole leftmost label, as in "*.example.com"`
	}
	if msg := hostNameProblem(rest); msg != "" {
		return "", msg
	}
	// Only ASCII is left, so ToLower cannot change the length or map a
	// look-alike rune (like the Kelvin sign) onto a letter.
	return strings.ToLower(h), ""
}

// hostNameProblem checks an exact DNS host name, without wildcard or port.
func hostNameProblem(h string) string {
	if len(h) > 253 {
		return fmt.Sprintf("is %d characters long; a host name has at most 253", len(h))
	}
	for _, label := range strings.Split(h, ".") {
		switch {
		case label == "":
			return "has an empty label (check for a leading, trailing or doubled dot)"
		case len(label) > 63:
			return fmt.Sprintf("label %q is longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("label %q must start and end with a letter or digit", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("contains %q; a host name has only letters, digits, '-' and '.'", r)
			}
		}
	}
	return ""
}

// hostPortProblem checks host[:port] as written in host_rewrite or a
// redirect target: a host name, an IPv4 address or a bracketed IPv6 address,
// and an optional port.
func hostPortProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.Contains(s, "://"):
		return "must be host[:port] without a scheme"
	case strings.ContainsAny(s, "/?#"):
		return "must be host[:port] without a path"
	case strings.Contains(s, "@"):
		return "must be host[:port] without user information"
	case strings.IndexFunc(s, isSpaceOrControl) >= 0:
		return "must not contain whitespace or control characters"
	}
	host, port, hasPort := s, "", false
	if rest, ok := strings.CutPrefix(s, "["); ok {
		addr, after, closed := strings.Cut(rest, "]")
		if !closed {
			return `has "[" without "]"`
		}
		if ip := net.ParseIP(addr); ip == nil || !strings.Contains(addr, ":") {
			return fmt.Sprintf("%q in brackets is not an IPv6 address", addr)
		}
		switch {
		case after == "":
		case strings.HasPrefix(after, ":"):
			port, hasPort = after[1:], true
		default:
			return fmt.Sprintf("unexpected %q after the IPv6 address", after)
		}
		host = ""
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if strings.Count(s, ":") > 1 {
			return "an IPv6 address must be written in brackets, as in [::1]:8080"
		}
		host, port, hasPort = s[:i], s[i+1:], true
	}
	if hasPort {
		if _, err := parsePort(port); err != nil {
			return err.Error()
		}
	}
	if host == "" || net.ParseIP(host) != nil {
		if host == "" && !strings.HasPrefix(s, "[") {
			return "has no host before the port"
		}
		return ""
	}
	return hostNameProblem(host)
}

// redirectTargetProblem checks the service of a host_redirect Mapping: a
// host[:port] that clients are sent to, optionally with http:// or https://.
func redirectTargetProblem(s string) string {
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
			return fmt.Sprintf("unsupported scheme %q; a redirect target is [http://|https://]host[:port]", scheme)
		}
		rest = after
	}
	if msg := hostPortProblem(rest); msg != "" {
		return msg + "; a redirect target is [http://|https://]host[:port]"
	}
	return ""
}

// headerNameProblem says why name cannot be an HTTP header name, or "".
func headerNameProblem(name string) string {
	if !isToken(name) {
		return fmt.Sprintf("invalid header name %q: a header name has only %s", name, tokenRule)
	}
	return ""
}

// headerChangeProblem says why a header cannot be added or removed (verb),
// or returns "". Hop-by-hop headers belong to each connection and are
// managed by the proxy; changing them would break framing or upgrades.
func headerChangeProblem(name string, request bool, verb string) string {
	switch {
	case strings.HasPrefix(name, ":"):
		return fmt.Sprintf("%q is an HTTP/2 pseudo-header, which cannot be %s", name, verb)
	case !isToken(name):
		return headerNameProblem(name)
	case isHopByHop(name):
		return fmt.Sprintf("%q is a hop-by-hop header, which the proxy manages for each connection; it cannot be %s", name, verb)
	case request && strings.EqualFold(name, "Host") && verb == "added":
		return "the Host header cannot be added; use host_rewrite to change it"
	case request && strings.EqualFold(name, "Host"):
		return "the Host header cannot be " + verb
	}
	return ""
}

func isHopByHop(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer":
		return true
	}
	return len(name) >= len("proxy-") && strings.EqualFold(name[:len("proxy-")], "proxy-")
}

// queryNameProblem says why name cannot be matched as a query parameter
// name, or "". Names are compared as written, case-sensitively.
func queryNameProblem(name string) string {
	switch {
	case name == "":
		return "a query parameter name must not be empty"
	case strings.ContainsAny(name, "&=#"):
		return fmt.Sprintf("invalid query parameter name %q: it must not contain '&', '=' or '#'", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Sprintf("invalid query parameter name %q: it must not contain control characters", name)
	}
	return ""
}

// isProtocol reports whether s is an Upgrade protocol: a token, optionally
// followed by "/" and a version token (RFC 9110 section 7.8), such as
// websocket or spdy/3.1.
func isProtocol(s string) bool {
	name, version, ok := strings.Cut(s, "/")
	return isToken(name) && (!ok || isToken(version))
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
