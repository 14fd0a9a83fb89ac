package limiter

import (
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// TestSprayStaysBounded plays a hostile client sending a fresh header value on
// every request while a legitimate client, whose single token is spent, keeps
// coming back. The table must never exceed MaxKeys, and the legitimate client's
// bucket (recently used, not full) must survive: a fresh one would let it through.
func TestSprayStaysBounded(t *testing.T) {
	for _, maxKeys := range []int{1, 10, 100, 1000, 5000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			l := NewRegistry(Options{MaxKeys: maxKeys}).Get(Policy{ID: "hdr", Key: KeyHeader, Header: "X-Api-Key", Limit: 1.0 / 3600, Burst: 1})
			const victim = "legit-client"
			if ok, _ := l.Allow(t0, victim); !ok {
				t.Fatal("victim's first request refused")
			}
			// With one slot every new key necessarily evicts the victim.
			victimKept := maxKeys > 1
			every := max(1, maxKeys/20) // victim's requests per sprayed key
			now := t0
			for i := range 10 * maxKeys {
				now = now.Add(time.Millisecond) // far too little to refill anything
				l.Allow(now, "spray-"+strconv.Itoa(i))
				if victimKept && i%every == 0 {
					if ok, _ := l.Allow(now, victim); ok {
						t.Fatalf("after %d sprayed keys the victim's bucket was reset", i+1)
					}
				}
				if n := l.Len(); n > maxKeys {
					t.Fatalf("after %d sprayed keys the table holds %d buckets, more than MaxKeys %d", i+1, n, maxKeys)
				}
			}
			last := "spray-" + strconv.Itoa(10*maxKeys-1)
			if ok, _ := l.Allow(now, last); ok {
				t.Fatal("the last sprayed key lost its state")
			}
			if ok, _ := l.Allow(now, victim); ok && victimKept {
				t.Fatal("victim's bucket lost its state by the end of the spray")
			}
		})
	}
}

// TestFullBucketsGoBeforeLRU fills a table with buckets that refill, plus one
// drained bucket that is the least recently used of all. Making room must drop the
// refilled buckets (they carry no state) and keep the drained one.
func TestFullBucketsGoBeforeLRU(t *testing.T) {
	const maxKeys = 64 // one shard, so eviction order is fully determined
	l := NewRegistry(Options{MaxKeys: maxKeys}).Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1, Burst: 10})
	if got := len(l.table.shards); got != 1 {
		t.Fatalf("%d shards, test needs 1", got)
	}
	for range 10 {
		l.Allow(t0, "drained")
	}
	for i := range maxKeys - 1 {
		l.Allow(t0, "light-"+strconv.Itoa(i)) // 9 of 10 tokens left
	}
	later := t0.Add(time.Second) // light buckets are full again; drained has 1 token
	l.Allow(later, "newcomer")
	if got := l.Len(); got != 2 {
		t.Fatalf("after eviction Len = %d, want 2 (drained + newcomer)", got)
	}
	if ok, _ := l.Allow(later, "drained"); !ok {
		t.Fatal("drained bucket should have refilled exactly one token")
	}
	if ok, _ := l.Allow(later, "drained"); ok {
		t.Fatal("drained bucket was evicted and replaced by a full one")
	}
}

// TestLRUOrder checks that when nothing is full, the least recently used buckets go
// first, recency counting uses (not creation).
func TestLRUOrder(t *testing.T) {
	const maxKeys = 64
	l := NewRegistry(Options{MaxKeys: maxKeys}).Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1, Burst: 1})
	for i := range maxKeys {
		l.Allow(t0, strconv.Itoa(i))
	}
	l.Allow(t0, "0") // 0 becomes the most recent; 1..8 are now the oldest
	l.Allow(t0, "new")
	held := map[string]bool{}
	for k := range l.table.shards[0].buckets {
		held[k] = true
	}
	// Low-water is 64 - 64/8 = 56: the 8 oldest go, then "new" comes in.
	if len(held) != 57 {
		t.Fatalf("Len = %d, want 57", len(held))
	}
	for i := 1; i <= 8; i++ {
		if held[strconv.Itoa(i)] {
			t.Errorf("bucket %d (among the 8 least recently used) was kept", i)
		}
	}
	for _, k := range []string{"0", "9", "63", "new"} {
		if !held[k] {
			t.Errorf("bucket %q (recently used) was evicted", k)
		}
	}
}

func TestConcurrentSprayStaysBounded(t *testing.T) {
	const maxKeys = 512
	l := NewRegistry(Options{MaxKeys: maxKeys}).Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1, Burst: 1})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2 * maxKeys {
				l.Allow(t0, strconv.Itoa(g)+"/"+strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > maxKeys || n == 0 {
		t.Fatalf("Len = %d, want 1..%d", n, maxKeys)
	}
}

func TestShardSizing(t *testing.T) {
	if size := unsafe.Sizeof(shard{}); size != 64 {
		t.Errorf("shard is %d bytes, want one 64-byte cache line", size)
	}
	for _, tc := range []struct{ maxKeys, shards, perShard int }{
		{0, 32, 3125}, {-1, 32, 3125}, {1, 1, 1}, {127, 1, 127}, {128, 2, 64}, {5000, 32, 156},
	} {
		tb := newTable(tc.maxKeys)
		if len(tb.shards) != tc.shards || tb.perShard != tc.perShard {
			t.Errorf("MaxKeys %d: %d shards of %d, want %d of %d", tc.maxKeys, len(tb.shards), tb.perShard, tc.shards, tc.perShard)
		}
	}
}
