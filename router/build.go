package router

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Options are the settings of [NewTable] beyond the routes. The zero value
// is what [New] uses: no owned hosts, no bound on the input of regular
// expressions, and every expression compiled afresh.
type Options struct {
	// Owners maps an owned host (lower-case, exact, no port; IPv6 without
	// brackets) to the tenants whose routes may answer requests for it: the
	// owner and its delegates. A request whose host (after port stripping,
	// ASCII case folding and removal of one trailing dot) equals an owned
	// host is answered only by units whose Tenant is listed, whichever bucket
	// they come from (exact, wildcard, host-regex, host-less), whatever their
	// Precedence. Hosts not in Owners are answered by every tenant's routes.
	//
	// NewTable normalises a key as it does a route's Host (so
	// "Shop.Example.com" and "[::1]" work) and rejects wildcards, ports and
	// invalid names: a key that silently owned nothing would leave its host
	// open. An owned host with an empty list is answered by no route. A
	// weighted group answers an owned host only if every member's Tenant is
	// listed.
	Owners map[string][]string
	// MaxRegexInput bounds the bytes a regular expression condition (path,
	// host, method, header, query) is run on; a longer input does not match
	// that condition. 0 means no bound; a negative bound is an error.
	MaxRegexInput int
	// Cache, when set, keeps compiled regular expressions across NewTable
	// calls so a pattern is compiled once however many tables and routes
	// use it. NewTable and Check use it from the calling goroutine only,
	// and two calls must not share it at once (see [RegexCache]).
	Cache *RegexCache
}

// New is [NewTable] with zero [Options].
func New[T any](routes []Route[T]) (*Table[T], error) {
	return NewTable(routes, Options{})
}

// Check validates routes and opts exactly as [NewTable] does, with the same
// compilation and group checks, and returns the error NewTable would return,
// without building the table: for callers that want only the verdict, such
// as an admission webhook.
func Check[T any](routes []Route[T], opts Options) error {
	_, err := prepare(routes, opts)
	return err
}

// prepared is the validated input of NewTable.
type prepared[T any] struct {
	norm   []Route[T]          // normalised copies, by input index
	comps  []compiled          // by input index
	groups map[string][]int    // group name → input indices in ID order
	owners map[string][]string // normalised owned host → tenants, sorted and unique
}

