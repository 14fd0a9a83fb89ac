package upstream

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

var policies = []Policy{RoundRobin, LeastRequest, RingHash, Maglev}

var hashPolicies = []Policy{RingHash, Maglev}

// fakeClock is RegistryOptions.Now for tests that drive time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// addrs returns n endpoint addresses, in an order SetEndpoints must sort.
func addrs(n int) []string {
	a := make([]string, n)
	for i := range a {
		a[n-1-i] = fmt.Sprintf("10.%d.%d.%d:8080", i/65536, i/256%256, i%256)
	}
	return a
}

func withEndpoints(opts RegistryOptions, list []string) *Upstream {
	u := NewRegistry(opts).Get("ns/svc:80")
	u.SetEndpoints(list)
	return u
}

// endpoint returns u's *Endpoint for addr.
func endpoint(t testing.TB, u *Upstream, addr string) *Endpoint {
	t.Helper()
	s := u.set.Load()
	i, ok := slices.BinarySearch(s.addrs, addr)
	if !ok {
		t.Fatalf("%s is not an endpoint of %s", addr, u.id)
	}
	return s.eps[i]
}

// forceEject ejects e until the clock reads until (clock.nanos), bypassing
// the failure count and the cap, for tests of Pick's tiers.
func forceEject(u *Upstream, e *Endpoint, until int64) {
	e.ejectedUntil.Store(until)
	if until > u.ejectedUntil.Load() {
		u.ejectedUntil.Store(until)
	}
}

func mustPick(t testing.TB, u *Upstream, p Policy, hash uint64, tried ...*Endpoint) *Endpoint {
	t.Helper()
	e, ok := u.Pick(p, hash, tried)
	if !ok || e == nil {
		t.Fatalf("%v Pick = %v, %v; want an endpoint", p, e, ok)
	}
	return e
}

// keyHashes returns the hashes of n distinct client keys.
func keyHashes(n int) []uint64 {
	h := make([]uint64, n)
	for i := range h {
		h[i] = HashKey("client-" + strconv.Itoa(i))
	}
	return h
}

// assign returns the address each key is sent to.
func assign(t testing.TB, u *Upstream, p Policy, keys []uint64) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = mustPick(t, u, p, k).Addr()
	}
	return out
}

func TestPolicyString(t *testing.T) {
	for p, want := range map[Policy]string{RoundRobin: "round_robin", LeastRequest: "least_request",
		RingHash: "ring_hash", Maglev: "maglev", 9: "Policy(9)"} {
		if got := p.String(); got != want {
			t.Errorf("Policy(%d).String() = %q, want %q", p, got, want)
		}
	}
}

// TestHashKeyIsStable pins HashKey: every replica and every release must send
// a key to the same endpoint, so a change here is a change of behaviour.
func TestHashKeyIsStable(t *testing.T) {
	// Values computed apart from this package (FNV-1a 64, then fmix64, in Python).
	for key, want := range map[string]uint64{
		"":            0xefd01f60ba992926,
		"10.0.0.1":    0xc879e56ddc6c5c88,
		"10.0.0.2":    0xaab1a9c2c4b20270,
		"session=abc": 0xdd6837764d5d4f79,
	} {
		if got := HashKey(key); got != want {
			t.Errorf("HashKey(%q) = %#x, want %#x", key, got, want)
		}
	}
}

