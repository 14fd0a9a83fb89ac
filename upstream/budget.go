package upstream

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// RetryBudget bounds the retries sent to each upstream. Zero fields mean the
// defaults given below.
//
// Retries are allowed at Fraction of the first tries recently sent plus
// PerSecond, so an upstream that fails everything sees at most about
// (1 + Fraction) × the request rate, plus PerSecond, instead of
// (1 + num_retries) × the rate that a retry count alone allows, which turns
// an upstream's bad minute into a retry storm that keeps it down.
//
// Envoy's retry_budget bounds concurrency instead (active retries ≤
// budget_percent, 20%, of active requests, and at least
// min_retry_concurrency, 3). A gateway that may not know when a retry ends
// (the proxy's retries are sent from within a request) needs no bookkeeping
// at the end of each request for a rate; and a rate bounds what the upstream
// is sent, which is the point, whatever its latency. PerSecond plays
// min_retry_concurrency's part: a quiet upstream (one request now and then)
// would otherwise have almost nothing to retry with.
type RetryBudget struct {
	// Fraction is the share of first tries that may be retried; 0 (or NaN)
	// means 0.2 (Envoy's budget_percent default, 20%), a negative value
	// means none (only PerSecond).
	Fraction float64
	// PerSecond is the floor: retries allowed per second whatever the
	// traffic; 0 (or NaN) means 3 (Envoy's min_retry_concurrency default, as
	// a rate), a negative value means none.
	PerSecond float64
}

func (b RetryBudget) withDefaults() RetryBudget {
	switch {
	case b.Fraction == 0 || math.IsNaN(b.Fraction):
		b.Fraction = 0.2
	case b.Fraction < 0:
		b.Fraction = 0
	}
	switch {
	case b.PerSecond == 0 || math.IsNaN(b.PerSecond):
		b.PerSecond = 3
	case b.PerSecond < 0:
		b.PerSecond = 0
	}
	return b
}

// budgetMemory is how long the budget remembers: the bucket leaks with this
// time constant, so what it holds is about Fraction × the first tries of the
// last 10 s plus PerSecond × 10 s. That is the cap that keeps a burst after a
// long healthy (or quiet) spell from retrying without bound: an upstream
// failing everything after serving r requests a second at length may have
// every request retried once for about 2.5 s (the savings, 10 s × (0.2r + 3),
// drain at about r − 0.2r a second) before the budget holds retries to
// 0.2r + 3 a second.
// Shorter would starve bursty traffic whose failures come a moment after its
// deposits (see retryBudget.settle); longer would let more be saved.
const budgetMemory = 10 * time.Second

// microTokens is the fixed point of deposits: a fraction of a retry per
// request, added with one atomic operation.
const microTokens = 1e6

// retryBudget is a leaky bucket of retries. First tries deposit Fraction
// each (an atomic add, the only cost on the request path); PerSecond flows
// in with time; the contents leak with time constant budgetMemory; a retry
// takes 1. Only a retry reads the clock and takes the lock, to settle what
// came in and leaked since the last retry.
type retryBudget struct {
	deposits   atomic.Int64 // micro-tokens deposited since the last settle
	perDeposit int64        // Fraction in micro-tokens
	perSecond  float64

	mu     sync.Mutex
	tokens float64
	last   int64 // clock.nanos of the last settle
}

func (b *retryBudget) init(s RetryBudget, now int64) {
	s = s.withDefaults()
	b.perDeposit = int64(math.Round(s.Fraction * microTokens))
	b.perSecond = s.PerSecond
	// A new upstream starts where an idle one settles: PerSecond × memory
	// (30 retries by default), so its first failures can be retried.
	b.tokens = s.PerSecond * budgetMemory.Seconds()
	b.last = now
}

// RequestStarted deposits a first try's share of a retry in the retry
// budget. Call it once for each request sent to the upstream, not for its
// retries. It does not allocate and takes no lock.
//
// There is no RequestEnded: the budget bounds a rate of retries, so it needs
// no count of what is in flight.
func (u *Upstream) RequestStarted() {
	if d := u.budget.perDeposit; d != 0 {
		u.budget.deposits.Add(d)
	}
}

// TryRetry reports whether one more retry may be sent to the upstream now
// and, when it may, takes it from the budget (RetryBudget). It does not
// allocate. Over any period, the retries it allows number at most
// Fraction × the RequestStarted calls + PerSecond × the seconds + what the
// budget held at the start (at most about 10 s of each, see budgetMemory).
func (u *Upstream) TryRetry() bool {
	now := u.clock.nanos()
	b := &u.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settle(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// settle brings tokens to now. With inflow r over the t seconds since the
// last settle and leak tokens/W (W = budgetMemory), the contents follow
// dτ/dt = r − τ/W, so
//
//	τ(t) = τ(0)·e^(−t/W) + (D + P·t) · (W/t)·(1 − e^(−t/W))
//
// where D are the deposits since the last settle and P is PerSecond. The
// deposits were made at unknown times within t (recording each one's time
// would cost a clock read per request); the formula takes them as spread
// evenly, which, when they actually came just before this retry, counts less
// of them than were made (1% fewer for t = 0.2 s, 37% fewer for t = 10 s).
// It never counts more: the factor (W/t)·(1 − e^(−t/W)) is at most 1, so τ
// never gains more than D + P·t, which is the bound TryRetry documents.
func (b *retryBudget) settle(now int64) {
	d := float64(b.deposits.Swap(0)) / microTokens
	t := time.Duration(now - b.last).Seconds()
	if t <= 0 { // the first of retries at the same instant, or a clock that went back
		b.tokens += d
		return
	}
	b.last = now
	w := budgetMemory.Seconds()
	leak := -math.Expm1(-t / w) // 1 − e^(−t/W), exact for small t
	b.tokens = b.tokens*(1-leak) + (d+b.perSecond*t)*(w/t)*leak
}