// NewTable compiles routes into a table. It rejects duplicate or empty IDs,
// invalid hosts (including hosts with a port, and a bare "*": use "" for any
// host), Prefix and Exact paths that do not start with "/", regular
// expressions that do not compile (path, host, method, header and query),
// empty host or method regexes, unknown kinds, methods or header names that
// are not HTTP tokens, empty query names, and groups whose members differ
// in match criteria or whose weights are outside 0–100 or do not add up to
// 100; and invalid owned hosts and a negative MaxRegexInput in opts. The
// returned error lists every rejected route as a *RouteError and every
// rejected group as a *GroupError (use errors.As to get the first).
//
// The table keeps normalised copies of the routes: Host lower-cased (IPv6
// literals without brackets) unless it is a regex, Method upper-cased unless
// it is a regex, header names canonical, Value and Regex cleared on Present
// conditions, Headers and Query nil when empty. Tenant is kept as given.
func NewTable[T any](routes []Route[T], opts Options) (*Table[T], error) {
	p, err := prepare(routes, opts)
	if err != nil {
		return nil, err
	}
	norm, comps, groups := p.norm, p.comps, p.groups

	// Rank representatives only: an ungrouped route stands for itself, a
	// group for its lowest-ID member, whose criteria all members share.
	keys := make([]rankKey, 0, len(routes))
	for i := range norm {
		if g := norm[i].Group; g == "" || groups[g][0] == i {
			keys = append(keys, keyOf(&norm[i], i))
		}
	}
	// Sort positions, not the keys: swapping int32s is cheaper than moving
	// keys that hold strings.
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return compareKeys(&keys[a], &keys[b]) })

	t := &Table[T]{
		routes: make([]Route[T], 0, len(routes)),
		cum:    make([]uint8, 0, len(routes)),
		units:  make([]unit, len(keys)),
		conds:  make([]cond, len(keys)),
		maxRe:  opts.MaxRegexInput,
		owners: p.owners,
	}
	if t.maxRe == 0 {
		t.maxRe = math.MaxInt // one comparison per check, no special case
	}
	placed := make([]*compiled, len(keys)) // by rank
	var ts tenancies
	var members []string
	for rank, k := range order {
		rep := keys[k].index
		placed[rank] = &comps[rep]
		t.conds[rank] = comps[rep].cond
		for i := range t.conds[rank].query {
			if pc := &t.conds[rank].query[i]; pc.re != nil {
				pc.pool = &t.scratch
			}
		}
		first := int32(len(t.routes))
		if g := norm[rep].Group; g == "" {
			// An ungrouped route takes all of its unit's traffic.
			t.routes = append(t.routes, norm[rep])
			t.cum = append(t.cum, 100)
		} else {
			sum := 0
			for _, i := range groups[g] {
				sum += norm[i].Weight
				t.routes = append(t.routes, norm[i])
				t.cum = append(t.cum, uint8(sum))
			}
		}
		t.units[rank] = unit{first: first, n: int32(len(t.routes)) - first}
		members = members[:0]
		for _, r := range t.routes[first:] {
			members = append(members, r.Tenant)
		}
		slices.Sort(members)
		t.conds[rank].tenancy = ts.of(slices.Compact(members))
	}

	hostRes := map[string]int{} // expression → index in t.hostRes
	var hb hostBuckets
	// An owned host gets a bucket even when no route names it, so that a
	// lookup finds its tenants.
	for host, tenants := range p.owners {
		hb.bucket(host).allow = ts.allowed(tenants)
	}
	home := make([]*bucket, len(t.units))
	for rank := range t.units {
		r := &t.routes[t.units[rank].first]
		var b *bucket
		if r.HostRegex {
			i, ok := hostRes[r.Host]
			if !ok {
				i = len(t.hostRes)
				hostRes[r.Host] = i
				c := placed[rank]
				t.hostRes = append(t.hostRes, hostRegex{src: r.Host, re: c.hostRe, lits: c.hostLits, bucket: newBucket()})
			}
			b = t.hostRes[i].bucket
		} else {
			b = hb.bucket(r.Host)
		}
		home[rank] = b
		b.units++
	}
	var tenancyCounts map[*bucket]map[int32]int
	if len(p.owners) > 0 {
		tenancyCounts = make(map[*bucket]map[int32]int)
		for rank, b := range home {
			if tenancyCounts[b] == nil {
				tenancyCounts[b] = make(map[int32]int)
			}
			tenancyCounts[b][t.conds[rank].tenancy]++
		}
	}
	also := hb.merge(t.hostRes, len(t.units), t.maxRe, tenancyCounts)
	// Inserting in rank order keeps every node's candidate list sorted. An
	// owned host's bucket takes only the units its tenants may answer with:
	// the others could never answer a request for it, so the common lookup,
	// in a complete bucket, checks no tenant at all.
	for rank, b := range home {
		c, tenancy := placed[rank], t.conds[rank].tenancy
		if b.admits(tenancy) {
			b.insert(c.key, c.fold, int32(rank))
		}
		for _, e := range also[b] {
			if e.admits(tenancy) {
				e.insert(c.key, c.fold, int32(rank))
			}
		}
	}
	// Buckets were created in rank order of their first unit, which is their
	// best rank: t.hostRes is already sorted best first, as lookup requires.
	for _, b := range hb.exact {
		b.finish(t.conds)
	}
	for key, b := range hb.wild {
		b.finish(t.conds)
		if !slices.Contains(t.wildLens, uint8(len(key))) {
			t.wildLens = append(t.wildLens, uint8(len(key)))
		}
	}
	slices.Sort(t.wildLens)
	if hb.any != nil {
		hb.any.finish(t.conds)
	}
	for i := range t.hostRes {
		t.hostRes[i].finish(t.conds)
	}
	// The seed only places keys in the host tables; it never changes an
	// answer.
	seed := rand.Uint64()
	t.exact, t.wild, t.any = newHostTable(hb.exact, seed), newHostTable(hb.wild, seed), hb.any
	t.hosted = len(hb.exact) > 0 || len(hb.wild) > 0 || len(t.hostRes) > 0
	return t, nil
}

// hostBuckets collects the buckets of non-regex hosts while NewTable
// inserts units.
type hostBuckets struct {
	exact map[string]*bucket // lower-case host
	wild  map[string]*bucket // ".example.com" for "*.example.com"
	any   *bucket
}

// rankKey holds the keys of the evaluation order (see the package comment)
// of one unit, so that sorting compares small values in place instead of
// reaching into large routes.
type rankKey struct {
	precedence int
	pathLen    int
	headerLen  int
	queryLen   int
	kind       int
	id         string
	index      int // of the route in NewTable's input
}