func TestRoundRobinSkips(t *testing.T) {
	u := withEndpoints(RegistryOptions{}, addrs(4))
	all := u.Endpoints()
	ejected := endpoint(t, u, all[1])
	forceEject(u, ejected, u.clock.nanos()+int64(time.Minute))
	counts := map[string]int{}
	for range 300 {
		counts[mustPick(t, u, RoundRobin, 0).Addr()]++
	}
	// Skipped turns take fresh counter values: the endpoint after the ejected
	// one gets no double share.
	want := map[string]int{all[0]: 100, all[2]: 100, all[3]: 100}
	if !maps(counts, want) {
		t.Fatalf("with %s ejected: counts %v, want %v", all[1], counts, want)
	}
	tried := []*Endpoint{endpoint(t, u, all[0]), endpoint(t, u, all[2])}
	for range 10 {
		if e := mustPick(t, u, RoundRobin, 0, tried...); e.Addr() != all[3] {
			t.Fatalf("retry with %s ejected and %s, %s tried went to %s", all[1], all[0], all[2], e.Addr())
		}
	}
	// Every endpoint not ejected was tried: the retries are spread over
	// them (the second tier draws at random), none left out.
	tried = append(tried, endpoint(t, u, all[3]))
	clear(counts)
	for range 3000 {
		counts[mustPick(t, u, RoundRobin, 0, tried...).Addr()]++
	}
	if counts[all[1]] != 0 || counts[all[0]] < 850 || counts[all[2]] < 850 || counts[all[3]] < 850 {
		t.Fatalf("retries with every admitted endpoint tried: counts %v, want about 1000 each but %s", counts, all[1])
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestLeastRequest(t *testing.T) {
	u := withEndpoints(RegistryOptions{}, addrs(3))
	all := u.Endpoints()
	busy := endpoint(t, u, all[0])
	for range 5 {
		busy.Begin()
	}
	counts := map[string]int{}
	for range 3000 {
		counts[mustPick(t, u, LeastRequest, 0).Addr()]++
	}
	// Any two distinct endpoints include an idle one, so the busy one never wins.
	if counts[all[0]] != 0 || counts[all[1]] < 1200 || counts[all[2]] < 1200 {
		t.Fatalf("with %s busy: counts %v, want it never picked and the others about half each", all[0], counts)
	}
	// With the others busier, it wins whenever drawn: 2 pairs of 3.
	for range 5 {
		busy.End(OutcomeSuccess)
	}
	for _, a := range all[1:] {
		endpoint(t, u, a).Begin()
	}
	clear(counts)
	for range 3000 {
		counts[mustPick(t, u, LeastRequest, 0).Addr()]++
	}
	if counts[all[0]] < 1800 || counts[all[0]] > 2200 {
		t.Fatalf("with the others busy, %s picked %d of 3000, want about 2000 (%v)", all[0], counts[all[0]], counts)
	}
	if got := busy.Active(); got != 0 {
		t.Fatalf("Active after 5 Begin and 5 End = %d", got)
	}
	// One acceptable endpoint: that one, however busy.
	tried := []*Endpoint{endpoint(t, u, all[0]), endpoint(t, u, all[1])}
	for range 20 {
		if e := mustPick(t, u, LeastRequest, 0, tried...); e.Addr() != all[2] {
			t.Fatalf("retry after %s and %s went to %s", all[0], all[1], e.Addr())
		}
	}

	// Two acceptable of 100: random draws rarely find both, the scan does,
	// and the busier one still never wins.
	u = withEndpoints(RegistryOptions{}, addrs(100))
	eps := u.set.Load().eps
	eps[10].Begin()
	tried = slices.Concat(eps[:10], eps[11:50], eps[51:])
	clear(counts)
	for range 500 {
		counts[mustPick(t, u, LeastRequest, 0, tried...).Addr()]++
	}
	if counts[eps[10].Addr()] != 0 || counts[eps[50].Addr()] != 500 {
		t.Fatalf("retry with %s busy and %s idle left: %v", eps[10].Addr(), eps[50].Addr(), counts)
	}
}

// TestHashSpread: with 3 endpoints and 10,000 keys each endpoint gets 25–42%.
func TestHashSpread(t *testing.T) {
	keys := keyHashes(10_000)
	for _, p := range hashPolicies {
		u := withEndpoints(RegistryOptions{}, addrs(3))
		counts := map[string]int{}
		for _, a := range assign(t, u, p, keys) {
			counts[a]++
		}
		var shares []string
		for _, a := range u.Endpoints() {
			share := float64(counts[a]) / float64(len(keys))
			shares = append(shares, fmt.Sprintf("%.1f%%", 100*share))
			if share < 0.25 || share > 0.42 {
				t.Errorf("%v: %s has %.1f%% of the keys, want 25–42%%", p, a, 100*share)
			}
		}
		t.Logf("%v: shares of 3 endpoints over 10,000 keys: %v", p, shares)
	}
}

// TestHashStability: with 1,000 keys, adding a 4th endpoint to 3 moves at
// most 30% of the keys (ideally 25%, all to the new one); removing an endpoint
// moves that endpoint's keys (the ring: only them; Maglev: about 1/N in all).
func TestHashStability(t *testing.T) {
	keys := keyHashes(1000)
	four := addrs(4)
	slices.Sort(four)
	for _, p := range hashPolicies {
		u := withEndpoints(RegistryOptions{}, four[:3])
		before := assign(t, u, p, keys)
		u.SetEndpoints(four)
		after := assign(t, u, p, keys)
		moved, elsewhere := 0, 0
		for i := range keys {
			if before[i] != after[i] {
				moved++
				if after[i] != four[3] {
					elsewhere++
				}
			}
		}
		t.Logf("%v: adding a 4th endpoint moved %.1f%% of 1,000 keys (%d not to the new one)", p, 100*float64(moved)/1000, elsewhere)
		if moved > 300 || moved < 200 {
			t.Errorf("%v: adding a 4th endpoint moved %d of 1,000 keys, want 200–300", p, moved)
		}
		if p == RingHash && elsewhere != 0 {
			t.Errorf("ring: %d keys moved between the old endpoints", elsewhere)
		}
		if elsewhere > 20 {
			t.Errorf("%v: %d keys moved between the old endpoints, want at most 2%%", p, elsewhere)
		}

		gone := four[1]
		u.SetEndpoints(slices.Delete(slices.Clone(four), 1, 2))
		final := assign(t, u, p, keys)
		moved, others := 0, 0
		for i := range keys {
			if after[i] != final[i] {
				moved++
				if after[i] != gone {
					others++
				}
			}
		}
		t.Logf("%v: removing 1 of 4 endpoints moved %.1f%% of the keys (%d that were not on it)", p, 100*float64(moved)/1000, others)
		if p == RingHash && others != 0 {
			t.Errorf("ring: removing %s moved %d keys that were not on it", gone, others)
		}
		if moved > 300 || others > 20 {
			t.Errorf("%v: removing 1 of 4 moved %d keys, %d not on it; want about 250, at most 20", p, moved, others)
		}
	}
}

// TestHashSkipsEjected: an ejected endpoint's keys spread over the others
// and no other key moves; a retry of a key goes to another endpoint, the same
// one every time.
func TestHashSkipsEjected(t *testing.T) {
	keys := keyHashes(1000)
	for _, p := range hashPolicies {
		u := withEndpoints(RegistryOptions{}, addrs(3))
		all := u.Endpoints()
		before := assign(t, u, p, keys)
		forceEject(u, endpoint(t, u, all[0]), u.clock.nanos()+int64(time.Minute))
		after := assign(t, u, p, keys)
		took := map[string]int{}
		for i := range keys {
			switch {
			case before[i] != all[0] && after[i] != before[i]:
				t.Fatalf("%v: key %d moved from %s to %s though only %s is ejected", p, i, before[i], after[i], all[0])
			case before[i] == all[0]:
				took[after[i]]++
			}
		}
		if took[all[0]] != 0 || took[all[1]] < 50 || took[all[2]] < 50 {
			t.Errorf("%v: the ejected endpoint's keys went %v, want spread over the other two", p, took)
		}

		u = withEndpoints(RegistryOptions{}, addrs(3))
		everyone := u.set.Load().eps
		for i, k := range keys[:100] {
			first := mustPick(t, u, p, k)
			retry := mustPick(t, u, p, k, first)
			if retry == first || mustPick(t, u, p, k, first) != retry {
				t.Fatalf("%v: key %d: first try %s, retries %s and %s", p, i, first.Addr(), retry.Addr(), mustPick(t, u, p, k, first).Addr())
			}
			// With every endpoint tried, the key goes where it belongs.
			if again := mustPick(t, u, p, k, everyone...); again != first {
				t.Fatalf("%v: key %d with every endpoint tried went to %s, not its own %s", p, i, again.Addr(), first.Addr())
			}
		}
	}
}

// refRing is the reference for the ring lookup: every virtual node's
// position computed again and the key's owner found by a linear scan for the
// nearest position clockwise.
func refRing(list []string, key uint64) int {
	v := max(1, min(ringVnodes, ringMax/len(list)))
	k32 := key >> 32
	bestOwner, bestDist := -1, uint64(0)
	for i, a := range list {
		for n := range v {
			pos := vnodeHash(fnv1a(a), n) >> 32
			dist := (pos - k32) & (1<<32 - 1) // clockwise, wrapping
			if bestOwner < 0 || dist < bestDist || dist == bestDist && i < bestOwner {
				bestOwner, bestDist = i, dist
			}
		}
	}
	return bestOwner
}

func TestRingAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 7, 300} {
		u := withEndpoints(RegistryOptions{}, addrs(n))
		list := u.Endpoints()
		for range 200 {
			k := r.Uint64()
			if got, want := mustPick(t, u, RingHash, k).Addr(), list[refRing(list, k)]; got != want {
				t.Fatalf("%d endpoints, key %#x: ring picks %s, reference %s", n, k, got, want)
			}
		}
	}
}

