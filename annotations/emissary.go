package annotations

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The Emissary dialect reads getambassador.io/config annotations so that a
// cluster can move from Emissary without rewriting them: what Emissary
// accepts parses here, what Emissary silently drops is reported as a
// warning, and what would route differently or break Envoy is an error.

// EmissaryKey is the Service annotation Emissary-ingress reads; Parse reads
// its value with Options.Dialect set to Emissary.
const EmissaryKey = "getambassador.io/config"

// automaticID in a document's ambassador_id makes every gateway take it.
const automaticID = "_automatic_"

// kindTLSContext is Emissary's TLSContext, which the Emissary dialect reads
// into Hosts.
const kindTLSContext = "TLSContext"

// kindAuthService is Emissary's AuthService, which the Emissary dialect
// reads into an Auth.
const kindAuthService = "AuthService"

// emissaryKinds are the kinds the Emissary dialect knows: the first
// emissaryReadKinds are read (Mapping into Mappings, Host and TLSContext
// into Hosts, AuthService into Auths), the rest are ignored with a
// warning.
var emissaryKindList = []string{
	KindMapping, KindHost, kindTLSContext, kindAuthService,
	KindRateLimit,
	"Module", "RateLimitService", "TracingService", "LogService",
	"Listener", "TCPMapping",
	"KubernetesServiceResolver", "KubernetesEndpointResolver", "ConsulResolver", "DevPortal",
}

const emissaryReadKinds = 4

// emissaryReadChoice names the kinds the Emissary dialect reads, for messages.
const emissaryReadChoice = "Mapping, Host, TLSContext and AuthService"

func emissaryKinds() []string { return emissaryKindList }

// ignoredMappingFields are Emissary Mapping fields Gatehouse does not
// implement. The Emissary dialect accepts them with a warning (except tls,
// which it folds into the service); the native dialect rejects them, saying
// where they come from.
var ignoredMappingFields = []string{
	"add_linkerd_headers", "auto_host_rewrite", "auth_context_extensions",
	"bypass_error_response_overrides", "error_response_overrides", "cluster_idle_timeout_ms",
	"cluster_max_connection_lifetime_ms", "cluster_tag", "dns_type", "docs", "enable_ipv4",
	"enable_ipv6", "envoy_override", "health_checks", "keepalive", "modules",
	"outlier_detection", "regex_redirect", "resolver", "respect_dns_ttl",
	"stats_name", "tls", "v2BoolHeaders", "v2BoolQueryParameters", "v2ExplicitTLS",
	"metadata_labels",
}

var (
	mappingType         = reflect.TypeFor[Mapping]()
	retryPolicyType     = reflect.TypeFor[RetryPolicy]()
	addedHeaderType     = reflect.TypeFor[AddedHeader]()
	genericKeyLabelType = reflect.TypeFor[genericKeyLabel]()
)

// ignoredByGatehouse reports whether name is a field Emissary has on the
// type that t stands for and Gatehouse does not implement.
func ignoredByGatehouse(t reflect.Type, name string) bool {
	switch t {
	case mappingType:
		return slices.Contains(ignoredMappingFields, name)
	case emissaryHostSpecType:
		return slices.Contains(ignoredHostFields, name)
	case emissaryHostTLSType:
		return slices.Contains(ignoredHostTLSFields, name) || refusedEmissaryField(t, name) != ""
	case emissaryTLSContextType:
		return slices.Contains(ignoredTLSContextFields, name) || refusedEmissaryField(t, name) != ""
	case emissaryAuthServiceType:
		return slices.Contains(ignoredAuthServiceFields, name)
	case emissaryInsecureType:
		return name == "additionalPort"
	case retryPolicyType:
		return name == "retry_back_off"
	case corsType:
		return name == "v2CommaSeparatedOrigins"
	case addedHeaderType:
		return name == "v2Representation"
	case genericKeyLabelType:
		return name == "v2Shorthand"
	}
	return false
}