// keyOf expects a normalised route: the host's length is that of its
// normalised form.
func keyOf[T any](r *Route[T], index int) rankKey {
	return rankKey{r.Precedence, len(r.Path), r.headerLen(), r.queryLen(), r.Kind.order(), r.ID, index}
}

// compareKeys stops at the first key that differs (cmp.Or would evaluate
// them all, the ID comparison included, on every call of the sort).
func compareKeys(a, b *rankKey) int {
	switch {
	case a.precedence != b.precedence:
		return cmp.Compare(b.precedence, a.precedence)
	case a.pathLen != b.pathLen:
		return cmp.Compare(b.pathLen, a.pathLen)
	case a.headerLen != b.headerLen:
		return cmp.Compare(b.headerLen, a.headerLen)
	case a.queryLen != b.queryLen:
		return cmp.Compare(b.queryLen, a.queryLen)
	case a.kind != b.kind:
		return cmp.Compare(a.kind, b.kind)
	}
	return strings.Compare(a.id, b.id)
}

// Limits on merging other buckets into exact-host buckets: the units one
// host may take in (a host with many applicable host-less or wildcard routes
// is looked up the slow way instead), and the host regexes New evaluates
// against exact hosts (a host regex that might apply, untested, leaves every
// bucket incomplete).
const (
	maxMergedUnits = 64
	maxHostProbes  = 1 << 14
)

// merge makes exact-host buckets complete where it is cheap: such a bucket
// also holds, in its own trees, the units of every wildcard, host-regex and
// host-less bucket that applies to its host, so that a request for that host
// walks one bucket instead of several. All of those are known in advance: the
// request host, lower-cased and without a trailing dot, equals the bucket's
// key, and a host regex runs on it if it is no longer than maxRe. It returns,
// for each bucket, the exact-host buckets that take in its units, and spends
// at most units merged entries in all, so a table holds at most twice its
// units.
//
// An owned host's bucket counts, and later takes in, only the units of the
// tenancies it allows; counts holds, for each bucket, its units by tenancy
// (nil when no host is owned).
func (hb *hostBuckets) merge(hostRes []hostRegex, units, maxRe int, counts map[*bucket]map[int32]int) map[*bucket][]*bucket {
	if len(hostRes)*len(hb.exact) > maxHostProbes {
		return nil
	}
	also := map[*bucket][]*bucket{}
	budget := units
	for _, key := range slices.Sorted(maps.Keys(hb.exact)) {
		b := hb.exact[key]
		var from []*bucket
		if hb.any != nil {
			from = append(from, hb.any)
		}
		// The wildcard keys a request for key would probe: every suffix
		// that starts at a dot with at least one byte in front.
		for i := 1; i < len(key); i++ {
			if key[i] == '.' {
				if w := hb.wild[key[i:]]; w != nil {
					from = append(from, w)
				}
			}
		}
		for i := range hostRes {
			if len(key) <= maxRe && hostRes[i].re.MatchString(key) {
				from = append(from, hostRes[i].bucket)
			}
		}
		n := 0
		for _, f := range from {
			if b.allow == nil {
				n += f.units
				continue
			}
			for _, tenancy := range b.allow {
				n += counts[f][tenancy]
			}
		}
		if n > maxMergedUnits || n > budget {
			continue
		}
		budget -= n
		b.complete = true
		for _, f := range from {
			also[f] = append(also[f], b)
		}
	}
	return also
}

// bucket returns the trees for a normalised, non-regex route host, creating
// them.
func (hb *hostBuckets) bucket(host string) *bucket {
	var m *map[string]*bucket
	key := host
	switch {
	case host == "":
		if hb.any == nil {
			hb.any = newBucket()
		}
		return hb.any
	case strings.HasPrefix(host, "*."):
		m, key = &hb.wild, host[1:]
	default:
		m = &hb.exact
	}
	if *m == nil {
		*m = make(map[string]*bucket)
	}
	b := (*m)[key]
	if b == nil {
		b = newBucket()
		(*m)[key] = b
	}
	return b
}

