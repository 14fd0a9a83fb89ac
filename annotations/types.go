// Package annotations is the Gatehouse annotation language: the wire types a team
// writes in a Service's gatehouse.dev/config annotation, and the one strict parser
// that the gateway, the admission webhook and the CLI all share.
//
// The parser turns YAML into typed Go values and nothing else: no templating, no
// rendering into another configuration language. Every problem it finds carries the
// line and column inside the annotation string and the field path, so callers can
// translate it into a position in the manifest file or an admission message.
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
)

// Config is everything one annotation declares. Documents keep the order in
// which they were written.
type Config struct {
	Mappings   []Mapping
	RateLimits []RateLimit
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

	// Service is [http://|https://]name[.namespace][:port].
	Service string `json:"service" validate:"required"`

	// Rewrite replaces the matched prefix. Nil means Emissary's default "/";
	// a pointer to "" disables rewriting.
	Rewrite *string `json:"rewrite,omitempty"`

	// Host is an exact host or a "*." wildcard; a :port in the request's Host
	// header is ignored when matching.
	Host       string                 `json:"host,omitempty"`
	Method     string                 `json:"method,omitempty"`
	Headers    map[string]HeaderValue `json:"headers,omitempty"`
	Precedence int                    `json:"precedence,omitempty"`

	// TimeoutMS bounds the whole upstream exchange. Nil means the default
	// (3000); 0 means no timeout.
	TimeoutMS *int `json:"timeout_ms,omitempty" validate:"omitempty,min=0"`

	// RateLimits names RateLimit documents of the same annotation; a request
	// must pass every one of them.
	RateLimits []string `json:"rate_limits,omitempty"`

	// Pos is where the document starts; not part of the wire format.
	Pos Position `json:"-"`
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

	// Key is policy (the default when empty), client_ip or header.
	Key    string `json:"key,omitempty" validate:"omitempty,oneof=policy client_ip header"`
	Header string `json:"header,omitempty" validate:"required_if=Key header"`

	Pos Position `json:"-"`
}
