// Package annotations is the Gatehouse annotation language: the wire types a team
// writes in a Service's gatehouse.dev/config annotation, and the one strict parser
// that the gateway, the admission webhook and the CLI all share.
//
// The parser turns YAML into typed Go values and nothing else: no templating, no
// rendering into another configuration language. Every problem it finds carries the
// line and column inside the annotation string and the field path, so callers can
// translate it into a position in the manifest file or an admission message.
//
// The same parser reads Emissary's getambassador.io/config annotations when
// Options.Dialect is Emissary, so that a cluster can move from Emissary
// without rewriting them.
package annotations

// Key is the Service annotation that carries Gatehouse documents.
const Key = "gatehouse.dev/config"

// APIVersion is the only apiVersion native documents may declare; it is also the
// default when a document omits apiVersion.
const APIVersion = "gatehouse.dev/v1"

// Kinds of documents the native language knows.
const (
	KindMapping   = "Mapping"
	KindRateLimit = "RateLimit"
	KindHost      = "Host"
	KindAuth      = "Auth"
)

// Config is everything one annotation declares. Documents keep the order in
// which they were written.
type Config struct {
	Mappings   []Mapping
	RateLimits []RateLimit
	// Hosts are in document order; a TLSContext of the Emissary dialect
	// gives one Host per entry of its hosts, in that order.
	Hosts []Host
	// Auths are in document order; in the Emissary dialect an AuthService
	// gives one (Namespaced).
	Auths []Auth
}

// Position is a 1-based line and column inside the annotation string.
type Position struct {
	Line   int
	Column int
}

