// Package upstream models the targets of routes: one Upstream per Service port, with
// its ready endpoints, the load-balancing policies that pick among them, passive
// outlier detection, a retry budget and a circuit breaker. A Registry keeps each
// Upstream (and so its breaker state, picker position, endpoint health and retry
// budget) across snapshot rebuilds, so republishing configuration neither closes
// an open breaker nor forgets the failures counted so far.
//
// A request's way through an Upstream:
//
//   - Pick chooses an Endpoint under the route's Policy (balance.go): round robin,
//     least request (power of two choices), a consistent hash ring or a Maglev
//     table keyed by HashKey of the request's key. It skips ejected endpoints and,
//     for a retry, the endpoints the request already tried, but never refuses a
//     request only because of them.
//   - Endpoint.Begin and Endpoint.End bracket the request on that endpoint; End's
//     Outcome feeds outlier detection (health.go), which ejects an endpoint after
//     a run of upstream failures, for longer each time, and never more than a
//     share of the endpoints.
//   - Do runs the request through the upstream's circuit breaker, the last line
//     when most of the upstream fails.
//   - RequestStarted and TryRetry keep retries within a budget (budget.go): a
//     fraction of recent first tries plus a small floor per second.
//
// It also decides where the gateway may connect at all: a DialGuard refuses
// addresses that reach the gateway's own machine or a cloud's metadata
// service, checked on the address actually dialled, and an ExternalPolicy says
// which hosts outside the cluster the platform lets routes reach.
package upstream

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Upstream is one target Service port. It is safe for concurrent use: Pick,
// the Endpoint calls, Do, RequestStarted and TryRetry run on every request,
// SetEndpoints whenever EndpointSlices change. Obtain one from a Registry.
type Upstream struct {
	id string
	// set is swapped whole so Pick reads it without a lock; a Pick racing
	// SetEndpoints sees either the old set or the new one, never a mixture.
	set     atomic.Pointer[endpointSet]
	next    atomic.Uint64 // round robin's shared counter
	breaker *gobreaker.CircuitBreaker[struct{}]
	clock   *clock

	outlier OutlierSettings // defaults filled in
	onEject func(Ejection)
	// ejectMu serialises ejection decisions, so two endpoints failing at once
	// cannot both take the last ejection MaxEjectedShare allows.
	ejectMu sync.Mutex
	// ejectedUntil is the clock reading (clock.nanos) at which the last
	// ejection still running ends, 0 when none may be: while it is 0, Pick
	// reads neither the clock nor any endpoint's ejection.
	ejectedUntil atomic.Int64

	setMu  sync.Mutex // serialises SetEndpoints
	budget retryBudget

	mirrors atomic.Int32 // mirrored requests in flight to it, as a shadow
}

// Endpoint is one address of an Upstream, with its load and its passive health.
// The same *Endpoint is kept for an address across SetEndpoints calls while the
// address stays, so ejections and counts survive snapshot rebuilds; an address
// that goes away and comes back starts afresh. Its methods are safe for
// concurrent use.
type Endpoint struct {
	addr string
	hash uint64 // HashKey(addr), for the hash policies' last resort
	up   *Upstream

	active   atomic.Int64  // Begin without End yet
	failures atomic.Uint32 // upstream failures in a row
	// ejectedUntil is the clock reading (clock.nanos) the current or last
	// ejection ends at; 0 for never ejected. The endpoint is ejected while it
	// lies ahead: re-admission needs no event, only time.
	ejectedUntil atomic.Int64
	// gone is set once SetEndpoints drops the address: outcomes of requests
	// still in flight to it no longer eject anything.
	gone atomic.Bool
	// ejections is how many times in a row the endpoint was ejected (the
	// multiplier of BaseEjectionTime); guarded by up.ejectMu.
	ejections uint32
}

// Addr returns the endpoint's address, "ip:port" (or "host:port" for an
// ExternalName upstream). It is a method, not a field, so that no caller can
// change an address the hash ring and Maglev table were built from.
func (e *Endpoint) Addr() string { return e.addr }

// Active returns how many requests Begin counted on e that have not Ended yet.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Ejected reports whether outlier detection has e ejected now.
func (e *Endpoint) Ejected() bool {
	until := e.ejectedUntil.Load()
	return until != 0 && e.up.clock.nanos() < until
}

// endpointSet is one generation of an Upstream's endpoints, never changed once
// published. The hash ring and Maglev table belong to it, so they are built
// once per change of the endpoint set and never for a set nobody hashes on.
type endpointSet struct {
	addrs []string    // sorted, unique, for Endpoints and equality
	eps   []*Endpoint // parallel to addrs

	buildMu sync.Mutex // held while building ring or table
	ring    atomic.Pointer[[]uint64]
	table   atomic.Pointer[[]uint16]
}

