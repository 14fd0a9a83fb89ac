package upstream

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
)

// This file picks an endpoint for a request. Pick runs on every request, so
// it allocates nothing and, while no endpoint is ejected and the request is a
// first try, reads one atomic pointer, does its policy's work (a counter, two
// random numbers, a binary search or a table index) and returns.
//
// Skipping endpoints (ejected ones, and the ones a retry already tried) is
// done in three tiers, so that outlier detection and retries steer requests
// but never refuse one:
//
//  1. the policy's choice among acceptable endpoints: not ejected, not tried;
//  2. when every endpoint that is not ejected was tried, the policy's choice
//     among the endpoints that are not ejected, round robin's a random one
//     (a retry goes back to a healthy endpoint rather than to one known to be
//     failing);
//  3. when every endpoint is ejected (possible only when the endpoint set
//     shrank around an ejection: MaxEjectedShare never ejects them all), the
//     one whose ejection ends first.

// Policy is how a route picks among an upstream's endpoints (Emissary's
// load_balancer.policy). A value outside the constants below picks as
// RoundRobin.
type Policy uint8

const (
	// RoundRobin takes the endpoints in turn, from one counter the whole
	// upstream shares (so routes to the same upstream do not all start at its
	// first endpoint).
	RoundRobin Policy = iota
	// LeastRequest picks the less busy (fewer active requests, see
	// Endpoint.Begin) of two distinct endpoints drawn at random: "power of two
	// choices", which avoids the herd that always picking the least busy
	// endpoint sends to the same one, at the cost of two random numbers.
	LeastRequest
	// RingHash maps the request's hash onto a consistent hash ring: a key keeps
	// its endpoint while that endpoint stays, and adding or removing an
	// endpoint moves only about 1/N of the keys.
	RingHash
	// Maglev looks the request's hash up in a Maglev table (Eisenbud et al.,
	// NSDI 2016): like RingHash, a key keeps its endpoint and a change of
	// endpoints moves about 1/N of the keys, with a more even spread (every
	// endpoint owns the same number of slots, ±1), a lookup that is one
	// index rather than a binary search, and a fixed 128 KiB table (a ring
	// takes 8 KiB an endpoint, up to 512 KiB).
	Maglev
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "round_robin"
	case LeastRequest:
		return "least_request"
	case RingHash:
		return "ring_hash"
	case Maglev:
		return "maglev"
	default:
		return "Policy(" + strconv.Itoa(int(p)) + ")"
	}
}

// Pick returns an endpoint for a request under policy p, false only when the
// upstream has no endpoints. It does not allocate.
//
// hash is the request's key hash for RingHash and Maglev (see HashKey); other
// policies ignore it. tried lists the endpoints this request already used: a
// retry goes to another endpoint when an acceptable one exists. Nil or empty
// for a first try.
//
// Ejected and tried endpoints are skipped in three tiers (see the top of
// balance.go): the policy's choice among endpoints neither ejected nor
// tried; else among the endpoints not ejected; else the ejected endpoint
// whose ejection ends first. How each policy skips:
//
//   - RoundRobin: an unacceptable endpoint's turn is passed by taking another
//     value of the shared counter (not by moving to the neighbour, which would
//     give the endpoint after an ejected one a double share). In the second
//     tier it draws uniformly at random among the endpoints not ejected.
//   - LeastRequest: both candidates are drawn among acceptable endpoints; when
//     only one is acceptable, it is the one.
//   - RingHash: the ring is walked clockwise from the key's place to the next
//     acceptable endpoint; Maglev: the table is walked from the key's slot to
//     the next slot whose owner is acceptable. Either way the keys of other
//     endpoints stay where they are, the skipped endpoint's keys spread over
//     the rest, and every replica (same endpoints, same ejections) agrees. A
//     walk that meets no acceptable endpoint within 64 steps (possible only
//     when most endpoints are unacceptable) ends in a rendezvous choice among
//     all acceptable endpoints: the highest mix of hash and endpoint.
//
// Maglev with more than 65,535 endpoints (more than its table can give each a
// slot, and more than any Service has) picks as RingHash.
func (u *Upstream) Pick(p Policy, hash uint64, tried []*Endpoint) (*Endpoint, bool) {
	s := u.set.Load()
	if s == nil || len(s.eps) == 0 {
		return nil, false
	}
	f := filter{tried: tried}
	if until := u.ejectedUntil.Load(); until != 0 {
		if now := u.clock.nanos(); now < until {
			f.ejections, f.now = true, now
		} else {
			// Every ejection has run out: later Picks skip the clock. A CAS,
			// so an ejection made meanwhile (a new value) is not forgotten.
			u.ejectedUntil.CompareAndSwap(until, 0)
		}
	}
	if e := u.pick(s, p, hash, &f); e != nil {
		return e, true
	}
	if len(tried) > 0 {
		f.tried = nil
		if p == RoundRobin || p > Maglev {
			// The first tier took a turn of the shared counter for each
			// endpoint; the second's turns would fall in a fixed pattern that
			// can skip an endpoint altogether. A uniform draw has no pattern.
			if e := pickRandom(s.eps, &f); e != nil {
				return e, true
			}
		} else if e := u.pick(s, p, hash, &f); e != nil {
			return e, true
		}
	}
	return s.soonestBack(), true
}

