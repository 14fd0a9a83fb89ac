package router

import (
	"math"
	"net/http"
	"regexp"
	"slices"
	"sync"
)

// cond is the compiled form of a unit's conditions beyond its host bucket.
type cond struct {
	// The fields matches reads first share one word, and so does the
	// tenancy a lookup for a host with an incomplete owned bucket checks.
	kind     PathKind
	fold     bool           // case-insensitive path
	regexes  bool           // some condition is a regular expression
	plain    bool           // no condition beyond the host and the path prefix
	tenancy  int32          // the set of tenants of the unit's routes
	method   string         // exact method; "" for any or regex
	headers  []paramCond    // canonical names
	query    []paramCond    //
	re       *regexp.Regexp // Regex paths
	lits     []string       // literals every path that re matches holds, in order
	methodRe *regexp.Regexp
}

// paramCond is one header or query condition.
type paramCond struct {
	name    string
	value   string
	present bool
	re      *regexp.Regexp
	pool    *sync.Pool // the table's scratch pool, set on query regexes
}

// bucket holds the routes of one host key: a tree of case-sensitive paths
// and a tree of lower-cased keys for case-insensitive ones. What a lookup
// reads first shares a cache line.
type bucket struct {
	// complete says the bucket, of an exact host, also holds the units of
	// every other bucket that applies to its host: a lookup that finds it
	// visits no other bucket.
	complete bool
	// The best ranks in both trees, in the exact tree and in the fold tree
	// (MaxInt32 when empty): a tree whose best rank cannot win is not
	// walked.
	best, exactBest, foldBest int32
	exact, fold               tree
	units                     int // units whose host this is (merged ones not counted)
	// allow lists, sorted, the tenancies that may answer the owned host of
	// an exact bucket; nil when the host is not owned. The bucket holds only
	// their units.
	allow []int32
}

// admits reports whether the bucket takes in units of the tenancy.
func (b *bucket) admits(tenancy int32) bool {
	return b.allow == nil || allows(b.allow, tenancy)
}

func allows(allow []int32, tenancy int32) bool {
	_, ok := slices.BinarySearch(allow, tenancy)
	return ok
}

// hostRegex is the bucket of one host expression.
type hostRegex struct {
	src  string
	re   *regexp.Regexp
	lits []string // literals every host that re matches holds, in order
	*bucket
}

func newBucket() *bucket {
	return &bucket{best: math.MaxInt32, exactBest: math.MaxInt32, foldBest: math.MaxInt32}
}

// insert adds a unit; callers insert in rank order.
func (b *bucket) insert(key string, fold bool, rank int32) {
	if fold {
		b.fold.insert(key, rank)
		b.foldBest = min(b.foldBest, rank)
	} else {
		b.exact.insert(key, rank)
		b.exactBest = min(b.exactBest, rank)
	}
	b.best = min(b.best, rank)
}

func (b *bucket) finish(conds []cond) {
	b.exact.finish(conds)
	b.fold.finish(conds)
}

// lookup returns the better of best and the best-ranked matching unit in
// the bucket.
func (b *bucket) lookup(conds []cond, m *matcher, best int32) int32 {
	if b.exactBest < best {
		best = b.exact.lookup(conds, m, best, false)
	}
	if b.foldBest < best {
		best = b.fold.lookup(conds, m, best, true)
	}
	return best
}

// matcher is the per-lookup state, kept on Match's stack. It holds nothing
// that reaches the scratch pool (a query condition that needs the pool has
// its own pointer to it): pooled values leak to the heap, and escape
// analysis does not tell a struct's fields apart, so such a field would make
// every caller's Request escape.
type matcher struct {
	req *Request
	// allow is the owned host's allow-list when its bucket is incomplete:
	// the other buckets it visits hold units of every tenant. nil otherwise.
	allow []int32
	maxRe int  // the table's bound on regex inputs
	query int8 // 0: not yet checked; 1: parameters usable; -1: over the limit
}

// scratch is the buffer for the rare inputs that a regular expression must
// see decoded: a lower-cased host and an unescaped query value. A stack
// buffer would not do: regexp keeps its input in a heap machine while it
// runs, so escape analysis would move the buffer to the heap on every call.
type scratch struct {
	host [maxHostLen]byte
	val  []byte
}

// maxPooledValue bounds the value buffer a pooled scratch keeps, so one
// huge query does not pin memory for the table's lifetime.
const maxPooledValue = 4 << 10

func getScratch(pool *sync.Pool) *scratch {
	if s, ok := pool.Get().(*scratch); ok {
		return s
	}
	return new(scratch)
}

func putScratch(pool *sync.Pool, s *scratch) {
	if cap(s.val) > maxPooledValue {
		s.val = nil
	}
	pool.Put(s)
}