// Mapping routes requests matching a host, path and conditions to a Service.
// Field names follow Emissary's Mapping so its users already know them.
type Mapping struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind" validate:"required"`
	Name       string `json:"name" validate:"required"`

	// Prefix is a plain string prefix of the request path (not segment-aware, as
	// in Emissary: /foo matches /foobar), an exact path with PrefixExact, or an
	// RE2 regular expression matched against the whole path with PrefixRegex.
	Prefix      string `json:"prefix" validate:"required"`
	PrefixExact bool   `json:"prefix_exact,omitempty"`
	PrefixRegex bool   `json:"prefix_regex,omitempty"`
	// CaseSensitive nil means true. false makes the path match (prefix,
	// exact or regex) ignore ASCII case.
	CaseSensitive *bool `json:"case_sensitive,omitempty"`

	// Service is [http://|https://]name[.namespace][:port]. With HostRedirect
	// it is instead the host[:port] requests are redirected to. In the
	// Emissary dialect, Parse folds Emissary's tls field into it: tls: true
	// (or a TLSContext name) makes it https://.
	Service string `json:"service" validate:"required"`

	// UpstreamTLS says how TLS to an https:// service is verified and
	// authenticated (Gatehouse's own; Emissary takes it from a TLSContext).
	UpstreamTLS *UpstreamTLS `json:"upstream_tls,omitempty"`

	// Rewrite replaces the matched prefix. Nil means Emissary's default "/";
	// a pointer to "" disables rewriting.
	Rewrite *string `json:"rewrite,omitempty"`
	// RegexRewrite rewrites the path with an RE2 pattern and substitution;
	// it wins over Rewrite. The substitution is in Go's regexp.Expand syntax
	// (${1}, ${name}, $$) in the returned Config: the native dialect takes
	// it as written, and the Emissary dialect translates Envoy's (\1, \\,
	// a literal $), which is what Emissary users write.
	RegexRewrite *RegexRewrite `json:"regex_rewrite,omitempty"`
	// HostRewrite replaces the Host header sent upstream.
	HostRewrite string `json:"host_rewrite,omitempty"`

	// Host is an exact host or a "*." wildcard (or, with HostRegex, an RE2
	// expression matched against the whole host); a :port in the request's
	// Host header is ignored when matching. Hostname is the Emissary v3 form:
	// a DNS glob ("*", "*.example.com", "example.com"). Set one or the other
	// (in the Emissary dialect Hostname wins and Host is cleared). Parse
	// lower-cases Host and Hostname, except a HostRegex, which is kept as
	// written: match it against the lower-cased request host.
	Host      string `json:"host,omitempty"`
	HostRegex bool   `json:"host_regex,omitempty"`
	Hostname  string `json:"hostname,omitempty"`

	// Method is an HTTP method (upper-cased by Parse), or with MethodRegex an
	// RE2 expression matched against the whole method (kept as written).
	Method      string `json:"method,omitempty"`
	MethodRegex bool   `json:"method_regex,omitempty"`

	Headers              map[string]HeaderValue `json:"headers,omitempty"`
	RegexHeaders         map[string]string      `json:"regex_headers,omitempty"`
	QueryParameters      map[string]HeaderValue `json:"query_parameters,omitempty"`
	RegexQueryParameters map[string]string      `json:"regex_query_parameters,omitempty"`

	Precedence int `json:"precedence,omitempty"`
	// Weight is the percentage of traffic this Mapping takes among Mappings of
	// the same namespace with identical match criteria (a canary group). Nil
	// means an even share of what explicit weights leave.
	Weight *int `json:"weight,omitempty" validate:"omitempty,min=0,max=100"`

	AddRequestHeaders     map[string]AddedHeader `json:"add_request_headers,omitempty"`
	AddResponseHeaders    map[string]AddedHeader `json:"add_response_headers,omitempty"`
	RemoveRequestHeaders  []string               `json:"remove_request_headers,omitempty"`
	RemoveResponseHeaders []string               `json:"remove_response_headers,omitempty"`

	// TimeoutMS bounds the whole upstream exchange. Nil means the default
	// (3000); 0 means no timeout.
	TimeoutMS *int `json:"timeout_ms,omitempty" validate:"omitempty,min=0"`
	// ConnectTimeoutMS bounds connecting to an endpoint; nil means 3000.
	ConnectTimeoutMS *int `json:"connect_timeout_ms,omitempty" validate:"omitempty,min=1"`
	// IdleTimeoutMS ends an exchange when no bytes move for this long; nil
	// means no idle limit beyond TimeoutMS.
	IdleTimeoutMS *int `json:"idle_timeout_ms,omitempty" validate:"omitempty,min=1"`
	// MaxRequestBodyBytes bounds a request body: a bigger one is answered
	// 413 (before the upstream is contacted when Content-Length says so).
	// Nil means the gateway's default (--max-request-body-bytes); 0 means
	// no limit for this Mapping. Gatehouse's own: Emissary has no such field.
	MaxRequestBodyBytes *int `json:"max_request_body_bytes,omitempty" validate:"omitempty,min=0"`

	RetryPolicy *RetryPolicy `json:"retry_policy,omitempty"`
	// Priority picks which circuit_breakers entry applies to this Mapping
	// (Emissary's routing priority; Gatehouse has no other use for it).
	// "" means default.
	Priority        string           `json:"priority,omitempty" validate:"omitempty,oneof=default high"`
	CircuitBreakers []CircuitBreaker `json:"circuit_breakers,omitempty"`
	LoadBalancer    *LoadBalancer    `json:"load_balancer,omitempty"`
	CORS            *CORS            `json:"cors,omitempty"`

	// AllowUpgrade lists protocols (case-insensitive, e.g. websocket) a
	// client may switch to with Connection: upgrade; Parse lower-cases them.
	// UseWebsocket is the deprecated spelling of [websocket]: Parse warns and
	// adds "websocket" to AllowUpgrade.
	AllowUpgrade []string `json:"allow_upgrade,omitempty"`
	UseWebsocket *bool    `json:"use_websocket,omitempty"`
	// GRPC speaks HTTP/2 to the upstream (cleartext for service: name,
	// TLS for https://), passes trailers, streams both ways, honours
	// grpc-timeout, and answers the gateway's own refusals with gRPC
	// statuses. HTTP2 is the same transport for any HTTP/2 upstream.
	// GRPCWeb translates gRPC-Web requests from browsers (Gatehouse's own;
	// Emissary enables it gateway-wide).
	GRPC    *bool `json:"grpc,omitempty"`
	HTTP2   *bool `json:"http2,omitempty"`
	GRPCWeb *bool `json:"grpc_web,omitempty"`
	// Shadow mirrors requests to Service and discards its answers. Not
	// enforced yet: a shadow Mapping must not take traffic as a normal route.
	Shadow *bool `json:"shadow,omitempty"`

	// HostRedirect answers with a redirect to Service's host instead of
	// proxying; PathRedirect replaces the whole path, PrefixRedirect the
	// matched prefix; RedirectResponseCode defaults to 301.
	HostRedirect         *bool  `json:"host_redirect,omitempty"`
	PathRedirect         string `json:"path_redirect,omitempty"`
	PrefixRedirect       string `json:"prefix_redirect,omitempty"`
	RedirectResponseCode *int   `json:"redirect_response_code,omitempty" validate:"omitempty,oneof=301 302 303 307 308"`

	// RateLimits names RateLimit documents of the same annotation; a request
	// must pass every one of them.
	RateLimits []string `json:"rate_limits,omitempty"`

	// Auth names an Auth document of the same annotation: requests must
	// pass it before they are routed (401, or the authentication
	// service's own answer, otherwise). "" means none, except that an
	// Emissary-dialect Mapping is subject to its namespace's AuthService
	// unless BypassAuth is set.
	Auth string `json:"auth,omitempty"`
	// BypassAuth is Emissary's: the Mapping is exempt from its namespace's
	// AuthService. Setting it together with Auth is an error, in both
	// dialects.
	BypassAuth bool `json:"bypass_auth,omitempty"`
	// RequireConsumer answers 403 to requests the Auth lets through
	// without naming a consumer (an external service without a consumer
	// header, failure_mode allow). The native dialect needs Auth with it;
	// the Emissary dialect allows it without, for the namespace's
	// AuthService, with a warning, since an AuthService names no consumer.
	RequireConsumer bool `json:"require_consumer,omitempty"`

	// Labels are Emissary's rate-limit descriptors for an external rate-limit
	// service. Gatehouse parses them (domain → list of label groups) but does
	// not call such a service: rate_limits is its native mechanism.
	//
	// Decision: labels are checked for structure (so a mistake is still
	// pointed at) and always draw a warning on the labels key, in both
	// dialects, rather than an error: an Emissary annotation that carries
	// them must keep parsing, and nobody should believe they limit anything.
	// Parse fills Label.Key for the three fixed kinds (remote_address,
	// source_cluster, destination_cluster) and leaves a generic_key's Key as
	// written ("" meaning Emissary's default "generic_key"). In the Emissary
	// dialect a problem inside labels is a warning too, and a domain that
	// could not be read whole is left out: labels are never enforced, so
	// they must not cost the Mapping.
	Labels map[string][]LabelGroup `json:"labels,omitempty"`

	// AmbassadorID is read in the Emissary dialect only: which gateways take
	// the document, as written (a single string becomes a one-item list).
	// Nil or empty means ["default"]. Parse returns only documents this
	// gateway takes; the native dialect rejects the field.
	AmbassadorID []string `json:"ambassador_id,omitempty"`

	// Pos is where the document starts; not part of the wire format.
	Pos Position `json:"-"`
	// Positions maps a field path inside the document ("prefix",
	// "headers.x-env", "rate_limits[1]") to where its value was written, so
	// the compiler can point at a field when a cross-annotation rule fails.
	// Every non-null value written has an entry, nested ones included
	// ("regex_rewrite.pattern", "circuit_breakers[0].max_requests",
	// "add_request_headers.x-a", "labels.domain[0].group[1]"). Paths are
	// relative to the fields: in a CRD-shaped Emissary document "prefix" is
	// spec.prefix and "name" is metadata.name. Map keys appear as written.
	Positions map[string]Position `json:"-"`
}

