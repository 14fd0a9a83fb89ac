package annotations

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Emissary's AuthService, read into an Auth with External set. Emissary
// sends every request of the gateway to it; Gatehouse keeps it within its
// namespace (Auth.Namespaced): it authenticates the Emissary Mappings of
// the namespace of the Service that carries it, and no others, because one
// team's annotation must not decide how another team's routes are
// authenticated. What Gatehouse does not implement is reported field by
// field, as for Mappings; what would make it authenticate less than
// Emissary did is an error, so the Service is rejected rather than served
// unauthenticated. The exceptions, as the issue decided, are an AuthService
// over gRPC and a second AuthService in one annotation: each is left out
// with a warning that says its Mappings are not authenticated by it.

// emissaryAuthServiceSpec is an AuthService as written, decoded with the
// same strictness as Gatehouse's own types. tls is read by emissaryTLSOn;
// fields Gatehouse ignores are listed below rather than declared.
type (
	emissaryAuthServiceSpec struct {
		AuthService                 string               `json:"auth_service,omitempty"`
		PathPrefix                  string               `json:"path_prefix,omitempty"`
		Proto                       string               `json:"proto,omitempty"`
		TimeoutMS                   *int                 `json:"timeout_ms,omitempty"`
		AllowedRequestHeaders       []string             `json:"allowed_request_headers,omitempty"`
		AllowedAuthorizationHeaders []string             `json:"allowed_authorization_headers,omitempty"`
		IncludeBody                 *emissaryIncludeBody `json:"include_body,omitempty"`
		FailureModeAllow            *bool                `json:"failure_mode_allow,omitempty"`
	}
	emissaryIncludeBody struct {
		MaxBytes     *int  `json:"max_bytes" validate:"required"`
		AllowPartial *bool `json:"allow_partial,omitempty"`
	}
)

var emissaryAuthServiceType = reflect.TypeFor[emissaryAuthServiceSpec]()

// emissaryAuthTimeoutMS is Emissary's default timeout_ms for an
// AuthService, which an AuthService that does not write one keeps.
const emissaryAuthTimeoutMS = 5000

// ignoredAuthServiceFields are the AuthService fields Gatehouse accepts
// with a warning.
var ignoredAuthServiceFields = []string{
	"add_auth_headers", "add_linkerd_headers", "allow_request_body", "circuit_breakers", "metadata_labels",
	"protocol_version", "stats_name", "status_on_error", "v2ExplicitTLS", "v3CircuitBreakers", "v3StatsName",
	"with_request_body",
}

// authServiceFieldHint says what ignoring an AuthService field changes.
func authServiceFieldHint(name string) string {
	switch name {
	case "status_on_error":
		return "; Gatehouse answers 403 when the authentication service cannot be reached (failure_mode_allow: true lets the request through instead)"
	case "allow_request_body", "with_request_body":
		return "; to send the body, write include_body: {max_bytes: 4096, allow_partial: true}"
	case "add_auth_headers":
		return "; the authentication service receives the request's own headers only"
	case "circuit_breakers", "v3CircuitBreakers":
		return "; each call is bounded by timeout_ms"
	}
	return ""
}

