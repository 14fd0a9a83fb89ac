package limiter

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestShareRates(t *testing.T) {
	for _, tc := range []struct {
		limit    rate.Limit
		burst, n int
		want     rates
	}{
		{60, 10, 1, rates{60, 10, 0}},
		{60, 10, 0, rates{60, 10, 0}}, // SetShare maps < 1 to 1; rates copes anyway
		{60, 10, 2, rates{30, 5, 0}},
		{60, 10, 3, rates{20, 4, 0}},
		{60, 10, 4, rates{15, 3, 0}},
		{60, 1, 4, rates{15, 1, 0}}, // at least 1
		{0, 5, 2, rates{0, 3, 0}},
		{rate.Inf, 5, 2, rates{rate.Inf, 3, 0}},
	} {
		if got := (&share{replicas: tc.n}).rates(Policy{Limit: tc.limit, Burst: tc.burst}); got != tc.want {
			t.Errorf("%v/s burst %d over %d replicas: %+v, want %+v", tc.limit, tc.burst, tc.n, got, tc.want)
		}
	}
}

// TestSetShare drives a policy of 60/minute with a burst of 10 through share
// changes on a fake clock, for the single bucket of KeyPolicy and the table's
// buckets alike.
func TestSetShare(t *testing.T) {
	for _, kind := range []KeyKind{KeyPolicy, KeyConsumer} {
		t.Run(kind.String(), func(t *testing.T) {
			r := NewRegistry(Options{})
			l := r.Get(Policy{ID: "ns/rl", Limit: 1, Burst: 10, Key: kind})
			decide := func(at time.Duration) Decision { return l.Decide(t0.Add(at), nil, netip.Addr{}, "alice") }
			take := func(at time.Duration, n int) int {
				got := 0
				for range n {
					if decide(at).Allowed {
						got++
					}
				}
				return got
			}

			// A full bucket of 10 under a share of 3 holds ceil(10/3) = 4
			// and refills at 1/3 a second.
			r.SetShare(3)
			if got := take(0, 20); got != 4 {
				t.Fatalf("share 3: %d of 20 at once allowed, want 4", got)
			}
			if d := decide(0); d.Allowed || d.RetryAfter != 3*time.Second || d.Limit != 4 || d.Window != 12*time.Second {
				t.Fatalf("share 3, empty: %+v; want refused, retry 3s, limit 4, window 12s", d)
			}
			if take(2*time.Second, 1) != 0 || take(3*time.Second, 2) != 1 {
				t.Fatal("share 3: the bucket did not refill at 1 per 3s")
			}

			// Back to one replica at +3s: the empty bucket now refills at 1/s
			// towards 10. The old rate would refuse at +4s.
			r.SetShare(1)
			if take(3*time.Second, 1) != 0 {
				t.Fatal("share 1 at +3s: allowed from an empty bucket")
			}
			if take(4*time.Second, 2) != 1 {
				t.Fatal("share 1 at +4s: the bucket did not take the new rate of 1/s")
			}
			if got := take(time.Minute, 20); got != 10 {
				t.Fatalf("share 1, a minute on: %d of 20 allowed, want the whole burst of 10", got)
			}

			// A change while the bucket is idle: at +2min it is full (10);
			// the share of 2 caps it at 5 when next used.
			r.SetShare(2)
			if got := take(2*time.Minute, 20); got != 5 {
				t.Fatalf("share 2 after idling: %d of 20 allowed, want 5", got)
			}
			// Bucket retuned at +2min, empty, refilling at 1 per 2s.
			if take(2*time.Minute+time.Second, 1) != 0 || take(2*time.Minute+2*time.Second, 1) != 1 {
				t.Fatal("share 2: the bucket did not refill at 1 per 2s")
			}

			// Same count: no new generation, nothing retuned.
			gen := r.share.Load().gen
			r.SetShare(2)
			r.SetShare(0) // means 1
			r.SetShare(-7)
			if got := r.share.Load(); got.gen != gen+1 || got.replicas != 1 {
				t.Fatalf("after SetShare(2), (0), (-7): %+v, want one change to 1 replica", got)
			}
		})
	}
}

// TestNewBucketsStartAtShare: buckets and limiters created after a change
// start full at the share, not at the whole burst.
func TestNewBucketsStartAtShare(t *testing.T) {
	r := NewRegistry(Options{})
	r.SetShare(4)
	for _, kind := range []KeyKind{KeyPolicy, KeyClientIP, KeyHeader, KeyConsumer} {
		l := r.Get(Policy{ID: kind.String(), Limit: 1, Burst: 10, Key: kind})
		d := l.Decide(t0, nil, netip.MustParseAddr("192.0.2.1"), "alice")
		if !d.Allowed || d.Limit != 3 || d.Remaining != 2 {
			t.Errorf("%s: first request under share 4: %+v, want allowed, limit 3, remaining 2", kind, d)
		}
	}
}

