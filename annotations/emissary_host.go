package annotations

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Emissary's Host and TLSContext, read into Hosts. An Emissary Host is
// one hostname with a tlsSecret, a requestPolicy for plain HTTP and TLS
// settings of its own (tls) or of a TLSContext it links to; a TLSContext
// with hosts gives each of them the same certificate and settings. What
// Gatehouse does not implement is reported field by field, as for Mappings;
// what would serve a certificate from another namespace, or accept what
// the annotation refuses, is an error.

// The Emissary documents as written, decoded with the same strictness as
// Gatehouse's own types (a wrong type is an error, an unknown field a
// warning). Fields Gatehouse ignores are listed below rather than declared.
type (
	emissaryHostSpec struct {
		Hostname      string                 `json:"hostname,omitempty"`
		TLSSecret     *emissarySecretRef     `json:"tlsSecret,omitempty"`
		RequestPolicy *emissaryRequestPolicy `json:"requestPolicy,omitempty"`
		TLS           *emissaryHostTLS       `json:"tls,omitempty"`
		TLSContext    *emissaryObjectRef     `json:"tlsContext,omitempty"`
	}
	emissarySecretRef struct {
		Name      string `json:"name" validate:"required"`
		Namespace string `json:"namespace,omitempty"`
	}
	emissaryObjectRef struct {
		Name string `json:"name" validate:"required"`
	}
	emissaryRequestPolicy struct {
		Insecure *emissaryInsecurePolicy `json:"insecure,omitempty"`
	}
	emissaryInsecurePolicy struct {
		Action string `json:"action,omitempty"`
	}
	// emissaryHostTLS is a Host's tls. Emissary also takes the camelCase
	// spellings of v2 Hosts, and lets them win over the snake_case ones.
	emissaryHostTLS struct {
		MinTLSVersion      string `json:"min_tls_version,omitempty"`
		MinTLSVersionCamel string `json:"minTlsVersion,omitempty"`
		CASecret           string `json:"ca_secret,omitempty"`
		CASecretCamel      string `json:"caSecret,omitempty"`
		CertRequired       *bool  `json:"cert_required,omitempty"`
		CertRequiredCamel  *bool  `json:"certRequired,omitempty"`
	}
	emissaryTLSContextSpec struct {
		Hosts                 []string `json:"hosts,omitempty"`
		Secret                string   `json:"secret,omitempty"`
		CASecret              string   `json:"ca_secret,omitempty"`
		CertRequired          *bool    `json:"cert_required,omitempty"`
		MinTLSVersion         string   `json:"min_tls_version,omitempty"`
		RedirectCleartextFrom *int     `json:"redirect_cleartext_from,omitempty"`
		SecretNamespacing     *bool    `json:"secret_namespacing,omitempty"`
	}
)

var (
	emissaryHostSpecType   = reflect.TypeFor[emissaryHostSpec]()
	emissaryHostTLSType    = reflect.TypeFor[emissaryHostTLS]()
	emissaryTLSContextType = reflect.TypeFor[emissaryTLSContextSpec]()
	emissaryInsecureType   = reflect.TypeFor[emissaryInsecurePolicy]()
)

// Fields of Emissary's Host, its tls and TLSContext that Gatehouse accepts
// with a warning. crl_secret and crl_file are refused instead
// (refusedEmissaryField).
var (
	ignoredHostFields    = []string{"acmeProvider", "selector", "mappingSelector", "previewUrl", "metadata_labels"}
	ignoredHostTLSFields = []string{
		"alpn_protocols", "alpnProtocols", "max_tls_version", "maxTlsVersion", "cipher_suites", "cipherSuites",
		"ecdh_curves", "ecdhCurves", "redirect_cleartext_from", "redirectCleartextFrom", "sni",
		"cert_chain_file", "certChainFile", "private_key_file", "privateKeyFile", "cacert_chain_file", "cacertChainFile",
	}
	ignoredTLSContextFields = []string{
		"alpn_protocols", "max_tls_version", "cipher_suites", "ecdh_curves", "signature_algorithms", "sni",
		"cert_chain_file", "private_key_file", "cacert_chain_file", "metadata_labels",
	}
)

// emissaryCatchAll is added to the problem with hostname "*", which is how
// Emissary spells its default Host.
const emissaryCatchAll = " (Emissary's catch-all Host: leave it out)"

var insecureActions = []string{"Redirect", "Reject", "Route"}