// emissaryAuthService reads an AuthService into a namespaced Auth, and
// reports whether the document is read.
func (p *parser) emissaryAuthService(d *document, body *yaml.Node, crd bool, apiVersion, name string) bool {
	_, kindVal := lookup(d.root, "kind")
	if _, v := lookup(body, "proto"); v != nil && isStringScalar(v) && strings.EqualFold(v.Value, "grpc") {
		p.warnAt(v, p.path("proto"), fmt.Sprintf("ignored: proto grpc is not supported (Gatehouse calls authentication services over HTTP), so AuthService %q is not read and authenticates no Mapping: the Mappings that rely on it are served unauthenticated; write proto: http for an HTTP authentication service", name))
		p.unreadAuthServices = append(p.unreadAuthServices, name)
		return false
	}
	if first := p.authService; first != nil {
		pos := nodePos(first.nameNode)
		p.add(Problem{Pos: nodePos(kindVal), Path: d.prefix + ".kind", Warning: true, Related: &pos,
			Message: fmt.Sprintf("ignored: this annotation already has AuthService %q, and Gatehouse reads one AuthService per annotation (Emissary balances calls across several); this one is not read", first.nameNode.Value)})
		p.unreadAuthServices = append(p.unreadAuthServices, name)
		return false
	}

	var spec emissaryAuthServiceSpec
	d.top = p.decodeFields(body, reflect.ValueOf(&spec).Elem(), "", emissaryExcept(crd, "tls"))
	p.checkCommon(d, apiVersion, name)
	e := &ExternalAuth{FailureMode: FailureModeDeny}
	a := &Auth{APIVersion: apiVersion, Kind: KindAuth, Name: name, External: e, Namespaced: true, Pos: nodePos(d.root)}
	a.Positions = p.emissaryPositions(d)

	if n, ok := d.usable("proto"); ok && spec.Proto != "http" {
		p.errorAt(n, p.path("proto"), oneOfMessage("http grpc", spec.Proto))
	}
	switch n, ok := d.usable("auth_service"); {
	case ok && spec.AuthService != "":
		if _, err := parseServiceRef(spec.AuthService, p.opts.Namespace); err != nil {
			p.errorAt(n, p.path("auth_service"), fmt.Sprintf("invalid auth_service %q: %v", spec.AuthService, err))
			break
		}
		e.Service = spec.AuthService
		a.Positions["external.service"] = nodePos(n)
	case !d.top.failed["auth_service"]:
		at, path := p.missingAt(d, "auth_service")
		p.errorAt(at, path, "missing auth_service: the authentication service, as [http://|https://]name[.namespace][:port]")
	}
	if on, k := p.emissaryTLSOn(body, "the authentication service"); on && e.Service != "" {
		e.Service = p.withTLS(k, "auth_service", e.Service)
	}
	if n, ok := d.usable("path_prefix"); ok {
		if msg := authPathPrefixProblem(spec.PathPrefix); msg != "" {
			p.errorAt(n, p.path("path_prefix"), msg)
		} else {
			e.PathPrefix = spec.PathPrefix
			a.Positions["external.path_prefix"] = nodePos(n)
		}
	}

	timeout := emissaryAuthTimeoutMS
	if n, ok := d.usable("timeout_ms"); ok {
		switch t := *spec.TimeoutMS; {
		case t < 1:
			p.errorAt(n, p.path("timeout_ms"), fmt.Sprintf("must be at least 1; got %d", t))
		case t > maxAuthTimeoutMS:
			p.errorAt(n, p.path("timeout_ms"), fmt.Sprintf("must be at most %d (10 s), which bounds every call to an authentication service in Gatehouse; got %d", maxAuthTimeoutMS, t))
		default:
			timeout = t
			a.Positions["external.timeout_ms"] = nodePos(n)
		}
	}
	e.TimeoutMS = &timeout

	e.AllowedRequestHeaders = p.emissaryAuthHeaders(d, a, "allowed_request_headers", "external.allowed_request_headers", spec.AllowedRequestHeaders, false)
	e.AllowedUpstreamHeaders = p.emissaryAuthHeaders(d, a, "allowed_authorization_headers", "external.allowed_upstream_headers", spec.AllowedAuthorizationHeaders, true)
	p.emissaryIncludeBody(d, a, spec.IncludeBody)
	if n, ok := d.usable("failure_mode_allow"); ok && isTrue(spec.FailureModeAllow) {
		e.FailureMode = FailureModeAllow
		a.Positions["external.failure_mode"] = nodePos(n)
	}

	d.auth = a
	p.authService = d
	return true
}

// authServiceScope warns, on an AuthService that is read, that it is
// Gatehouse's scope, not Emissary's: a migration that relied on one
// AuthService for the whole gateway leaves other namespaces open.
func (p *parser) authServiceScope(d *document) {
	where := "namespace " + p.opts.Namespace
	if p.opts.Namespace == "" {
		where = "this Service's namespace"
	}
	_, kindVal := lookup(d.root, "kind")
	p.warnAt(kindVal, d.prefix+".kind", fmt.Sprintf("AuthService %q authenticates the Emissary Mappings of %s that do not set bypass_auth, and no others: Emissary applies an AuthService to every Mapping of the gateway, so Mappings of other namespaces are not authenticated by it", d.auth.Name, where))
}

// emissaryAuthHeaders checks one of an AuthService's header lists and
// returns the names Gatehouse uses, recording their positions under to.
func (p *parser) emissaryAuthHeaders(d *document, a *Auth, from, to string, names []string, upstream bool) []string {
	loc, ok := d.top.written(from)
	if !ok || d.top.failed[from] {
		return nil
	}
	dropped := p.checkAuthHeaders(loc.value, from, upstream)
	a.Positions[to] = nodePos(loc.value)
	var kept []string
	for i, name := range names {
		if slices.Contains(dropped, i) {
			continue
		}
		a.Positions[indexed(to, len(kept))] = nodePos(loc.value.Content[i])
		kept = append(kept, name)
	}
	return kept
}

// emissaryIncludeBody reads include_body: max_bytes is how much of the
// body is sent. Emissary answers 413 to a longer body unless allow_partial
// is true; Gatehouse always sends the first max_bytes and lets the request
// go on.
func (p *parser) emissaryIncludeBody(d *document, a *Auth, ib *emissaryIncludeBody) {
	sl := d.structs["include_body"]
	if ib == nil || sl == nil {
		return
	}
	n, ok := sl.usable("max_bytes")
	if !ok {
		return // a missing max_bytes was reported by its validate tag
	}
	switch v := *ib.MaxBytes; {
	case v < 0:
		p.errorAt(n, p.path("include_body.max_bytes"), fmt.Sprintf("must not be negative; got %d", v))
		return
	case v > maxAuthBodyBytes:
		p.errorAt(n, p.path("include_body.max_bytes"), fmt.Sprintf("must be at most %d (64 KiB), the most of a body Gatehouse holds for an authentication service; got %d", maxAuthBodyBytes, v))
		return
	default:
		a.External.IncludeBodyBytes = v
		a.Positions["external.include_body_bytes"] = nodePos(n)
	}
	if isTrue(ib.AllowPartial) || *ib.MaxBytes == 0 {
		return
	}
	at, path := d.top.fields["include_body"].key, p.path("include_body")
	if loc, ok := sl.written("allow_partial"); ok {
		at, path = loc.value, p.path("include_body.allow_partial")
	}
	p.warnAt(at, path, "allow_partial is false (Emissary's default), with which Emissary answers 413 to a longer body; Gatehouse sends the first max_bytes of it to the authentication service and lets the request go on")
}
