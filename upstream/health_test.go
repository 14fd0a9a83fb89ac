package upstream

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder collects what RegistryOptions.OnEject reports.
type recorder struct {
	mu  sync.Mutex
	got []Ejection
}

func (r *recorder) record(e Ejection) {
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
}

// take returns the reports since the last take.
func (r *recorder) take() []Ejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// outcomes ends one request on e per letter: f server error, c connect
// failure, s success, x neither.
func outcomes(e *Endpoint, seq string) {
	for _, c := range seq {
		e.Begin()
		switch c {
		case 'f':
			e.End(OutcomeServerError)
		case 'c':
			e.End(OutcomeConnectFailure)
		case 's':
			e.End(OutcomeSuccess)
		case 'x':
			e.End(OutcomeNeither)
		}
	}
}

// outlierCase is an upstream of n endpoints on a fake clock, recording
// ejections.
func outlierCase(t *testing.T, n int, s OutlierSettings) (*Upstream, []*Endpoint, *fakeClock, *recorder) {
	t.Helper()
	clk, rec := newFakeClock(), &recorder{}
	u := withEndpoints(RegistryOptions{Now: clk.Now, Outlier: s, OnEject: rec.record}, addrs(n))
	return u, u.set.Load().eps, clk, rec
}

func TestOutlierDefaults(t *testing.T) {
	got := OutlierSettings{}.withDefaults()
	want := OutlierSettings{ConsecutiveFailures: 5, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectedShare: 0.5}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	for _, bad := range []float64{math.NaN(), -1} {
		if got := (OutlierSettings{MaxEjectedShare: bad}).withDefaults().MaxEjectedShare; got != 0.5 {
			t.Errorf("MaxEjectedShare %v became %v, want the default 0.5", bad, got)
		}
	}
	if got := (OutlierSettings{BaseEjectionTime: time.Hour}).withDefaults().MaxEjectionTime; got != time.Hour {
		t.Errorf("MaxEjectionTime below BaseEjectionTime became %v, want it raised to 1h", got)
	}
	set := OutlierSettings{ConsecutiveFailures: 2, BaseEjectionTime: time.Second, MaxEjectionTime: time.Minute, MaxEjectedShare: 0.3}
	if got := set.withDefaults(); got != set {
		t.Fatalf("explicit settings changed to %+v", got)
	}
}

func TestMaxEjected(t *testing.T) {
	for _, c := range []struct {
		share float64
		n     int
		want  int
	}{
		{0.5, 1, 0}, {0.5, 2, 1}, {0.5, 3, 1}, {0.5, 4, 2}, {0.5, 5, 2}, {0.5, 100, 50},
		{0.1, 3, 1}, {0.1, 30, 3}, // at least one, as Envoy ejects the first whatever the share
		{1, 3, 2}, {5, 3, 2}, // never all
	} {
		s := OutlierSettings{MaxEjectedShare: c.share}.withDefaults()
		if got := s.maxEjected(c.n); got != c.want {
			t.Errorf("share %v of %d: %d may be ejected, want %d", c.share, c.n, got, c.want)
		}
	}
}

func TestEjectionTime(t *testing.T) {
	s := OutlierSettings{}.withDefaults()
	for k, want := range map[uint32]time.Duration{1: 30 * time.Second, 2: time.Minute, 9: 270 * time.Second,
		10: 300 * time.Second, 11: 300 * time.Second, math.MaxUint32: 300 * time.Second} {
		if got := s.ejectionTime(k); got != want {
			t.Errorf("ejection %d lasts %v, want %v", k, got, want)
		}
	}
	s = OutlierSettings{BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 45 * time.Second}.withDefaults()
	if got := s.ejectionTime(1); got != 30*time.Second {
		t.Errorf("base 30s, max 45s: first ejection %v, want 30s", got)
	}
	if got := s.ejectionTime(2); got != 45*time.Second {
		t.Errorf("base 30s, max 45s: second ejection %v, want 45s", got)
	}
}