// emissaryContext is what a TLSContext gives the Hosts that link to it.
type emissaryContext struct {
	name     string
	secret   string // "" when missing or not valid
	settings tlsSettings
}

// contextLink is an Emissary Host's link to a TLSContext: named by
// tlsContext, or Emissary's implicit "<Host name>-context".
type contextLink struct {
	name string
	node *yaml.Node // the name in tlsContext; nil for the implicit link
	path string
}

// emissaryTLS is what a Host's tls, or a TLSContext, says about the TLS a
// Host's clients get; a node is nil when its field was not written.
type emissaryTLS struct {
	minVersion   string
	minNode      *yaml.Node
	minPath      string
	caSecret     string
	caNode       *yaml.Node
	caPath       string
	certRequired bool
	certNode     *yaml.Node
	certPath     string
	// namespacing makes a "." in caSecret separate name.namespace, as a
	// TLSContext's secret_namespacing (true unless written false) does.
	namespacing bool
}

// tlsSettings are the Host fields an emissaryTLS becomes, with where each
// was written.
type tlsSettings struct {
	minVersion, caSecret, clientCert string
	positions                        map[string]Position
}

// tlsFields are the Host fields tlsSettings carry.
var tlsFields = [...]string{"min_tls_version", "client_ca_secret", "client_cert"}

func (s tlsSettings) apply(h *Host) {
	h.MinTLSVersion, h.ClientCASecret, h.ClientCert = s.minVersion, s.caSecret, s.clientCert
	for _, f := range tlsFields {
		delete(h.Positions, f)
		if pos, ok := s.positions[f]; ok {
			h.Positions[f] = pos
		}
	}
}

// emissaryHost reads an Emissary Host into a Host.
func (p *parser) emissaryHost(d *document, body *yaml.Node, crd bool, apiVersion, name string) {
	var spec emissaryHostSpec
	d.top = p.decodeFields(body, reflect.ValueOf(&spec).Elem(), "", emissaryExcept(crd))
	p.checkCommon(d, apiVersion, name)
	h := &Host{APIVersion: apiVersion, Kind: KindHost, Name: name, Insecure: InsecureRedirect, MinTLSVersion: "v1.2", Pos: nodePos(d.root)}
	h.Positions = p.emissaryPositions(d)
	e := &hostEntry{host: h, nameNode: d.nameNode, namePath: d.namePath}

	switch n, ok := d.usable("hostname"); {
	case ok && spec.Hostname != "":
		hostname, msg := normalizeHostHostname(spec.Hostname)
		if msg != "" {
			if spec.Hostname == "*" {
				msg += emissaryCatchAll
			}
			p.errorAt(n, p.path("hostname"), fmt.Sprintf("hostname %q: %s", spec.Hostname, msg))
			break
		}
		h.Hostname = hostname
		h.Positions["hostname"] = nodePos(n)
		e.hostnameNode, e.hostnamePath = n, p.path("hostname")
	case !d.top.failed["hostname"]:
		at, path := p.missingAt(d, "hostname")
		p.errorAt(at, path, `missing hostname: Emissary reads a Host without one as "*", every host, and a Host cannot cover every host; the default certificate is set by the platform (serve --tls-cert-file)`)
	}

	sl := d.structs["tlsSecret"]
	switch {
	case d.top.failed["tlsSecret"]:
	case spec.TLSSecret == nil:
		at, path := p.missingAt(d, "tlsSecret")
		msg := "missing tlsSecret: a Host serves the certificate in a kubernetes.io/tls Secret of its own namespace, named by tlsSecret: {name: ...}"
		if k, _ := lookup(body, "acmeProvider"); k != nil {
			msg += "; ACME is not supported: issue the certificate with cert-manager"
		}
		p.errorAt(at, path, msg)
	default:
		if n, ok := sl.usable("name"); ok && spec.TLSSecret.Name != "" {
			// Host.spec.tlsSecret is a Kubernetes reference: a "." is part
			// of the name, as in Emissary.
			if msg := p.secretNameProblem(spec.TLSSecret.Name); msg != "" {
				p.errorAt(n, p.path("tlsSecret.name"), fmt.Sprintf("tlsSecret.name %q: %s", spec.TLSSecret.Name, msg))
			} else {
				h.TLSSecret = spec.TLSSecret.Name
				h.Positions["tls_secret"] = nodePos(n)
			}
		}
		if n, ok := sl.usable("namespace"); ok {
			if ns := spec.TLSSecret.Namespace; ns != "" && p.opts.Namespace != "" && ns != p.opts.Namespace {
				p.errorAt(n, p.path("tlsSecret.namespace"), fmt.Sprintf("tlsSecret.namespace %q: certificates come from the Host's own namespace (%s); write the Secret's name only", ns, p.opts.Namespace))
			}
		}
	}

	if n, ok := d.structs["requestPolicy.insecure"].usable("action"); ok {
		switch action := spec.RequestPolicy.Insecure.Action; action {
		case "Redirect":
			h.Insecure = InsecureRedirect
		case "Reject":
			h.Insecure = InsecureReject
		case "Route":
			h.Insecure = InsecureRoute
		default:
			p.errorAt(n, p.path("requestPolicy.insecure.action"), oneOfMessage(strings.Join(insecureActions, " "), action))
		}
		h.Positions["insecure"] = nodePos(n)
	}

	tlsLoc, hasTLS := d.top.written("tls")
	ctxLoc, hasCtx := d.top.written("tlsContext")
	switch {
	case hasTLS && hasCtx:
		l := later(tlsLoc, ctxLoc)
		p.errorAt(l.key, p.path(l.key.Value), "set tls or tlsContext, not both (Emissary ignores a Host with both)")
	case spec.TLS != nil:
		p.emissaryTLSSettings(p.emissaryHostTLS(d, spec.TLS)).apply(h)
	case hasCtx:
		if n, ok := d.structs["tlsContext"].usable("name"); ok && spec.TLSContext.Name != "" {
			d.link = &contextLink{name: spec.TLSContext.Name, node: n, path: p.path("tlsContext.name")}
		}
	case !hasTLS:
		d.link = &contextLink{name: name + "-context"}
	}
	d.hosts = append(d.hosts, e)
}