// refMaglev is the Maglev paper's Pseudocode 1 as written: each endpoint's
// whole permutation as an array, filled in turns.
func refMaglev(list []string, m int) []int {
	perm := make([][]int, len(list))
	for i, a := range list {
		offset := fmix64(fnv1a(a)^maglevOffsetSeed) % uint64(m)
		skip := fmix64(fnv1a(a)^maglevSkipSeed)%uint64(m-1) + 1
		perm[i] = make([]int, m)
		for j := range m {
			perm[i][j] = int((offset + uint64(j)*skip) % uint64(m))
		}
	}
	next := make([]int, len(list))
	entry := make([]int, m)
	for i := range entry {
		entry[i] = -1
	}
	for n := 0; ; {
		for i := range list {
			c := perm[i][next[i]]
			for entry[c] >= 0 {
				next[i]++
				c = perm[i][next[i]]
			}
			entry[c] = i
			next[i]++
			if n++; n == m {
				return entry
			}
		}
	}
}

func TestMaglevAgreesWithReference(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		list := addrs(n)
		slices.Sort(list)
		table, ref := buildMaglev(list), refMaglev(list, maglevSize)
		counts := make([]int, n)
		for i := range table {
			if int(table[i]) != ref[i] {
				t.Fatalf("%d endpoints: slot %d holds %d, reference %d", n, i, table[i], ref[i])
			}
			counts[table[i]]++
		}
		// Taking turns gives each endpoint ⌊M/N⌋ or ⌈M/N⌉ slots.
		for i, c := range counts {
			if c != maglevSize/n && c != (maglevSize+n-1)/n {
				t.Errorf("%d endpoints: %s has %d slots, want %d or %d", n, list[i], c, maglevSize/n, (maglevSize+n-1)/n)
			}
		}
	}
}

