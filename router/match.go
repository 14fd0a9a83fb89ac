package router

import (
	"math"
	"net/http"
	"regexp"
	"sync"
)

// cond is the compiled form of a unit's conditions beyond its host bucket.
type cond struct {
	kind     PathKind
	fold     bool           // case-insensitive path
	re       *regexp.Regexp // Regex paths
	key      string         // where the unit sits in its bucket's tree
	hostRe   *regexp.Regexp // HostRegex routes; used by New to build the bucket
	method   string         // exact method; "" for any or regex
	methodRe *regexp.Regexp
	headers  []paramCond // canonical names
	query    []paramCond
	regexes  bool // some condition is a regular expression
}

// paramCond is one header or query condition.
type paramCond struct {
	name    string
	value   string
	present bool
	re      *regexp.Regexp
}

// bucket holds the routes of one host key: a tree of case-sensitive paths
// and a tree of lower-cased keys for case-insensitive ones.
type bucket struct {
	exact, fold tree
	best        int32 // best rank in either tree
}

type tree struct {
	root *node // nil when empty
	best int32
}

// hostRegex is the bucket of one host expression.
type hostRegex struct {
	src string
	re  *regexp.Regexp
	*bucket
}

func newBucket() *bucket {
	return &bucket{best: math.MaxInt32, exact: tree{best: math.MaxInt32}, fold: tree{best: math.MaxInt32}}
}

// insert adds a unit; callers insert in rank order.
func (b *bucket) insert(key string, fold bool, rank int32) {
	t := &b.exact
	if fold {
		t = &b.fold
	}
	if t.root == nil {
		t.root = &node{}
	}
	t.root.insert(key, rank)
	t.best = min(t.best, rank)
	b.best = min(b.best, rank)
}

func (b *bucket) finish() {
	if b.exact.root != nil {
		b.exact.root.finish()
	}
	if b.fold.root != nil {
		b.fold.root.finish()
	}
}

// lookup returns the better of best and the best-ranked matching unit in
// the bucket; a tree whose best rank cannot win is not walked.
func (b *bucket) lookup(conds []cond, m *matcher, best int32) int32 {
	if b.exact.best < best {
		best = b.exact.root.lookup(conds, m, best)
	}
	if b.fold.best < best {
		best = b.fold.root.lookupFold(conds, m, best)
	}
	return best
}

// matcher is the per-lookup state, kept on Match's stack. It holds a copy
// of the request rather than the pointer: escape analysis does not tell
// fields apart, and the pooled scratch buffer leaks to the heap, so a
// *Request here would make every caller's Request escape.
type matcher struct {
	req   Request
	pool  *sync.Pool
	s     *scratch // borrowed from pool on first need
	query int8     // 0: not yet checked; 1: parameters usable; -1: over the limit
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

func (m *matcher) scratch() *scratch {
	if m.s == nil {
		if s, ok := m.pool.Get().(*scratch); ok {
			m.s = s
		} else {
			m.s = new(scratch)
		}
	}
	return m.s
}

func (m *matcher) release() {
	if m.s != nil {
		if cap(m.s.val) > maxPooledValue {
			m.s.val = nil
		}
		m.pool.Put(m.s)
	}
}

// lookup returns the rank of the best matching unit, or -1.
func (t *Table[T]) lookup(r *Request) int32 {
	m := matcher{req: *r, pool: &t.scratch}
	best := int32(len(t.units)) // sentinel: worse than every rank
	if len(t.exact) > 0 || len(t.wild) > 0 || len(t.hostRes) > 0 {
		hn := stripPort(r.Host)
		if len(hn) <= maxHostLen {
			// Lower-case on the stack: map lookups keyed by string(buf[...])
			// do not allocate, strings.ToLower would.
			var buf [maxHostLen]byte
			n := copy(buf[:], hn)
			mixed := false
			for i := 0; i < n; i++ {
				if c := buf[i]; 'A' <= c && c <= 'Z' {
					buf[i] = c + ('a' - 'A')
					mixed = true
				}
			}
			if b := t.exact[string(buf[:n])]; b != nil {
				best = b.lookup(t.conds, &m, best)
			}
			if len(t.wild) > 0 {
				// Each ".suffix" that leaves at least one byte in front is a
				// candidate wildcard: O(labels) lookups, none allocating.
				for i := 1; i < n; i++ {
					if l := n - i; buf[i] != '.' || t.wildLens[l/64]&(1<<(l%64)) == 0 {
						continue
					}
					if b := t.wild[string(buf[i:n])]; b != nil {
						best = b.lookup(t.conds, &m, best)
					}
				}
			}
			var lowered []byte
			for i := range t.hostRes {
				hr := &t.hostRes[i]
				if hr.best >= best {
					break // sorted by best rank: no later bucket can win either
				}
				var ok bool
				switch {
				case !mixed:
					ok = hr.re.MatchString(hn)
				case lowered == nil:
					s := m.scratch()
					s.host = buf
					lowered = s.host[:n]
					fallthrough
				default:
					ok = hr.re.Match(lowered)
				}
				if ok {
					best = hr.lookup(t.conds, &m, best)
				}
			}
		}
	}
	if t.any != nil {
		best = t.any.lookup(t.conds, &m, best)
	}
	m.release()
	if int(best) == len(t.units) {
		return -1
	}
	return best
}

// matches checks everything but host and path prefix; atEnd says the path
// ends exactly at the node holding the unit.
func (c *cond) matches(m *matcher, atEnd bool) bool {
	if c.kind == Exact && !atEnd {
		return false
	}
	r := &m.req
	if c.method != "" && c.method != r.Method {
		return false
	}
	for i := range c.headers {
		if pc := &c.headers[i]; pc.re == nil && !pc.matchHeader(r.Header) {
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
	if c.methodRe != nil && !c.methodRe.MatchString(r.Method) {
		return false
	}
	for i := range c.headers {
		if pc := &c.headers[i]; pc.re != nil && !pc.matchHeader(r.Header) {
			return false
		}
	}
	for i := range c.query {
		if pc := &c.query[i]; pc.re != nil && !m.matchQuery(pc) {
			return false
		}
	}
	return c.re == nil || c.re.MatchString(r.Path)
}

func (pc *paramCond) matchHeader(h http.Header) bool {
	v := h[pc.name]
	switch {
	case len(v) == 0:
		return false
	case pc.present:
		return true
	case pc.re != nil:
		return pc.re.MatchString(v[0])
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
		return pc.re.MatchString(raw)
	}
	s := m.scratch()
	s.val = appendUnescaped(s.val[:0], raw)
	return pc.re.Match(s.val)
}
