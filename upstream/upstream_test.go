package upstream

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRoundRobin(t *testing.T) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	u.SetEndpoints([]string{"10.0.0.3:80", "10.0.0.1:80", "", "10.0.0.2:80", "10.0.0.1:80"})
	want := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	if got := u.Endpoints(); !slices.Equal(got, want) {
		t.Fatalf("Endpoints = %q, want %q (sorted, deduplicated)", got, want)
	}
	counts := map[string]int{}
	var prev string
	for i := range 300 {
		e, ok := u.Pick(RoundRobin, 0, nil)
		if !ok {
			t.Fatalf("pick %d: no endpoint", i)
		}
		addr := e.Addr()
		if addr == prev {
			t.Fatalf("pick %d: %s twice in a row", i, addr)
		}
		prev = addr
		counts[addr]++
	}
	for _, addr := range want {
		if counts[addr] != 100 {
			t.Errorf("%s picked %d times of 300, want 100 (all counts: %v)", addr, counts[addr], counts)
		}
	}
}

func TestNoEndpoints(t *testing.T) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	for _, eps := range [][]string{nil, {"10.0.0.1:80"}, {}, {"10.0.0.1:80"}, {""}} {
		u.SetEndpoints(eps)
		for _, p := range policies {
			e, ok := u.Pick(p, HashKey("k"), nil)
			if wantOK := len(eps) > 0 && eps[0] != ""; ok != wantOK || (ok && e.Addr() != eps[0]) || (!ok && e != nil) {
				t.Fatalf("after SetEndpoints(%q): %v Pick = %v, %v", eps, p, e, ok)
			}
		}
	}
}

func TestEndpointsAreCopied(t *testing.T) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	in := []string{"10.0.0.2:80", "10.0.0.1:80"}
	u.SetEndpoints(in)
	in[0] = "evil:1"
	out := u.Endpoints()
	out[1] = "evil:2"
	if got := u.Endpoints(); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("Endpoints = %q after callers changed their slices", got)
	}
}

// TestPickDuringSetEndpoints swaps lists under concurrent Picks of every
// policy, which also build rings and tables as sets appear; run it with -race.
// Every pick must come from one of the lists, never from a torn mixture.
func TestPickDuringSetEndpoints(t *testing.T) {
	u := NewRegistry(RegistryOptions{}).Get("ns/svc:80")
	lists := [][]string{{"10.0.0.1:80", "10.0.0.2:80"}, {"10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"}, nil}
	valid := map[string]bool{}
	for _, l := range lists {
		for _, a := range l {
			valid[a] = true
		}
	}
	u.SetEndpoints(lists[0])
	var stop atomic.Bool
	var bad atomic.Value
	var wg sync.WaitGroup
	for _, p := range policies {
		wg.Go(func() {
			var h uint64
			for !stop.Load() {
				h++
				if e, ok := u.Pick(p, h*0x9e3779b97f4a7c15, nil); ok && !valid[e.Addr()] {
					bad.Store(e.Addr())
				}
			}
		})
	}
	for i := range 300 { // each new set rebuilds a ring and a 64K-slot table: keep -race quick
		u.SetEndpoints(lists[i%len(lists)])
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("picked %q, which no list contained", v)
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry(RegistryOptions{Breaker: BreakerSettings{ConsecutiveFailures: 1}})
	a := r.Get("ns/a:80")
	if a.ID() != "ns/a:80" {
		t.Fatalf("ID = %q", a.ID())
	}
	if r.Get("ns/a:80") != a {
		t.Fatal("second Get returned another upstream")
	}
	b := r.Get("ns/b:80")
	if b == a {
		t.Fatal("different IDs share an upstream")
	}
	done, _ := allow(a)
	done(errBoom)
	if got := r.Get("ns/a:80").State(); got != StateOpen {
		t.Fatalf("breaker state after rebuild = %v, want open (kept)", got)
	}
	r.Retain(map[string]bool{"ns/b:80": true})
	if r.Get("ns/b:80") != b {
		t.Fatal("retained upstream b was replaced")
	}
	a2 := r.Get("ns/a:80")
	if a2 == a || a2.State() != StateClosed {
		t.Fatalf("dropped upstream a came back (same=%v, state %v), want a fresh closed one", a2 == a, a2.State())
	}
	r.Retain(nil)
	if r.Get("ns/b:80") == b {
		t.Fatal("Retain(nil) kept b")
	}
}