// TestHashBuiltOncePerSet: a ring or table is built on first use, reused by
// every Pick until the endpoints change, and rebuilt (before publication) when
// they do; an unchanged list keeps it.
func TestHashBuiltOncePerSet(t *testing.T) {
	u := withEndpoints(RegistryOptions{}, addrs(3))
	if u.set.Load().ring.Load() != nil || u.set.Load().table.Load() != nil {
		t.Fatal("ring or table built before any hash pick")
	}
	mustPick(t, u, RingHash, 1)
	ring := u.set.Load().ring.Load()
	if ring == nil || u.set.Load().table.Load() != nil {
		t.Fatal("a ring pick built no ring, or a table")
	}
	for k := range uint64(100) {
		mustPick(t, u, RingHash, k)
	}
	u.SetEndpoints(addrs(3))
	if u.set.Load().ring.Load() != ring {
		t.Fatal("the ring changed though neither the endpoints nor their order did")
	}
	u.SetEndpoints(addrs(4))
	if r := u.set.Load().ring.Load(); r == nil || r == ring {
		t.Fatal("SetEndpoints did not build the new set's ring")
	}
	if u.set.Load().table.Load() != nil {
		t.Fatal("SetEndpoints built a table no pick asked for")
	}
}

// TestEndpointStateSurvives: SetEndpoints keeps the *Endpoint of an address
// that stays, with its counts, and drops the others.
func TestEndpointStateSurvives(t *testing.T) {
	u := withEndpoints(RegistryOptions{}, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"})
	a, b := endpoint(t, u, "10.0.0.1:80"), endpoint(t, u, "10.0.0.2:80")
	a.Begin()
	b.Begin()
	b.End(OutcomeServerError)
	u.SetEndpoints([]string{"10.0.0.4:80", "10.0.0.2:80", "10.0.0.1:80"})
	if endpoint(t, u, "10.0.0.1:80") != a || endpoint(t, u, "10.0.0.2:80") != b {
		t.Fatal("an address that stayed got a new *Endpoint")
	}
	if a.Active() != 1 || b.failures.Load() != 1 {
		t.Fatalf("state lost: active %d, failures %d", a.Active(), b.failures.Load())
	}
	if got := len(u.set.Load().eps); got != 3 {
		t.Fatalf("%d endpoints kept, want 3", got)
	}
	u.SetEndpoints([]string{"10.0.0.2:80"})
	if !a.gone.Load() || b.gone.Load() {
		t.Fatalf("gone: dropped %v, kept %v", a.gone.Load(), b.gone.Load())
	}
	u.SetEndpoints([]string{"10.0.0.1:80", "10.0.0.2:80"})
	if endpoint(t, u, "10.0.0.1:80") == a {
		t.Fatal("an address that went away came back with its old state")
	}
}

// checkPick checks one Pick against the documented tiers: an acceptable
// endpoint (not ejected, not tried) when there is one; else one not ejected;
// else the one whose ejection ends first.
func checkPick(t *testing.T, u *Upstream, p Policy, hash uint64, tried []*Endpoint) {
	t.Helper()
	s := u.set.Load()
	got, ok := u.Pick(p, hash, tried)
	if len(s.eps) == 0 {
		if ok || got != nil {
			t.Fatalf("no endpoints: Pick = %v, %v", got, ok)
		}
		return
	}
	if !ok || !slices.Contains(s.eps, got) {
		t.Fatalf("%v Pick = %v, %v: not one of the endpoints", p, got, ok)
	}
	now := u.clock.nanos()
	var acceptable, admitted []*Endpoint
	soonest := s.eps[0]
	for _, e := range s.eps {
		if e.ejectedUntil.Load() <= now {
			admitted = append(admitted, e)
			if !slices.Contains(tried, e) {
				acceptable = append(acceptable, e)
			}
		}
		if e.ejectedUntil.Load() < soonest.ejectedUntil.Load() {
			soonest = e
		}
	}
	switch {
	case len(acceptable) > 0 && !slices.Contains(acceptable, got):
		t.Fatalf("%v picked %s, not among the acceptable %d", p, got.addr, len(acceptable))
	case len(acceptable) == 0 && len(admitted) > 0 && !slices.Contains(admitted, got):
		t.Fatalf("%v picked %s, ejected, though %d are not", p, got.addr, len(admitted))
	case len(admitted) == 0 && got != soonest:
		t.Fatalf("%v picked %s with all ejected, want %s, back first", p, got.addr, soonest.addr)
	}
	if p == RingHash || p == Maglev {
		if again, _ := u.Pick(p, hash, tried); again != got {
			t.Fatalf("%v: the same key picked %s, then %s", p, got.addr, again.addr)
		}
	}
}

// pickCases hands out upstreams of n endpoints, one per n, made once: a
// Maglev table is 65,537 slots to fill, too many to fill for every case.
type pickCases struct {
	clk *fakeClock
	ups map[int]*Upstream
}

func newPickCases() *pickCases { return &pickCases{clk: newFakeClock(), ups: map[int]*Upstream{}} }

// get returns the upstream of n endpoints with the ones in ejectMask ejected
// (with distinct ends) and the ones in triedMask as tried.
func (c *pickCases) get(n int, ejectMask, triedMask uint64) (*Upstream, []*Endpoint) {
	u := c.ups[n]
	if u == nil {
		u = withEndpoints(RegistryOptions{Now: c.clk.Now}, addrs(n))
		c.ups[n] = u
	}
	u.ejectedUntil.Store(0)
	var tried []*Endpoint
	now := u.clock.nanos()
	for i, e := range u.set.Load().eps {
		e.ejectedUntil.Store(0)
		if ejectMask&(1<<i) != 0 {
			forceEject(u, e, now+int64(time.Second)*int64(1+(i*7)%n))
		}
		if triedMask&(1<<i) != 0 {
			tried = append(tried, e)
		}
	}
	return u, tried
}

// TestPickProperties: seeded random endpoint sets, ejections and tries, every
// policy checked against the tiers.
func TestPickProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	cases := newPickCases()
	for range 3000 {
		n := r.IntN(12)
		u, tried := cases.get(n, r.Uint64(), r.Uint64()&r.Uint64())
		// Every other case: tried covers all but one endpoint, which must be
		// the pick unless it is ejected.
		if n > 0 && r.IntN(2) == 0 {
			i := r.IntN(n)
			tried = slices.Delete(slices.Clone(u.set.Load().eps), i, i+1)
		}
		for _, p := range policies {
			checkPick(t, u, p, r.Uint64(), tried)
		}
	}
}