// prepare compiles and checks every route and group, and the options; the
// error lists every problem found.
func prepare[T any](routes []Route[T], opts Options) (*prepared[T], error) {
	p := &prepared[T]{
		norm:   make([]Route[T], len(routes)),
		comps:  make([]compiled, len(routes)),
		groups: make(map[string][]int),
	}
	valid := make([]bool, len(routes))
	var errs []error
	seen := make(map[string]int, len(routes))
	rc := opts.Cache
	if rc == nil {
		rc = NewRegexCache()
	}
	for i := range routes {
		in := &routes[i]
		if j, dup := seen[in.ID]; dup {
			errs = append(errs, &RouteError{ID: in.ID, Index: i, Err: fmt.Errorf("duplicate ID (also at index %d)", j)})
			continue
		}
		seen[in.ID] = i
		if in.Group != "" {
			p.groups[in.Group] = append(p.groups[in.Group], i)
		}
		c, out, err := compile(in, rc)
		if err != nil {
			errs = append(errs, &RouteError{ID: in.ID, Index: i, Err: err})
			continue
		}
		p.norm[i], p.comps[i], valid[i] = out, c, true
	}
	for _, name := range slices.Sorted(maps.Keys(p.groups)) {
		members := p.groups[name]
		slices.SortFunc(members, func(a, b int) int { return strings.Compare(routes[a].ID, routes[b].ID) })
		if err := checkGroup(routes, p.norm, valid, members); err != nil {
			ids := make([]string, len(members))
			for k, i := range members {
				ids[k] = routes[i].ID
			}
			errs = append(errs, &GroupError{Group: name, IDs: ids, Err: err})
		}
	}
	var err error
	if p.owners, err = normaliseOwners(opts.Owners); err != nil {
		errs = append(errs, err)
	}
	if opts.MaxRegexInput < 0 {
		errs = append(errs, fmt.Errorf("MaxRegexInput is %d, want 0 (no bound) or more", opts.MaxRegexInput))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("building route table: %w", errors.Join(errs...))
	}
	return p, nil
}

// normaliseOwners returns the owned hosts in the form the exact-host table
// keys them, each with its tenants sorted and unique; keys that normalise to
// the same host pool their tenants.
func normaliseOwners(owners map[string][]string) (map[string][]string, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(owners))
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(owners)) {
		host, err := normaliseHost(key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("owned host: %w", err))
			continue
		case host == "":
			errs = append(errs, errors.New("owned host: empty host"))
			continue
		case strings.HasPrefix(host, "*."):
			errs = append(errs, fmt.Errorf("owned host %q: a wildcard; owned hosts are exact", key))
			continue
		}
		// Non-nil even when empty: an empty list still owns the host.
		tenants := append(out[host], owners[key]...)
		if tenants == nil {
			tenants = []string{}
		}
		slices.Sort(tenants)
		out[host] = slices.Compact(tenants)
	}
	return out, errors.Join(errs...)
}

// tenancies numbers the sets of tenants the units belong to: one tenant for
// an ungrouped route or a group of one tenant, several for a group whose
// members come from different tenants. A unit's condition holds its
// tenancy, and an owned host lists the tenancies its tenants cover, so a
// lookup checks a unit with one search, whatever the unit is.
type tenancies struct {
	single map[string]int32 // tenant → tenancy of that tenant alone
	mixed  map[string]int32 // tenantsKey of a set of several → tenancy
	sets   [][]string       // by tenancy, sorted; of mixed tenancies only, nil for single ones
}

// of returns the tenancy of a set of tenants, creating it; tenants must be
// sorted and unique.
func (ts *tenancies) of(tenants []string) int32 {
	n := int32(len(ts.sets))
	if len(tenants) == 1 {
		if i, ok := ts.single[tenants[0]]; ok {
			return i
		}
		if ts.single == nil {
			ts.single = make(map[string]int32)
		}
		ts.single[tenants[0]] = n
		ts.sets = append(ts.sets, nil)
		return n
	}
	k := tenantsKey(tenants)
	if i, ok := ts.mixed[k]; ok {
		return i
	}
	if ts.mixed == nil {
		ts.mixed = make(map[string]int32)
	}
	ts.mixed[k] = n
	ts.sets = append(ts.sets, slices.Clone(tenants)) // the caller reuses tenants
	return n
}

// allowed returns the tenancies whose tenants are all listed in tenants
// (sorted), sorted for a binary search, and non-nil even when empty: nil
// means the host is not owned.
func (ts *tenancies) allowed(tenants []string) []int32 {
	out := []int32{}
	for _, t := range tenants {
		if i, ok := ts.single[t]; ok {
			out = append(out, i)
		}
	}
	for _, i := range ts.mixed {
		if !slices.ContainsFunc(ts.sets[i], func(t string) bool {
			_, ok := slices.BinarySearch(tenants, t)
			return !ok
		}) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// tenantsKey encodes a set of tenants unambiguously, whatever bytes the
// names hold: each is prefixed by its length.
func tenantsKey(tenants []string) string {
	var b []byte
	for _, t := range tenants {
		b = appendString(b, t)
	}
	return string(b)
}
