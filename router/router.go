// Package router picks the route for a request: an immutable table, compiled
// once from a list of routes, that maps a request (host, method, path,
// headers, query) to the first route that matches in a documented,
// deterministic order, and splits traffic within weighted groups.
//
// The package is generic over the route payload and knows nothing of
// Kubernetes or of the annotation language; the snapshot builder turns
// Mappings into [Route] values and hands them to [NewTable], with the
// [Options] that say which tenant owns which host.
//
// # Matching
//
// A route matches a request when all of these hold:
//   - Host: "" matches any host; "api.example.com" matches that host exactly;
//     "*.example.com" matches any host that ends in ".example.com" and has at
//     least one more label ("a.example.com", "a.b.example.com", but not
//     "example.com"). The request host is compared case-insensitively, any
//     ":port" is ignored ("API.example.com:8443" and "[::1]:8080" work), and
//     so is one trailing dot: "api.example.com." is the fully qualified
//     spelling of "api.example.com" and matches what it matches (but
//     "api.example.com.." does not). With HostRegex, Host is an RE2
//     expression that must match the whole request host after ASCII
//     lower-casing, port stripping and removal of the trailing dot, so write
//     it in lower case: `[a-z]+\.example\.com`. Request hosts longer than
//     253 bytes (the DNS limit) match only host-less routes.
//   - Path, by Kind: [Prefix] is a plain string prefix and is not aware of
//     segments, so "/foo" matches "/foobar" as in Emissary; [Exact] needs the
//     whole path to be equal; [Regex] is an RE2 expression that must match
//     the whole path. Paths are compared byte for byte unless
//     CaseInsensitive is set: then Prefix and Exact ignore ASCII case and a
//     Regex is compiled with (?i), which folds case as RE2 does.
//   - Method: "" matches any method; otherwise the request method must equal
//     the route's method upper-cased (request methods are not folded), or,
//     with MethodRegex, the RE2 expression must match the whole method.
//   - Headers: every condition holds. A condition with Present needs the
//     header to be there; otherwise the first value of the header must equal
//     Value, or with Regex match the RE2 expression Value as a whole.
//   - Query: every condition holds, on the parameters as [net/url.ParseQuery]
//     reads RawQuery, so the router agrees with what handlers see: pairs are
//     split at '&'; a pair holding ';' or a malformed %-escape is ignored;
//     names and values are unescaped ("+" is a space); a parameter's first
//     value counts; "?debug" and "?debug=" make debug present with the empty
//     value; a query of more than 10,000 parameters has none. Names are
//     case-sensitive; Present, Value and Regex work as for headers.
//
// With [Options].MaxRegexInput set, a regular expression condition (host,
// path, method, header or query) holds only if its input is at most that
// many bytes long, so no request makes the router run an expression over
// more: RE2 runs in linear time, but linear in a megabyte header is still
// too slow on every request. The input is what the expression would see:
// the host without port and trailing dot, the decoded query value. A longer
// input does not match the condition; an exact or presence condition on it
// still can.
//
// # Host ownership
//
// Tenants share one table: every [Route] carries the Tenant that declared
// it, and [Options].Owners names, for some hosts, the tenants whose routes
// may answer them, the owner and its delegates. A request for an owned host
// (compared as above: case, port and one trailing dot do not matter) is
// answered only by the routes of those tenants, whether they name the host,
// a wildcard or a host regex that covers it, or no host at all, and
// whatever their Precedence: another tenant's host-less "/" at Precedence
// 1000 never answers it. For such a request the routes of other tenants
// are as if they were not in the table, and the evaluation order of the
// rest is unchanged. An owned host whose owner has no route is answered by
// none. Requests for hosts not in Owners see every route, as without
// ownership. Which tenant answered shows only as the Tenant of the
// returned route.
//
// # Evaluation order
//
// Routes are ranked once, in NewTable, by Emissary's route weight (what
// _route_weight in python/ambassador/ir/irhttpmapping.py computes and sorts
// in descending order), and the first matching route in this order wins:
//  1. higher Precedence first;
//  2. then longer Path (for Regex routes, the length of the expression's
//     source, as in Emissary, which is why regex routes usually need a
//     Precedence);
//  3. then larger header length: the sum over the route's header-like
//     conditions of len(name) + len(value), plus 1 if the value is a
//     regular expression. A condition with Present, or with an empty Value,
//     counts its value as "*", one byte. As in Emissary, a Host counts as a
//     header named ":authority" (10 bytes) whose value is the host in its
//     normalised form (lower-cased, "*.example.com" whole, an IPv6 literal
//     without brackets, a host regex as written, plus 1), and a Method as a
//     header named ":method" (7 bytes) whose value is the method (plus 1 for
//     a method regex). Lengths are in bytes; canonicalising a header name
//     does not change its length;
//  4. then larger query length: the same sum over the Query conditions;
//  5. then Kind: Exact before Prefix before Regex;
//  6. then ID ascending, in byte order.
//
// The header length rewards long names and values, not many conditions. At
// equal Precedence and Path:
//
//	x-tenant-identifier: enterprise        19 + 10           = 29
//	a: "1" and b: "2"                      (1 + 1) + (1 + 1) =  4
//
// so the single long header outranks the two short ones; and
//
//	header x: "1"                          header 1 + 1 = 2, query 0
//	query tenant: "[a-z]+" (a regex)       header 0, query 6 + 6 + 1 = 13
//
// so the header condition outranks the query-only one: any header length
// beats none, whatever the query length. A host counts like a header, so
// host "api.example.com" (10 + 15 = 25) outranks a host-less route with the
// same conditions, method GET weighs 7 + 3 = 10, and a presence condition
// on x-debug weighs 7 + 1 = 8.
//
// Where Emissary goes on to compare the prefix string, the method and the
// header keys, the router uses Kind and ID. Two Prefix or Exact paths of
// equal length that both match one request are the same string (up to case
// with CaseInsensitive), so only a Regex could be told apart by its source,
// and IDs are unique: the order is total and documented, and never depends
// on input order or map iteration. CaseInsensitive does not change a
// route's rank.
//
// # Weighted groups
//
// Routes that share a non-empty Group form one weighted group. They must
// have identical match criteria, and their Weights, percentages from 0 to
// 100, must add up to 100; NewTable rejects the table otherwise. A group
// takes one place in the order, at its members' shared rank with its lowest
// member ID for the final tie-break. When the group wins, [Table.Match] picks a
// member at random in proportion to the weights and [Table.MatchRoll] picks
// deterministically from a roll. Routes with identical criteria but no
// common Group are not grouped: the ID decides between them. [CriteriaKey]
// tells which routes may share a group. Members may belong to different
// tenants; a group answers an owned host only if all of them may, so that
// the weights hold and no pick lands on a tenant the owner did not list.
//
// # Structure
//
// Routes are bucketed by host: exact hosts and wildcard suffixes (keyed by
// ".suffix") in two hash tables that hash and compare the request host as if
// lower-cased, without copying it; a bucket for host-less routes; and a list
// of host-regex buckets sorted by the best rank they hold. Every owned host
// has an exact-host bucket, empty if no route names it, which holds its
// allow-list: the tenancies (a tenant, or the set of tenants of a mixed
// group) its owners cover, as small integers that each unit's conditions
// also carry. Each bucket has
// two radix trees over paths, one for case-sensitive routes and one for
// case-insensitive routes keyed by lower-cased paths, walked while
// lower-casing the request path as it goes. A node holds the groups and
// routes (together, units) whose path, or for Regex routes the expression's
// literal prefix, ends there, sorted by rank; it also knows the best rank
// below it and above it. A lookup descends each tree as far as the path
// allows and as long as something below can beat the best match found so
// far, then checks candidates from the deepest node up, skipping any unit
// whose rank is no better than that best match and stopping where no
// ancestor can improve on it. Trees are frozen into flat arrays of 64-byte
// nodes, so that a step down reads about one cache line.
//
// NewTable also copies into the bucket of an exact host the units of every
// wildcard, host-regex and host-less bucket that applies to that host, when
// they are few (at most 64 per host and as many as the table's units in
// all): a request for such a host then walks one bucket. The bucket of an
// owned host takes in, and counts against those limits, only the units of
// tenants it allows, and keeps none of the others, even of routes that name
// the host: its lookups check no tenant at all, and cost what any other
// exact-host hit costs. Other requests walk every bucket their host
// selects, host-regex buckets best first, stopping at the first that cannot
// improve on the best match before its expression runs; for an owned host
// whose bucket is not complete, each candidate's tenancy is looked up in
// the allow-list, and a unit not on it is not a match (the best-rank bounds
// that prune the walk stay valid: they only ever skip units that cannot
// win). Host and path expressions are preceded by a search for
// the literal text any match must contain (".regions.example.com" in
// `[a-z]+\.regions\.example\.com`), which rules out most inputs without
// running it.
//
// Match does not allocate, owned hosts included. The two cases that need a decoded copy of the
// input for a regular expression, a mixed-case host checked against a host
// regex and a %-escaped query value checked against a regex condition,
// borrow a buffer from a per-table pool.
package router

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Request is what a lookup looks at. Callers pass a pointer to a value on
// their stack; Match keeps no reference to it.
type Request struct {
	Host     string // may carry ":port", any case
	Method   string
	Path     string      // already cleaned by the caller, without the query
	RawQuery string      // URL.RawQuery, not yet decoded
	Header   http.Header // may be nil
}

