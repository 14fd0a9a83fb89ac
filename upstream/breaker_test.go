package upstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

var errBoom = errors.New("upstream returned 502")

// outcome feeds results to the breaker: f failure, s success, x excluded.
// allow starts a request through u's breaker the way a proxy's would, in a
// goroutine parked inside Do, so a test can hold several in flight: done ends
// it with an outcome (and waits for Do to return). err is ErrBreakerOpen when
// the breaker refused.
func allow(u *Upstream) (done func(error), err error) {
	admitted := make(chan bool)
	outcome := make(chan error)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		err := u.Do(func() (struct{}, error) {
			admitted <- true
			return struct{}{}, <-outcome
		})
		if errors.Is(err, ErrBreakerOpen) {
			admitted <- false
		}
	}()
	if !<-admitted {
		<-returned
		return nil, ErrBreakerOpen
	}
	return func(err error) {
		outcome <- err
		<-returned
	}, nil
}

func outcome(t *testing.T, u *Upstream, seq string) {
	t.Helper()
	for _, c := range seq {
		done, err := allow(u)
		if err != nil {
			t.Fatalf("Do refused before outcome %q of %q: %v", c, seq, err)
		}
		switch c {
		case 'f':
			done(errBoom)
		case 's':
			done(nil)
		case 'x':
			done(fmt.Errorf("proxying: %w", errors.Join(context.Canceled, ErrExcluded)))
		}
	}
}

func TestBreakerTrips(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings BreakerSettings
		seq      string
		want     State
	}{
		{"defaults: 4 failures stay closed", BreakerSettings{}, "ffff", StateClosed},
		{"defaults: 5 failures open", BreakerSettings{}, "fffff", StateOpen},
		{"3 failures open", BreakerSettings{ConsecutiveFailures: 3}, "fff", StateOpen},
		{"success resets the count", BreakerSettings{ConsecutiveFailures: 3}, "ffsff", StateClosed},
		{"exclusions are not failures", BreakerSettings{ConsecutiveFailures: 3}, "ffxxxxx", StateClosed},
		{"exclusions do not reset the count", BreakerSettings{ConsecutiveFailures: 3}, "ffxxxf", StateOpen},
		{"one failure with threshold 1", BreakerSettings{ConsecutiveFailures: 1}, "sssf", StateOpen},
		// The ratio trip is judged when a failure arrives: "sf"×10 is 10 of 20.
		{"defaults: half of 20 open", BreakerSettings{}, strings.Repeat("sf", 10), StateOpen},
		{"defaults: 10 of 19 is below the volume", BreakerSettings{}, strings.Repeat("fs", 9) + "f", StateClosed},
		{"defaults: a third of 30 stays closed", BreakerSettings{}, strings.Repeat("ssf", 10), StateClosed},
		{"ratio 0.25 of 8", BreakerSettings{FailureRatio: 0.25, MinRequests: 8}, "sssfsssf", StateOpen},
		{"ratio above 1 is off", BreakerSettings{FailureRatio: 1.5}, strings.Repeat("sf", 30), StateClosed},
		{"exclusions are no volume", BreakerSettings{MinRequests: 4}, "xxxxxxsf", StateClosed},
		{"exclusions do not dilute", BreakerSettings{MinRequests: 4}, "sxxxxfsxxxf", StateOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := NewRegistry(RegistryOptions{Breaker: tc.settings}).Get("ns/svc:80")
			outcome(t, u, tc.seq)
			if got := u.State(); got != tc.want {
				t.Fatalf("after %q: state %v, want %v", tc.seq, got, tc.want)
			}
			done, err := allow(u)
			if refused := errors.Is(err, ErrBreakerOpen); refused != (tc.want == StateOpen) || (done == nil) != refused {
				t.Fatalf("Do in state %v = (done != nil: %v, %v)", tc.want, done != nil, err)
			}
		})
	}
}

// awaitHalfOpen polls until the open breaker lets a probe through. The deadline
// only turns a hang into a failure; it is not a timing assertion.
func awaitHalfOpen(t *testing.T, u *Upstream) func(error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		done, err := allow(u)
		if err == nil {
			return done
		}
		if !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("Do while open: %v, want ErrBreakerOpen", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker still open 5s after a few-millisecond OpenTimeout")
		}
		runtime.Gosched()
	}
}

type transition struct {
	id       string
	from, to State
}

