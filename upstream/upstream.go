// Package upstream models the targets of routes: one Upstream per Service port, with
// its ready endpoint addresses, a round-robin picker and a circuit breaker. A
// Registry keeps each Upstream (and so its breaker state and picker position)
// across snapshot rebuilds, so republishing configuration neither closes an open
// breaker nor forgets the failures counted so far.
//
// It also decides where the gateway may connect at all: a DialGuard refuses
// addresses that reach the gateway's own machine or a cloud's metadata
// service, checked on the address actually dialled, and an ExternalPolicy says
// which hosts outside the cluster the platform lets routes reach.
package upstream

import (
	"errors"
	"slices"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"
)

// Upstream is one target Service port. It is safe for concurrent use: Pick and
// Do run on every request, SetEndpoints whenever EndpointSlices change. Obtain
// one from a Registry.
type Upstream struct {
	id string
	// endpoints is swapped whole so Pick reads it without a lock; a Pick racing
	// SetEndpoints sees either the old list or the new one, never a mixture.
	endpoints atomic.Pointer[[]string]
	next      atomic.Uint64
	breaker   *gobreaker.CircuitBreaker[struct{}]
}

// ID returns the identifier the Registry knows this upstream by.
func (u *Upstream) ID() string { return u.id }

// Pick returns the next ready endpoint address ("ip:port") in round-robin order,
// or false when there is none. It does not allocate. After SetEndpoints the
// rotation continues from the shared counter, so it does not restart at the first
// address, which would send a burst to the lowest address on every change.
func (u *Upstream) Pick() (string, bool) {
	p := u.endpoints.Load()
	if p == nil || len(*p) == 0 {
		return "", false
	}
	eps := *p
	n := u.next.Add(1) - 1
	return eps[n%uint64(len(eps))], true
}

// Endpoints returns a copy of the current endpoint addresses, sorted.
func (u *Upstream) Endpoints() []string {
	if p := u.endpoints.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// SetEndpoints replaces the endpoint list atomically with a sorted copy of addrs,
// duplicates and empty strings dropped. Sorting makes the rotation independent of
// the order EndpointSlices happened to list addresses in. Nil or empty means no
// ready endpoints: Pick reports false until a non-empty list arrives.
func (u *Upstream) SetEndpoints(addrs []string) {
	eps := slices.Clone(addrs)
	slices.Sort(eps)
	eps = slices.Compact(eps)
	if len(eps) > 0 && eps[0] == "" {
		eps = eps[1:]
	}
	if old := u.endpoints.Load(); old != nil && slices.Equal(*old, eps) {
		return
	}
	u.endpoints.Store(&eps)
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