// emissaryFieldHint says what to write instead of an ignored field of the
// type t stands for, or what ignoring it changes.
func emissaryFieldHint(t reflect.Type, name string) string {
	switch {
	case t == mappingType && name == "auto_host_rewrite":
		return "; the upstream receives the client's Host header (set host_rewrite to change it)"
	case t == mappingType && name == "auth_context_extensions":
		return "; the authentication service receives the request's headers only"
	case t == emissaryAuthServiceType:
		return authServiceFieldHint(name)
	case t == emissaryHostSpecType && name == "acmeProvider":
		return "; ACME is not supported: issue certificates with cert-manager and name the Secret in tlsSecret"
	case t == emissaryHostSpecType && (name == "selector" || name == "mappingSelector"):
		return "; a Mapping's host or hostname decides which requests it serves, not labels"
	case t == emissaryInsecureType:
		return "; plain HTTP is answered on the gateway's own HTTP port"
	case strings.HasSuffix(name, "_file") || strings.HasSuffix(name, "File"):
		return "; files on the gateway's disk are never read: certificates come from Secrets of the Host's namespace"
	case t == emissaryHostTLSType && (name == "redirect_cleartext_from" || name == "redirectCleartextFrom"):
		return "; requestPolicy.insecure.action says what plain HTTP gets"
	case t == emissaryTLSContextType && name == "sni":
		return "; sni names the upstream in TLS Emissary originates"
	}
	return ""
}

// refusedEmissaryField says why an Emissary field is an error rather than
// ignored, or returns "": ignoring it would accept what the annotation
// refuses.
func refusedEmissaryField(t reflect.Type, name string) string {
	if t != emissaryHostTLSType && t != emissaryTLSContextType {
		return ""
	}
	switch name {
	case "crl_secret", "crlSecret", "crl_file", "crlFile":
		return fmt.Sprintf("%s is not supported: Gatehouse does not check certificate revocation lists, so it would accept the client certificates this one revokes; remove %s to accept them knowingly", name, name)
	}
	return ""
}

// emissaryVersion returns the version part of an Emissary apiVersion
// (ambassador/vN means getambassador.io/vN), or false.
func emissaryVersion(apiVersion string) (string, bool) {
	version, ok := strings.CutPrefix(apiVersion, "getambassador.io/")
	if !ok {
		version, ok = strings.CutPrefix(apiVersion, "ambassador/")
	}
	switch version {
	case "v0", "v1", "v2", "v3alpha1":
		return version, ok
	}
	return "", false
}

