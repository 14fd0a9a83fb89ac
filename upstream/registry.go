package upstream

import (
	"sync"
	"time"
)

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// Breaker configures the circuit breaker of every upstream.
	Breaker BreakerSettings
	// OnStateChange, when not nil, is told of every breaker transition, for metrics
	// and logs. It runs on the goroutine of the request that caused the change while
	// the breaker's lock is held: it must be quick and must not call back into the
	// same Upstream's Do or State, which would deadlock.
	OnStateChange func(upstreamID string, from, to State)
	// Outlier configures outlier detection on every upstream's endpoints.
	Outlier OutlierSettings
	// OnEject, when not nil, is told of every ejection, and of every run of
	// failures the ejection cap kept from being one (Ejection.Capped), for
	// metrics and logs. It runs on the goroutine of the request whose
	// Endpoint.End completed the run, with no lock held, so it may call back
	// into the upstream; it should be quick, as that request waits for it.
	OnEject func(Ejection)
	// RetryBudget configures every upstream's retry budget.
	RetryBudget RetryBudget
	// Now is the clock of outlier detection and retry budgets; nil means
	// time.Now. Tests set it to drive time. (The breaker keeps gobreaker's
	// own clock, time.Now.)
	Now func() time.Time
	// Guard is the DialGuard the gateway dials upstreams through; nil means
	// its defaults. The snapshot builder drops endpoint addresses it refuses
	// when resolving EndpointSlices, so a refused address is reported once,
	// with its reason, instead of failing every request sent to it.
	Guard *DialGuard
}

// Registry owns every Upstream and keeps each one across snapshot rebuilds: while
// an ID is retained, Get returns the same *Upstream, so an open breaker stays open,
// an ejected endpoint stays ejected and a spent retry budget stays spent when
// unrelated configuration changes. It is safe for concurrent use; Get and Retain
// run at snapshot build time, not per request.
type Registry struct {
	opts    RegistryOptions
	outlier OutlierSettings // opts.Outlier with its defaults
	clock   *clock

	mu        sync.Mutex
	upstreams map[string]*Upstream
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts RegistryOptions) *Registry {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Registry{
		opts:    opts,
		outlier: opts.Outlier.withDefaults(),
		// A nanosecond before now, so that clock.nanos is exact (never
		// raised to 1) from the Registry's first moment on.
		clock:     &clock{now: now, base: now().Add(-time.Nanosecond)},
		upstreams: make(map[string]*Upstream),
	}
}

// Guard returns RegistryOptions.Guard (nil means DialGuard's defaults).
func (r *Registry) Guard() *DialGuard { return r.opts.Guard }

// Get returns the upstream with this ID, creating it (no endpoints, breaker
// closed, retry budget as after a quiet spell) when absent.
func (r *Registry) Get(id string) *Upstream {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.upstreams[id]; ok {
		return u
	}
	u := &Upstream{
		id:      id,
		breaker: newBreaker(id, r.opts.Breaker, r.opts.OnStateChange),
		clock:   r.clock,
		outlier: r.outlier,
		onEject: r.opts.OnEject,
	}
	u.budget.init(r.opts.RetryBudget, r.clock.nanos())
	r.upstreams[id] = u
	return u
}

// Retain drops the upstreams whose IDs are not in keep. Call it after a new
// snapshot is published, with the IDs that snapshot uses; snapshots still serving
// in-flight requests keep their own pointers. An upstream that is dropped and
// later asked for again starts over: breaker closed, no endpoint ejected.
func (r *Registry) Retain(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.upstreams {
		if !keep[id] {
			delete(r.upstreams, id)
		}
	}
}
