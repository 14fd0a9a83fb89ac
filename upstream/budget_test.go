package upstream

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestRetryBudgetDefaults(t *testing.T) {
	for _, c := range []struct{ in, want RetryBudget }{
		{RetryBudget{}, RetryBudget{Fraction: 0.2, PerSecond: 3}},
		{RetryBudget{Fraction: math.NaN(), PerSecond: math.NaN()}, RetryBudget{Fraction: 0.2, PerSecond: 3}},
		{RetryBudget{Fraction: -1, PerSecond: -1}, RetryBudget{}},
		{RetryBudget{Fraction: 0.5, PerSecond: 10}, RetryBudget{Fraction: 0.5, PerSecond: 10}},
	} {
		if got := c.in.withDefaults(); got != c.want {
			t.Errorf("%+v with defaults = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// drive sends n first tries to u, one every interval of clk, each failing
// with probability (i % failEvery == 0) and retried up to retries times while
// the budget allows; it returns the retries allowed and the time it took.
func drive(u *Upstream, clk *fakeClock, n int, interval time.Duration, failEvery, retries int) (allowed, wanted int, took time.Duration) {
	for i := range n {
		u.RequestStarted()
		if i%failEvery == 0 {
			for range retries {
				wanted++
				if !u.TryRetry() {
					break
				}
				allowed++
			}
		}
		clk.Advance(interval)
	}
	return allowed, wanted, time.Duration(n) * interval
}

// TestRetryBudgetAllFailing: 10,000 requests at 1,000/s, every one failing
// and retried up to 3 times: retries stay within 0.2 × 10,000 + 3/s × 10 s
// plus the 30 a new upstream starts with, and the budget is not stingier
// than that by more than what leaks.
func TestRetryBudgetAllFailing(t *testing.T) {
	for _, rate := range []int{1000, 50} {
		clk := newFakeClock()
		u := NewRegistry(RegistryOptions{Now: clk.Now}).Get("ns/svc:80")
		interval := time.Second / time.Duration(rate)
		allowed, wanted, took := drive(u, clk, 10_000, interval, 1, 3)
		bound := 0.2*10_000 + 3*took.Seconds() + 3*budgetMemory.Seconds()
		t.Logf("%d/s for %v, all failing: %d retries of %d wanted, bound %.0f", rate, took, allowed, wanted, bound)
		if float64(allowed) > bound {
			t.Errorf("%d/s: %d retries allowed, more than %.0f", rate, allowed, bound)
		}
		if float64(allowed) < 0.9*bound {
			t.Errorf("%d/s: only %d retries allowed, want close to %.0f", rate, allowed, bound)
		}
	}
}

// TestRetryBudgetFewFailing: when 5% of requests fail, each gets its retry.
func TestRetryBudgetFewFailing(t *testing.T) {
	for _, rate := range []int{1000, 10, 1} {
		clk := newFakeClock()
		u := NewRegistry(RegistryOptions{Now: clk.Now}).Get("ns/svc:80")
		allowed, wanted, _ := drive(u, clk, 2000, time.Second/time.Duration(rate), 20, 1)
		if allowed != wanted {
			t.Errorf("%d/s, 1 in 20 failing: %d of %d retries allowed, want all", rate, allowed, wanted)
		}
	}
	// Bursty: 200 requests at one instant every 5 s, 10 of which fail.
	clk := newFakeClock()
	u := NewRegistry(RegistryOptions{Now: clk.Now}).Get("ns/svc:80")
	for round := range 20 {
		allowed, wanted, _ := drive(u, clk, 200, 0, 20, 1)
		if allowed != wanted {
			t.Fatalf("burst %d: %d of %d retries allowed, want all", round, allowed, wanted)
		}
		clk.Advance(5 * time.Second)
	}
}

// TestRetryBudgetAfterHealthySpell: savings from a long healthy spell are
// bounded by what the last budgetMemory deposited, however long the spell.
func TestRetryBudgetAfterHealthySpell(t *testing.T) {
	clk := newFakeClock()
	u := NewRegistry(RegistryOptions{Now: clk.Now}).Get("ns/svc:80")
	// An hour at 1,000/s with nothing failing (one retry a minute, so the
	// budget settles now and then, as it would).
	for range 60 {
		for range 60_000 {
			u.RequestStarted()
		}
		clk.Advance(time.Minute)
		u.TryRetry()
	}
	// Then everything fails: count what one instant can take.
	burst := 0
	for u.TryRetry() {
		burst++
	}
	ceiling := (0.2*1000 + 3) * budgetMemory.Seconds()
	t.Logf("after an hour at 1,000/s: %d retries at once (ceiling %.0f, deposits of the hour %d)", burst, ceiling, 12_000*60)
	if float64(burst) > ceiling {
		t.Fatalf("%d retries at once after a healthy hour, more than %.0f", burst, ceiling)
	}
}

func TestRetryBudgetOff(t *testing.T) {
	clk := newFakeClock()
	u := NewRegistry(RegistryOptions{Now: clk.Now, RetryBudget: RetryBudget{Fraction: -1, PerSecond: -1}}).Get("ns/svc:80")
	for range 1000 {
		u.RequestStarted()
		if u.TryRetry() {
			t.Fatal("a budget of nothing allowed a retry")
		}
		clk.Advance(time.Millisecond)
	}
}

// TestRetryBudgetConcurrent: under -race, concurrent deposits and retries
// keep the bound.
func TestRetryBudgetConcurrent(t *testing.T) {
	clk := newFakeClock()
	u := NewRegistry(RegistryOptions{Now: clk.Now}).Get("ns/svc:80")
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			n := 0
			for range 5000 {
				u.RequestStarted()
				if u.TryRetry() {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if bound := 0.2*20_000 + 30; float64(allowed) > bound+1 {
		t.Fatalf("%d retries of 20,000 failing requests at one instant, bound %.0f", allowed, bound)
	}
}

func TestRetryBudgetDoesNotAllocate(t *testing.T) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	if a := testing.AllocsPerRun(100, func() { u.RequestStarted(); u.TryRetry() }); a != 0 {
		t.Fatalf("RequestStarted and TryRetry allocate %v times", a)
	}
}

func BenchmarkRetryBudget(b *testing.B) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	b.Run("RequestStarted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u.RequestStarted()
		}
	})
	b.Run("TryRetry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u.RequestStarted()
			u.TryRetry()
		}
	})
}