func TestEjectionRuns(t *testing.T) {
	for _, c := range []struct {
		seq   string
		eject bool
	}{
		{"ffff", false},
		{"fffff", true},
		{"ccccc", true},
		{"fcfcf", true}, // both kinds make one run
		{"ffffsffff", false},
		{"ffffxxxxxf", true}, // the client's doing neither adds nor resets
		{"xxxxxxxxxx", false},
		{"sssssfffff", true},
	} {
		u, eps, _, rec := outlierCase(t, 3, OutlierSettings{})
		outcomes(eps[0], c.seq)
		if eps[0].Ejected() != c.eject {
			t.Errorf("after %q: ejected %v, want %v", c.seq, eps[0].Ejected(), c.eject)
		}
		if got := rec.take(); c.eject != (len(got) == 1) {
			t.Errorf("after %q: reports %+v", c.seq, got)
		}
		if got := eps[0].Active(); got != 0 {
			t.Errorf("after %q: %d active", c.seq, got)
		}
		for _, p := range policies {
			for k := range uint64(50) {
				if e := mustPick(t, u, p, k*0x9e3779b97f4a7c15); c.eject && e == eps[0] {
					t.Fatalf("after %q: %v picked the ejected endpoint", c.seq, p)
				}
			}
		}
	}
}

// TestEjectionBackoff follows one endpoint through ejections: 30s, then
// re-admitted and picked again, then 60s, 90s, ... capped at 300s, and back
// to 30s once it stayed admitted for 300s.
func TestEjectionBackoff(t *testing.T) {
	u, eps, clk, rec := outlierCase(t, 3, OutlierSettings{})
	bad := eps[1]
	eject := func(want time.Duration, count int) {
		t.Helper()
		outcomes(bad, "fffff")
		got := rec.take()
		if len(got) != 1 || got[0] != (Ejection{Upstream: "ns/svc:80", Addr: bad.Addr(), For: want, Count: count}) {
			t.Fatalf("reports %+v, want one ejection of %s for %v, count %d", got, bad.Addr(), want, count)
		}
		clk.Advance(want - time.Millisecond)
		if !bad.Ejected() {
			t.Fatalf("re-admitted before its %v were up", want)
		}
		clk.Advance(time.Millisecond)
		if bad.Ejected() {
			t.Fatalf("still ejected after its %v", want)
		}
		picked := false
		for range 3 {
			picked = picked || mustPick(t, u, RoundRobin, 0) == bad
		}
		if !picked {
			t.Fatal("re-admitted endpoint not picked in a round")
		}
	}
	for k := 1; k <= 10; k++ {
		eject(time.Duration(k)*30*time.Second, k)
	}
	eject(300*time.Second, 11)
	clk.Advance(299 * time.Second)
	eject(300*time.Second, 12) // back 299s: not yet forgiven
	clk.Advance(300 * time.Second)
	eject(30*time.Second, 1)
	// eject's picks came after the last ejection ended: Pick has stopped
	// reading the clock.
	if got := u.ejectedUntil.Load(); got != 0 {
		t.Fatalf("Pick still checks ejections after all ended (hint %d)", got)
	}
}