// emissaryDocument reads one document of a getambassador.io/config
// annotation, flat or CRD-shaped.
func (p *parser) emissaryDocument(d *document) {
	start := len(p.problems)
	root := d.root
	_, meta := lookup(root, "metadata")
	specKey, spec := lookup(root, "spec")
	crd := meta != nil || specKey != nil
	body := root
	if crd {
		d.fieldPrefix = d.prefix + ".spec"
		d.namePath = d.prefix + ".metadata.name"
		body = nil
		if spec != nil && spec.Kind == yaml.MappingNode {
			body = spec
		}
	}

	// A document for another gateway is none of this one's business, so
	// ambassador_id is read before anything is checked.
	ids, ok := p.emissaryIDs(body)
	if !ok || !p.selected(ids) {
		return
	}
	if !p.emissaryKind(d) {
		return
	}
	if crd && body == nil {
		switch {
		case specKey == nil:
			p.errorAt(root, d.prefix, `missing required field "spec" (a document with metadata is CRD-shaped: its fields belong in spec)`)
		case isNull(spec):
			p.errorAt(specKey, d.prefix+".spec", `missing value for required field "spec"`)
		default:
			p.errorAt(spec, d.prefix+".spec", "expected a mapping of fields, got "+describe(spec))
		}
		return
	}

	if _, kindVal := lookup(root, "kind"); kindVal != nil {
		p.record("kind", kindVal)
	}
	apiVersion := p.emissaryAPIVersion(d)
	container := root
	if crd {
		p.emissaryRoot(d)
		if container = p.emissaryMetadata(d, meta); container == nil {
			return
		}
	}
	name, ok := p.emissaryName(d, container)
	if !ok {
		return
	}
	p.emissaryNamespace(d, container)

	mark := len(p.problems)
	switch d.kind {
	case KindMapping:
		p.emissaryMapping(d, body, crd, ids, apiVersion, name)
	case KindHost:
		p.emissaryHost(d, body, crd, apiVersion, name)
	case kindTLSContext:
		if !p.emissaryTLSContext(d, body, crd, apiVersion, name) {
			return
		}
	case kindAuthService:
		if !p.emissaryAuthService(d, body, crd, apiVersion, name) {
			return
		}
		if !p.problems[start:].HasErrors() {
			p.authServiceScope(d)
		}
	}
	if (d.kind == KindHost || d.kind == kindTLSContext) && p.problems[mark:].HasErrors() {
		// An Emissary Host or TLSContext that Gatehouse cannot serve as
		// written (ACME, the catch-all "*", a Secret of another
		// namespace…) is left out with its reasons as warnings: a
		// Service moving from Emissary keeps its routes, and no
		// certificate is served that was not meant. An AuthService
		// with errors stays an error: leaving it out would serve its
		// namespace's Mappings unauthenticated.
		for i := mark; i < len(p.problems); i++ {
			if !p.problems[i].Warning {
				p.problems[i].Warning = true
				p.problems[i].Message += "; this " + d.kind + " is not read"
			}
		}
		return
	}
	p.docs = append(p.docs, d)
}

// emissaryExcept is what decodeFields leaves to emissaryDocument, plus the
// extra keys a kind reads itself. In a CRD-shaped document the keys that
// belong elsewhere are reported as such.
func emissaryExcept(crd bool, extra ...string) notHere {
	except := notHere{{"apiVersion", ""}, {"kind", ""}, {"name", ""}, {"namespace", ""}, {"ambassador_id", ""}}
	if crd {
		except = notHere{
			{"apiVersion", "apiVersion belongs at the top level, next to kind"},
			{"kind", "kind belongs at the top level, next to apiVersion"},
			{"name", "name belongs in metadata"},
			{"namespace", "namespace belongs in metadata"},
			{"ambassador_id", ""},
		}
	}
	for _, name := range extra {
		except = append(except, struct{ name, reason string }{name, ""})
	}
	return except
}

// emissaryMapping reads the fields of an Emissary Mapping.
func (p *parser) emissaryMapping(d *document, body *yaml.Node, crd bool, ids []string, apiVersion, name string) {
	m := &Mapping{Pos: nodePos(d.root), Kind: KindMapping, AmbassadorID: ids, APIVersion: apiVersion, Name: name}
	// rate_limits and tls mean something else in Emissary than in
	// Gatehouse, or nothing in Gatehouse's Mapping: they are read below.
	d.mapping = m
	d.top = p.decodeFields(body, reflect.ValueOf(m).Elem(), "", emissaryExcept(crd, "rate_limits", "tls"))
	p.emissaryRateLimits(body)
	p.emissaryTLS(d, m, body)
	p.checkMapping(d, m)
}

// emissaryRateLimits warns about rate_limits: in Emissary it is ambassador/v0's
// list of rate-limit descriptors, not a list of RateLimit names.
func (p *parser) emissaryRateLimits(body *yaml.Node) {
	k, v := lookup(body, "rate_limits")
	if k == nil || isNull(v) {
		return
	}
	p.warnAt(k, p.path("rate_limits"), "ignored: rate_limits is Emissary v0's rate-limit descriptors, which Emissary converts to labels for its external rate-limit service; Gatehouse does not call such a service (declare RateLimit documents in the "+Key+" annotation)")
}

