package limiter

import "sync"

// Options configures a Registry.
type Options struct {
	// MaxKeys bounds the buckets of each keyed policy; 0 (or less) means 100_000.
	MaxKeys int
	// IPv6Prefix is how many leading bits of an IPv6 client address name its
	// bucket in KeyClientIP policies; 0 means 64, so one host (which is
	// normally given a whole /64 and may use any address in it) gets one
	// bucket, not 2^64. 128 gives every IPv6 address its own bucket; a
	// shorter prefix (48, a typical site) puts whole sites in one. Values
	// outside 1–128 mean 64. IPv4 addresses always get a bucket each.
	IPv6Prefix int
}

// defaultIPv6Prefix is the /64 of one IPv6 subnet, the smallest block a
// host or home is normally given.
const defaultIPv6Prefix = 64

// Registry owns every Limiter and carries their buckets across snapshot rebuilds:
// asking for a policy equal to one it already holds returns the same *Limiter, so
// clients that used up their tokens stay limited when unrelated configuration
// changes. A policy whose settings changed gets a fresh Limiter with full buckets.
// It is safe for concurrent use; Get and Retain run at snapshot build time, not per
// request.
type Registry struct {
	maxKeys  int
	ipv6Bits int

	mu       sync.Mutex
	limiters map[string]*Limiter
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts Options) *Registry {
	bits := opts.IPv6Prefix
	if bits < 1 || bits > 128 {
		bits = defaultIPv6Prefix
	}
	return &Registry{maxKeys: opts.MaxKeys, ipv6Bits: bits, limiters: make(map[string]*Limiter)}
}

// Get returns the Limiter for p, reusing the existing one when p (normalized) is
// equal to the policy it was built for and replacing it otherwise.
func (r *Registry) Get(p Policy) *Limiter {
	p = p.normalize()
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.limiters[p.ID]; ok && l.policy == p {
		return l
	}
	l := newLimiter(p, r.maxKeys, r.ipv6Bits)
	r.limiters[p.ID] = l
	return l
}

// Retain drops the limiters whose IDs are not in keep. Call it after a new snapshot
// is published, with the IDs that snapshot uses, so deleted policies free their
// buckets; snapshots still serving in-flight requests keep their own pointers.
func (r *Registry) Retain(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.limiters {
		if !keep[id] {
			delete(r.limiters, id)
		}
	}
}