// LabelGroup is one named group of rate-limit labels in Emissary's
// labels: {domain: [{group-name: [label, ...]}, ...]}.
type LabelGroup struct {
	Name   string
	Labels []Label
}

// Label is one Emissary rate-limit label specifier. Written either as a
// shorthand string ("remote_address", "source_cluster",
// "destination_cluster", or any other string meaning a generic_key value), as
// a one-key mapping such as {request_headers: {key, header_name}}, or in
// Ambassador v1's form {x-user: {header: x-user, omit_if_not_present: true}},
// a request_headers label whose Key is the mapping's key.
type Label struct {
	// Kind is source_cluster, destination_cluster, request_headers,
	// remote_address or generic_key.
	Kind             string
	Key              string
	HeaderName       string
	Value            string
	OmitIfNotPresent bool
}

// RegexRewrite rewrites a path with a regular expression.
type RegexRewrite struct {
	Pattern      string `json:"pattern" validate:"required"`
	Substitution string `json:"substitution"`
}

// AddedHeader is a header to add. Written as a plain string it is the value
// with Append true; as a mapping, {value, append}.
type AddedHeader struct {
	Value string `json:"value"`
	// Append nil means true: add another value rather than replace.
	Append *bool `json:"append,omitempty"`
}

// UpstreamTLS is upstream_tls. The Secrets are of type kubernetes.io/tls in
// the Mapping's namespace.
type UpstreamTLS struct {
	// CASecret's ca.crt verifies the upstream's certificate instead of the
	// system roots.
	CASecret string `json:"ca_secret,omitempty"`
	// ClientSecret's tls.crt and tls.key are presented to an upstream that
	// asks for a client certificate (mTLS).
	ClientSecret string `json:"client_secret,omitempty"`
	// SNI is the name sent and verified; by default the Service's DNS name
	// (name.namespace.svc), or the host of an external service.
	SNI string `json:"sni,omitempty"`
}