// ID returns the identifier the Registry knows this upstream by.
func (u *Upstream) ID() string { return u.id }

// Endpoints returns a copy of the current endpoint addresses, sorted.
func (u *Upstream) Endpoints() []string {
	if s := u.set.Load(); s != nil {
		return slices.Clone(s.addrs)
	}
	return nil
}

// SetEndpoints replaces the endpoint list atomically with a sorted copy of addrs,
// duplicates and empty strings dropped. Sorting makes round robin's rotation and
// the hash ring independent of the order EndpointSlices happened to list
// addresses in. Nil or empty means no ready endpoints: Pick reports false until
// a non-empty list arrives.
//
// An address in both the old and the new list keeps its *Endpoint (active
// count, failures, ejection); an address not in the new list is dropped, so
// memory follows the current list. An unchanged list changes nothing. When the
// old list had a hash ring or Maglev table built, the new one is built here,
// before it is published, so requests do not wait for it; building is bounded
// (see BenchmarkBuild: milliseconds for 1,000 endpoints).
func (u *Upstream) SetEndpoints(addrs []string) {
	list := slices.Clone(addrs)
	slices.Sort(list)
	list = slices.Compact(list)
	if len(list) > 0 && list[0] == "" {
		list = list[1:]
	}
	u.setMu.Lock()
	defer u.setMu.Unlock()
	old := u.set.Load()
	if old != nil && slices.Equal(old.addrs, list) {
		return
	}
	s := &endpointSet{addrs: list, eps: make([]*Endpoint, len(list))}
	var prev []*Endpoint
	if old != nil {
		prev = old.eps
	}
	// Both lists are sorted: one merge walk pairs the addresses that stay.
	j := 0
	for i, addr := range list {
		for j < len(prev) && prev[j].addr < addr {
			prev[j].gone.Store(true)
			j++
		}
		if j < len(prev) && prev[j].addr == addr {
			s.eps[i] = prev[j]
			j++
			continue
		}
		s.eps[i] = &Endpoint{addr: addr, hash: HashKey(addr), up: u}
	}
	for ; j < len(prev); j++ {
		prev[j].gone.Store(true)
	}
	if old != nil && len(s.eps) > 0 {
		if old.ring.Load() != nil {
			s.hashRing()
		}
		if old.table.Load() != nil && len(s.eps) <= maglevMaxEndpoints {
			s.maglevTable()
		}
	}
	u.set.Store(s)
}

// clock is a Registry's time: RegistryOptions.Now read as nanoseconds since
// the Registry was made. Differences of time.Time values use the monotonic
// clock when both have one, so a wall-clock step does not end or stretch an
// ejection.
type clock struct {
	now  func() time.Time
	base time.Time
}

// nanos returns the time since base, at least 1: 0 is the "never" of
// ejection times, and a test clock set before base must not look like it.
func (c *clock) nanos() int64 {
	if d := c.now().Sub(c.base); d > 0 {
		return int64(d)
	}
	return 1
}

// Attempt is one request to an upstream, run by Do; its error is the outcome.
// It is gobreaker's own function type, named: a caller that keeps one (in an
// object it reuses) passes it without the allocation a wrapping closure costs
// on every request.
type Attempt func() (struct{}, error)

// Do runs attempt if the circuit breaker lets a request through to this
// upstream, and returns ErrBreakerOpen without running it otherwise. What
// attempt returns is the request's outcome, and Do returns it: nil counts as a
// success, an error as a failure unless errors.Is(err, ErrExcluded), which
// counts as neither (use it when the client cancelled, so a client's impatience
// never opens the breaker). An outcome that arrives after the breaker changed
// state is ignored. A panic in attempt counts as a failure and is raised again;
// a caller that would judge it otherwise recovers it inside attempt.
func (u *Upstream) Do(attempt Attempt) error {
	_, err := u.breaker.Execute(attempt)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		// gobreaker refuses with ErrOpenState or, when half-open probes are all in
		// flight, ErrTooManyRequests; to the proxy both mean "do not send".
		return ErrBreakerOpen
	}
	return err
}

// State reports the breaker's state. An open breaker whose timeout has passed
// reports half-open.
func (u *Upstream) State() State { return stateOf(u.breaker.State()) }

// TryMirror takes one of max slots for a mirrored request in flight to this
// upstream as a shadow; false when all are taken (the copy is dropped).
// MirrorDone gives it back. A slow shadow so costs the gateway at most max
// requests' worth of memory and goroutines.
func (u *Upstream) TryMirror(max int) bool {
	if u.mirrors.Add(1) > int32(max) {
		u.mirrors.Add(-1)
		return false
	}
	return true
}

// MirrorDone ends a mirrored request TryMirror allowed.
func (u *Upstream) MirrorDone() { u.mirrors.Add(-1) }
