package snapshot

import (
	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/auth"
)

// Options say what the pipeline reads and what it allows. The gateway's
// Builder, the admission webhook and the CLI take the same Options, so they
// decide every Service the same way.
type Options struct {
	// Emissary also reads getambassador.io/config, in Emissary's dialect.
	Emissary bool
	// AmbassadorID selects Emissary documents by ambassador_id; "" means
	// "default".
	AmbassadorID string
	// Budgets bound what one Service may cost; zero fields mean defaults.
	Budgets Budgets
	// External says which hosts outside the cluster a Mapping may route to
	// (serve's --external-upstreams); nil allows none.
	External ExternalPolicy
	// Paths says how request paths are made canonical (--escaped-slashes,
	// --merge-slashes); the zero value is the safe default. It travels with
	// every Snapshot so the proxy and explain read a path alike.
	Paths PathOptions
	// KeyHasher hashes API keys: the one whose sums the Secrets carry
	// (TrimSecret was given its Sum), so a key a client sends hashes alike.
	// Nil makes API key Auths refuse every key.
	KeyHasher *auth.KeyHasher
	// JWKS fetches the key sets of jwt.jwks_uri; nil (the webhook, the
	// CLI) leaves such Auths without keys.
	JWKS JWKSSource
}

// ExternalPolicy decides which hosts outside the cluster may be upstreams.
// upstream.ExternalPolicy implements it.
type ExternalPolicy interface {
	Allows(host string) bool
	String() string
}

// Keys are the annotation keys read, in the order their Mappings are
// compiled: the one place that decides which annotations a Service carries
// for the gateway.
func (o *Options) Keys() []string {
	if o.Emissary {
		return []string{annotations.Key, annotations.EmissaryKey}
	}
	return []string{annotations.Key}
}

// parseOptions are the parser's options for annotation key of a Service in
// namespace.
func (o *Options) parseOptions(key, namespace string) annotations.Options {
	opts := annotations.Options{Namespace: namespace}
	if key == annotations.EmissaryKey {
		opts.Dialect, opts.AmbassadorID = annotations.Emissary, o.AmbassadorID
	}
	return opts
}

// allowsExternal reports whether host may be an upstream.
func (o *Options) allowsExternal(host string) bool {
	return o.External != nil && o.External.Allows(host)
}

// externalFlag says, for messages about a host outside the cluster, that
// the policy does not allow it and who can change that.
func (o *Options) externalFlag() string {
	if o.External == nil || o.External.String() == "" {
		return "is not allowed: the platform allows no hosts outside the cluster (--external-upstreams is empty)"
	}
	return "is not allowed by --external-upstreams=" + o.External.String()
}