// lookup returns the rank of the best matching unit, or -1.
func (t *Table[T]) lookup(r *Request) int32 {
	m := matcher{req: r, maxRe: t.maxRe}
	best := int32(len(t.units)) // sentinel: worse than every rank
	if t.hosted {
		// Cut the port optimistically and let the hash say whether a colon
		// or a bracket is left: only IPv6 literals (and malformed hosts) pay
		// for the full parse. "shop.example.com." is the fully qualified
		// form of "shop.example.com", and must not dodge its owner's rules.
		host := trimDot(cutPort(r.Host))
		hash, colon := foldHash(host, t.exact.seed)
		if colon || host != "" && host[0] == '[' {
			host = trimDot(stripPort(r.Host))
			hash, _ = foldHash(host, t.exact.seed)
		}
		if len(host) <= maxHostLen {
			b := t.exact.find(host, hash)
			if b != nil && b.complete {
				// The common case, spelled out: one bucket holds every
				// unit that applies to the host.
				if b.exactBest < best {
					best = b.exact.lookup(t.conds, &m, best, false)
				}
				if b.foldBest < best {
					best = b.fold.lookup(t.conds, &m, best, true)
				}
				return t.found(best)
			}
			if b != nil {
				m.allow = b.allow
			}
			best = t.lookupHost(&m, host, b, best)
		}
	}
	if b := t.any; b != nil && b.best < best {
		best = b.lookup(t.conds, &m, best)
	}
	return t.found(best)
}

// found turns the sentinel rank into -1.
func (t *Table[T]) found(best int32) int32 {
	if int(best) == len(t.units) {
		return -1
	}
	return best
}

// lookupHost visits the buckets that host selects, most specific first,
// skipping every bucket whose best unit cannot beat best: exact, the
// incomplete bucket of host or nil, then wildcards and host regexes.
func (t *Table[T]) lookupHost(m *matcher, host string, exact *bucket, best int32) int32 {
	if exact != nil && exact.best < best {
		best = exact.lookup(t.conds, m, best)
	}
	// A wildcard key ".example.com" can only be a suffix of one of the
	// lengths some key has, with at least one byte in front: O(distinct
	// lengths) probes, usually one or two.
	for _, l := range t.wildLens {
		n := int(l)
		if n >= len(host) {
			break
		}
		if host[len(host)-n] != '.' {
			continue
		}
		if b := t.wild.get(host[len(host)-n:]); b != nil && b.best < best {
			best = b.lookup(t.conds, m, best)
		}
	}
	for i := range t.hostRes {
		hr := &t.hostRes[i]
		if hr.best >= best {
			break // sorted by best rank: no later bucket can win either
		}
		if len(host) <= m.maxRe && hr.matchHost(host, &t.scratch) {
			best = hr.lookup(t.conds, m, best)
		}
	}
	return best
}

// matchHost runs the host expression on the lower-cased host, copying it
// into a pooled buffer only when it holds upper-case letters.
func (hr *hostRegex) matchHost(host string, pool *sync.Pool) bool {
	if !hasUpper(host) {
		return holdsInOrder(host, hr.lits) && hr.re.MatchString(host)
	}
	s := getScratch(pool)
	n := copy(s.host[:], host)
	for i := range n {
		s.host[i] = lower(s.host[i])
	}
	ok := hr.re.Match(s.host[:n])
	putScratch(pool, s)
	return ok
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// matches checks everything but host and path prefix; atEnd says the path
// ends exactly at the node holding the unit.
func (c *cond) matches(m *matcher, atEnd bool) bool {
	if c.kind == Exact && !atEnd {
		return false
	}
	if c.plain {
		return true
	}
	r := m.req
	if c.method != "" && c.method != r.Method {
		return false
	}
	for i := range c.headers {
		if pc := &c.headers[i]; pc.re == nil && !pc.matchHeader(r.Header, m.maxRe) {
			return false
		}
	}
	for i := range c.query {
		if pc := &c.query[i]; pc.re == nil && !m.matchQuery(pc) {
			return false
		}
	}
	if !c.regexes {
		return true
	}
	// Regular expressions go last: they are the expensive checks.
	if c.methodRe != nil && (len(r.Method) > m.maxRe || !c.methodRe.MatchString(r.Method)) {
		return false
	}
	for i := range c.headers {
		if pc := &c.headers[i]; pc.re != nil && !pc.matchHeader(r.Header, m.maxRe) {
			return false
		}
	}
	for i := range c.query {
		if pc := &c.query[i]; pc.re != nil && !m.matchQuery(pc) {
			return false
		}
	}
	return c.re == nil || len(r.Path) <= m.maxRe && holdsInOrder(r.Path, c.lits) && c.re.MatchString(r.Path)
}

// matchHeader runs a regex only on a value of at most maxRe bytes.
func (pc *paramCond) matchHeader(h http.Header, maxRe int) bool {
	v := h[pc.name]
	switch {
	case len(v) == 0:
		return false
	case pc.present:
		return true
	case pc.re != nil:
		return len(v[0]) <= maxRe && pc.re.MatchString(v[0])
	}
	return v[0] == pc.value
}

func (m *matcher) matchQuery(pc *paramCond) bool {
	if m.query == 0 {
		m.query = 1
		if tooManyParams(m.req.RawQuery) {
			m.query = -1
		}
	}
	if m.query < 0 {
		return false
	}
	raw, ok := firstQueryValue(m.req.RawQuery, pc.name)
	switch {
	case !ok:
		return false
	case pc.present:
		return true
	case pc.re == nil:
		return unescapedEqual(raw, pc.value)
	case !needsUnescape(raw):
		return len(raw) <= m.maxRe && pc.re.MatchString(raw)
	case len(raw)/3 > m.maxRe:
		// The bound is on the decoded value, which is at least a third
		// as long as raw ("%41" is one byte): no need to decode it.
		return false
	}
	s := getScratch(pc.pool)
	s.val = appendUnescaped(s.val[:0], raw)
	ok = len(s.val) <= m.maxRe && pc.re.Match(s.val)
	putScratch(pc.pool, s)
	return ok
}
