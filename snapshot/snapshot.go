// Package snapshot compiles the gatehouse.dev/config annotations of every
// Service into one immutable Snapshot: a router table whose routes carry their
// rate limiters and upstreams. A Snapshot never changes once built; the data
// plane swaps whole snapshots atomically.
package snapshot

import (
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// DefaultTimeout bounds an upstream exchange when a Mapping sets no timeout_ms,
// as in Emissary.
const DefaultTimeout = 3000 * time.Millisecond

// Snapshot is one immutable, compiled view of all routes.
type Snapshot struct {
	// Generation counts snapshots built by one Builder, starting at 1.
	Generation uint64
	Table      *router.Table[*Route]
}

// Route is what a matched request needs to be served. Shared, read-only.
type Route struct {
	// Mapping is "namespace/name", how users and logs refer to the Mapping.
	Mapping string
	// Service is the annotated Service that declared the Mapping.
	Service string

	Kind   router.PathKind
	Prefix string
	// Rewrite replaces the matched prefix (Prefix routes) or the whole path
	// (Exact and Regex routes) when RewriteEnabled.
	Rewrite        string
	RewriteEnabled bool

	// Timeout bounds the upstream exchange; zero means none.
	Timeout time.Duration

	// RateLimits names the policies ("namespace/name") in Limiters' order.
	RateLimits []string
	Limiters   []*limiter.Limiter

	Target   annotations.ServiceRef
	Upstream *upstream.Upstream
}

// UpstreamPath returns the path the upstream receives for a request path that
// matched this route, following Emissary: a prefix is replaced by the rewrite
// ("/backend/" + "/backend/x" → "/x"), exact and regex routes have the whole
// path replaced.
func (r *Route) UpstreamPath(path string) string {
	if !r.RewriteEnabled {
		return path
	}
	if r.Kind == router.Prefix {
		return r.Rewrite + path[min(len(r.Prefix), len(path)):]
	}
	return r.Rewrite
}

// TargetURL is the scheme and host the upstream is reached with, given one
// endpoint address ("ip:port").
func (r *Route) TargetURL(endpoint string) *url.URL {
	return &url.URL{Scheme: r.Target.Scheme, Host: endpoint}
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
