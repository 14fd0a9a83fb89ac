package upstream

import (
	"math"
	"strconv"
	"time"
)

// This file is passive outlier detection, in Envoy's manner: an endpoint is
// judged only by the answers it gives (never by a client's reset or
// cancellation), ejected from balancing after a run of failures, for longer
// each time it is ejected again, and re-admitted when its time is up, with
// no probe and no timer: Pick compares the ejection's end with the clock.

// Outcome is how a request sent to an endpoint ended, as far as the
// endpoint's health is concerned.
type Outcome uint8

const (
	// OutcomeSuccess is any answer that is not a failure below (a 404 or a
	// 429 is the application speaking, not the endpoint failing).
	OutcomeSuccess Outcome = iota
	// OutcomeConnectFailure: the connection could not be made, or was reset
	// or closed before any answer.
	OutcomeConnectFailure
	// OutcomeServerError: the endpoint answered 5xx (502, 503 and 504
	// included: whoever answers for the endpoint says it cannot serve).
	OutcomeServerError
	// OutcomeNeither is the client's doing (it cancelled, or its request body
	// broke): it counts for nothing, neither resetting a run of failures nor
	// adding to one.
	OutcomeNeither
)

func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeConnectFailure:
		return "connect-failure"
	case OutcomeServerError:
		return "server-error"
	case OutcomeNeither:
		return "neither"
	default:
		return "Outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// OutlierSettings configures outlier detection for every upstream. Zero fields
// mean the defaults given below.
//
// An endpoint that fails ConsecutiveFailures times in a row is ejected for
// BaseEjectionTime × k, where k counts its ejections (this one included),
// capped at MaxEjectionTime. k starts over once the endpoint has been back for
// MaxEjectionTime without being ejected: an endpoint that flaps keeps being
// ejected for longer, one that recovered is judged afresh. (Envoy instead
// lowers k by one at each 10 s analysis interval the endpoint is healthy;
// without a timer, "back for MaxEjectionTime" is decided at the next ejection.)
type OutlierSettings struct {
	// ConsecutiveFailures is the run of failures (OutcomeConnectFailure or
	// OutcomeServerError; a success ends the run) that ejects an endpoint;
	// 0 means 5, Envoy's consecutive_5xx default. math.MaxUint32 turns
	// outlier detection off in practice.
	ConsecutiveFailures uint32
	// BaseEjectionTime is the first ejection's length; 0 means 30s (Envoy's
	// base_ejection_time).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length, and is how long an endpoint
	// must stay admitted for its count of ejections to start over; 0 means
	// 300s (Envoy's max_ejection_time). A value below BaseEjectionTime is
	// raised to it.
	MaxEjectionTime time.Duration
	// MaxEjectedShare caps the endpoints ejected at once to
	// max(1, ⌊MaxEjectedShare × N⌋) of an upstream's N, and never all of them
	// (so none of a single endpoint): outlier detection steers traffic among
	// endpoints, and when most of them fail the breaker, not ejection, is the
	// answer. 0 (or NaN, or a negative value) means 0.5, so 1 of 2 or 3,
	// 2 of 4 or 5; a value above 1 means 1. (Envoy's max_ejection_percent
	// defaults to 10%, which ejects nothing among fewer than 20 endpoints but
	// the first; a gateway's upstreams are often 2 or 3 pods.)
	MaxEjectedShare float64
}

func (s OutlierSettings) withDefaults() OutlierSettings {
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = 5
	}
	if s.BaseEjectionTime <= 0 {
		s.BaseEjectionTime = 30 * time.Second
	}
	if s.MaxEjectionTime <= 0 {
		s.MaxEjectionTime = 300 * time.Second
	}
	s.MaxEjectionTime = max(s.MaxEjectionTime, s.BaseEjectionTime)
	if !(s.MaxEjectedShare > 0) { // catches NaN too
		s.MaxEjectedShare = 0.5
	}
	s.MaxEjectedShare = min(s.MaxEjectedShare, 1)
	return s
}

