package limiter

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

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
//
// The Registry also holds what applies to all its limiters at once: the share of
// every policy this replica enforces (SetShare, 1/1 until called) and the global
// store they decide through (SetGlobal, none until called). Both take effect on
// limiters already handed out.
type Registry struct {
	maxKeys  int
	ipv6Bits int

	// share and global are read on every request, lock-free.
	share  atomic.Pointer[share]
	global atomic.Pointer[Redis]

	mu       sync.Mutex
	limiters map[string]*Limiter
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts Options) *Registry {
	bits := opts.IPv6Prefix
	if bits < 1 || bits > 128 {
		bits = defaultIPv6Prefix
	}
	r := &Registry{maxKeys: opts.MaxKeys, ipv6Bits: bits, limiters: make(map[string]*Limiter)}
	r.share.Store(&share{replicas: 1})
	return r
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
	l := newLimiter(p, r)
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

// SetShare makes this replica enforce 1/replicas of every policy: the rate
// divided by replicas and the burst divided by replicas, rounded up to at
// least 1. replicas below 1 means 1, the whole policy. Call it when the number
// of gateway replicas changes; it is O(1) and safe while requests are being
// decided, and a call with the current count does nothing.
//
// The change reaches limiters already handed out, and their buckets as each is
// next used: a bucket first used after the change is retuned before it decides,
// so none keeps the old rate or burst past that point. (The retuning happens
// at the bucket's next request, so the time between the change and that request
// is credited at the old rate, capped at the new burst: a bucket idle across a
// change never ends up holding more than the new burst.) Buckets created later
// start full at the new burst.
//
// Accuracy, with N replicas: each holds ceil(burst/N) and refills at rate/N,
// so together they hold at most burst + N-1 tokens (N-1 tokens of rounding up;
// when burst < N, every replica still holds 1, which is N-burst ≤ N-1 over) and
// refill at exactly the policy's rate. Whatever the load balancer does, they
// never admit more than the policy plus those N-1 tokens (while N holds
// still: a replica that joins brings full buckets of its own). When it spreads each
// bucket's requests evenly, they admit what the policy does, within that
// rounding (and, at the end of a period, a token per replica it had no request
// to spend on). Spreading unevenly admits less: a replica getting more than its
// share refuses at its share while the others' tokens go unused. Balancing a
// few long-lived connections (HTTP/2, gRPC) is the uneven case at its worst;
// use the global store (SetGlobal) for limits that must be exact.
//
// Limiters deciding through Redis enforce the whole policy there; the share
// applies to their local fallback.
func (r *Registry) SetShare(replicas int) {
	replicas = max(replicas, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.share.Load()
	if cur.replicas == replicas {
		return
	}
	r.share.Store(&share{replicas: replicas, gen: cur.gen + 1})
}

// SetGlobal makes every limiter of r decide through g, so that a policy holds
// across all the replicas sharing g's Redis; the local buckets only decide
// while Redis is unavailable (see RedisOptions.FailOpen). nil goes back to
// local buckets alone. Safe while requests are being decided. Policies with an
// infinite rate never consult Redis: there is nothing to count.
func (r *Registry) SetGlobal(g *Redis) {
	r.global.Store(g)
}

// share is the fraction of every policy a replica enforces, published whole.
// gen increases with every change, so a bucket can tell whether it was tuned
// to the current share by the generation it remembers.
type share struct {
	replicas int
	gen      uint64
}

// rates is what a local bucket of p enforces under s.
func (s *share) rates(p Policy) rates {
	n := s.replicas
	if n <= 1 {
		return rates{limit: p.Limit, burst: p.Burst, gen: s.gen}
	}
	rt := rates{limit: p.Limit, burst: max(1, (p.Burst+n-1)/n), gen: s.gen}
	// rate.Inf is math.MaxFloat64, not +Inf: dividing it would make it finite.
	if p.Limit != rate.Inf {
		rt.limit /= rate.Limit(n)
	}
	return rt
}

// rates is a rate and burst with the share generation they belong to.
type rates struct {
	limit rate.Limit
	burst int
	gen   uint64
}

// apply retunes lim to r at now: what it holds is first brought up to now at
// its old rate, then it refills at the new one and is capped at the new burst.
func (r rates) apply(lim *rate.Limiter, now time.Time) {
	if lim.Limit() == rate.Inf {
		// An Inf bucket stays Inf under any share, and it keeps no tokens
		// worth carrying over.
		return
	}
	lim.SetLimitAt(now, r.limit)
	lim.SetBurstAt(now, r.burst)
}

// window is how long an empty bucket takes to fill: 0 at an infinite rate,
// rate.InfDuration at a zero one.
func (r rates) window() time.Duration {
	if r.limit == rate.Inf {
		return 0
	}
	return tokensDuration(float64(r.burst), r.limit)
}