// emissaryHostTLS gathers a Host's tls, in either spelling.
func (p *parser) emissaryHostTLS(d *document, t *emissaryHostTLS) emissaryTLS {
	sl := d.structs["tls"]
	var out emissaryTLS
	var field string
	if out.minNode, field = p.emissaryAlias(sl, "min_tls_version", "minTlsVersion"); out.minNode != nil {
		out.minVersion, out.minPath = pick(field == "minTlsVersion", t.MinTLSVersionCamel, t.MinTLSVersion), p.path(join("tls", field))
	}
	if out.caNode, field = p.emissaryAlias(sl, "ca_secret", "caSecret"); out.caNode != nil {
		out.caSecret, out.caPath = pick(field == "caSecret", t.CASecretCamel, t.CASecret), p.path(join("tls", field))
	}
	if out.certNode, field = p.emissaryAlias(sl, "cert_required", "certRequired"); out.certNode != nil {
		out.certRequired, out.certPath = isTrue(pick(field == "certRequired", t.CertRequiredCamel, t.CertRequired)), p.path(join("tls", field))
	}
	return out
}

func pick[T any](first bool, a, b T) T {
	if first {
		return a
	}
	return b
}

// emissaryAlias returns the value of whichever spelling of a field of sl
// was written, and the spelling; the camelCase one wins, as in Emissary.
func (p *parser) emissaryAlias(sl *structLoc, snake, camel string) (*yaml.Node, string) {
	sn, snakeOK := sl.usable(snake)
	cn, camelOK := sl.usable(camel)
	switch {
	case snakeOK && camelOK:
		p.warnAt(sl.fields[snake].key, p.path(join(sl.rel, snake)), fmt.Sprintf("%s is ignored: %s, also written, wins (as in Emissary)", snake, camel))
		return cn, camel
	case camelOK:
		return cn, camel
	case snakeOK:
		return sn, snake
	}
	return nil, ""
}