// filter says which endpoints are acceptable to one Pick.
type filter struct {
	ejections bool  // some endpoint may be ejected: compare with now
	now       int64 // clock.nanos, read only when ejections is set
	tried     []*Endpoint
}

// all reports whether every endpoint is acceptable, the common case, in
// which the policies skip ok altogether.
func (f *filter) all() bool { return !f.ejections && len(f.tried) == 0 }

func (f *filter) ok(e *Endpoint) bool {
	if f.ejections && e.ejectedUntil.Load() > f.now {
		return false
	}
	// A linear scan: tried holds a request's few earlier attempts.
	for _, t := range f.tried {
		if t == e {
			return false
		}
	}
	return true
}

func (u *Upstream) pick(s *endpointSet, p Policy, hash uint64, f *filter) *Endpoint {
	switch p {
	case LeastRequest:
		return pickLeastRequest(s.eps, f)
	case RingHash:
		return pickRing(s, hash, f)
	case Maglev:
		if len(s.eps) > maglevMaxEndpoints {
			return pickRing(s, hash, f)
		}
		return pickMaglev(s, hash, f)
	default:
		return u.pickRoundRobin(s.eps, f)
	}
}

// pickRoundRobin continues the shared rotation. After SetEndpoints it goes on
// from the counter rather than restarting at the first address, which would
// send a burst to the lowest address on every change.
func (u *Upstream) pickRoundRobin(eps []*Endpoint, f *filter) *Endpoint {
	n := uint64(len(eps))
	i := u.next.Add(1) - 1
	if f.all() {
		return eps[i%n]
	}
	// Each skipped turn takes a fresh counter value, so over a cycle of the
	// counter every acceptable endpoint gets one turn: stepping to the
	// neighbour instead would give the endpoint after an ejected one two.
	for range n {
		if e := eps[i%n]; f.ok(e) {
			return e
		}
		i = u.next.Add(1) - 1
	}
	// Concurrent picks moved the counter past the few acceptable endpoints
	// (or there are none): look at each once.
	for k := range n {
		if e := eps[(i+k)%n]; f.ok(e) {
			return e
		}
	}
	return nil
}

// pickLeastRequest is the power of two choices among acceptable endpoints.
// math/rand/v2's top-level functions use the runtime's per-thread generator:
// no lock, no allocation.
func pickLeastRequest(eps []*Endpoint, f *filter) *Endpoint {
	n := len(eps)
	if n == 1 {
		if f.all() || f.ok(eps[0]) {
			return eps[0]
		}
		return nil
	}
	if f.all() {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		return lessBusy(eps[i], eps[j])
	}
	// Rejection sampling keeps both draws uniform among acceptable endpoints
	// without a scan; MaxEjectedShare keeps at least half acceptable on a
	// first try, so a few draws nearly always suffice.
	var a *Endpoint
	for range 8 {
		e := eps[rand.IntN(n)]
		if e == a || !f.ok(e) {
			continue
		}
		if a == nil {
			a = e
			continue
		}
		return lessBusy(a, e)
	}
	return leastRequestScan(eps, f)
}

// pickRandom draws uniformly among acceptable endpoints: by rejection while
// draws are cheap, else by counting.
func pickRandom(eps []*Endpoint, f *filter) *Endpoint {
	for range 8 {
		if e := eps[rand.IntN(len(eps))]; f.ok(e) {
			return e
		}
	}
	c := 0
	for _, e := range eps {
		if f.ok(e) {
			c++
		}
	}
	if c == 0 {
		return nil
	}
	return nthAcceptable(eps, f, rand.IntN(c))
}

// leastRequestScan is pickLeastRequest by counting: draw two distinct ranks
// among the acceptable endpoints, then find them.
func leastRequestScan(eps []*Endpoint, f *filter) *Endpoint {
	c := 0
	for _, e := range eps {
		if f.ok(e) {
			c++
		}
	}
	switch c {
	case 0:
		return nil
	case 1:
		return nthAcceptable(eps, f, 0)
	}
	r1 := rand.IntN(c)
	r2 := rand.IntN(c - 1)
	if r2 >= r1 {
		r2++
	}
	return lessBusy(nthAcceptable(eps, f, r1), nthAcceptable(eps, f, r2))
}

