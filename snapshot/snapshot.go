// Package snapshot compiles the gatehouse.dev/config annotations of every
// Service into one immutable Snapshot: a router table whose routes carry their
// rate limiters and upstreams. A Snapshot never changes once built; the data
// plane swaps whole snapshots atomically.
package snapshot

import (
	"net/url"

	corev1 "k8s.io/api/core/v1"
	"regexp"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/cors"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Snapshot is one immutable, compiled view of all routes.
type Snapshot struct {
	// Generation counts snapshots built by one Builder, starting at 1.
	Generation uint64
	Table      *router.Table[*Route]
	// Dropped are the endpoints the build refused to use (addresses the
	// gateway never dials, slices it does not trust, external hosts the
	// policy does not allow), for logs and Events.
	Dropped []DroppedEndpoint
	// TLS are the routes' upstream_tls settings resolved against the
	// Secrets of this build, by UpstreamTLS key (TLSClient).
	TLS map[string]*TLSClient
	// Edge is what the TLS listener serves: certificates and policies of
	// the Host documents, resolved against the Secrets of this build.
	Edge *EdgeTLS

	// auths are the routes' authenticators by AuthSpec.ID, and
	// namespaceAuth the Emissary AuthService of each namespace that has
	// one (AuthFor).
	auths         map[string]*RouteAuth
	namespaceAuth map[string]*AuthSpec

	// What the cross-namespace rules need, as of this snapshot, and the
	// options it was built with: what Review decides a Service against.
	// Read-only.
	tenancy *tenancy
	opts    Options
}

// Paths are the path options this snapshot was built with, for the proxy
// and explain, which must read a request's path alike.
func (s *Snapshot) Paths() PathOptions {
	if s == nil {
		return PathOptions{}
	}
	return s.opts.Paths
}

// Review runs the whole pipeline on svc's annotations against this
// snapshot, exactly as the next Build would, and returns every problem by
// annotation key (parse problems, budgets, the router's checks, hosts other
// namespaces own, targets, canary weights). The admission webhook calls it
// so that what it admits, the gateway compiles and serves, and what the
// gateway would reject, it denies. Safe for concurrent use.
func (s *Snapshot) Review(svc *corev1.Service) map[string]annotations.Problems {
	return review(svc, &s.opts, s.tenancy)
}

// Review is Snapshot.Review before any snapshot exists: each Service is
// checked on its own, without the rules that need other Services.
func (o Options) Review(svc *corev1.Service) map[string]annotations.Problems {
	return review(svc, &o, nil)
}

func review(svc *corev1.Service, opts *Options, t *tenancy) map[string]annotations.Problems {
	problems := map[string]annotations.Problems{}
	var srcs []sourced
	for _, key := range opts.Keys() {
		text, ok := svc.Annotations[key]
		if !ok {
			continue
		}
		cfg, ps := annotations.Parse(text, opts.parseOptions(key, svc.Namespace))
		if len(ps) > 0 {
			problems[key] = ps
		}
		if cfg != nil {
			srcs = append(srcs, sourced{key: key, cfg: cfg})
		}
	}
	if anyErrors(problems) || len(srcs) == 0 {
		return problems
	}
	known := func(string) bool { return true } // alone, a two-label name is a Service
	if t != nil {
		known = t.isKnown
	}
	u, ps := compileUnit(svc, srcs, func(key string) annotations.Problems { return problems[key] }, known, opts, nil)
	merge(problems, ps)
	if anyErrors(ps) || t == nil {
		return problems
	}
	_, _, ps = t.check(svc, u, opts)
	merge(problems, ps)
	return problems
}

func merge(into, from map[string]annotations.Problems) {
	for k, ps := range from {
		into[k] = append(into[k], ps...)
	}
}

// Route is what a matched request needs to be served. Shared, read-only.
type Route struct {
	// Mapping is "namespace/name", how users and logs refer to the Mapping.
	Mapping string
	// Service is the annotated Service that declared the Mapping.
	Service string
	// Annotation is the annotation key the Mapping came from.
	Annotation string

	Kind            router.PathKind
	Prefix          string
	CaseInsensitive bool
	// Rewrite replaces the matched prefix (Prefix routes) or the whole path
	// (Exact and Regex routes) when RewriteEnabled. RegexRewrite, when set,
	// wins: every match of it is replaced by Substitution (Go regexp syntax).
	Rewrite        string
	RewriteEnabled bool
	RegexRewrite   *regexp.Regexp
	Substitution   string
	// HostRewrite replaces the Host header sent upstream; "" keeps the
	// client's.
	HostRewrite string

	RequestHeadersAdd     []HeaderOp
	RequestHeadersRemove  []string
	ResponseHeadersAdd    []HeaderOp
	ResponseHeadersRemove []string

	// Timeout bounds the upstream exchange; zero means none. ConnectTimeout
	// bounds dialing an endpoint. IdleTimeout, when non-zero, ends an exchange
	// in which no bytes moved for that long.
	Timeout        time.Duration
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration

	// AllowUpgrade lists the lower-case protocols a client may upgrade to.
	AllowUpgrade []string

	// Caps are the Mapping's circuit_breakers thresholds for the default
	// priority; the zero value caps nothing. Gate enforces them and is kept
	// across rebuilds while Caps stay the same; nil without caps.
	Caps Caps
	Gate *upstream.Gate

	// Redirect, when set, answers requests with a redirect instead of
	// proxying them.
	Redirect *Redirect

	// Weight is this Mapping's share (percent) of its canary group.
	Weight int

	// RateLimits names the policies ("namespace/name") in Limiters' order.
	RateLimits []string
	Limiters   []*limiter.Limiter

	Target annotations.ServiceRef
	// External says Target is a host outside the cluster, dialed by name.
	External bool
	Upstream *upstream.Upstream

	// Shadows are the shadow Mappings of the route's namespace with its
	// match criteria: each gets a copy of a share of its requests.
	Shadows []Shadow

	// TLS is upstream_tls; nil means an https:// upstream is verified
	// against the system roots with its own name. TLSClient resolves it.
	TLS *UpstreamTLS

	// HTTP2 reaches the upstream over HTTP/2 (grpc or http2); GRPC also
	// makes the gateway's own answers gRPC statuses and honours
	// grpc-timeout; GRPCWeb translates gRPC-Web requests (grpc_web).
	HTTP2, GRPC, GRPCWeb bool

	// Retry is the Mapping's retry_policy; nil means no retries.
	Retry *RetryPolicy
	// Balance is how an endpoint is picked (load_balancer.policy), and
	// Hash what ring_hash and maglev hash; the zero values are round robin
	// and nothing.
	Balance upstream.Policy
	Hash    HashOn

	// CORS answers preflights and adds CORS headers (cors); nil: none.
	CORS *cors.Policy

	// MaxRequestBody bounds a request body in bytes (413): 0 means the
	// gateway's default (--max-request-body-bytes), negative no limit.
	MaxRequestBody int64

	// Auth is the route's Auth document (nil: none of its own; an
	// Emissary Mapping may still be covered by its namespace's
	// AuthService, unless BypassAuth). RequireConsumer refuses requests
	// that Auth let through without naming a consumer (403).
	Auth            *AuthSpec
	BypassAuth      bool
	RequireConsumer bool

	// Warnings are the not-yet-enforced settings the Mapping carries, for
	// routes and explain output.
	Warnings []string
}

// Shadow is a shadow Mapping a route's requests are mirrored to: its
// target, upstream and rewrite (Route) and the percentage of requests
// mirrored (weight, 100 when unset).
type Shadow struct {
	Route   *Route
	Percent int
}

// Caps are Emissary's circuit_breakers thresholds (Envoy's defaults, 1024
// and 3 retries, for those an entry leaves unset). Over HTTP/1.1 a request
// holds one connection, so Requests is the lower of max_requests and
// max_connections.
type Caps struct {
	Requests, Pending, Retries int
}

// RetryPolicy is a compiled retry_policy.
type RetryPolicy struct {
	On RetryOn
	// Retries is how many times a request may be sent again (num_retries;
	// 1 when unset, as Envoy's default).
	Retries int
	// PerTry bounds each attempt; zero means only the route's Timeout,
	// which bounds all attempts together.
	PerTry time.Duration
}

// RetryOn is the set of conditions a request is retried on (Envoy's
// retry_on, which Emissary passes through).
type RetryOn uint8

const (
	// RetryConnectFailure: the endpoint could not be connected to.
	RetryConnectFailure RetryOn = 1 << iota
	// RetryReset: the connection failed or closed before any answer
	// (connect failures included), or the per-try timeout passed.
	RetryReset
	// RetryGatewayError: 502, 503 or 504 answers, and no answer at all.
	RetryGatewayError
	// Retry5xx: any 5xx answer, and no answer at all.
	Retry5xx
	// Retry409: 409 Conflict (retriable-4xx).
	Retry409
	// RetryRefusedStream: an HTTP/2 upstream refused the stream.
	RetryRefusedStream
)

// HashOn is what a ring_hash or maglev route hashes to pick an endpoint.
type HashOn struct {
	// Header names a request header; Cookie a cookie (with its attributes,
	// set when a request has none); SourceIP the client's address. At most
	// one is set.
	Header   string
	Cookie   *HashCookie
	SourceIP bool
}

// HashCookie is load_balancer.cookie: the gateway sets it (a random value)
// on an answer to a request without it, so later requests stick.
type HashCookie struct {
	Name string
	Path string // "" means none
	// Set says the gateway sets the cookie when a request has none (ttl
	// was written, as Envoy generates it only then); TTL 0 makes it a
	// session cookie.
	Set bool
	TTL time.Duration
}

// HeaderOp adds a header: appended as another value, or replacing any.
type HeaderOp struct {
	Name   string
	Value  string
	Append bool
}

// Redirect is an Emissary host_redirect.
type Redirect struct {
	// Scheme is "http" or "https", or "" to keep the request's.
	Scheme string
	Host   string // host[:port]
	// Path replaces the whole path; Prefix replaces the matched prefix.
	Path, Prefix string
	Code         int
}

// UpstreamPath returns the path the upstream receives for a request path that
// matched this route, following Emissary: a prefix is replaced by the rewrite
// ("/backend/" + "/backend/x" → "/x"), exact and regex routes have the whole
// path replaced, and a regex_rewrite replaces every match of its pattern.
func (r *Route) UpstreamPath(path string) string {
	if r.RegexRewrite != nil {
		return r.RegexRewrite.ReplaceAllString(path, r.Substitution)
	}
	if !r.RewriteEnabled {
		return path
	}
	if r.Kind == router.Prefix {
		return r.Rewrite + path[min(len(r.Prefix), len(path)):]
	}
	return r.Rewrite
}

// RedirectLocation is where a redirect route sends a request for path (as
// escaped on the wire) and rawQuery arriving over scheme. prefix_redirect
// replaces the matched prefix, or on exact and regex routes the whole path,
// as rewrite does.
func (r *Route) RedirectLocation(scheme, path, rawQuery string) string {
	rd := r.Redirect
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	switch {
	case rd.Path != "":
		path = rd.Path
	case rd.Prefix != "" && r.Kind == router.Prefix:
		path = rd.Prefix + path[min(len(r.Prefix), len(path)):]
	case rd.Prefix != "":
		path = rd.Prefix
	}
	u := url.URL{Scheme: scheme, Host: rd.Host, RawQuery: rawQuery}
	SetEscapedPath(&u, path)
	return u.String()
}

// SetEscapedPath sets u's path from its escaped form, keeping escapes such as
// %2F as they were sent rather than re-encoding a decoded path.
func SetEscapedPath(u *url.URL, escaped string) {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		u.Path, u.RawPath = escaped, ""
		return
	}
	// RawPath even when nothing is escaped: Go would escape "!*'()[]" of a
	// bare Path, and the upstream must get exactly the path that was routed.
	u.Path, u.RawPath = p, escaped
}

// AllowsUpgrade reports whether protocol (an Upgrade header value) may be
// switched to.
func (r *Route) AllowsUpgrade(protocol string) bool {
	for _, p := range r.AllowUpgrade {
		if strings.EqualFold(p, protocol) {
			return true
		}
	}
	return false
}

// displayName turns an internal id "namespace/service/name" into the
// "namespace/name" users write.
func displayName(namespace, name string) string {
	var b strings.Builder
	b.Grow(len(namespace) + 1 + len(name))
	b.WriteString(namespace)
	b.WriteByte('/')
	b.WriteString(name)
	return b.String()
}