// emissaryTLSSettings checks TLS settings and returns them as Host fields.
// Emissary's cert_required defaults to false: with a ca_secret alone,
// client certificates are asked for and verified when sent (optional).
func (p *parser) emissaryTLSSettings(t emissaryTLS) tlsSettings {
	s := tlsSettings{minVersion: "v1.2", positions: make(map[string]Position, 3)}
	if t.minNode != nil {
		if v, msg := normalizeTLSVersion(t.minVersion); msg != "" {
			p.errorAt(t.minNode, t.minPath, fmt.Sprintf("%s %q: %s", lastField(t.minPath), t.minVersion, msg))
		} else {
			s.minVersion = v
			s.positions["min_tls_version"] = nodePos(t.minNode)
		}
	}
	if t.caNode != nil && t.caSecret != "" {
		if name, msg := p.emissarySecretName(t.caSecret, t.namespacing); msg != "" {
			p.errorAt(t.caNode, t.caPath, fmt.Sprintf("%s %q: %s", lastField(t.caPath), t.caSecret, msg))
		} else {
			s.caSecret = name
			s.positions["client_ca_secret"] = nodePos(t.caNode)
		}
	}
	switch {
	case s.caSecret != "" && t.certRequired:
		s.clientCert = ClientCertRequired
	case s.caSecret != "":
		s.clientCert = ClientCertOptional
	case t.caSecret == "" && t.certNode != nil && t.certRequired:
		p.errorAt(t.certNode, t.certPath, fmt.Sprintf("%s needs ca_secret: client certificates are verified against the CAs it holds (cacert_chain_file, a file on the gateway's disk, is never read)", lastField(t.certPath)))
	}
	if s.caSecret != "" && t.certNode != nil {
		s.positions["client_cert"] = nodePos(t.certNode)
	}
	return s
}

func lastField(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

// emissarySecretName reads the name of a Secret in a TLSContext: with
// namespacing, "name.namespace" (split at the last "."), which must be the
// Service's own namespace.
func (p *parser) emissarySecretName(s string, namespacing bool) (string, string) {
	if i := strings.LastIndexByte(s, '.'); namespacing && i >= 0 && !strings.Contains(s, "/") {
		name, ns := s[:i], s[i+1:]
		if p.opts.Namespace != "" && ns != p.opts.Namespace {
			return "", fmt.Sprintf(`certificates come from the Host's own namespace; write the Secret's name only (in a TLSContext %q is Secret %q of namespace %q; with secret_namespacing: false the "." is part of the name)`, s, name, ns)
		}
		s = name
	}
	if msg := p.secretNameProblem(s); msg != "" {
		return "", msg
	}
	return s, ""
}

// missingAt is where a missing field of the document is reported: at its
// key when it was written null or empty, else at the fields' mapping.
func (p *parser) missingAt(d *document, name string) (*yaml.Node, string) {
	if loc, ok := d.top.fields[name]; ok {
		return loc.key, p.path(name)
	}
	return d.top.node, p.path("")
}

// emissaryPositions starts a Host's positions with those of the fields
// every Emissary document has.
func (p *parser) emissaryPositions(d *document) map[string]Position {
	positions := make(map[string]Position, 8)
	for _, f := range []string{"apiVersion", "kind", "name", "namespace"} {
		if pos, ok := d.positions[f]; ok {
			positions[f] = pos
		}
	}
	return positions
}

// emissaryTLSContext reads a TLSContext into one Host per entry of its
// hosts, and reports whether the document is read: one without hosts
// configures no host (Emissary uses such a context for TLS to upstreams,
// by name), so it is left out with a warning.
func (p *parser) emissaryTLSContext(d *document, body *yaml.Node, crd bool, apiVersion, name string) bool {
	if k, v := lookup(body, "hosts"); k == nil || isNull(v) || v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		at, path := d.root, d.prefix
		if _, kindVal := lookup(d.root, "kind"); kindVal != nil {
			at, path = kindVal, d.prefix+".kind"
		}
		if k != nil {
			at, path = k, p.path("hosts")
		}
		p.warnAt(at, path, "ignored: a TLSContext without hosts configures no host; Emissary uses such a context for TLS to upstreams, named by a Mapping's tls, which Gatehouse reads as https://")
		p.hostless = append(p.hostless, name)
		return false
	}
	var spec emissaryTLSContextSpec
	d.top = p.decodeFields(body, reflect.ValueOf(&spec).Elem(), "", emissaryExcept(crd))
	p.checkCommon(d, apiVersion, name)
	namespacing := spec.SecretNamespacing == nil || *spec.SecretNamespacing

	base := Host{APIVersion: apiVersion, Kind: KindHost, Insecure: InsecureRoute, Pos: nodePos(d.root)}
	base.Positions = p.emissaryPositions(d)
	ctx := &emissaryContext{name: name}
	switch n, ok := d.usable("secret"); {
	case ok && spec.Secret != "":
		secret, msg := p.emissarySecretName(spec.Secret, namespacing)
		if msg != "" {
			p.errorAt(n, p.path("secret"), fmt.Sprintf("secret %q: %s", spec.Secret, msg))
			break
		}
		base.TLSSecret, ctx.secret = secret, secret
		base.Positions["tls_secret"] = nodePos(n)
	case !d.top.failed["secret"]:
		at, path := p.missingAt(d, "secret")
		msg := "missing secret: a TLSContext with hosts serves the certificate in a kubernetes.io/tls Secret of its own namespace, named by secret"
		if k, _ := lookup(body, "cert_chain_file"); k != nil {
			msg += " (cert_chain_file is a file on the gateway's disk, which is never read)"
		}
		p.errorAt(at, path, msg)
	}

	t := emissaryTLS{namespacing: namespacing}
	if n, ok := d.usable("min_tls_version"); ok {
		t.minNode, t.minVersion, t.minPath = n, spec.MinTLSVersion, p.path("min_tls_version")
	}
	if n, ok := d.usable("ca_secret"); ok {
		t.caNode, t.caSecret, t.caPath = n, spec.CASecret, p.path("ca_secret")
	}
	if n, ok := d.usable("cert_required"); ok {
		t.certNode, t.certRequired, t.certPath = n, isTrue(spec.CertRequired), p.path("cert_required")
	}
	ctx.settings = p.emissaryTLSSettings(t)
	ctx.settings.apply(&base)
	// A TLSContext redirects plain HTTP only when it says so.
	if n, ok := d.usable("redirect_cleartext_from"); ok {
		base.Insecure = InsecureRedirect
		base.Positions["insecure"] = nodePos(n)
	}
	d.context = ctx

	loc := d.top.fields["hosts"]
	if d.top.failed["hosts"] || loc.value == nil || loc.value.Kind != yaml.SequenceNode {
		return true
	}
	for i, item := range loc.value.Content {
		if !isStringScalar(item) {
			continue // reported while decoding
		}
		path := p.path(indexed("hosts", i))
		hostname, msg := normalizeHostHostname(item.Value)
		if msg != "" {
			if item.Value == "*" {
				msg += emissaryCatchAll
			}
			p.errorAt(item, path, fmt.Sprintf("hostname %q: %s", item.Value, msg))
			continue
		}
		h := base
		h.Name = name + ":" + hostname
		h.Hostname = hostname
		h.Positions = maps.Clone(base.Positions)
		h.Positions["hostname"] = nodePos(item)
		d.hosts = append(d.hosts, &hostEntry{host: &h, hostnameNode: item, hostnamePath: path, nameNode: item, namePath: path, derived: true})
	}
	return true
}