func TestBreakerRecovers(t *testing.T) {
	var mu sync.Mutex
	var got []transition
	r := NewRegistry(RegistryOptions{
		Breaker: BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: 5 * time.Millisecond, HalfOpenRequests: 2},
		OnStateChange: func(id string, from, to State) {
			mu.Lock()
			got = append(got, transition{id, from, to})
			mu.Unlock()
		},
	})
	u := r.Get("ns/svc:80")
	outcome(t, u, "ff")

	// Half-open, a failed probe opens the breaker again.
	awaitHalfOpen(t, u)(errBoom)
	if s := u.State(); s != StateOpen {
		t.Fatalf("after a failed probe: %v, want open", s)
	}

	// Half-open admits HalfOpenRequests probes at once, refuses the next, and
	// closes after that many successes. An excluded probe frees its slot.
	probe1 := awaitHalfOpen(t, u)
	if s := u.State(); s != StateHalfOpen {
		t.Fatalf("while probing: %v, want half-open", s)
	}
	probe2, err := allow(u)
	if err != nil {
		t.Fatalf("second probe refused: %v", err)
	}
	if _, err := allow(u); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("third concurrent probe: err = %v, want ErrBreakerOpen", err)
	}
	probe2(ErrExcluded)
	probe3, err := allow(u)
	if err != nil {
		t.Fatalf("probe after an excluded one refused: %v", err)
	}
	probe1(nil)
	if s := u.State(); s != StateHalfOpen {
		t.Fatalf("after 1 of 2 successes: %v, want half-open", s)
	}
	probe3(nil)
	if s := u.State(); s != StateClosed {
		t.Fatalf("after 2 successful probes: %v, want closed", s)
	}

	want := []transition{
		{"ns/svc:80", StateClosed, StateOpen},
		{"ns/svc:80", StateOpen, StateHalfOpen},
		{"ns/svc:80", StateHalfOpen, StateOpen},
		{"ns/svc:80", StateOpen, StateHalfOpen},
		{"ns/svc:80", StateHalfOpen, StateClosed},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
}

// TestStaleOutcomeIgnored: a request admitted before the breaker opened reports
// late; its success must not close the breaker.
func TestStaleOutcomeIgnored(t *testing.T) {
	u := NewRegistry(RegistryOptions{Breaker: BreakerSettings{ConsecutiveFailures: 1}}).Get("ns/svc:80")
	slow, _ := allow(u)
	outcome(t, u, "f")
	slow(nil)
	if s := u.State(); s != StateOpen {
		t.Fatalf("state %v after a stale success, want open", s)
	}
}

func TestDefaults(t *testing.T) {
	got := BreakerSettings{}.withDefaults()
	want := BreakerSettings{ConsecutiveFailures: 5, FailureRatio: 0.5, MinRequests: 20, Interval: 10 * time.Second,
		OpenTimeout: 10 * time.Second, HalfOpenRequests: 1}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	for _, bad := range []float64{math.NaN(), -1} {
		if got := (BreakerSettings{FailureRatio: bad}).withDefaults().FailureRatio; got != 0.5 {
			t.Errorf("FailureRatio %v became %v, want the default 0.5", bad, got)
		}
	}
	set := BreakerSettings{ConsecutiveFailures: 2, FailureRatio: 0.9, MinRequests: 3, Interval: time.Minute,
		OpenTimeout: time.Minute, HalfOpenRequests: 3}
	if got := set.withDefaults(); got != set {
		t.Fatalf("explicit settings changed to %+v", got)
	}
}

// TestReadyToTrip checks the trip decision on counts directly, including
// totals no test would reach by feeding outcomes one by one.
func TestReadyToTrip(t *testing.T) {
	s := BreakerSettings{}.withDefaults()
	for _, tc := range []struct {
		c    gobreaker.Counts
		want bool
	}{
		{gobreaker.Counts{TotalFailures: 4, ConsecutiveFailures: 4}, false},
		{gobreaker.Counts{TotalFailures: 5, ConsecutiveFailures: 5}, true},
		{gobreaker.Counts{TotalSuccesses: 10, TotalFailures: 9, ConsecutiveFailures: 1}, false},
		{gobreaker.Counts{TotalSuccesses: 10, TotalFailures: 10, ConsecutiveFailures: 1}, true},
		{gobreaker.Counts{TotalSuccesses: 11, TotalFailures: 10, ConsecutiveFailures: 1}, false},
		// Exclusions and in-flight requests are in Requests, not in the volume.
		{gobreaker.Counts{Requests: 1000, TotalExclusions: 990, TotalSuccesses: 5, TotalFailures: 5, ConsecutiveFailures: 1}, false},
		// Totals near the top of uint32 must not wrap when added.
		{gobreaker.Counts{TotalSuccesses: math.MaxUint32, TotalFailures: math.MaxUint32, ConsecutiveFailures: 1}, true},
		{gobreaker.Counts{TotalSuccesses: math.MaxUint32, TotalFailures: 1, ConsecutiveFailures: 1}, false},
	} {
		if got := s.readyToTrip(tc.c); got != tc.want {
			t.Errorf("readyToTrip(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateHalfOpen: "half-open", StateOpen: "open", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// BenchmarkDo measures the breaker on the success path with an Attempt made
// once, as the proxy keeps one in each reused exchange: 0 allocs/op (gobreaker's
// two-step Allow allocated its done closure on every request).
func BenchmarkDo(b *testing.B) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	attempt := Attempt(func() (struct{}, error) { return struct{}{}, nil })
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := u.Do(attempt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := u.Do(attempt); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
