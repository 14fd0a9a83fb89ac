package upstream

import (
	"errors"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerSettings configures every upstream's circuit breaker. Zero fields mean
// the defaults given below.
//
// A closed breaker opens on either of two trips, both judged on the outcomes
// of the last Interval: a run of ConsecutiveFailures failures (a dead
// upstream is noticed after a few requests, whatever the traffic), or a
// failure ratio of at least FailureRatio over at least MinRequests outcomes
// (a sick upstream that fails every other request never fails five times
// in a row, but is noticed once there is enough traffic to judge it).
// Outcomes the caller marks with ErrExcluded (a client that cancelled or
// never finished sending its request) count towards neither trip.
type BreakerSettings struct {
	// ConsecutiveFailures trips the breaker (closed → open) after this many
	// failures in a row; 0 means 5.
	ConsecutiveFailures uint32
	// FailureRatio trips the breaker when at least this fraction of the
	// outcomes counted in Interval are failures, once there are MinRequests
	// of them; 0 (or NaN, or a negative value) means 0.5. A value above 1
	// can never be reached, which turns the ratio trip off.
	FailureRatio float64
	// MinRequests is how many outcomes (successes plus failures) Interval
	// must hold before FailureRatio is applied, so that one failure in the
	// first two requests does not open a quiet upstream's breaker; 0 means 20.
	MinRequests uint32
	// Interval is the rolling window both trips look at, moved in tenths of
	// itself: failures older than Interval are forgotten. 0 means 10s.
	Interval time.Duration
	// OpenTimeout is how long an open breaker refuses before letting probes
	// through (open → half-open); 0 means 10s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes a half-open breaker lets through at once;
	// that many successes in a row close it, one failure opens it again. 0 means 1.
	HalfOpenRequests uint32
}

func (s BreakerSettings) withDefaults() BreakerSettings {
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = 5
	}
	if !(s.FailureRatio > 0) { // catches NaN too
		s.FailureRatio = 0.5
	}
	if s.MinRequests == 0 {
		s.MinRequests = 20
	}
	if s.Interval <= 0 {
		s.Interval = 10 * time.Second
	}
	if s.OpenTimeout <= 0 {
		s.OpenTimeout = 10 * time.Second
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = 1
	}
	return s
}

// readyToTrip decides, on each failure of a closed breaker, whether it
// opens. s must have its defaults filled in. Excluded outcomes are not in
// the volume: counting them would let clients that go away dilute the
// failures of an upstream that really is failing.
func (s BreakerSettings) readyToTrip(c gobreaker.Counts) bool {
	if c.ConsecutiveFailures >= s.ConsecutiveFailures {
		return true
	}
	// uint64: two uint32 totals may not fit in a uint32.
	volume := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
	return volume >= uint64(s.MinRequests) && float64(c.TotalFailures) >= s.FailureRatio*float64(volume)
}

// State is a circuit breaker's state.
type State uint8

const (
	// StateClosed lets requests through and counts failures.
	StateClosed State = iota
	// StateHalfOpen lets a few probes through to test whether the upstream recovered.
	StateHalfOpen
	// StateOpen refuses every request until OpenTimeout has passed.
	StateOpen
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return "State(" + strconv.Itoa(int(s)) + ")"
	}
}

// stateOf keeps gobreaker's type out of our API, so callers (metrics, logs) do not
// depend on the breaker library.
func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	default:
		return StateClosed
	}
}

var (
	// ErrBreakerOpen is returned by Upstream.Do when the breaker refuses a
	// request: it is open, or half-open with all its probes in flight.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrExcluded marks an outcome that must count neither as a success nor as a
	// failure, such as a client cancelling its request or never finishing its
	// request body: health is learned from the upstream only. Pass it, or an
	// error wrapping it, as the outcome of Upstream.Do's attempt.
	ErrExcluded = errors.New("outcome excluded from circuit breaker counts")
)

func newBreaker(id string, s BreakerSettings, onChange func(id string, from, to State)) *gobreaker.CircuitBreaker[struct{}] {
	s = s.withDefaults()
	st := gobreaker.Settings{
		Name:        id,
		MaxRequests: s.HalfOpenRequests,
		Timeout:     s.OpenTimeout,
		// A rolling window rather than gobreaker's fixed one: a fixed window
		// forgets everything at each boundary, so failures straddling it
		// would never add up, and it starts a new generation, which drops the
		// outcomes of requests still in flight.
		Interval:     s.Interval,
		BucketPeriod: s.Interval / 10,
		ReadyToTrip:  s.readyToTrip,
		IsExcluded:   func(err error) bool { return errors.Is(err, ErrExcluded) },
	}
	if onChange != nil {
		st.OnStateChange = func(name string, from, to gobreaker.State) {
			onChange(name, stateOf(from), stateOf(to))
		}
	}
	return gobreaker.NewCircuitBreaker[struct{}](st)
}
