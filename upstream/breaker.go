package upstream

import (
	"errors"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerSettings configures every upstream's circuit breaker. Zero fields mean
// the defaults given below.
type BreakerSettings struct {
	// ConsecutiveFailures trips the breaker (closed → open) after this many
	// failures in a row; 0 means 5.
	ConsecutiveFailures uint32
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
	if s.OpenTimeout <= 0 {
		s.OpenTimeout = 10 * time.Second
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = 1
	}
	return s
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
	// ErrBreakerOpen is returned by Upstream.Allow when the breaker refuses a
	// request: it is open, or half-open with all its probes in flight.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrExcluded marks an outcome that must count neither as a success nor as a
	// failure, such as a client cancelling its request. Pass it, or an error
	// wrapping it, to the done function returned by Upstream.Allow.
	ErrExcluded = errors.New("outcome excluded from circuit breaker counts")
)

func newBreaker(id string, s BreakerSettings, onChange func(id string, from, to State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	s = s.withDefaults()
	st := gobreaker.Settings{
		Name:        id,
		MaxRequests: s.HalfOpenRequests,
		Timeout:     s.OpenTimeout,
		// Interval stays 0: counts are cleared only by state changes, and a success
		// resets the consecutive-failure count anyway.
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= s.ConsecutiveFailures },
		IsExcluded:  func(err error) bool { return errors.Is(err, ErrExcluded) },
	}
	if onChange != nil {
		st.OnStateChange = func(name string, from, to gobreaker.State) {
			onChange(name, stateOf(from), stateOf(to))
		}
	}
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
}
