package annotations

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ServiceRef is a parsed `service:` value: which Kubernetes Service a Mapping
// sends its requests to, and how.
type ServiceRef struct {
	Scheme    string // "http" or "https" ("http" when not written)
	Name      string
	Namespace string // qualified with the default namespace when not written
	Port      int    // 80 when not written (443 for https)
}

// String returns the canonical form, "http://name.namespace:port"; parsing it
// again gives the same ServiceRef. The namespace is left out when it is empty.
func (r ServiceRef) String() string {
	var b strings.Builder
	b.Grow(len(r.Scheme) + len(r.Name) + len(r.Namespace) + 10)
	b.WriteString(r.Scheme)
	b.WriteString("://")
	b.WriteString(r.Name)
	if r.Namespace != "" {
		b.WriteByte('.')
		b.WriteString(r.Namespace)
	}
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(r.Port))
	return b.String()
}

// serviceSyntax is appended to messages so a user sees the accepted shape.
const serviceSyntax = "expected [http://|https://]name[.namespace][:port]"

// ParseServiceRef parses [http://|https://]name[.namespace][:port]. A name
// without a namespace is qualified with defaultNamespace (which may be empty,
// as in the CLI when no namespace is known). Cluster-DNS spellings
// name.namespace.svc and name.namespace.svc.cluster.local are accepted because
// users copy them from other tools; any other dotted name is an error, since
// only Services can be targets.
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
	host := rest
	if h, port, ok := strings.Cut(rest, ":"); ok {
		if strings.Contains(port, ":") {
			return ServiceRef{}, errors.New("more than one ':'; " + serviceSyntax)
		}
		p, err := parsePort(port)
		if err != nil {
			return ServiceRef{}, err
		}
		host, ref.Port = h, p
	}
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
		return ServiceRef{}, fmt.Errorf("%q is not a Service name; %s (name.namespace.svc and name.namespace.svc.cluster.local are also accepted)", host, serviceSyntax)
	}
	ref.Name = labels[0]
	if msg := dnsLabelProblem(ref.Name); msg != "" {
		return ServiceRef{}, fmt.Errorf("name %q %s", ref.Name, msg)
	}
	return ref, nil
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
