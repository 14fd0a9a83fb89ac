package annotations

import (
	"fmt"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// An Auth document is an authentication policy that Mappings of the same
// annotation name in auth. The checks here are the native dialect's;
// emissary_auth.go turns an Emissary AuthService into the same Auth and
// shares the rules on services, header names and limits.

var (
	authType         = reflect.TypeFor[Auth]()
	jwtAuthType      = reflect.TypeFor[JWTAuth]()
	apiKeyAuthType   = reflect.TypeFor[APIKeyAuth]()
	externalAuthType = reflect.TypeFor[ExternalAuth]()
)

// Bounds on an Auth. Each entry costs work on every request it applies to
// (a header set, a header copied, a Secret watched), so they are capped
// well above what a real policy needs.
const (
	maxClaimsToHeaders = 16
	maxAPIKeySecrets   = 16
	maxAuthHeaders     = 32
	// maxAuthTimeoutMS bounds a call to an authentication service: a
	// request waits for it before anything else happens.
	maxAuthTimeoutMS = 10000
	// maxAuthBodyBytes is the most of a request body sent to an
	// authentication service, which the gateway holds in memory meanwhile.
	maxAuthBodyBytes = 65536
)

// Defaults Parse fills.
const (
	defaultConsumerClaim    = "sub"
	defaultClockSkewSeconds = 30
	defaultAuthTimeoutMS    = 500
)

// authMethods are the fields of an Auth of which exactly one is set.
var authMethods = []string{"jwt", "api_key", "external"}

// defaultAuthRequestHeaders are always sent to an external authentication
// service (Emissary's list, and the request id).
var defaultAuthRequestHeaders = []string{
	"Authorization", "Cookie", "From", "Proxy-Authorization", "User-Agent",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
}

// DefaultAuthRequestHeaders returns the request headers an external
// authentication service always receives, besides its
// AllowedRequestHeaders.
func DefaultAuthRequestHeaders() []string { return slices.Clone(defaultAuthRequestHeaders) }

// ReservedHeader reports whether an Auth may not set the request header
// name for the upstream (claims_to_headers, allowed_upstream_headers), and
// why: the gateway sets it itself, it frames the request, or it carries the
// client's credentials. Hop-by-hop headers are refused separately.
func ReservedHeader(name string) bool { return reservedHeaderReason(name) != "" }

func reservedHeaderReason(name string) string {
	lower := strings.ToLower(name)
	switch {
	case lower == "host":
		return "the gateway sends the route's host (host_rewrite changes it)"
	case lower == "content-length", lower == "transfer-encoding", lower == "connection":
		return "it frames the request, which the proxy manages"
	case lower == "forwarded", lower == "x-request-id", strings.HasPrefix(lower, "x-forwarded-"):
		return "the gateway sets it, and upstreams trust it to"
	case lower == "authorization":
		return "it carries the client's credentials"
	}
	return ""
}

// authFieldHint says where a key people bring from Emissary's AuthService,
// or write at the wrong level, belongs in the Auth type t, or returns "".
func authFieldHint(t reflect.Type, name string) string {
	switch t {
	case authType:
		switch name {
		case "auth_service", "service", "path_prefix", "failure_mode_allow", "allowed_request_headers", "allowed_authorization_headers", "include_body":
			return "; an authentication service is configured in external: {service: ...}"
		case "issuer", "audiences", "audience", "jwks_uri", "jwks_secret", "jwks":
			return "; JSON Web Tokens are configured in jwt: {issuer: ..., audiences: [...], ...}"
		case "secrets", "header", "query", "apikey", "api_keys":
			return "; API keys are configured in api_key: {secrets: [...]}"
		}
	case externalAuthType:
		switch name {
		case "auth_service":
			return ` (did you mean "service"?)`
		case "allowed_authorization_headers":
			return ` (did you mean "allowed_upstream_headers"?)`
		case "failure_mode_allow":
			return ` (did you mean "failure_mode: allow"?)`
		case "include_body":
			return ` (did you mean "include_body_bytes"?)`
		}
	case jwtAuthType:
		switch name {
		case "audience", "aud":
			return ` (did you mean "audiences"?)`
		case "iss":
			return ` (did you mean "issuer"?)`
		case "jwks", "jwks_url", "jwksUri", "remote_jwks", "jwks_uri_secret":
			return " (did you mean jwks_uri or jwks_secret?)"
		}
	}
	return ""
}

// checkAuth checks the meaning of a decoded native Auth, fills its
// defaults and records it as the document's Auth.
func (p *parser) checkAuth(d *document, a *Auth) {
	p.validateTags(d.top, a)
	p.checkCommon(d, a.APIVersion, a.Name)

	var written []fieldLoc
	for _, m := range authMethods {
		if loc, ok := d.top.written(m); ok {
			written = append(written, loc)
		}
	}
	switch {
	case len(written) > 1:
		p.errorAt(written[1].key, p.path(written[1].key.Value), fmt.Sprintf("set exactly one of jwt, api_key or external; %s is set too", written[0].key.Value))
	case len(written) == 0 && !d.top.failed["jwt"] && !d.top.failed["api_key"] && !d.top.failed["external"]:
		p.errorAt(d.top.node, p.path(""), "missing authentication method: write exactly one of jwt (JSON Web Tokens), api_key (keys from Secrets) or external (an authentication service)")
	}
	p.checkJWT(d, a.JWT)
	p.checkAPIKey(d, a.APIKey)
	p.checkExternal(d, a.External)
	fillAuthDefaults(a)
	a.Positions = d.positions
	d.auth = a
}

// fillAuthDefaults gives a its documented defaults.
func fillAuthDefaults(a *Auth) {
	if j := a.JWT; j != nil {
		if j.ConsumerClaim == "" {
			j.ConsumerClaim = defaultConsumerClaim
		}
		if j.ClockSkewSeconds == nil {
			skew := defaultClockSkewSeconds
			j.ClockSkewSeconds = &skew
		}
	}
	if k := a.APIKey; k != nil && k.Header == "" && k.Query == "" {
		k.Header = DefaultAPIKeyHeader
	}
	if e := a.External; e != nil {
		if e.TimeoutMS == nil {
			timeout := defaultAuthTimeoutMS
			e.TimeoutMS = &timeout
		}
		if e.FailureMode == "" {
			e.FailureMode = FailureModeDeny
		}
	}
}

func (p *parser) checkJWT(d *document, j *JWTAuth) {
	sl := d.structs["jwt"]
	if j == nil || sl == nil {
		return
	}
	if n, ok := sl.usable("issuer"); ok && j.Issuer != "" {
		if msg := exactTextProblem(j.Issuer); msg != "" {
			p.errorAt(n, p.path("jwt.issuer"), fmt.Sprintf("jwt.issuer %q: %s; it is compared exactly with the token's iss", j.Issuer, msg))
		}
	}
	if loc, ok := sl.written("audiences"); ok && !sl.failed["audiences"] {
		if len(j.Audiences) == 0 {
			p.errorAt(loc.value, p.path("jwt.audiences"), "must list at least one audience: a token issued for another service must not be accepted here")
		}
		p.checkDistinct(loc.value, "jwt.audiences", "audience", false, func(s string) string {
			if msg := exactTextProblem(s); msg != "" {
				return fmt.Sprintf("audience %q: %s", s, msg)
			}
			return ""
		})
	}

	secret, hasSecret := sl.written("jwks_secret")
	uri, hasURI := sl.written("jwks_uri")
	switch {
	case hasSecret && hasURI:
		l := later(secret, uri)
		p.errorAt(l.key, p.path(join("jwt", l.key.Value)), "set jwks_secret or jwks_uri, not both: the key set comes from one place")
	case !hasSecret && !hasURI && !sl.failed["jwks_secret"] && !sl.failed["jwks_uri"]:
		p.errorAt(sl.node, p.path("jwt"), "missing key set: write jwks_secret (a Secret of type gatehouse.dev/jwks in this namespace) or jwks_uri (an https:// URL)")
	}
	if n, ok := sl.usable("jwks_secret"); ok {
		if msg := p.secretRefProblem(j.JWKSSecret, "key sets come from the Auth's own namespace"); msg != "" {
			p.errorAt(n, p.path("jwt.jwks_secret"), fmt.Sprintf("jwt.jwks_secret %q: %s", j.JWKSSecret, msg))
		}
	}
	if n, ok := sl.usable("jwks_uri"); ok {
		if msg := jwksURIProblem(j.JWKSURI); msg != "" {
			p.errorAt(n, p.path("jwt.jwks_uri"), fmt.Sprintf("jwt.jwks_uri %q: %s", j.JWKSURI, msg))
		}
	}
	if n, ok := sl.usable("consumer_claim"); ok {
		if msg := exactTextProblem(j.ConsumerClaim); msg != "" {
			p.errorAt(n, p.path("jwt.consumer_claim"), fmt.Sprintf("jwt.consumer_claim %q: %s", j.ConsumerClaim, msg))
		}
	}
	if loc, ok := sl.written("claims_to_headers"); ok && !sl.failed["claims_to_headers"] && len(j.ClaimsToHeaders) > maxClaimsToHeaders {
		p.errorAt(loc.value, p.path("jwt.claims_to_headers"), fmt.Sprintf("at most %d claims; got %d", maxClaimsToHeaders, len(j.ClaimsToHeaders)))
	}
}

// exactTextProblem checks a string compared exactly with what a client
// sends (an issuer, an audience, a claim name): whitespace around it or a
// control character inside would never match.
func exactTextProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.TrimSpace(s) != s:
		return "has whitespace around it"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "contains a control character"
	}
	return ""
}