// RetryPolicy is Emissary's retry_policy: which failures are retried, how
// many times, and how long each try may take.
type RetryPolicy struct {
	RetryOn       string `json:"retry_on,omitempty" validate:"omitempty,oneof=5xx gateway-error connect-failure retriable-4xx refused-stream retriable-status-codes reset"`
	NumRetries    *int   `json:"num_retries,omitempty" validate:"omitempty,min=0"`
	PerTryTimeout string `json:"per_try_timeout,omitempty"` // a Go/Envoy duration such as "500ms"
}

// CircuitBreaker is Emissary's concurrency thresholds for one priority.
// Unset thresholds default to Emissary's 1024 when any threshold of the
// entry is set, so an entry with only max_pending_requests still caps
// requests at 1024.
type CircuitBreaker struct {
	Priority           string `json:"priority,omitempty" validate:"omitempty,oneof=default high"`
	MaxConnections     *int   `json:"max_connections,omitempty" validate:"omitempty,min=1"`
	MaxPendingRequests *int   `json:"max_pending_requests,omitempty" validate:"omitempty,min=1"`
	MaxRequests        *int   `json:"max_requests,omitempty" validate:"omitempty,min=1"`
	MaxRetries         *int   `json:"max_retries,omitempty" validate:"omitempty,min=0"`
}

// LoadBalancer is Emissary's load_balancer.
type LoadBalancer struct {
	Policy   string              `json:"policy" validate:"required,oneof=round_robin least_request ring_hash maglev"`
	Cookie   *LoadBalancerCookie `json:"cookie,omitempty"`
	Header   string              `json:"header,omitempty"`
	SourceIP *bool               `json:"source_ip,omitempty"`
}

// LoadBalancerCookie names the cookie a ring_hash or maglev policy hashes.
type LoadBalancerCookie struct {
	Name string `json:"name" validate:"required"`
	Path string `json:"path,omitempty"`
	TTL  string `json:"ttl,omitempty"`
}

// CORS is Emissary's cors. Not enforced yet.
type CORS struct {
	// Origins is a list, or (as Emissary v2 allowed) one comma-separated string.
	Origins        []string `json:"origins,omitempty"`
	Methods        []string `json:"methods,omitempty"`
	Headers        []string `json:"headers,omitempty"`
	Credentials    *bool    `json:"credentials,omitempty"`
	ExposedHeaders []string `json:"exposed_headers,omitempty"`
	MaxAge         string   `json:"max_age,omitempty"`
}

// HeaderValue is a header condition: an exact value, or (written as the YAML
// boolean true) only that the header is present.
type HeaderValue struct {
	Present bool
	Value   string
}

