package annotations

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// A Host document gives a hostname its edge TLS. The checks here are the
// native dialect's; emissary_host.go turns Emissary's Host and TLSContext
// into the same Host values and shares the rules on hostnames, Secret names
// and TLS versions.

var hostType = reflect.TypeFor[Host]()

// hstsMaxAge is the longest max_age a Host may ask for: two years, what the
// HSTS preload list itself recommends; a longer one only makes a mistake
// last longer.
const hstsMaxAge = 63072000

// hstsPreloadAge is the shortest max_age the HSTS preload list accepts.
const hstsPreloadAge = 31536000

// hostEntry is one Host a document declares, with what the checks across
// documents need to point at.
type hostEntry struct {
	host *Host
	// hostnameNode is where the hostname was written; nil when it was not
	// written or is not valid, which leaves it out of the duplicate check.
	hostnameNode *yaml.Node
	hostnamePath string
	// nameNode is where the name came from: the document's name, or for a
	// Host a TLSContext derives, its entry in hosts.
	nameNode *yaml.Node
	namePath string
	derived  bool // from an Emissary TLSContext's hosts
	// dropped is set when an Emissary Host linked to the TLSContext that
	// derived this entry: the Host, with the context's settings, replaces it.
	dropped bool
}

// hostFieldHint names the Host field meant by a key people bring from
// Emissary's Host or TLSContext or from a Mapping, or returns "".
func hostFieldHint(name string) string {
	switch name {
	case "host", "hosts":
		return "hostname"
	case "secret", "tlsSecret":
		return "tls_secret"
	case "ca_secret", "caSecret":
		return "client_ca_secret"
	case "cert_required", "certRequired":
		return "client_cert"
	case "redirect_cleartext_from", "requestPolicy":
		return "insecure"
	case "minTlsVersion":
		return "min_tls_version"
	}
	return ""
}

// checkHost checks the meaning of a decoded native Host, fills its
// defaults and records it as the document's Host.
func (p *parser) checkHost(d *document, h *Host) {
	p.validateTags(d.top, h)
	p.checkCommon(d, h.APIVersion, h.Name)
	e := &hostEntry{host: h, nameNode: d.nameNode, namePath: d.namePath}

	if n, ok := d.usable("hostname"); ok && h.Hostname != "" {
		if name, msg := normalizeHostHostname(h.Hostname); msg != "" {
			p.errorAt(n, p.path("hostname"), fmt.Sprintf("hostname %q: %s", h.Hostname, msg))
		} else {
			h.Hostname = name
			e.hostnameNode, e.hostnamePath = n, p.path("hostname")
		}
	}
	for _, f := range []struct {
		name  string
		value string
	}{{"tls_secret", h.TLSSecret}, {"client_ca_secret", h.ClientCASecret}} {
		if n, ok := d.usable(f.name); ok && f.value != "" {
			if msg := p.secretNameProblem(f.value); msg != "" {
				p.errorAt(n, p.path(f.name), fmt.Sprintf("%s %q: %s", f.name, f.value, msg))
			}
		}
	}
	if n, ok := d.usable("min_tls_version"); ok {
		if v, msg := normalizeTLSVersion(h.MinTLSVersion); msg != "" {
			p.errorAt(n, p.path("min_tls_version"), fmt.Sprintf("min_tls_version %q: %s", h.MinTLSVersion, msg))
		} else {
			h.MinTLSVersion = v
		}
	}
	if loc, ok := d.top.written("client_cert"); ok && h.ClientCASecret == "" && !d.top.failed["client_ca_secret"] {
		p.errorAt(loc.key, p.path("client_cert"), "client_cert needs client_ca_secret: client certificates are verified against the CAs it holds")
	}
	p.checkHSTS(d, h.HSTS)
	fillHostDefaults(h)
	h.Positions = d.positions
	d.hosts = append(d.hosts, e)
}