func nthAcceptable(eps []*Endpoint, f *filter, n int) *Endpoint {
	for _, e := range eps {
		if f.ok(e) {
			if n == 0 {
				return e
			}
			n--
		}
	}
	return nil
}

// lessBusy is the one of a and b with fewer requests in flight. Either may
// be nil: an ejection that lands between counting the acceptable endpoints
// and finding the nth of them leaves fewer than were counted.
func lessBusy(a, b *Endpoint) *Endpoint {
	if a == nil || b == nil {
		return cmp.Or(a, b)
	}
	if b.active.Load() < a.active.Load() {
		return b
	}
	return a
}

// hashWalk is how many ring entries or table slots a hash policy looks at
// past an unacceptable one before choosing by rendezvous. With at least half
// the endpoints acceptable, 64 misses in a row happen about once in 2⁶⁴.
const hashWalk = 64

func pickRing(s *endpointSet, hash uint64, f *filter) *Endpoint {
	ring := s.hashRing()
	i, _ := slices.BinarySearch(ring, hash&^ringOwnerMask)
	for k := range min(hashWalk, len(ring)) {
		j := i + k
		if j >= len(ring) {
			j -= len(ring)
		}
		if e := s.eps[ring[j]&ringOwnerMask]; f.all() || f.ok(e) {
			return e
		}
	}
	return rendezvous(s.eps, hash, f)
}

func pickMaglev(s *endpointSet, hash uint64, f *filter) *Endpoint {
	table := s.maglevTable()
	slot := hash % maglevSize
	for range hashWalk {
		if e := s.eps[table[slot]]; f.all() || f.ok(e) {
			return e
		}
		if slot++; slot == maglevSize {
			slot = 0
		}
	}
	return rendezvous(s.eps, hash, f)
}

// rendezvous returns the acceptable endpoint that scores highest for hash
// (highest random weight hashing): deterministic for a key, the same on
// every replica, and only the keys of an endpoint that turns unacceptable
// move. It is a scan, the hash policies' last resort.
func rendezvous(eps []*Endpoint, hash uint64, f *filter) *Endpoint {
	var best *Endpoint
	var top uint64
	for _, e := range eps {
		if !f.ok(e) {
			continue
		}
		if score := fmix64(hash ^ e.hash); best == nil || score > top {
			best, top = e, score
		}
	}
	return best
}

// soonestBack returns the endpoint whose ejection ends first: the third tier,
// when every endpoint is ejected.
func (s *endpointSet) soonestBack() *Endpoint {
	best := s.eps[0]
	for _, e := range s.eps[1:] {
		if e.ejectedUntil.Load() < best.ejectedUntil.Load() {
			best = e
		}
	}
	return best
}

// HashKey is the 64-bit hash of a request's key (a header value, a cookie
// value, a client IP) that Pick's RingHash and Maglev take. It does not
// allocate.
//
// It is FNV-1a over the key's bytes followed by MurmurHash3's 64-bit
// finaliser, which spreads keys that differ only in their last byte
// (10.0.0.1, 10.0.0.2) over the whole range. It depends on nothing but the
// key (no per-process seed, unlike hash/maphash), so every gateway replica,
// and every restart, sends a key to the same endpoint. Changing it would
// move every key of every hash-balanced route at once: TestHashKeyIsStable
// pins it.
func HashKey(key string) uint64 { return fmix64(fnv1a(key)) }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fmix64 is MurmurHash3's finaliser: a bijection in which every input bit
// affects every output bit.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// The ring is a sorted []uint64, one entry per virtual node: the node's
// 32-bit position in the high half, its endpoint's index in the low half.
// Sorting the entries sorts by position (ties, once in four billion, broken
// by index, so still deterministic); a key's place is the first entry at or
// after the key hash's high 32 bits, wrapping at the end. 8 bytes an entry,
// one slice, and a binary search with no indirection.
const (
	ringOwnerMask = 1<<32 - 1
	// ringVnodes is each endpoint's number of virtual nodes while the ring
	// holds at most ringMax entries: enough that each endpoint's share of
	// the ring is within about 3% (1/√1024) of its fair share. Envoy's
	// default minimum ring size (1,024 entries in all) spreads 3 endpoints
	// within about 5% but 100 endpoints at about 10 nodes each, ±30%.
	ringVnodes = 1024
	// ringMax bounds the ring at 512 KiB: from 65 endpoints on, each gets
	// ringMax/N nodes (655 at 100, 65 at 1,000). The count is the same for
	// every endpoint and depends only on N, and nodes are numbered, so a
	// change of N by one adds or removes about 1/N of each endpoint's nodes
	// (its last ones), moving about 1/N of the keys more than the ideal: the
	// ring stays consistent. (Envoy's ceil(1024/N) changes the count of
	// every endpoint when N is small, from 342 to 256 between 3 and 4
	// endpoints, which moves keys among the old endpoints too.)
	ringMax = 1 << 16
)