// maxEjected is how many of n endpoints may be ejected at once.
func (s OutlierSettings) maxEjected(n int) int {
	return min(max(1, int(math.Floor(s.MaxEjectedShare*float64(n)))), n-1)
}

// ejectionTime is how long the k-th ejection in a row lasts.
func (s OutlierSettings) ejectionTime(k uint32) time.Duration {
	// Compared before multiplying, so a large k cannot overflow.
	if time.Duration(k) > s.MaxEjectionTime/s.BaseEjectionTime {
		return s.MaxEjectionTime
	}
	return s.BaseEjectionTime * time.Duration(k)
}

// Ejection reports an endpoint that outlier detection found failing, for
// metrics and logs (RegistryOptions.OnEject).
type Ejection struct {
	Upstream string // the upstream's ID
	Addr     string // the endpoint's address
	// For is how long the endpoint is ejected; 0 when Capped.
	For time.Duration
	// Count is how many times in a row the endpoint has been ejected, this
	// time included (For is BaseEjectionTime × Count, capped); 0 when Capped.
	Count int
	// Capped reports an endpoint that failed ConsecutiveFailures times but
	// stays in balancing, because MaxEjectedShare of the upstream's endpoints
	// are ejected already (Envoy's ejections_overflow). Its run of failures
	// starts over, so it is judged again after as many more.
	Capped bool
}

// Begin marks a request as sent to e: LeastRequest counts e's requests that
// have begun and not ended. Call End exactly once for each Begin.
func (e *Endpoint) Begin() { e.active.Add(1) }

// End reports how the request Begin marked ended. It does not allocate. A
// failure that completes a run of OutlierSettings.ConsecutiveFailures ejects
// e (unless the cap forbids it, or e is ejected already or no longer one of
// the upstream's endpoints) and reports it to RegistryOptions.OnEject, on the
// calling goroutine.
func (e *Endpoint) End(o Outcome) {
	e.active.Add(-1)
	switch o {
	case OutcomeSuccess:
		// A load first: on the common path the count is 0 already, and not
		// writing keeps the cache line shared among the cores.
		if e.failures.Load() != 0 {
			e.failures.Store(0)
		}
	case OutcomeConnectFailure, OutcomeServerError:
		// Exactly one goroutine sees the count reach the threshold, so one
		// run of failures is judged once, however many end at the same time.
		if e.failures.Add(1) == e.up.outlier.ConsecutiveFailures {
			e.up.judge(e)
		}
	}
}

// judge decides whether e, which just completed a run of failures, is
// ejected, and reports the decision.
func (u *Upstream) judge(e *Endpoint) {
	ej, report := u.eject(e)
	if report && u.onEject != nil {
		u.onEject(ej)
	}
}

func (u *Upstream) eject(e *Endpoint) (Ejection, bool) {
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	// A new run starts whatever the decision: failures counted while
	// ejected (requests already in flight) must not eject it again at once.
	defer e.failures.Store(0)
	s := u.set.Load()
	now := u.clock.nanos()
	if e.gone.Load() || s == nil || e.ejectedUntil.Load() > now {
		return Ejection{}, false
	}
	ejected := 0
	for _, x := range s.eps {
		if x.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if ejected >= u.outlier.maxEjected(len(s.eps)) {
		return Ejection{Upstream: u.id, Addr: e.addr, Capped: true}, true
	}
	if last := e.ejectedUntil.Load(); last != 0 && now-last >= int64(u.outlier.MaxEjectionTime) {
		e.ejections = 0
	}
	if e.ejections < math.MaxUint32 {
		e.ejections++
	}
	d := u.outlier.ejectionTime(e.ejections)
	until := now + int64(d)
	e.ejectedUntil.Store(until)
	for {
		cur := u.ejectedUntil.Load()
		if cur >= until || u.ejectedUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	return Ejection{Upstream: u.id, Addr: e.addr, For: d, Count: int(e.ejections)}, true
}