// HeaderMatch is one header condition of a route.
type HeaderMatch struct {
	// Name is matched case-insensitively; New canonicalises it with
	// textproto.CanonicalMIMEHeaderKey so lookups index http.Header directly.
	Name string
	// Value must equal the first value of the header, unless Present or
	// Regex is set.
	Value string
	// Present requires only that the header is there; Value and Regex are
	// ignored.
	Present bool
	// Regex makes Value an RE2 expression the whole first value must match.
	Regex bool
}

// QueryMatch is one query-parameter condition of a route.
type QueryMatch struct {
	// Name is the decoded parameter name, compared case-sensitively.
	Name string
	// Value must equal the first decoded value, unless Present or Regex is set.
	Value string
	// Present requires only that the parameter is there, even with an empty
	// value; Value and Regex are ignored.
	Present bool
	// Regex makes Value an RE2 expression the whole first decoded value must
	// match.
	Regex bool
}

// Route is one routing rule with its payload.
type Route[T any] struct {
	// ID is unique within a table; it breaks ties in the evaluation order and
	// names the route in errors (e.g. "default/users/users-api").
	ID string
	// Host is "" for any host, "api.example.com" for one host, or
	// "*.example.com" for every host below example.com; with HostRegex, an
	// RE2 expression for the whole lower-cased host without port.
	Host      string
	HostRegex bool
	// Path is interpreted according to Kind.
	Path string
	Kind PathKind
	// CaseInsensitive makes the path comparison ignore ASCII case (a Regex
	// gets (?i)).
	CaseInsensitive bool
	// Method is "" for any method; New upper-cases it unless MethodRegex
	// makes it an RE2 expression for the whole request method.
	Method      string
	MethodRegex bool
	Headers     []HeaderMatch
	Query       []QueryMatch
	Precedence  int
	// Tenant is an opaque label of who declared the route (the snapshot
	// builder sets it to the Kubernetes namespace). It does not affect the
	// evaluation order; Options.Owners decides which tenants may answer an
	// owned host.
	Tenant string
	// Group names the weighted group the route belongs to; "" for none. All
	// members must have identical match criteria.
	Group string
	// Weight is the member's share of its group's traffic in percent, 0 to
	// 100; the members' weights add up to 100. Ignored outside a group.
	Weight int
	Value  T
}