func FuzzPick(f *testing.F) {
	f.Add(uint8(3), uint64(1), uint64(2), uint8(0), uint64(42))
	f.Add(uint8(1), uint64(1), uint64(0), uint8(2), uint64(7))
	f.Add(uint8(5), uint64(0b11111), uint64(0), uint8(3), uint64(1<<63))
	f.Add(uint8(4), uint64(0b0101), uint64(0b0010), uint8(1), uint64(0))
	cases := newPickCases()
	f.Fuzz(func(t *testing.T, n uint8, ejectMask, triedMask uint64, policy uint8, hash uint64) {
		u, tried := cases.get(int(n%40), ejectMask, triedMask)
		checkPick(t, u, Policy(policy%5), hash, tried)
	})
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, n := range []int{1, 3, 100} {
		u := withEndpoints(RegistryOptions{}, addrs(n))
		eps := u.set.Load().eps
		forceEject(u, eps[0], u.clock.nanos()+int64(time.Hour))
		tried := eps[n/2 : n/2+1]
		for _, p := range policies {
			mustPick(t, u, p, 1) // builds the ring or table
			for name, tr := range map[string][]*Endpoint{"first try": nil, "retry": tried} {
				if a := testing.AllocsPerRun(200, func() { u.Pick(p, 12345, tr) }); a != 0 {
					t.Errorf("%v Pick over %d endpoints (%s) allocates %v times", p, n, name, a)
				}
			}
		}
	}
}