// TestShareAccuracy simulates replicas, each a Registry with the same policy
// and share, behind a balancer, and counts what they admit together against
// what the policy admits alone: evenly spread, the policy plus at most
// replicas-1 tokens of burst rounding; unevenly spread, less.
func TestShareAccuracy(t *testing.T) {
	const period = time.Minute
	policy := Policy{ID: "ns/rl", Limit: 1, Burst: 10}
	admitted := func(replicas int, step time.Duration, pick func(i int) int) int {
		ls := make([]*Limiter, replicas)
		for i := range ls {
			r := NewRegistry(Options{})
			r.SetShare(replicas)
			ls[i] = r.Get(policy)
		}
		n := 0
		for i := 0; time.Duration(i)*step <= period; i++ {
			if ok, _ := ls[pick(i)].Allow(t0.Add(time.Duration(i)*step), ""); ok {
				n++
			}
		}
		return n
	}
	const flood, busy = 100 * time.Millisecond, 667 * time.Millisecond // 10/s and 1.5/s against 1/s
	onlyOne := func(int) int { return 0 }
	whole := admitted(1, flood, onlyOne)
	if whole != 10+60 {
		t.Fatalf("one replica admitted %d, want burst 10 + 60 refilled", whole)
	}
	wholeBusy := admitted(1, busy, onlyOne)
	for n := 2; n <= 12; n++ {
		// Evenly spread, the replicas' tokens add up to the policy's, plus
		// the rounding up of the burst; at the end of the minute each replica
		// may hold a token it was not asked for, hence the slack below.
		even := admitted(n, flood, func(i int) int { return i % n })
		if even < whole-n || even > whole+n-1 {
			t.Errorf("%d replicas, even spread: admitted %d, want %d..%d", n, even, whole-n, whole+n-1)
		}
		// All on one replica: its share alone.
		one := admitted(n, flood, onlyOne)
		if want := (10+n-1)/n + 60/n; one < want-1 || one > want+1 {
			t.Errorf("%d replicas, all on one: admitted %d, want about %d", n, one, want)
		}
		// Three in four requests on replica 0, which refuses beyond its share,
		// while the others have tokens to spare.
		skewed := admitted(n, busy, func(i int) int {
			if i%4 != 3 {
				return 0
			}
			return 1 + i/4%(n-1)
		})
		if skewed >= wholeBusy {
			t.Errorf("%d replicas, skewed: admitted %d, want less than the policy's %d", n, skewed, wholeBusy)
		}
	}
}

// TestSetShareConcurrent changes the share while requests are decided, for
// the race detector, then checks every bucket ends at the last share.
func TestSetShareConcurrent(t *testing.T) {
	r := NewRegistry(Options{})
	pol := r.Get(Policy{ID: "pol", Limit: 1, Burst: 12})
	ip := r.Get(Policy{ID: "ip", Limit: 1, Burst: 12, Key: KeyClientIP})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			client := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				now := t0.Add(time.Duration(i) * time.Millisecond)
				pol.Decide(now, nil, client, "")
				ip.Decide(now, nil, client, "")
			}
		})
	}
	for i := range 200 {
		r.SetShare(1 + i%5)
	}
	r.SetShare(4)
	close(stop)
	wg.Wait()
	later := t0.Add(time.Hour) // every bucket full
	for _, l := range []*Limiter{pol, ip} {
		for g := range 4 {
			client := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			if d := l.Decide(later, nil, client, ""); d.Limit != 3 || d.Remaining != 2 {
				t.Errorf("%s, client %d: %+v after the last SetShare(4), want limit 3, remaining 2", l.Policy().Key, g, d)
			}
			if l.Policy().Key == KeyPolicy {
				break
			}
		}
	}
}

// TestEvictionUsesShareBurst: a bucket holding the share's burst is as good
// as new, and goes first when its shard is full.
func TestEvictionUsesShareBurst(t *testing.T) {
	const maxKeys = 64
	r := NewRegistry(Options{MaxKeys: maxKeys})
	l := r.Get(Policy{ID: "ip", Key: KeyConsumer, Limit: 1.0 / 3600, Burst: 10})
	r.SetShare(2) // burst 5
	for range 5 {
		l.Allow(t0, "drained")
	}
	for i := range maxKeys - 1 {
		l.Allow(t0, "light-"+strconv.Itoa(i)) // 4 of 5 left: not full
	}
	r.SetShare(1) // burst 10 again; the light buckets still hold 4
	r.SetShare(3) // burst 4: the light buckets are full at it
	l.Allow(t0, "newcomer")
	if got := l.Len(); got != 2 {
		t.Fatalf("after eviction Len = %d, want 2 (drained + newcomer)", got)
	}
	if ok, _ := l.Allow(t0, "drained"); ok {
		t.Fatal("the drained bucket was evicted and replaced by a full one")
	}
}