// Rate-limit units.
const (
	UnitSecond = "second"
	UnitMinute = "minute"
	UnitHour   = "hour"
	UnitDay    = "day"
)

// Rate-limit keys: what a bucket is counted per.
const (
	KeyPolicy   = "policy"    // one bucket for the whole policy
	KeyClientIP = "client_ip" // one bucket per client address
	KeyHeader   = "header"    // one bucket per value of the header named by Header
	// KeyConsumer counts one bucket per consumer the Mapping's Auth names;
	// requests without a consumer share one bucket.
	KeyConsumer = "consumer"
)

// RateLimit is a token-bucket policy that Mappings of the same annotation refer
// to by name.
type RateLimit struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind" validate:"required"`
	Name       string `json:"name" validate:"required"`

	// Rate tokens are added per Unit.
	Rate int    `json:"rate" validate:"required,min=1"`
	Unit string `json:"unit" validate:"required,oneof=second minute hour day"`

	// Burst is the bucket size; zero means Rate.
	Burst int `json:"burst,omitempty" validate:"omitempty,min=1"`

	// Key is policy (the default when empty), client_ip, header or
	// consumer.
	Key    string `json:"key,omitempty" validate:"omitempty,oneof=policy client_ip header consumer"`
	Header string `json:"header,omitempty" validate:"required_if=Key header"`

	Pos Position `json:"-"`
}

// Insecure actions: what a plain-HTTP request for a Host's hostname gets.
const (
	InsecureRedirect = "redirect" // a redirect to https (the default)
	InsecureRoute    = "route"    // routed over plain HTTP as well
	InsecureReject   = "reject"   // 403
)

// Client certificate modes of a Host with a ClientCASecret.
const (
	ClientCertRequired = "required" // a connection without a verified client certificate is refused
	ClientCertOptional = "optional" // asked for, and verified when one is sent
)

// Host is a host's edge TLS: the certificate the gateway serves for a
// hostname the Service's namespace owns, what plain-HTTP requests for it
// get, and whether clients must present certificates of their own.
//
// Parse returns Hosts normalised: Hostname is lower case, Insecure and
// MinTLSVersion hold their defaults when not written, and ClientCert is
// ClientCertRequired when ClientCASecret is set without it ("" when there
// is no ClientCASecret). Secrets are always of the Service's own namespace.
type Host struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind" validate:"required"`
	// Name is a DNS label in the native dialect. In the Emissary dialect a
	// Host document keeps its name, and a TLSContext gives each of its
	// hosts the name "<context name>:<hostname>" (a hostname never holds
	// a colon, so the two cannot be confused).
	Name string `json:"name" validate:"required"`

	// Hostname is an exact DNS name ("shop.example.com") or a wildcard of
	// one leftmost label ("*.example.com"): no port, no IP address, no "*"
	// alone (the platform's default certificate covers every other host),
	// no regular expression.
	Hostname string `json:"hostname" validate:"required"`

	// TLSSecret names a Secret of type kubernetes.io/tls (tls.crt,
	// tls.key) in the Service's own namespace: only the name, never a
	// namespace.
	TLSSecret string `json:"tls_secret" validate:"required"`

	// Insecure is what plain-HTTP requests for the host get:
	// InsecureRedirect (the default), InsecureRoute or InsecureReject.
	Insecure string `json:"insecure,omitempty" validate:"omitempty,oneof=redirect route reject"`

	// HSTS nil means no Strict-Transport-Security header.
	HSTS *HSTS `json:"hsts,omitempty"`

	// MinTLSVersion is "v1.2" (the default) or "v1.3". Parse also accepts
	// 1.2, 1.3, TLSv1.2 and TLSv1.3 in any case and returns the v form;
	// nothing older than TLS 1.2 is accepted.
	MinTLSVersion string `json:"min_tls_version,omitempty"`

	// ClientCASecret names a Secret (type kubernetes.io/tls, same
	// namespace) whose ca.crt, or tls.crt when ca.crt is empty, holds the
	// CAs client certificates must chain to: mTLS at the edge. "" means
	// no client certificate is asked for.
	ClientCASecret string `json:"client_ca_secret,omitempty"`
	// ClientCert is ClientCertRequired or ClientCertOptional; it needs
	// ClientCASecret.
	ClientCert string `json:"client_cert,omitempty" validate:"omitempty,oneof=required optional"`

	// Pos is where the document starts; not part of the wire format.
	Pos Position `json:"-"`
	// Positions maps a field ("hostname", "tls_secret", "hsts.max_age")
	// to where its value was written, as Mapping.Positions does. In the
	// Emissary dialect the keys are the Gatehouse fields the values became
	// ("tls_secret" for tlsSecret.name or a TLSContext's secret, "insecure"
	// for requestPolicy.insecure.action), so FieldPos takes the same names
	// in both dialects; a setting a Host takes from a linked TLSContext
	// points into that TLSContext.
	Positions map[string]Position `json:"-"`
}