// TestEjectionCap: at most max(1, ⌊share × N⌋) and never all endpoints are
// ejected; a run the cap refuses is reported, and the endpoint is judged
// again after as many more failures.
func TestEjectionCap(t *testing.T) {
	u, eps, clk, rec := outlierCase(t, 3, OutlierSettings{})
	outcomes(eps[0], "fffff")
	outcomes(eps[1], "fffff")
	if !eps[0].Ejected() || eps[1].Ejected() {
		t.Fatalf("of 3, ejected: %v %v, want only the first", eps[0].Ejected(), eps[1].Ejected())
	}
	want := []Ejection{
		{Upstream: "ns/svc:80", Addr: eps[0].Addr(), For: 30 * time.Second, Count: 1},
		{Upstream: "ns/svc:80", Addr: eps[1].Addr(), Capped: true},
	}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("reports %+v, want %+v", got, want)
	}
	outcomes(eps[1], "ffff")
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("4 failures after a capped run reported %+v", got)
	}
	clk.Advance(30 * time.Second)
	outcomes(eps[1], "f")
	if !eps[1].Ejected() {
		t.Fatal("once the first is back, the second's next run of 5 does not eject it")
	}

	// A single endpoint is never ejected, and is picked whatever it does.
	u, eps, _, rec = outlierCase(t, 1, OutlierSettings{})
	outcomes(eps[0], "ffffffffffffffffffff")
	if eps[0].Ejected() || mustPick(t, u, RoundRobin, 0) != eps[0] {
		t.Fatal("the only endpoint was ejected")
	}
	if got := rec.take(); len(got) != 4 || !got[3].Capped {
		t.Fatalf("20 failures of the only endpoint reported %+v, want 4 capped runs", got)
	}

	// 2 of 4, and 5 of 10 failing at once.
	for _, n := range []int{4, 10} {
		u, eps, _, _ := outlierCase(t, n, OutlierSettings{})
		var wg sync.WaitGroup
		for _, e := range eps {
			wg.Go(func() { outcomes(e, "ffffffffffffffffffff") })
		}
		wg.Wait()
		ejected := 0
		for _, e := range eps {
			if e.Ejected() {
				ejected++
			}
		}
		if ejected != n/2 {
			t.Errorf("%d endpoints all failing: %d ejected, want %d", n, ejected, n/2)
		}
		mustPick(t, u, LeastRequest, 0)
	}
}

// TestEjectionIgnoresStaleFailures: failures of requests still in flight to
// an ejected endpoint do not eject it again, nor do those of an endpoint
// SetEndpoints dropped.
func TestEjectionIgnoresStaleFailures(t *testing.T) {
	u, eps, _, rec := outlierCase(t, 3, OutlierSettings{})
	outcomes(eps[0], "fffff")
	until := eps[0].ejectedUntil.Load()
	outcomes(eps[0], "ffffffffff")
	if eps[0].ejectedUntil.Load() != until || len(rec.take()) != 1 {
		t.Fatal("failures while ejected changed the ejection")
	}
	gone := eps[2]
	u.SetEndpoints(u.Endpoints()[:2])
	outcomes(gone, "fffff")
	if gone.Ejected() || len(rec.take()) != 0 {
		t.Fatal("a dropped endpoint was ejected")
	}
}

// TestAllEjected: when the endpoint set shrinks to ejected endpoints only,
// Pick returns the one back first rather than nothing.
func TestAllEjected(t *testing.T) {
	u, eps, clk, _ := outlierCase(t, 3, OutlierSettings{MaxEjectedShare: 1})
	outcomes(eps[2], "fffff")
	clk.Advance(10 * time.Second)
	outcomes(eps[0], "fffff")
	u.SetEndpoints([]string{eps[0].Addr(), eps[2].Addr()})
	for _, p := range policies {
		for k := range uint64(20) {
			if e := mustPick(t, u, p, k, eps[0]); e != eps[2] {
				t.Fatalf("%v with every endpoint ejected picked %s, want %s (back first)", p, e.Addr(), eps[2].Addr())
			}
		}
	}
	clk.Advance(20 * time.Second)
	if e := mustPick(t, u, RingHash, 7); e.Ejected() {
		t.Fatal("picked a still ejected endpoint once another was back")
	}
}