// emissaryTLS reads a Mapping's tls, with which Emissary originates TLS to
// the upstream: true, or the name of a TLSContext to take settings from.
// Either gives the service the https:// scheme, so that its port defaults
// to 443 as in Emissary. Emissary lets tls win over an explicit http://
// too (reporting an error), and so does Gatehouse, with a warning.
func (p *parser) emissaryTLS(d *document, m *Mapping, body *yaml.Node) {
	on, k := p.emissaryTLSOn(body, "the upstream")
	if !on || m.Service == "" || d.top.failed["service"] {
		return
	}
	if isTrue(m.HostRedirect) {
		p.warnAt(k, p.path("tls"), "tls has no effect on a host_redirect Mapping, whose service is where clients are redirected")
		return
	}
	// A bad service is reported by checkService as it was written.
	if _, err := parseServiceRef(m.Service, p.opts.Namespace); err != nil {
		return
	}
	m.Service = p.withTLS(k, "service", m.Service)
}

// emissaryTLSOn reads tls from the document's fields and reports whether
// it asks for TLS to target, and the key it was written at.
func (p *parser) emissaryTLSOn(body *yaml.Node, target string) (bool, *yaml.Node) {
	k, v := lookup(body, "tls")
	if k == nil || isNull(v) {
		return false, nil
	}
	const rel = "tls"
	path := p.path(rel)
	p.record(rel, v)
	_, isBool := plainBool(v)
	_, isYAML11 := yaml11Bool(v)
	var on bool
	switch {
	case isBool || isYAML11:
		on, _ = p.decodeBool(v, path)
	case isStringScalar(v) && v.Value != "":
		p.warnAt(k, path, "ignored: TLS contexts are not implemented; "+target+" is reached with https:// and default verification")
		on = true
	case isStringScalar(v):
		// Emissary takes an empty name as no context.
	default:
		p.errorAt(v, path, "expected true, false or the name of a TLSContext, got "+describe(v))
	}
	return on, k
}

// withTLS gives a valid service reference, written at field, the https://
// scheme that tls (written at k) asks for.
func (p *parser) withTLS(k *yaml.Node, field, service string) string {
	switch scheme, rest, ok := strings.Cut(service, "://"); {
	case !ok:
		return "https://" + service
	case strings.EqualFold(scheme, "http"):
		p.warnAt(k, p.path("tls"), "the "+field+" says http://, but tls makes Emissary originate TLS anyway (and report an error), and so does Gatehouse; write https:// or remove tls")
		return "https://" + rest
	}
	return service
}

// emissaryIDs reads ambassador_id from the document's fields: a string or
// a list of strings. It reports false when the value is malformed.
func (p *parser) emissaryIDs(body *yaml.Node) ([]string, bool) {
	if body == nil {
		return nil, true
	}
	_, n := lookup(body, "ambassador_id")
	if n == nil || isNull(n) {
		return nil, true
	}
	const rel = "ambassador_id"
	if isStringScalar(n) {
		p.record(rel, n)
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorAt(n, p.path(rel), "expected a string or a list of strings, got "+describe(n))
		return nil, false
	}
	ids := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		if !isStringScalar(item) {
			p.errorAt(item, p.path(indexed(rel, i)), "expected a string, got "+describe(item))
			return nil, false
		}
		ids = append(ids, item.Value)
		p.record(indexed(rel, i), item)
	}
	p.record(rel, n)
	return ids, true
}

// selected reports whether this gateway takes a document with these ids.
// No ids (or an empty list) means ["default"], as in Emissary.
func (p *parser) selected(ids []string) bool {
	want := p.opts.AmbassadorID
	if want == "" {
		want = "default"
	}
	if len(ids) == 0 {
		return want == "default"
	}
	return slices.Contains(ids, want) || slices.Contains(ids, automaticID)
}