// hashRing returns the set's ring, building it on first use. The fast path
// is one atomic load; concurrent first users wait for one build.
func (s *endpointSet) hashRing() []uint64 {
	if r := s.ring.Load(); r != nil {
		return *r
	}
	return s.buildRing()
}

func (s *endpointSet) buildRing() []uint64 {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if r := s.ring.Load(); r != nil {
		return *r
	}
	r := buildRing(s.addrs)
	s.ring.Store(&r)
	return r
}

// buildRing returns the ring of addrs (sorted, unique, at most 2³² of them).
func buildRing(addrs []string) []uint64 {
	v := max(1, min(ringVnodes, ringMax/len(addrs)))
	ring := make([]uint64, 0, v*len(addrs))
	for i, a := range addrs {
		base := fnv1a(a)
		for k := range v {
			ring = append(ring, vnodeHash(base, k)&^ringOwnerMask|uint64(i))
		}
	}
	slices.Sort(ring)
	return ring
}

// vnodeHash places an endpoint's k-th virtual node: SplitMix64's step from
// the endpoint's own FNV-1a hash, so nodes of one endpoint land independently.
func vnodeHash(base uint64, k int) uint64 {
	return fmix64(base + uint64(k+1)*0x9e3779b97f4a7c15)
}

const (
	// maglevSize is the Maglev table's size: prime (each endpoint's
	// permutation of slots must visit every slot) and Envoy's default, far
	// above 100 × N for any N under 655, where the paper finds the spread
	// within 1%. Fixed, not grown with N: the permutations depend on it, so
	// a new size would move most keys.
	maglevSize = 65537
	// maglevMaxEndpoints: table entries are uint16 endpoint indexes (128 KiB a
	// table, not 512 KiB), and 0xFFFF marks an empty slot while filling.
	maglevMaxEndpoints = 0xFFFF
	maglevEmpty        = 0xFFFF
	// Seeds that make a second and third hash of an address from its
	// FNV-1a: the start and the step of its permutation.
	maglevOffsetSeed = 0x5bd1e9955bd1e995
	maglevSkipSeed   = 0x27d4eb2f165667c5
)

// maglevTable returns the set's Maglev table, building it on first use.
func (s *endpointSet) maglevTable() []uint16 {
	if t := s.table.Load(); t != nil {
		return *t
	}
	return s.buildMaglev()
}

func (s *endpointSet) buildMaglev() []uint16 {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if t := s.table.Load(); t != nil {
		return *t
	}
	t := buildMaglev(s.addrs)
	s.table.Store(&t)
	return t
}

// buildMaglev fills a table the paper's way (its Pseudocode 1): each endpoint
// in turn takes the next slot of its own permutation of the table that is
// still empty, until every slot is taken. Endpoint i's permutation starts at
// offset and steps by skip (mod maglevSize), both from hashes of its address,
// so the table depends only on the set of addresses. addrs are sorted and
// unique, at most maglevMaxEndpoints. Taking turns gives every endpoint
// ⌊M/N⌋ or ⌈M/N⌉ slots; filling takes about M·ln M probes.
func buildMaglev(addrs []string) []uint16 {
	n := len(addrs)
	next := make([]uint64, n) // each permutation's next slot
	skip := make([]uint64, n)
	for i, a := range addrs {
		base := fnv1a(a)
		next[i] = fmix64(base^maglevOffsetSeed) % maglevSize
		skip[i] = fmix64(base^maglevSkipSeed)%(maglevSize-1) + 1
	}
	table := make([]uint16, maglevSize)
	for i := range table {
		table[i] = maglevEmpty
	}
	for filled := 0; ; {
		for i := range n {
			c := next[i]
			for table[c] != maglevEmpty {
				if c += skip[i]; c >= maglevSize {
					c -= maglevSize
				}
			}
			table[c] = uint16(i)
			if c += skip[i]; c >= maglevSize {
				c -= maglevSize
			}
			next[i] = c
			if filled++; filled == maglevSize {
				return table
			}
		}
	}
}