// fillHostDefaults gives the enums of h their documented defaults.
func fillHostDefaults(h *Host) {
	if h.Insecure == "" {
		h.Insecure = InsecureRedirect
	}
	if h.MinTLSVersion == "" {
		h.MinTLSVersion = "v1.2"
	}
	if h.ClientCASecret != "" && h.ClientCert == "" {
		h.ClientCert = ClientCertRequired
	}
}

func (p *parser) checkHSTS(d *document, hsts *HSTS) {
	sl := d.structs["hsts"]
	if hsts == nil || sl == nil {
		return
	}
	switch loc, present := sl.fields["max_age"]; {
	case sl.failed["max_age"]:
	case !present:
		p.errorAt(sl.node, p.path("hsts"), `missing required field "max_age" (seconds browsers keep to HTTPS; 0 makes them forget the host)`)
	case isNull(loc.value):
		p.errorAt(loc.key, p.path("hsts.max_age"), `missing value for required field "max_age"`)
	case hsts.MaxAge < 0:
		p.errorAt(loc.value, p.path("hsts.max_age"), fmt.Sprintf("must not be negative; got %d", hsts.MaxAge))
	case hsts.MaxAge > hstsMaxAge:
		p.errorAt(loc.value, p.path("hsts.max_age"), fmt.Sprintf("must be at most %d (two years); got %d", hstsMaxAge, hsts.MaxAge))
	}
	if _, ageOK := sl.usable("max_age"); !ageOK {
		return
	}
	if loc, ok := sl.written("preload"); ok && hsts.Preload && (hsts.MaxAge < hstsPreloadAge || !hsts.IncludeSubdomains) {
		p.warnAt(loc.key, p.path("hsts.preload"), fmt.Sprintf("the HSTS preload list takes only max_age of at least %d (a year) with include_subdomains: true; browsers will not preload this host", hstsPreloadAge))
	}
}

// normalizeHostHostname checks a Host's hostname and returns it in lower
// case, or a problem phrased for the user. A Host names one DNS name, or
// the names one label below another ("*.example.com"): those are what a
// certificate can cover and what a namespace can own.
func normalizeHostHostname(h string) (string, string) {
	switch {
	case h == "":
		return "", "must not be empty"
	case h == "*":
		return "", "a Host cannot cover every host; the default certificate, for hosts no Host names, is set by the platform (serve --tls-cert-file)"
	case strings.Contains(h, "://"):
		return "", "a Host's hostname has no scheme; write the name alone, such as shop.example.com"
	case strings.ContainsAny(h, `^$()[]{}|\+`) && !isIPLiteral(h):
		return "", `regular expressions are not supported; write an exact name or a wildcard such as "*.example.com"`
	case strings.ContainsAny(h, "/?#"):
		return "", "a Host's hostname has no path"
	case isIPLiteral(h):
		return "", "an IP address; a Host names a DNS name (certificates for IP addresses are not supported)"
	case strings.Contains(h, ":"):
		return "", "a Host's hostname has no port"
	case strings.IndexFunc(h, isSpaceOrControl) >= 0:
		return "", "must not contain whitespace or control characters"
	}
	rest := strings.TrimPrefix(h, "*.")
	if strings.Contains(rest, "*") {
		return "", `a wildcard is "*." in front of a name, covering one label, as in "*.example.com"; no other wildcard is supported`
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(rest[i:])
			return "", fmt.Sprintf("contains %q; write an internationalised name in its ASCII form (xn--...)", rest[i:i+size])
		}
	}
	if msg := hostNameProblem(rest); msg != "" {
		return "", msg
	}
	return strings.ToLower(h), ""
}

// isIPLiteral reports whether s is an IP address, with or without a port
// or IPv6 brackets.
func isIPLiteral(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if host, _, err := net.SplitHostPort(s); err == nil && net.ParseIP(host) != nil {
		return true
	}
	inner, ok := strings.CutPrefix(s, "[")
	inner, closed := strings.CutSuffix(inner, "]")
	return ok && closed && net.ParseIP(inner) != nil
}

