// Package router picks the route for a request: an immutable table, compiled
// once from a list of routes, that maps (host, method, path, headers) to the
// first route that matches in a documented, deterministic order.
//
// The package is generic over the route payload and knows nothing of
// Kubernetes or of the annotation language; the snapshot builder turns
// Mappings into [Route] values and hands them to [New].
//
// # Matching
//
// A route matches a request when all of these hold:
//   - Host: "" matches any host; "api.example.com" matches that host exactly;
//     "*.example.com" matches any host that ends in ".example.com" and has at
//     least one more label ("a.example.com", "a.b.example.com", but not
//     "example.com"). The request host is compared case-insensitively and any
//     ":port" is ignored ("API.example.com:8443" and "[::1]:8080" work).
//     Request hosts longer than 253 bytes (the DNS limit) match only
//     host-less routes.
//   - Path, by Kind: [Prefix] is a plain string prefix and is not aware of
//     segments, so "/foo" matches "/foobar" as in Emissary; [Exact] needs the
//     whole path to be equal; [Regex] is an RE2 expression that must match
//     the whole path. Paths are compared case-sensitively, byte for byte.
//   - Method: "" matches any method; otherwise the request method must equal
//     the route's method upper-cased (request methods are not folded).
//   - Headers: every condition holds. A condition with Present needs the
//     header to be there; otherwise the first value of the header must equal
//     Value exactly.
//
// # Evaluation order
//
// Routes are ranked once, in New, and the first matching route in this order
// wins:
//  1. higher Precedence first;
//  2. then longer Path (for Regex routes, the length of the expression's
//     source, as in Emissary, which is why regex routes usually need a
//     Precedence);
//  3. then more constraints, counted as one for a Host, one for a Method and
//     one per header condition;
//  4. then Kind: Exact before Prefix before Regex;
//  5. then ID ascending, in byte order.
//
// IDs are unique, so the order is total: it never depends on input order or
// map iteration.
//
// # Structure
//
// Routes are bucketed by host (an exact-host map, a wildcard map keyed by
// ".suffix", and a bucket for host-less routes). Each bucket is a radix tree
// over paths whose nodes hold the routes whose path (or, for Regex routes,
// whose expression's literal prefix) ends there, sorted by rank. A lookup
// walks every bucket the host selects, descends the tree as far as the path
// allows, and checks candidates from the deepest node up, skipping any route
// whose rank is no better than the best match found so far. Match does not
// allocate.
package router

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// PathKind says how a route's Path is compared with the request path.
type PathKind uint8

const (
	// Prefix matches any path that starts with Path. It is a plain string
	// prefix, not segment-aware: "/foo" matches "/foobar" (Emissary semantics).
	Prefix PathKind = iota
	// Exact matches only a path equal to Path.
	Exact
	// Regex treats Path as an RE2 expression that must match the whole path.
	Regex
)

// String returns "prefix", "exact" or "regex".
func (k PathKind) String() string {
	switch k {
	case Prefix:
		return "prefix"
	case Exact:
		return "exact"
	case Regex:
		return "regex"
	}
	return fmt.Sprintf("PathKind(%d)", uint8(k))
}

// order is the Kind tie-break of the evaluation order; it is not the
// declaration order because Prefix must stay the zero value.
func (k PathKind) order() int {
	switch k {
	case Exact:
		return 0
	case Prefix:
		return 1
	}
	return 2
}

// HeaderMatch is one header condition of a route.
type HeaderMatch struct {
	// Name is matched case-insensitively; New canonicalises it with
	// textproto.CanonicalMIMEHeaderKey so lookups index http.Header directly.
	Name string
	// Value must equal the first value of the header, unless Present is set.
	Value string
	// Present requires only that the header is there; Value is ignored.
	Present bool
}

// Route is one routing rule with its payload.
type Route[T any] struct {
	// ID is unique within a table; it breaks ties in the evaluation order and
	// names the route in errors (e.g. "default/users/users-api").
	ID string
	// Host is "" for any host, "api.example.com" for one host, or
	// "*.example.com" for every host below example.com.
	Host string
	// Path is interpreted according to Kind.
	Path string
	Kind PathKind
	// Method is "" for any method; New upper-cases it.
	Method     string
	Headers    []HeaderMatch
	Precedence int
	Value      T
}

// constraints is the third key of the evaluation order.
func (r *Route[T]) constraints() int {
	n := len(r.Headers)
	if r.Host != "" {
		n++
	}
	if r.Method != "" {
		n++
	}
	return n
}