// emissaryKind checks kind and reports whether the document is of a kind
// to read; other known kinds are ignored with a warning.
func (p *parser) emissaryKind(d *document) bool {
	kindKey, kindVal := lookup(d.root, "kind")
	switch {
	case kindKey == nil:
		p.errorAt(d.root, d.prefix, `missing required field "kind" (such as Mapping)`)
		return false
	case isNull(kindVal):
		p.errorAt(kindKey, d.prefix+".kind", `missing value for required field "kind" (such as Mapping)`)
		return false
	case !isStringScalar(kindVal):
		p.errorAt(kindVal, d.prefix+".kind", "expected a string (such as Mapping), got "+describe(kindVal))
		return false
	case d.kind == "":
		// Emissary and Edge Stack have kinds this list lacks (FilterPolicy,
		// WebApplicationFirewall, ...), and more come with new releases;
		// none of them is a Mapping, so none can change routing here.
		p.warnAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q is ignored by Gatehouse, which reads %s documents", kindVal.Value, emissaryReadChoice))
		return false
	case d.kind != kindVal.Value && slices.Contains(emissaryKindList[:emissaryReadKinds], d.kind):
		// A near miss of a kind Gatehouse reads is read as that kind, so
		// the rest of the document is checked in the same pass.
		p.errorAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q (did you mean %q?)", kindVal.Value, d.kind))
		return true
	case d.kind != kindVal.Value:
		p.warnAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q (did you mean %q?) is ignored by Gatehouse, which reads %s documents", kindVal.Value, d.kind, emissaryReadChoice))
		return false
	case slices.Contains(emissaryKindList[:emissaryReadKinds], d.kind):
		return true
	case d.kind == KindRateLimit:
		p.warnAt(kindVal, d.prefix+".kind", "RateLimit is ignored here: it is an Edge Stack CRD that Emissary never reads from annotations; declare RateLimit documents in the "+Key+" annotation")
		return false
	}
	p.warnAt(kindVal, d.prefix+".kind", fmt.Sprintf("kind %s is ignored by Gatehouse", d.kind))
	return false
}

// emissaryAPIVersion checks apiVersion and returns it as written.
func (p *parser) emissaryAPIVersion(d *document) string {
	k, v := lookup(d.root, "apiVersion")
	path := d.prefix + ".apiVersion"
	switch {
	case k == nil:
		p.warnAt(d.root, d.prefix, "missing apiVersion; Emissary requires one, such as getambassador.io/v3alpha1")
		return ""
	case isNull(v):
		p.warnAt(k, path, "missing apiVersion; Emissary requires one, such as getambassador.io/v3alpha1")
		return ""
	case !isStringScalar(v):
		p.errorAt(v, path, "expected a string, got "+describe(v))
		return ""
	}
	p.record("apiVersion", v)
	version, ok := emissaryVersion(v.Value)
	switch {
	case !ok:
		msg := fmt.Sprintf("unsupported apiVersion %q; Emissary documents use getambassador.io/v3alpha1, v2, v1 or v0 (ambassador/vN means getambassador.io/vN)", v.Value)
		if v.Value == APIVersion {
			msg += "; " + APIVersion + " documents belong in the " + Key + " annotation"
		}
		p.errorAt(v, path, msg)
	case version == "v0":
		p.warnAt(v, path, "apiVersion v0 is deprecated (current Emissary rejects it)")
	}
	return v.Value
}

// emissaryRoot checks the top-level keys of a CRD-shaped document.
func (p *parser) emissaryRoot(d *document) {
	known := []string{"apiVersion", "kind", "metadata", "spec"}
	seen := make(map[string]*yaml.Node, 4)
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		k := d.root.Content[i]
		if !p.fieldKey(k, d.prefix, seen) || slices.Contains(known, k.Value) {
			continue
		}
		p.warnAt(k, d.prefix+"."+k.Value, fmt.Sprintf("unknown field %q%s; Emissary drops unknown fields, and so does Gatehouse", k.Value, p.didYouMean(k.Value, known)))
	}
}