// headerLen is the third key of the evaluation order: Emissary's
// len_headers, in which the host and the method are the headers
// ":authority" and ":method". New calls it on the normalised route, so a
// host counts lower-cased and an IPv6 literal without its brackets.
func (r *Route[T]) headerLen() int {
	n := 0
	if r.Host != "" {
		n += condLen(":authority", r.Host, false, r.HostRegex)
	}
	if r.Method != "" {
		n += condLen(":method", r.Method, false, r.MethodRegex)
	}
	for _, hm := range r.Headers {
		n += condLen(hm.Name, hm.Value, hm.Present, hm.Regex)
	}
	return n
}

// queryLen is the fourth key of the evaluation order: Emissary's len_query.
func (r *Route[T]) queryLen() int {
	n := 0
	for _, qm := range r.Query {
		n += condLen(qm.Name, qm.Value, qm.Present, qm.Regex)
	}
	return n
}

// condLen is Emissary's length of one header or query condition. A
// presence-only condition has no value, and Emissary writes a missing or
// empty value as "*".
func condLen(name, value string, present, regex bool) int {
	if present {
		value, regex = "", false
	}
	if value == "" {
		value = "*"
	}
	n := len(name) + len(value)
	if regex {
		n++
	}
	return n
}

// RouteError reports a route that NewTable (or Check) rejected.
type RouteError struct {
	ID    string
	Index int // position in the slice given to NewTable
	Err   error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("route %q (index %d): %v", e.ID, e.Index, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// GroupError reports a weighted group that NewTable (or Check) rejected.
type GroupError struct {
	Group string
	IDs   []string // the members, in ID order
	Err   error
}

func (e *GroupError) Error() string {
	ids := make([]string, len(e.IDs))
	for i, id := range e.IDs {
		ids[i] = strconv.Quote(id)
	}
	return fmt.Sprintf("group %q (routes %s): %v", e.Group, strings.Join(ids, ", "), e.Err)
}

func (e *GroupError) Unwrap() error { return e.Err }

// Table is a compiled, immutable set of routes. It is safe for concurrent
// use by any number of goroutines. The zero value and a nil *Table are empty
// tables that match nothing. A Table must not be copied.
type Table[T any] struct {
	// What a lookup for an exact host reads comes first, within two cache
	// lines.
	hosted bool       // some route names a host, or a host is owned: the request host matters
	maxRe  int        // Options.MaxRegexInput, or MaxInt for no bound
	exact  hostTable  // lower-case host → trees
	conds  []cond     // parallel to units: what Match checks beyond host and path
	units  []unit     // evaluation order: a unit's index is its rank
	routes []Route[T] // evaluation order; a group's members are adjacent, in ID order
	cum    []uint8    // parallel to routes: cumulative weight within the unit, ending at 100

	wild    hostTable   // ".example.com" for "*.example.com" → trees
	any     *bucket     // host-less routes; nil when there are none
	hostRes []hostRegex // best rank first

	// wildLens are the distinct lengths of the wild keys, ascending, so
	// Match hashes only the suffixes of the request host that could be keys.
	wildLens []uint8

	owners map[string][]string // normalised Options.Owners, for WriteTo

	scratch sync.Pool // *scratch
}

// unit is a place in the evaluation order: one ungrouped route or a group.
type unit struct {
	first, n int32 // routes[first : first+n]
}

// Len returns the number of routes.
func (t *Table[T]) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// Routes returns a copy of the normalised routes in evaluation order, the
// members of a group adjacent and in ID order.
func (t *Table[T]) Routes() []Route[T] {
	if t == nil {
		return nil
	}
	out := slices.Clone(t.routes)
	for i := range out {
		out[i].Headers = slices.Clone(out[i].Headers)
		out[i].Query = slices.Clone(out[i].Query)
	}
	return out
}

// All yields the table's routes in evaluation order without copying them,
// for callers that only read (Routes copies). Like the routes Match
// returns, they must not be modified.
func (t *Table[T]) All() iter.Seq[*Route[T]] {
	return func(yield func(*Route[T]) bool) {
		if t == nil {
			return
		}
		for i := range t.routes {
			if !yield(&t.routes[i]) {
				return
			}
		}
	}
}

// Match returns the first route, in evaluation order, that matches the
// request; when that is a weighted group, a member picked at random in
// proportion to the weights. The returned route points into the table's
// storage and must not be modified. Match does not allocate.
//
// For example, with routes {ID: "a", Path: "/api/"} and {ID: "b", Path:
// "/api/v1/", Method: "GET"}, a request {Host: "x.example.com:8080",
// Method: "GET", Path: "/api/v1/users"} matches b, and with method "POST"
// matches a.
func (t *Table[T]) Match(r *Request) (*Route[T], bool) {
	if t == nil {
		return nil, false
	}
	rank := t.lookup(r)
	if rank < 0 {
		return nil, false
	}
	u := t.units[rank]
	if u.n == 1 {
		return &t.routes[u.first], true
	}
	// The top-level functions of math/rand/v2 use a per-thread generator:
	// no lock, no allocation, safe for concurrent use.
	return t.pick(u, rand.Uint32N(100)), true
}

// MatchRoll is Match with the random pick replaced by roll: within a group,
// it selects the member whose range of cumulative weights (members in ID
// order) contains roll % 100. With weights 90 and 10, rolls 0–89 pick the
// first member and 90–99 the second. It makes picks reproducible for tests
// and for `gatehouse explain`.
func (t *Table[T]) MatchRoll(r *Request, roll uint32) (*Route[T], bool) {
	if t == nil {
		return nil, false
	}
	rank := t.lookup(r)
	if rank < 0 {
		return nil, false
	}
	return t.pick(t.units[rank], roll%100), true
}

func (t *Table[T]) pick(u unit, roll uint32) *Route[T] {
	last := u.first + u.n - 1
	for i := u.first; i < last; i++ {
		if roll < uint32(t.cum[i]) {
			return &t.routes[i]
		}
	}
	return &t.routes[last]
}

// Group returns the members of r's weighted group in ID order, or just the
// table's copy of r when it is ungrouped, or nil when the table holds no
// route with r's ID. It finds r by ID in linear time: it is for explaining
// a decision, not for the request path.
func (t *Table[T]) Group(r *Route[T]) []*Route[T] {
	if t == nil || r == nil {
		return nil
	}
	i := slices.IndexFunc(t.routes, func(x Route[T]) bool { return x.ID == r.ID })
	if i < 0 {
		return nil
	}
	g := t.routes[i].Group
	if g == "" {
		return []*Route[T]{&t.routes[i]}
	}
	lo, hi := i, i+1
	for lo > 0 && t.routes[lo-1].Group == g {
		lo--
	}
	for hi < len(t.routes) && t.routes[hi].Group == g {
		hi++
	}
	out := make([]*Route[T], 0, hi-lo)
	for k := lo; k < hi; k++ {
		out = append(out, &t.routes[k])
	}
	return out
}