// RouteError reports a route that New rejected.
type RouteError struct {
	ID    string
	Index int // position in the slice given to New
	Err   error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("route %q (index %d): %v", e.ID, e.Index, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Table is a compiled, immutable set of routes. It is safe for concurrent
// use by any number of goroutines. The zero value and a nil *Table are empty
// tables that match nothing.
type Table[T any] struct {
	routes []Route[T] // evaluation order: a route's index is its rank
	conds  []cond     // parallel to routes: what Match checks beyond host and path

	exact map[string]*node // lower-case host → path tree
	wild  map[string]*node // ".example.com" for "*.example.com" → path tree
	any   *node            // host-less routes; nil when there are none

	// wildLens has bit i set when some wildcard suffix is i bytes long, so
	// Match hashes only the suffixes of the request host that could be keys.
	wildLens [(maxHostLen + 64) / 64]uint64
}

// cond is the compiled form of a route's non-host conditions.
type cond struct {
	kind    PathKind
	method  string
	headers []HeaderMatch // canonical names
	re      *regexp.Regexp
	key     string // where the route sits in its bucket's tree
}

// New compiles routes into a table. It rejects duplicate or empty IDs,
// invalid hosts (including hosts with a port, and a bare "*": use "" for any
// host), Prefix and Exact paths that do
// not start with "/", regular expressions that do not compile, unknown kinds,
// and methods or header names that are not HTTP tokens. The returned error
// lists every rejected route as a *RouteError (use errors.As to get the
// first).
//
// The table keeps normalised copies of the routes: Host lower-cased (IPv6
// literals without brackets), Method upper-cased, header names canonical,
// Value cleared on Present conditions, Headers nil when empty.
func New[T any](routes []Route[T]) (*Table[T], error) {
	t := &Table[T]{
		routes: make([]Route[T], len(routes)),
		conds:  make([]cond, len(routes)),
	}
	var errs []error
	seen := make(map[string]int, len(routes))
	for i := range routes {
		in := &routes[i]
		if j, dup := seen[in.ID]; dup {
			errs = append(errs, &RouteError{ID: in.ID, Index: i, Err: fmt.Errorf("duplicate ID (also at index %d)", j)})
			continue
		}
		seen[in.ID] = i
		c, norm, err := compile(in)
		if err != nil {
			errs = append(errs, &RouteError{ID: in.ID, Index: i, Err: err})
			continue
		}
		t.routes[i], t.conds[i] = norm, c
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("building route table: %w", errors.Join(errs...))
	}

	perm := make([]int, len(routes))
	for i := range perm {
		perm[i] = i
	}
	slices.SortFunc(perm, func(a, b int) int { return compareRoutes(&t.routes[a], &t.routes[b]) })
	sorted := make([]Route[T], len(perm))
	sortedConds := make([]cond, len(perm))
	for rank, i := range perm {
		sorted[rank], sortedConds[rank] = t.routes[i], t.conds[i]
	}
	t.routes, t.conds = sorted, sortedConds

	// Inserting in rank order keeps every node's candidate list sorted.
	for rank := range t.routes {
		r := &t.routes[rank]
		root := t.bucket(r.Host)
		root.insert(t.conds[rank].key, int32(rank))
	}
	for _, root := range t.exact {
		root.finish()
	}
	for _, root := range t.wild {
		root.finish()
	}
	if t.any != nil {
		t.any.finish()
	}
	return t, nil
}

// compareRoutes is the evaluation order; see the package comment.
func compareRoutes[T any](a, b *Route[T]) int {
	if a.Precedence != b.Precedence {
		if a.Precedence > b.Precedence {
			return -1
		}
		return 1
	}
	if d := len(b.Path) - len(a.Path); d != 0 {
		return d
	}
	if d := b.constraints() - a.constraints(); d != 0 {
		return d
	}
	if d := a.Kind.order() - b.Kind.order(); d != 0 {
		return d
	}
	return strings.Compare(a.ID, b.ID)
}

// bucket returns the path tree for a normalised route host, creating it.
func (t *Table[T]) bucket(host string) *node {
	var m *map[string]*node
	key := host
	switch {
	case host == "":
		if t.any == nil {
			t.any = &node{}
		}
		return t.any
	case strings.HasPrefix(host, "*."):
		m, key = &t.wild, host[1:]
		if len(key) <= maxHostLen {
			t.wildLens[len(key)/64] |= 1 << (len(key) % 64)
		}
	default:
		m = &t.exact
	}
	if *m == nil {
		*m = make(map[string]*node)
	}
	root := (*m)[key]
	if root == nil {
		root = &node{}
		(*m)[key] = root
	}
	return root
}

// compile validates one route and returns its conditions and normalised copy.
func compile[T any](in *Route[T]) (cond, Route[T], error) {
	out := *in
	if in.ID == "" {
		return cond{}, out, errors.New("empty ID")
	}
	host, err := normaliseHost(in.Host)
	if err != nil {
		return cond{}, out, err
	}
	out.Host = host

	c := cond{kind: in.Kind, key: in.Path}
	switch in.Kind {
	case Prefix, Exact:
		if !strings.HasPrefix(in.Path, "/") {
			return cond{}, out, fmt.Errorf("%s path %q does not start with \"/\"", in.Kind, in.Path)
		}
	case Regex:
		// Parse the source alone first: wrapped, ")|(" would compile into a
		// different, valid expression.
		if _, err := syntax.Parse(in.Path, syntax.Perl); err != nil {
			return cond{}, out, fmt.Errorf("compiling regex path %q: %w", in.Path, err)
		}
		re, err := regexp.Compile("^(?:" + in.Path + ")$")
		if err != nil {
			return cond{}, out, fmt.Errorf("compiling regex path %q: %w", in.Path, err)
		}
		c.re = re
		c.key = regexPrefix(re, in.Path)
	default:
		return cond{}, out, fmt.Errorf("unknown path kind %d", uint8(in.Kind))
	}

	if in.Method != "" {
		if !isToken(in.Method) {
			return cond{}, out, fmt.Errorf("method %q is not an HTTP token", in.Method)
		}
		out.Method = strings.ToUpper(in.Method)
	}
	c.method = out.Method

	if len(in.Headers) > 0 {
		out.Headers = make([]HeaderMatch, len(in.Headers))
		for i, hm := range in.Headers {
			if !isToken(hm.Name) {
				return cond{}, out, fmt.Errorf("header %d: name %q is not an HTTP token", i, hm.Name)
			}
			hm.Name = textproto.CanonicalMIMEHeaderKey(hm.Name)
			if hm.Present {
				hm.Value = ""
			}
			out.Headers[i] = hm
		}
	} else {
		out.Headers = nil
	}
	c.headers = out.Headers
	return c, out, nil
}

// regexPrefix returns a literal every path matched by re starts with, so a
// Regex route can sit under it in the tree and be tried only for paths that
// might match. The anchored expression reports no prefix when the source
// carries its own "^" (as Emissary users often write), so the unanchored
// source is asked too: any match of it also starts with its prefix.
func regexPrefix(re *regexp.Regexp, src string) string {
	if p, _ := re.LiteralPrefix(); p != "" {
		return p
	}
	if un, err := regexp.Compile(src); err == nil {
		p, _ := un.LiteralPrefix()
		return p
	}
	return ""
}

// isToken reports whether s is a non-empty RFC 9110 token: anything else can
// never appear as a method or header name on the wire.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Len returns the number of routes.
func (t *Table[T]) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// Routes returns a copy of the normalised routes in evaluation order.
func (t *Table[T]) Routes() []Route[T] {
	if t == nil {
		return nil
	}
	out := slices.Clone(t.routes)
	for i := range out {
		out[i].Headers = slices.Clone(out[i].Headers)
	}
	return out
}

// Match returns the first route, in evaluation order, that matches the
// request. host may carry a port and any case; path is the request path
// without the query. The returned route points into the table's storage and
// must not be modified. Match does not allocate.
//
// For example, with routes {ID: "a", Path: "/api/"} and {ID: "b", Path:
// "/api/v1/", Method: "GET"}, Match("x.example.com:8080", "GET",
// "/api/v1/users", nil) returns b, and with method "POST" returns a.
func (t *Table[T]) Match(host, method, path string, h http.Header) (*Route[T], bool) {
	if t == nil {
		return nil, false
	}
	best := int32(len(t.routes)) // sentinel: worse than every rank
	if len(t.exact) > 0 || len(t.wild) > 0 {
		hn := stripPort(host)
		if len(hn) <= maxHostLen {
			// Lower-case on the stack: map lookups keyed by string(buf[...])
			// do not allocate, strings.ToLower would.
			var buf [maxHostLen]byte
			n := copy(buf[:], hn)
			for i := 0; i < n; i++ {
				if c := buf[i]; 'A' <= c && c <= 'Z' {
					buf[i] = c + ('a' - 'A')
				}
			}
			if root := t.exact[string(buf[:n])]; root != nil {
				best = root.lookup(t.conds, method, path, h, best)
			}
			if len(t.wild) > 0 {
				// Each ".suffix" that leaves at least one byte in front is a
				// candidate wildcard: O(labels) lookups, none allocating.
				for i := 1; i < n; i++ {
					if l := n - i; buf[i] != '.' || t.wildLens[l/64]&(1<<(l%64)) == 0 {
						continue
					}
					if root := t.wild[string(buf[i:n])]; root != nil {
						best = root.lookup(t.conds, method, path, h, best)
					}
				}
			}
		}
	}
	if t.any != nil {
		best = t.any.lookup(t.conds, method, path, h, best)
	}
	if int(best) == len(t.routes) {
		return nil, false
	}
	return &t.routes[best], true
}

// matches checks everything but host and path prefix; atEnd says the path
// ends exactly at the node holding the route.
func (c *cond) matches(atEnd bool, method, path string, h http.Header) bool {
	if c.kind == Exact && !atEnd {
		return false
	}
	if c.method != "" && c.method != method {
		return false
	}
	for i := range c.headers {
		hm := &c.headers[i]
		v := h[hm.Name]
		if len(v) == 0 || (!hm.Present && v[0] != hm.Value) {
			return false
		}
	}
	// The regex goes last: it is the only expensive check.
	return c.re == nil || c.re.MatchString(path)
}
