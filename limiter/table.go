package limiter

import (
	"cmp"
	"crypto/sha256"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// defaultMaxKeys bounds a table at roughly 15–20 MB (a bucket with its map
	// entry and key costs about 150–200 bytes).
	defaultMaxKeys = 100_000
	// maxShards keeps lock contention low on a few cores; minPerShard stops small
	// tables from being cut into shards so small that uneven hashing evicts early.
	maxShards   = 32
	minPerShard = 64
	// maxKeyBytes bounds the bytes a key may pin. Longer keys (a client sending an
	// 8 KB header value) are replaced by their SHA-256, which keeps them distinct.
	maxKeyBytes = 64
)

// table holds the buckets of one keyed policy, sharded by key hash with one mutex
// per shard. Each shard holds at most perShard buckets, so the table never holds
// more than MaxKeys; the cost is that a shard unlucky in hashing may start evicting
// a little before the table as a whole is full.
//
// Eviction runs when a new key finds its shard full. It first drops every bucket
// that has refilled to Burst, since such a bucket is indistinguishable from a fresh
// one. If the shard is still above its low-water mark (7/8 of perShard) it drops the
// least recently used buckets down to that mark. Recency is a per-shard access
// counter, so the order is exact within a shard; the LRU is approximate in that
// shards are independent (a key in a crowded shard can go before an older key
// elsewhere) and eviction works in batches. Batches make a flood of new keys cost
// amortized O(log n) per key instead of a scan per key.
//
// A table does not know its policy's rate and burst: each call passes the
// rates in force (see Registry.SetShare), and a bucket made or last tuned
// under an older share is retuned as it is used.
type table struct {
	perShard int
	seed     maphash.Seed
	mask     uint64
	shards   []shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	tick    uint64
	scratch []lruEntry // reused across evictions so they do not allocate
	// Pad to a cache line so two cores working on neighbouring shards do not
	// bounce the same line between them.
	_ [64 - 48]byte
}

type bucket struct {
	lim  *rate.Limiter
	seen uint64 // shard.tick at the last use; guarded by shard.mu
	gen  uint64 // the share generation lim is tuned to; guarded by shard.mu
}

type lruEntry struct {
	key  string
	seen uint64
}

func newTable(maxKeys int) *table {
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	n := maxShards
	for n > 1 && maxKeys/n < minPerShard {
		n /= 2
	}
	t := &table{
		perShard: maxKeys / n,
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		shards:   make([]shard, n),
	}
	for i := range t.shards {
		t.shards[i].buckets = make(map[string]*bucket)
	}
	return t
}

// get returns key's bucket, creating it (and evicting to make room) when absent.
// The caller takes tokens after the shard lock is released; if the bucket is
// evicted in between, that one request is judged by a bucket nobody sees again,
// which errs towards allowing and cannot happen to the just-used (most recent) key
// unless its bucket was full.
func (t *table) get(now time.Time, key string, rt rates) *rate.Limiter {
	if len(key) > maxKeyBytes {
		sum := sha256.Sum256([]byte(key))
		key = string(sum[:])
	}
	s := t.shard(maphash.String(t.seed, key))
	s.mu.Lock()
	b, ok := s.buckets[key]
	if !ok {
		// Clone so the map does not pin a larger string the key was sliced from.
		b = t.add(s, now, strings.Clone(key), rt)
	}
	return t.touch(s, b, now, rt)
}

// getBytes is get for a key held in bytes (a client address), looked up
// without converting it to a string, which would allocate on every request;
// only a new bucket's key is copied. Keys are short (at most 16 bytes), so
// there is no hashing of long ones. maphash.Bytes and maphash.String agree,
// so a key lands in the same shard whichever way it is given.
func (t *table) getBytes(now time.Time, key []byte, rt rates) *rate.Limiter {
	s := t.shard(maphash.Bytes(t.seed, key))
	s.mu.Lock()
	b, ok := s.buckets[string(key)] // the compiler does not allocate for a map index
	if !ok {
		b = t.add(s, now, string(key), rt)
	}
	return t.touch(s, b, now, rt)
}

func (t *table) shard(hash uint64) *shard {
	if t.mask == 0 {
		return &t.shards[0]
	}
	return &t.shards[hash&t.mask]
}

// add makes a bucket for a new key; s.mu must be held.
func (t *table) add(s *shard, now time.Time, key string, rt rates) *bucket {
	if len(s.buckets) >= t.perShard {
		t.evict(s, now, rt.burst)
	}
	b := &bucket{lim: rate.NewLimiter(rt.limit, rt.burst), gen: rt.gen}
	s.buckets[key] = b
	return b
}

// touch marks b used, brings it to the rates in force, and releases s.mu,
// which the caller holds.
func (t *table) touch(s *shard, b *bucket, now time.Time, rt rates) *rate.Limiter {
	s.tick++
	b.seen = s.tick
	if rt.gen > b.gen {
		rt.apply(b.lim, now)
		b.gen = rt.gen
	}
	lim := b.lim
	s.mu.Unlock()
	return lim
}

// evict makes room in a full shard; s.mu must be held. burst is the bucket
// size in force: a bucket holding that many tokens is as good as a new one,
// even if it was made under a share with a larger burst.
func (t *table) evict(s *shard, now time.Time, burst int) {
	full := float64(burst)
	for k, b := range s.buckets {
		if b.lim.TokensAt(now) >= full {
			delete(s.buckets, k)
		}
	}
	target := t.perShard - max(1, t.perShard/8)
	if len(s.buckets) <= target {
		return
	}
	s.scratch = s.scratch[:0]
	for k, b := range s.buckets {
		s.scratch = append(s.scratch, lruEntry{key: k, seen: b.seen})
	}
	slices.SortFunc(s.scratch, func(a, b lruEntry) int { return cmp.Compare(a.seen, b.seen) })
	for _, e := range s.scratch[:len(s.buckets)-target] {
		delete(s.buckets, e.key)
	}
	clear(s.scratch) // let evicted keys be collected
}

func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