// emissaryMetadata checks metadata and returns it, or nil when it is not a
// mapping.
func (p *parser) emissaryMetadata(d *document, meta *yaml.Node) *yaml.Node {
	path := d.prefix + ".metadata"
	switch {
	case meta == nil:
		p.errorAt(d.root, d.prefix, `missing required field "metadata" (a document with spec is CRD-shaped: its name belongs in metadata)`)
		return nil
	case meta.Kind != yaml.MappingNode:
		p.errorAt(meta, path, "expected a mapping (name, namespace), got "+describe(meta))
		return nil
	}
	known := []string{"name", "namespace", "labels", "annotations"}
	seen := make(map[string]*yaml.Node, len(meta.Content)/2)
	for i := 0; i+1 < len(meta.Content); i += 2 {
		k, v := meta.Content[i], meta.Content[i+1]
		if !p.fieldKey(k, path, seen) {
			continue
		}
		switch k.Value {
		case "name", "namespace":
		case "labels", "annotations":
			if !isNull(v) && v.Kind != yaml.MappingNode {
				p.errorAt(v, path+"."+k.Value, "expected a mapping, got "+describe(v))
			}
		default:
			p.warnAt(k, path+"."+k.Value, fmt.Sprintf("unknown field %q%s; Gatehouse reads only name and namespace from metadata", k.Value, p.didYouMean(k.Value, known)))
		}
	}
	return meta
}

// emissaryName reads the name from container (the document, or its
// metadata) and reports whether the document is to be read. Emissary drops
// a document without a name.
func (p *parser) emissaryName(d *document, container *yaml.Node) (string, bool) {
	k, v := lookup(container, "name")
	if v == nil || isNull(v) || isStringScalar(v) && v.Value == "" {
		at := container
		if k != nil {
			at = k
		}
		p.warnAt(at, d.prefix, "document has no name; Emissary drops it, and so does Gatehouse")
		return "", false
	}
	if !isStringScalar(v) {
		p.errorAt(v, d.namePath, "expected a string, got "+describe(v))
		return "", false
	}
	d.nameNode = v
	p.record("name", v)
	return v.Value, true
}

// emissaryNamespace checks a namespace written in the document: Emissary
// would create the Mapping (or Host) there, but an annotation must never
// create routes, or serve certificates, in another namespace.
func (p *parser) emissaryNamespace(d *document, container *yaml.Node) {
	_, v := lookup(container, "namespace")
	if v == nil || isNull(v) {
		return
	}
	path := d.prefix + ".namespace"
	if container != d.root {
		path = d.prefix + ".metadata.namespace"
	}
	if !isStringScalar(v) {
		p.errorAt(v, path, "expected a string, got "+describe(v))
		return
	}
	p.record("namespace", v)
	if p.opts.Namespace != "" && v.Value != p.opts.Namespace {
		p.errorAt(v, path, fmt.Sprintf("%s in Service namespace %s cannot declare namespace %s", article(d.kind), p.opts.Namespace, v.Value))
	}
}

// emissaryMappingDefaults maps Emissary spellings onto Gatehouse's before
// validation: idle_timeout_ms: 0 is Envoy's "no idle timeout", which is what
// nil means here.
func (p *parser) emissaryMappingDefaults(m *Mapping) {
	if m.IdleTimeoutMS != nil && *m.IdleTimeoutMS == 0 {
		m.IdleTimeoutMS = nil
	}
}

// emissaryHostPort drops a port from host, with a warning: Emissary matched
// it against the :authority exactly, Gatehouse ignores the request's port.
func (p *parser) emissaryHostPort(d *document, m *Mapping) {
	h, port, ok := strings.Cut(m.Host, ":")
	if !ok || strings.Contains(port, ":") || strings.Contains(port, "/") {
		return
	}
	if _, err := parsePort(port); err != nil {
		return
	}
	p.warnAt(d.top.fields["host"].value, p.path("host"), fmt.Sprintf("the port is ignored: Gatehouse matches the Host header without its port, so this matches %s on any port", h))
	m.Host = h
}
