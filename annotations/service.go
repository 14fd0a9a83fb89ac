package annotations

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ServiceRef is a parsed `service:` value: where a Mapping sends its
// requests. It names a Kubernetes Service, or a host outside the cluster
// (an external upstream, which the platform must allow; see the snapshot
// package).
type ServiceRef struct {
	Scheme string // "http" or "https" ("http" when not written)
	// Name and Namespace are set when Host can name a Service: a single
	// label, name.namespace, name.namespace.svc or
	// name.namespace.svc.cluster.local. Namespace is qualified with the
	// default namespace when not written. Both are empty for a host that can
	// only be external: a name of three or more labels in another form, or
	// an IP address.
	Name      string
	Namespace string
	// Host is the host as written, lower-cased, an IPv6 literal without its
	// brackets.
	Host string
	Port int // 80 when not written (443 for https)
}

// InCluster reports whether the reference can name a Kubernetes Service.
// A two-label name such as "httpbin.org" can name both Service "httpbin"
// in namespace "org" and an external host; the snapshot decides which.
func (r ServiceRef) InCluster() bool { return r.Name != "" }

// String returns the canonical form, "http://name.namespace:port" (or
// "http://host:port" for a host that can only be external); parsing it
// again gives the same ServiceRef. The namespace is left out when it is
// empty.
func (r ServiceRef) String() string {
	var b strings.Builder
	b.Grow(len(r.Scheme) + len(r.Name) + len(r.Namespace) + len(r.Host) + 12)
	b.WriteString(r.Scheme)
	b.WriteString("://")
	switch {
	case r.Name == "" && strings.Contains(r.Host, ":"):
		b.WriteByte('[')
		b.WriteString(r.Host)
		b.WriteByte(']')
	case r.Name == "":
		b.WriteString(r.Host)
	default:
		b.WriteString(r.Name)
		if r.Namespace != "" {
			b.WriteByte('.')
			b.WriteString(r.Namespace)
		}
	}
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(r.Port))
	return b.String()
}

// HostPort is the external form "host:port" (brackets around IPv6).
func (r ServiceRef) HostPort() string {
	if strings.Contains(r.Host, ":") {
		return "[" + r.Host + "]:" + strconv.Itoa(r.Port)
	}
	return r.Host + ":" + strconv.Itoa(r.Port)
}

// serviceSyntax is appended to messages so a user sees the accepted shape.
const serviceSyntax = "expected [http://|https://]name[.namespace][:port], or a host outside the cluster"

// ParseServiceRef parses [http://|https://]host[:port]. A single-label host
// is a Service in defaultNamespace (which may be empty, as in the CLI when
// no namespace is known); name.namespace and the cluster-DNS spellings
// name.namespace.svc and name.namespace.svc.cluster.local name a Service in
// that namespace; any other DNS name, and an IP address ([::1] for IPv6),
// can only be a host outside the cluster. Whether such a host may be routed
// to is the platform's decision, not the parser's.
func ParseServiceRef(s, defaultNamespace string) (ServiceRef, error) {
	ref, err := parseServiceRef(s, defaultNamespace)
	if err != nil {
		return ServiceRef{}, fmt.Errorf("parsing service reference %q: %w", s, err)
	}
	return ref, nil
}

func parseServiceRef(s, defaultNamespace string) (ServiceRef, error) {
	if s == "" {
		return ServiceRef{}, errors.New("empty; " + serviceSyntax)
	}
	if i := strings.IndexFunc(s, isSpaceOrControl); i >= 0 {
		return ServiceRef{}, fmt.Errorf("contains whitespace or a control character at offset %d", i)
	}
	ref := ServiceRef{Scheme: "http", Port: 80}
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http":
		case "https":
			ref.Scheme, ref.Port = "https", 443
		default:
			return ServiceRef{}, fmt.Errorf("unsupported scheme %q; only http and https are supported", scheme)
		}
		rest = after
	}
	switch {
	case strings.ContainsAny(rest, "/?#"):
		return ServiceRef{}, errors.New("a path, query or fragment is not allowed; " + serviceSyntax)
	case strings.Contains(rest, "@"):
		return ServiceRef{}, errors.New("user information is not allowed; " + serviceSyntax)
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return ServiceRef{}, err
	}
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return ServiceRef{}, err
		}
		ref.Port = p
	}
	if strings.Contains(host, ":") || isIPv4(host) {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return ServiceRef{}, fmt.Errorf("%q is not an IP address; %s", host, serviceSyntax)
		}
		ref.Host = a.String()
		return ref, nil
	}
	ref.Host = strings.ToLower(strings.TrimSuffix(host, "."))
	labels := strings.Split(host, ".")
	switch {
	case len(labels) == 1:
		ref.Namespace = defaultNamespace
	case len(labels) == 2,
		len(labels) == 3 && labels[2] == "svc",
		len(labels) == 5 && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local":
		ref.Namespace = labels[1]
		if msg := dnsLabelProblem(ref.Namespace); msg != "" {
			return ServiceRef{}, fmt.Errorf("namespace %q %s", ref.Namespace, msg)
		}
	default:
		if msg := hostnameProblem(host); msg != "" {
			return ServiceRef{}, fmt.Errorf("host %q %s", host, msg)
		}
		return ref, nil
	}
	ref.Name = labels[0]
	if msg := dnsLabelProblem(ref.Name); msg != "" {
		return ServiceRef{}, fmt.Errorf("name %q %s", ref.Name, msg)
	}
	return ref, nil
}

// splitHostPort splits host[:port] and [ipv6][:port].
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("missing ']' after an IPv6 address; " + serviceSyntax)
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] == ':':
			return host, rest[1:], nil
		}
		return "", "", fmt.Errorf("unexpected %q after ']'; %s", rest, serviceSyntax)
	}
	host, port, ok := strings.Cut(s, ":")
	if ok && strings.Contains(port, ":") {
		return "", "", errors.New("more than one ':' (write an IPv6 address in brackets); " + serviceSyntax)
	}
	if ok && port == "" {
		return "", "", errors.New("empty port after ':'")
	}
	return host, port, nil
}

// isIPv4 tells a dotted-decimal address from a host name: a DNS name's last
// label is never all digits.
func isIPv4(s string) bool {
	i := strings.LastIndexByte(s, '.')
	last := s[i+1:]
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// hostnameProblem checks an external host name: DNS labels (letters,
// digits, '-', case-insensitive), at most 253 bytes, one optional trailing
// dot.
func hostnameProblem(host string) string {
	h := strings.TrimSuffix(host, ".")
	if len(h) > 253 {
		return fmt.Sprintf("is %d bytes long; a DNS name has at most 253", len(h))
	}
	for _, l := range strings.Split(h, ".") {
		if msg := dnsLabelProblem(strings.ToLower(l)); msg != "" {
			return fmt.Sprintf("has a label %q that %s", l, msg)
		}
	}
	return ""
}

// parsePort accepts only plain decimal digits so that "+80" or " 80" cannot
// sneak through strconv's more liberal syntax.
func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty port after ':'")
	}
	if len(s) > 5 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("port %q is not a number between 1 and 65535", s)
	}
	p, _ := strconv.Atoi(s) // at most five digits, cannot fail
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", p)
	}
	return p, nil
}
