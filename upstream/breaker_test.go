package upstream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

var errBoom = errors.New("upstream returned 502")

// outcome feeds results to the breaker: f failure, s success, x excluded.
func outcome(t *testing.T, u *Upstream, seq string) {
	t.Helper()
	for _, c := range seq {
		done, err := u.Allow()
		if err != nil {
			t.Fatalf("Allow refused before outcome %q of %q: %v", c, seq, err)
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := NewRegistry(RegistryOptions{Breaker: tc.settings}).Get("ns/svc:80")
			outcome(t, u, tc.seq)
			if got := u.State(); got != tc.want {
				t.Fatalf("after %q: state %v, want %v", tc.seq, got, tc.want)
			}
			done, err := u.Allow()
			if refused := errors.Is(err, ErrBreakerOpen); refused != (tc.want == StateOpen) || (done == nil) != refused {
				t.Fatalf("Allow in state %v = (done != nil: %v, %v)", tc.want, done != nil, err)
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
		done, err := u.Allow()
		if err == nil {
			return done
		}
		if !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("Allow while open: %v, want ErrBreakerOpen", err)
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
	probe2, err := u.Allow()
	if err != nil {
		t.Fatalf("second probe refused: %v", err)
	}
	if _, err := u.Allow(); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("third concurrent probe: err = %v, want ErrBreakerOpen", err)
	}
	probe2(ErrExcluded)
	probe3, err := u.Allow()
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
	slow, _ := u.Allow()
	outcome(t, u, "f")
	slow(nil)
	if s := u.State(); s != StateOpen {
		t.Fatalf("state %v after a stale success, want open", s)
	}
}

func TestDefaults(t *testing.T) {
	got := BreakerSettings{}.withDefaults()
	want := BreakerSettings{ConsecutiveFailures: 5, OpenTimeout: 10 * time.Second, HalfOpenRequests: 1}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	set := BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: time.Minute, HalfOpenRequests: 3}
	if got := set.withDefaults(); got != set {
		t.Fatalf("explicit settings changed to %+v", got)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateHalfOpen: "half-open", StateOpen: "open", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// BenchmarkAllowDone measures the breaker on the success path. gobreaker allocates
// the done closure, hence 1 alloc/op.
func BenchmarkAllowDone(b *testing.B) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			done, err := u.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done, err := u.Allow()
				if err != nil {
					b.Error(err)
					return
				}
				done(nil)
			}
		})
	})
}