// normalizeTLSVersion reads a minimum TLS version as v1.2 or v1.3.
func normalizeTLSVersion(s string) (string, string) {
	v := strings.ToLower(s)
	v = strings.TrimPrefix(v, "tls")
	v = strings.TrimPrefix(v, "v")
	switch v {
	case "1.2":
		return "v1.2", ""
	case "1.3":
		return "v1.3", ""
	case "1", "1.0", "1.1":
		return "", "TLS 1.2 is the minimum; write v1.2 or v1.3"
	}
	if strings.HasPrefix(strings.ToLower(s), "ssl") {
		return "", "SSL is not supported; TLS 1.2 is the minimum; write v1.2 or v1.3"
	}
	return "", "must be v1.2 or v1.3"
}

// secretNameProblem says what is wrong with s as the name of a Secret of
// the Service's own namespace, or returns "". Certificates and client CAs
// come from the Host's own namespace only: a team must not serve, or trust,
// what another namespace holds. Emissary's TLSContext "name.namespace"
// spelling is split before this is called.
func (p *parser) secretNameProblem(s string) string {
	return p.secretRefProblem(s, "certificates come from the Host's own namespace")
}

// secretRefProblem says what is wrong with s as the name of a Secret of
// the Service's own namespace, or returns "". own says where the Secret
// must come from, for a name written with a namespace. A "." is part of
// the name: Kubernetes allows it, and cert-manager users name Secrets
// after their hosts ("shop.example.com-tls").
func (p *parser) secretRefProblem(s, own string) string {
	own += "; write the Secret's name only"
	if ns, name, ok := strings.Cut(s, "/"); ok {
		if ns == p.opts.Namespace && name != "" && !strings.Contains(name, "/") {
			return fmt.Sprintf("%s (%q)", own, name)
		}
		return own
	}
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		return "invalid Secret name: " + errs[0]
	}
	return ""
}

// checkHostEntries runs the checks across the Hosts of the annotation: Emissary
// Hosts take the settings of the TLSContexts they link to, then no two
// Hosts may name the same hostname, and no two may share a name.
func (p *parser) checkHostEntries() {
	if p.opts.Dialect == Emissary {
		p.linkContexts()
	}
	firstHostname := make(map[string]*hostEntry)
	firstName := make(map[string]*hostEntry)
	for _, d := range p.docs {
		for _, e := range d.hosts {
			if e.dropped {
				continue
			}
			if n := e.hostnameNode; n != nil {
				if first, dup := firstHostname[e.host.Hostname]; dup {
					msg := fmt.Sprintf("duplicate hostname %q: Host %q already configures it%s", e.host.Hostname, first.host.Name, duplicateHostHint(first, e))
					if p.opts.Dialect == Emissary {
						// Emissary merges such documents its own way; a
						// migrating Service keeps its routes, and the
						// first Host its certificate.
						pos := nodePos(first.hostnameNode)
						p.add(Problem{Pos: nodePos(n), Path: e.hostnamePath, Message: msg + "; this one is not read", Warning: true, Related: &pos})
						e.dropped = true
						continue
					}
					p.errorSee(n, first.hostnameNode, e.hostnamePath, msg)
					continue // a derived name repeats the hostname: one problem is enough
				}
				firstHostname[e.host.Hostname] = e
			}
			// Host documents' names were compared with the other
			// documents'; a derived name may still meet one of them.
			if e.nameNode == nil || e.host.Name == "" {
				continue
			}
			if first, dup := firstName[e.host.Name]; dup && (e.derived || first.derived) {
				p.errorSee(e.nameNode, first.nameNode, e.namePath, fmt.Sprintf("duplicate Host name %q", e.host.Name))
			} else if !dup {
				firstName[e.host.Name] = e
			}
		}
	}
}

// duplicateHostHint says how an Emissary Host and a TLSContext for the
// same hostname are meant to be combined.
func duplicateHostHint(a, b *hostEntry) string {
	if a.derived == b.derived {
		return ""
	}
	return "; to give a Host a TLSContext's settings, link it with tlsContext: {name: ...}"
}