// TestOnEjectMayCallBack: OnEject runs without locks, so it may use the
// upstream.
func TestOnEjectMayCallBack(t *testing.T) {
	var u *Upstream
	var seen []bool
	u = withEndpoints(RegistryOptions{OnEject: func(ej Ejection) {
		e, _ := u.Pick(RoundRobin, 0, nil)
		seen = append(seen, e.Ejected())
		if u.TryRetry() {
			seen = append(seen, true)
		}
	}}, addrs(3))
	outcomes(u.set.Load().eps[0], "fffff")
	outcomes(u.set.Load().eps[1], "fffff") // capped: reported too
	if !slices.Equal(seen, []bool{false, true, false, true}) {
		t.Fatalf("callbacks saw %v", seen)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{OutcomeSuccess: "success", OutcomeConnectFailure: "connect-failure",
		OutcomeServerError: "server-error", OutcomeNeither: "neither", 9: "Outcome(9)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, got, want)
		}
	}
}

func TestBeginEndDoNotAllocate(t *testing.T) {
	_, eps, _, _ := outlierCase(t, 3, OutlierSettings{ConsecutiveFailures: 2})
	for _, o := range []Outcome{OutcomeSuccess, OutcomeServerError, OutcomeNeither} {
		if a := testing.AllocsPerRun(100, func() { eps[0].Begin(); eps[0].End(o) }); a != 0 {
			t.Errorf("Begin/End(%v) allocates %v times", o, a)
		}
	}
}

func BenchmarkBeginEnd(b *testing.B) {
	e := withEndpoints(RegistryOptions{}, addrs(3)).set.Load().eps[0]
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Begin()
			e.End(OutcomeSuccess)
		}
	})
	b.Run("success/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e.Begin()
				e.End(OutcomeSuccess)
			}
		})
	})
}

// TestConcurrentUse runs every request-path call against endpoint changes
// and a moving clock; run it with -race. The ejection cap must hold
// throughout, and every pick must be an endpoint of some list.
func TestConcurrentUse(t *testing.T) {
	clk := newFakeClock()
	var ejections, picks atomic.Int64
	u := withEndpoints(RegistryOptions{Now: clk.Now, Outlier: OutlierSettings{ConsecutiveFailures: 2},
		OnEject: func(ej Ejection) {
			if !ej.Capped {
				ejections.Add(1)
			}
		}}, addrs(6))
	lists := [][]string{addrs(6), addrs(4), addrs(5)}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g, p := range policies {
		wg.Go(func() {
			var tried []*Endpoint
			for i := 0; !stop.Load(); i++ {
				e, ok := u.Pick(p, uint64(i)*0x9e3779b97f4a7c15, tried)
				if !ok {
					t.Error("Pick found no endpoint")
					stop.Store(true)
					return
				}
				picks.Add(1)
				u.RequestStarted()
				e.Begin()
				if (i+g)%3 == 0 {
					e.End(OutcomeServerError)
					if u.TryRetry() {
						tried = append(tried[:0], e)
					}
				} else {
					e.End(OutcomeSuccess)
					tried = tried[:0]
				}
			}
		})
	}
	for i := 0; i < 200 && !stop.Load(); i++ {
		// Let the pickers work on each list before the next.
		for start := picks.Load(); picks.Load() < start+200 && !stop.Load(); {
			runtime.Gosched()
		}
		u.SetEndpoints(lists[i%len(lists)])
		clk.Advance(7 * time.Second)
		s := u.set.Load()
		ejected := 0
		for _, e := range s.eps {
			if e.Ejected() {
				ejected++
			}
		}
		// A list that shrank may hold more than the cap for the new N (the
		// cap applies when ejecting), never all but by shrinking to them.
		if limit := u.outlier.maxEjected(6); ejected > limit {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("%d of %d endpoints ejected, cap %d", ejected, len(s.eps), limit)
		}
	}
	stop.Store(true)
	wg.Wait()
	if ejections.Load() == 0 {
		t.Fatal("no endpoint was ever ejected: the test exercised nothing")
	}
	t.Logf("%d picks, %d ejections", picks.Load(), ejections.Load())
}
