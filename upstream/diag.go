package upstream

import "time"

// Read-only views of an Upstream's state for the admin listener's
// diagnostics page. Each call copies what it reports, takes no lock a
// request takes (but ejectMu, held only while an endpoint is judged), and
// costs one pass over the endpoints.

// EndpointStatus is one endpoint's load and passive health at one moment.
type EndpointStatus struct {
	Addr string
	// Active is how many requests are in flight to it (Begin without End).
	Active int64
	// Failures is its current run of upstream failures; OutlierSettings.
	// ConsecutiveFailures in a row eject it.
	Failures uint32
	// Ejected is set while outlier detection keeps it out of balancing,
	// for EjectedFor more.
	Ejected    bool
	EjectedFor time.Duration
	// Ejections is how many times in a row it has been ejected: the next
	// ejection lasts BaseEjectionTime × (Ejections+1), capped.
	Ejections int
}

// EndpointStatuses describes the current endpoints, in Endpoints' order.
func (u *Upstream) EndpointStatuses() []EndpointStatus {
	s := u.set.Load()
	if s == nil {
		return nil
	}
	now := u.clock.nanos()
	out := make([]EndpointStatus, len(s.eps))
	u.ejectMu.Lock() // for ejections
	defer u.ejectMu.Unlock()
	for i, e := range s.eps {
		st := EndpointStatus{Addr: e.addr, Active: e.active.Load(), Failures: e.failures.Load(), Ejections: int(e.ejections)}
		if until := e.ejectedUntil.Load(); until > now {
			st.Ejected, st.EjectedFor = true, time.Duration(until-now)
		}
		out[i] = st
	}
	return out
}

// BreakerCounts are what the circuit breaker counted in its rolling
// Interval (BreakerSettings): outcomes, and the current runs of each.
type BreakerCounts struct {
	Requests             uint32
	Successes            uint32
	Failures             uint32
	Exclusions           uint32 // outcomes marked ErrExcluded
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// BreakerCounts reports the breaker's counts now.
func (u *Upstream) BreakerCounts() BreakerCounts {
	c := u.breaker.Counts()
	return BreakerCounts{
		Requests: c.Requests, Successes: c.TotalSuccesses, Failures: c.TotalFailures, Exclusions: c.TotalExclusions,
		ConsecutiveSuccesses: c.ConsecutiveSuccesses, ConsecutiveFailures: c.ConsecutiveFailures,
	}
}