// benchEndpoints is a ready upstream of n endpoints with the ring and table built.
func benchEndpoints(n int) *Upstream {
	u := withEndpoints(RegistryOptions{}, addrs(n))
	u.Pick(RingHash, 0, nil)
	u.Pick(Maglev, 0, nil)
	return u
}

func BenchmarkPick(b *testing.B) {
	keys := keyHashes(1024)
	for _, p := range policies {
		for _, n := range []int{3, 100} {
			u := benchEndpoints(n)
			b.Run(fmt.Sprintf("%v/%d", p, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					u.Pick(p, keys[i&1023], nil)
					i++
				}
			})
		}
	}
	// A tenth of the endpoints ejected and a retry: the filtered paths.
	for _, p := range policies {
		u := benchEndpoints(100)
		for _, e := range u.set.Load().eps[:10] {
			forceEject(u, e, u.clock.nanos()+int64(time.Hour))
		}
		tried := u.set.Load().eps[50:51]
		b.Run(fmt.Sprintf("%v/100-ejected-retry", p), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				u.Pick(p, keys[i&1023], tried)
				i++
			}
		})
	}
	u := benchEndpoints(3)
	b.Run("round_robin/3/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				u.Pick(RoundRobin, 0, nil)
			}
		})
	})
}

func BenchmarkHashKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		HashKey("203.0.113.195")
	}
}

// BenchmarkBuild measures building at 1,000 endpoints, what SetEndpoints (or
// the first hash Pick after a change) pays.
func BenchmarkBuild(b *testing.B) {
	list := addrs(1000)
	slices.Sort(list)
	b.Run("ring/1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buildRing(list)
		}
	})
	b.Run("maglev/1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buildMaglev(list)
		}
	})
	b.Run("maglev/3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buildMaglev(list[:3])
		}
	})
}