// HSTS is the Strict-Transport-Security header (RFC 6797) sent on a Host's
// HTTPS answers.
type HSTS struct {
	// MaxAge is in seconds, 0 to 63072000 (two years); 0 tells browsers
	// to forget the host's policy. Required.
	MaxAge            int64 `json:"max_age"`
	IncludeSubdomains bool  `json:"include_subdomains,omitempty"`
	Preload           bool  `json:"preload,omitempty"`
}

// Failure modes of an external authentication service: what a request gets
// when the service cannot be reached or does not answer within its timeout.
const (
	FailureModeDeny  = "deny"  // 403 (the default)
	FailureModeAllow = "allow" // the request continues without a consumer
)

// DefaultAPIKeyHeader is where an API key is read when an APIKeyAuth names
// neither a header nor a query parameter, in the canonical form Parse
// returns header names of APIKeyAuth in.
const DefaultAPIKeyHeader = "X-Api-Key"

// Auth is an authentication policy: Mappings of the same annotation name it
// in auth, and requests they serve must pass it. Exactly one of JWT, APIKey
// and External is set. A request that passes may carry a consumer, the name
// of whoever sent it, which rate limits (key: consumer) and the access log
// use.
//
// Parse returns Auths with their defaults filled: ConsumerClaim "sub" and
// ClockSkewSeconds 30 for JWT, Header DefaultAPIKeyHeader (or the written
// header, canonicalised) when no Query is set for APIKey, TimeoutMS 500
// (an Emissary AuthService's own default, 5000, when it did not write one)
// and FailureMode deny for External. Secrets are always of the Service's
// own namespace.
type Auth struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind" validate:"required"`
	// Name is a DNS label in the native dialect; an Emissary AuthService
	// keeps its name.
	Name string `json:"name" validate:"required"`

	JWT      *JWTAuth      `json:"jwt,omitempty"`
	APIKey   *APIKeyAuth   `json:"api_key,omitempty"`
	External *ExternalAuth `json:"external,omitempty"`

	// Namespaced is set on an Emissary AuthService: it applies to every
	// Emissary-dialect Mapping of the Service's namespace that does not
	// set bypass_auth (Emissary applies an AuthService gateway-wide;
	// Gatehouse keeps it within the namespace). Never set by the native
	// dialect.
	Namespaced bool `json:"-"`

	// Pos is where the document starts; not part of the wire format.
	Pos Position `json:"-"`
	// Positions maps a field ("jwt.issuer", "api_key.secrets[0]",
	// "external.service") to where its value was written, as
	// Mapping.Positions does. For an Emissary AuthService the keys are
	// the Gatehouse fields the values became ("external.service" for
	// auth_service, "external.allowed_upstream_headers" for
	// allowed_authorization_headers, "external.include_body_bytes" for
	// include_body.max_bytes, "external.failure_mode" for
	// failure_mode_allow), so FieldPos takes the same names in both
	// dialects.
	Positions map[string]Position `json:"-"`
}