// linkContexts gives each Emissary Host that links to a TLSContext of the
// annotation that context's settings, in place of the Host the context
// would give its hostname, as Emissary does.
func (p *parser) linkContexts() {
	contexts := make(map[string]*document)
	for _, d := range p.docs {
		if c := d.context; c != nil && contexts[c.name] == nil {
			contexts[c.name] = d
		}
	}
	for _, d := range p.docs {
		l := d.link
		if l == nil || len(d.hosts) == 0 {
			continue
		}
		h := d.hosts[0].host
		cd := contexts[l.name]
		switch {
		case cd == nil && l.node != nil && slices.Contains(p.hostless, l.name):
			p.warnAt(l.node, l.path, fmt.Sprintf("ignored: TLSContext %q has no hosts, so Gatehouse does not read it and the Host takes no settings from it", l.name))
			continue
		case cd == nil && l.node != nil && p.complete:
			p.warnAt(l.node, l.path, fmt.Sprintf("ignored: TLSContext %q is not in this annotation (for this gateway), so the Host takes no settings from it", l.name))
			continue
		case cd == nil:
			continue
		}
		c := cd.context
		c.settings.apply(h)
		listed := false
		for _, e := range cd.hosts {
			if h.Hostname != "" && e.host.Hostname == h.Hostname {
				e.dropped, listed = true, true
			}
		}
		at, path := l.node, l.path
		if at == nil {
			at, path = d.nameNode, d.namePath
		}
		if !listed && h.Hostname != "" {
			p.warnAt(at, path, fmt.Sprintf("TLSContext %q does not list %q in its hosts, which Emissary refuses; Gatehouse takes its settings anyway", c.name, h.Hostname))
		}
		if c.secret != "" && h.TLSSecret != "" && c.secret != h.TLSSecret {
			p.warnAt(at, path, fmt.Sprintf("TLSContext %q names Secret %q, which is not served: the Host serves its tlsSecret, %q", c.name, c.secret, h.TLSSecret))
		}
	}
}