// jwksURIProblem checks where a key set is fetched from: whoever serves it
// decides which tokens the gateway accepts, so it must come over https
// from a named host.
func jwksURIProblem(s string) string {
	if strings.IndexFunc(s, isSpaceOrControl) >= 0 {
		return "must not contain whitespace or control characters"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL; write https://host/path, such as https://login.example.com/.well-known/jwks.json"
	}
	switch {
	case strings.EqualFold(u.Scheme, "http"):
		return "the key set must come over https: anyone on the path of a plain-HTTP fetch could replace the keys and sign tokens the gateway would accept"
	case !strings.EqualFold(u.Scheme, "https"):
		return "must be an https:// URL, such as https://login.example.com/.well-known/jwks.json"
	case u.Opaque != "" || u.Host == "":
		return "has no host; write https://host/path"
	case u.User != nil:
		return "must not contain user information: credentials in a URL end up in logs"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment (#...), which is never sent to the server"
	}
	if msg := hostPortProblem(u.Host); msg != "" {
		return "the host " + msg
	}
	return ""
}

func (p *parser) checkAPIKey(d *document, k *APIKeyAuth) {
	sl := d.structs["api_key"]
	if k == nil || sl == nil {
		return
	}
	header, hasHeader := sl.written("header")
	query, hasQuery := sl.written("query")
	if hasHeader && hasQuery {
		l := later(header, query)
		p.errorAt(l.key, p.path(join("api_key", l.key.Value)), "set header or query, not both: the key is read from one place")
	}
	if n, ok := sl.usable("header"); ok {
		if msg := keyHeaderProblem(k.Header); msg != "" {
			p.errorAt(n, p.path("api_key.header"), msg)
		} else {
			k.Header = textproto.CanonicalMIMEHeaderKey(k.Header)
		}
	}
	if n, ok := sl.usable("query"); ok {
		if msg := queryNameProblem(k.Query); msg != "" {
			p.errorAt(n, p.path("api_key.query"), msg)
		}
	}
	loc, ok := sl.written("secrets")
	if !ok || sl.failed["secrets"] {
		return
	}
	switch {
	case len(k.Secrets) == 0:
		p.errorAt(loc.value, p.path("api_key.secrets"), "must name at least one Secret of type gatehouse.dev/api-keys")
	case len(k.Secrets) > maxAPIKeySecrets:
		p.errorAt(loc.value, p.path("api_key.secrets"), fmt.Sprintf("at most %d Secrets; got %d", maxAPIKeySecrets, len(k.Secrets)))
	}
	p.checkDistinct(loc.value, "api_key.secrets", "Secret", false, func(s string) string {
		if msg := p.secretRefProblem(s, "keys come from the Auth's own namespace"); msg != "" {
			return fmt.Sprintf("Secret %q: %s", s, msg)
		}
		return ""
	})
}

// keyHeaderProblem checks the header an API key is read from.
func keyHeaderProblem(name string) string {
	switch {
	case strings.HasPrefix(name, ":"):
		return fmt.Sprintf("%q is an HTTP/2 pseudo-header, which cannot carry a key", name)
	case !isToken(name):
		return headerNameProblem(name)
	case isHopByHop(name):
		return fmt.Sprintf("%q is a hop-by-hop header, which the proxy manages for each connection; it cannot carry a key", name)
	case strings.EqualFold(name, "Host"):
		return "the Host header cannot carry a key"
	}
	return ""
}

func (p *parser) checkExternal(d *document, e *ExternalAuth) {
	sl := d.structs["external"]
	if e == nil || sl == nil {
		return
	}
	if n, ok := sl.usable("service"); ok && e.Service != "" {
		if _, err := parseServiceRef(e.Service, p.opts.Namespace); err != nil {
			p.errorAt(n, p.path("external.service"), fmt.Sprintf("invalid service %q: %v", e.Service, err))
		}
	}
	if n, ok := sl.usable("path_prefix"); ok {
		if msg := authPathPrefixProblem(e.PathPrefix); msg != "" {
			p.errorAt(n, p.path("external.path_prefix"), msg)
		}
	}
	if loc, ok := sl.written("allowed_request_headers"); ok && !sl.failed["allowed_request_headers"] {
		p.checkAuthHeaders(loc.value, "external.allowed_request_headers", false)
	}
	if loc, ok := sl.written("allowed_upstream_headers"); ok && !sl.failed["allowed_upstream_headers"] {
		p.checkAuthHeaders(loc.value, "external.allowed_upstream_headers", true)
	}
	if n, ok := sl.usable("consumer_header"); ok {
		if msg := headerNameProblem(e.ConsumerHeader); msg != "" {
			p.errorAt(n, p.path("external.consumer_header"), msg)
		}
	}
}

// authPathPrefixProblem checks the path prefix an authentication service
// is called with.
func authPathPrefixProblem(s string) string {
	if s == "" || strings.HasPrefix(s, "/") && strings.IndexFunc(s, isSpaceOrControl) < 0 && !strings.ContainsAny(s, "?#") {
		return ""
	}
	return fmt.Sprintf("must start with \"/\" and contain no whitespace, control characters, '?' or '#'; got %q", s)
}

// checkAuthHeaders checks a list of header names an authentication service
// receives (upstream false) or whose values it gives the upstream (upstream
// true), and returns the indexes of the names Gatehouse will not use. In
// the native dialect such a name is an error; in the Emissary dialect,
// whose AuthService may list what Gatehouse refuses, it is a warning and the
// caller drops it.
func (p *parser) checkAuthHeaders(list *yaml.Node, rel string, upstream bool) (dropped []int) {
	if list.Kind != yaml.SequenceNode {
		return nil
	}
	if len(list.Content) > maxAuthHeaders {
		p.errorAt(list, p.path(rel), fmt.Sprintf("at most %d headers; got %d", maxAuthHeaders, len(list.Content)))
	}
	seen := make(map[string]*yaml.Node, len(list.Content))
	for i, item := range list.Content {
		if !isStringScalar(item) {
			continue // reported while decoding
		}
		path := p.path(indexed(rel, i))
		name := item.Value
		if msg := headerNameProblem(name); msg != "" || strings.HasPrefix(name, ":") {
			if msg == "" {
				msg = fmt.Sprintf("%q is an HTTP/2 pseudo-header", name)
			}
			p.errorAt(item, path, msg)
			continue
		}
		id := strings.ToLower(name)
		if first, dup := seen[id]; dup {
			p.errorSee(item, first, path, fmt.Sprintf("duplicate header %q", name))
			continue
		}
		seen[id] = item
		var refused string
		switch {
		case upstream && reservedHeaderReason(name) != "":
			refused = fmt.Sprintf("header %q is reserved: %s; an authentication service cannot set it for the upstream", name, reservedHeaderReason(name))
		case isHopByHop(name) && (upstream || !strings.EqualFold(name, "Proxy-Authorization")):
			refused = fmt.Sprintf("%q is a hop-by-hop header, which the proxy manages for each connection", name)
		case !upstream && (strings.EqualFold(name, "Host") || strings.EqualFold(name, "Content-Length")):
			refused = fmt.Sprintf("header %q belongs to the call to the authentication service itself (the request's host is always sent as X-Forwarded-Host)", name)
		case !upstream && slices.ContainsFunc(defaultAuthRequestHeaders, func(h string) bool { return strings.EqualFold(h, name) }):
			p.warnAt(item, path, fmt.Sprintf("%q is always sent to the authentication service; listing it changes nothing", name))
			continue
		}
		if refused == "" {
			continue
		}
		if p.opts.Dialect == Emissary {
			p.warnAt(item, path, refused+"; Gatehouse leaves it out")
			dropped = append(dropped, i)
			continue
		}
		p.errorAt(item, path, refused)
	}
	return dropped
}

// checkDistinct checks the strings of a list: each with problem, and no
// two the same (ignoring case when fold is set).
func (p *parser) checkDistinct(list *yaml.Node, rel, what string, fold bool, problem func(string) string) {
	if list.Kind != yaml.SequenceNode {
		return
	}
	seen := make(map[string]*yaml.Node, len(list.Content))
	for i, item := range list.Content {
		if !isStringScalar(item) {
			continue // reported while decoding
		}
		path := p.path(indexed(rel, i))
		if msg := problem(item.Value); msg != "" {
			p.errorAt(item, path, msg)
			continue
		}
		id := item.Value
		if fold {
			id = strings.ToLower(id)
		}
		if first, dup := seen[id]; dup {
			p.errorSee(item, first, path, fmt.Sprintf("duplicate %s %q", what, item.Value))
			continue
		}
		seen[id] = item
	}
}

// decodeClaimsToHeaders decodes jwt.claims_to_headers: claim name → the
// request header the upstream receives the claim in.
func (p *parser) decodeClaimsToHeaders(n *yaml.Node, v reflect.Value, rel string) bool {
	claims := make(map[string]string, len(n.Content)/2)
	rule := keyRule{what: "claim", problem: func(name string) string {
		if msg := exactTextProblem(name); msg != "" {
			return fmt.Sprintf("claim name %q: %s", name, msg)
		}
		return ""
	}}
	headers := make(map[string]*yaml.Node, len(n.Content)/2)
	ok := p.decodeEntries(n, rel, rule, "request header", func(k, val *yaml.Node, erel string) bool {
		path := p.path(erel)
		if isNull(val) {
			p.errorAt(k, path, "missing value: write the request header the upstream receives the claim in")
			return false
		}
		h, good := p.decodeString(val, path)
		if !good {
			return false
		}
		if msg := claimHeaderProblem(h); msg != "" {
			p.errorAt(val, path, msg)
			return false
		}
		id := strings.ToLower(h)
		if first, dup := headers[id]; dup {
			p.errorSee(val, first, path, fmt.Sprintf("duplicate header %q: two claims cannot set one header", h))
			return false
		}
		headers[id] = val
		claims[k.Value] = h
		return true
	})
	v.Set(reflect.ValueOf(claims))
	return ok
}

// claimHeaderProblem checks a header a claim is set in.
func claimHeaderProblem(name string) string {
	if msg := headerChangeProblem(name, true, "set"); msg != "" {
		return msg
	}
	if why := reservedHeaderReason(name); why != "" {
		return fmt.Sprintf("header %q is reserved: %s; a claim cannot set it", name, why)
	}
	return ""
}

// checkAuthReferences checks each Mapping's auth against the Auths the
// annotation declares, and what require_consumer can expect of it. It
// returns the names of the Auths some Mapping uses.
func (p *parser) checkAuthReferences() map[string]bool {
	used := make(map[string]bool)
	auths := make(map[string]*Auth)
	var declared []string
	for _, d := range p.docs {
		if a := d.auth; a != nil && a.Name != "" && d.nameNode != nil {
			if _, dup := auths[a.Name]; !dup {
				auths[a.Name] = a
				declared = append(declared, a.Name)
			}
		}
	}
	for _, d := range p.docs {
		m := d.mapping
		if m == nil || m.Auth == "" {
			continue
		}
		n, ok := d.usable("auth")
		if !ok {
			continue
		}
		path := d.fieldPrefix + ".auth"
		a, found := auths[m.Auth]
		if !found {
			if !p.complete {
				continue // it may be declared in the part that was not read
			}
			p.errorAt(n, path, p.unknownAuthMessage(m.Auth, declared))
			continue
		}
		used[m.Auth] = true
		if loc, ok := d.top.written("require_consumer"); ok && m.RequireConsumer && a.External != nil && a.External.ConsumerHeader == "" && !a.Namespaced {
			p.warnAt(loc.key, d.fieldPrefix+".require_consumer", fmt.Sprintf("Auth %q sets no external.consumer_header, so it never names a consumer: every request would be answered 403", m.Auth))
		}
	}
	return used
}

// unknownAuthMessage explains an auth that names no Auth of the
// annotation: a near miss, the names declared, or an Emissary AuthService
// that was left out.
func (p *parser) unknownAuthMessage(name string, declared []string) string {
	if slices.Contains(p.unreadAuthServices, name) {
		return fmt.Sprintf("AuthService %q is not read (see its warning), so it cannot authenticate this Mapping", name)
	}
	msg := fmt.Sprintf("unknown Auth %q", name)
	switch hint := p.didYouMean(name, declared); {
	case hint != "":
		msg += hint
	case len(declared) == 0:
		msg += "; this annotation declares no Auth documents"
	case len(declared) <= 5:
		msg += "; this annotation declares " + strings.Join(declared, ", ")
	default:
		msg += fmt.Sprintf("; this annotation declares %s and %d more", strings.Join(declared[:5], ", "), len(declared)-5)
	}
	return msg
}

// checkMappingAuth checks auth, bypass_auth and require_consumer within a
// Mapping; the name in auth is checked once every document is read.
func (p *parser) checkMappingAuth(d *document, m *Mapping) {
	authLoc, hasAuth := d.top.written("auth")
	if hasAuth && !d.top.failed["auth"] && m.Auth == "" {
		p.errorAt(authLoc.value, p.path("auth"), "must name an Auth document of this annotation; leave auth out for none")
	}
	hasAuth = hasAuth && (m.Auth != "" || d.top.failed["auth"])
	bypass, hasBypass := d.top.written("bypass_auth")
	if hasAuth && hasBypass && m.BypassAuth {
		l := later(authLoc, bypass)
		p.errorAt(l.key, p.path(l.key.Value), "set auth or bypass_auth, not both: auth requires authentication, bypass_auth exempts the Mapping from it")
		return
	}
	req, hasReq := d.top.written("require_consumer")
	if !hasReq || !m.RequireConsumer || hasAuth {
		return
	}
	switch {
	case p.opts.Dialect == Native:
		p.errorAt(req.key, p.path("require_consumer"), "require_consumer needs auth: only an Auth names the consumer of a request")
	case m.BypassAuth:
		p.errorAt(req.key, p.path("require_consumer"), "require_consumer with bypass_auth: no Auth applies to this Mapping, so every request would be answered 403")
	default:
		p.warnAt(req.key, p.path("require_consumer"), "require_consumer relies on the namespace's AuthService, which never names a consumer (Emissary has none): every request would be answered 403")
	}
}