// JWTAuth accepts requests carrying a JSON Web Token (Authorization:
// Bearer) signed by a key of the key set, issued by Issuer for one of
// Audiences, and within its validity (exp, nbf) give or take
// ClockSkewSeconds.
type JWTAuth struct {
	// Issuer is compared exactly with the token's iss.
	Issuer string `json:"issuer" validate:"required"`
	// Audiences: the token's aud must contain one of them. At least one.
	Audiences []string `json:"audiences" validate:"required"`
	// JWKSSecret names a Secret of type gatehouse.dev/jwks (key
	// jwks.json) in the Service's own namespace: the name only. Exactly
	// one of JWKSSecret and JWKSURI is set.
	JWKSSecret string `json:"jwks_secret,omitempty"`
	// JWKSURI is an https:// URL the key set is fetched from (no user
	// information, no fragment).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// ClaimsToHeaders maps a claim name to the request header the
	// upstream receives it in (as written; at most 16). The headers are
	// valid names, none of them hop-by-hop or reserved (ReservedHeader).
	ClaimsToHeaders map[string]string `json:"claims_to_headers,omitempty"`
	// ConsumerClaim is the claim naming the consumer; Parse fills "sub".
	ConsumerClaim string `json:"consumer_claim,omitempty"`
	// ForwardToken keeps the Authorization header on the request to the
	// upstream; by default it is removed.
	ForwardToken bool `json:"forward_token,omitempty"`
	// ClockSkewSeconds, 0 to 300, is how far exp and nbf may be off;
	// Parse fills 30.
	ClockSkewSeconds *int `json:"clock_skew_seconds,omitempty" validate:"omitempty,min=0,max=300"`
}

// APIKeyAuth accepts requests carrying a key listed in one of Secrets, in
// the header Header or the query parameter Query (exactly one of them is
// set once Parse has filled the default). The consumer is the name the key
// is listed under.
type APIKeyAuth struct {
	// Header is in canonical form (X-Api-Key); Parse fills
	// DefaultAPIKeyHeader when neither Header nor Query is written.
	Header string `json:"header,omitempty"`
	Query  string `json:"query,omitempty"`
	// Secrets name 1 to 16 Secrets of type gatehouse.dev/api-keys in the
	// Service's own namespace; each data entry is consumer name → key.
	Secrets []string `json:"secrets" validate:"required"`
	// ForwardKey keeps the header (or query parameter) on the request to
	// the upstream; by default it is removed.
	ForwardKey bool `json:"forward_key,omitempty"`
}

// ExternalAuth asks an HTTP service about each request: its method, its
// path behind PathPrefix, and selected headers are sent to it; a 2xx answer
// lets the request through, and any other answer is returned to the client
// as the service gave it.
type ExternalAuth struct {
	// Service is [http://|https://]name[.namespace][:port], with the
	// grammar and rules of Mapping.Service; the compiler checks the target
	// as it checks a Mapping's.
	Service string `json:"service" validate:"required"`
	// PathPrefix is prepended to the request's path; it starts with "/".
	PathPrefix string `json:"path_prefix,omitempty"`
	// TimeoutMS, 1 to 10000, bounds the call; Parse fills 500.
	TimeoutMS *int `json:"timeout_ms,omitempty" validate:"omitempty,min=1,max=10000"`
	// FailureMode is FailureModeDeny (filled by Parse) or
	// FailureModeAllow.
	FailureMode string `json:"failure_mode,omitempty" validate:"omitempty,oneof=deny allow"`
	// AllowedRequestHeaders are sent to the service besides the defaults
	// (DefaultAuthRequestHeaders); at most 32.
	AllowedRequestHeaders []string `json:"allowed_request_headers,omitempty"`
	// AllowedUpstreamHeaders are copied from the service's 2xx answer to
	// the request sent upstream; at most 32, none reserved
	// (ReservedHeader) or hop-by-hop.
	AllowedUpstreamHeaders []string `json:"allowed_upstream_headers,omitempty"`
	// ConsumerHeader is the header of the service's 2xx answer that names
	// the consumer; "" means the service names none.
	ConsumerHeader string `json:"consumer_header,omitempty"`
	// IncludeBodyBytes, 0 to 65536, is how many of the first bytes of the
	// request body are sent to the service; 0 sends none.
	IncludeBodyBytes int `json:"include_body_bytes,omitempty" validate:"min=0,max=65536"`
}
