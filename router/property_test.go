package router

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Pools for random routes and requests: small, so that routes collide on
// hosts, stems and ranks, and requests hit the interesting boundaries.
var (
	// Hosts of every length class the host hash reads differently (up to 3,
	// 4 to 7, 8 to 16, and longer) and one that needs several blocks.
	propHosts = []string{
		"", "", "", "api.example.com", "API.Example.com", "*.example.com", "*.b.example.com",
		"a.b.example.com", "example.com", "other.org", "*.org", "[::1]", "127.0.0.1", "h", "host",
		"users-api.payments.svc.cluster.local", "*.svc.cluster.local", "*.b",
	}
	propHostRegexes = []string{
		`[a-z]+\.example\.com`, `(api|www)\.example\.(com|org)`, `.*\.org`, `.*`, `API\.example\.com`,
		`(?i)API\.EXAMPLE\.com`, `[0-9.]+`, `::1`, `a\..*`, `.*k.*`, `[a-z-]+\.payments\.svc\..*`,
		`.*\.b\.example\.com`,
	}
	propStems = []string{
		"/", "/a", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v1/users", "/api/v1/users/",
		"/api/v1/users/42", "/api/v2/", "/apix", "/users", "/users/", "/users/42", "/u",
		"/static/css/", "/static/", "/x/y/z", "/Api/V1/", "/keys/", "/KEYS",
	}
	propRegexes = []string{
		"/api/v[0-9]+/.*", "/users/[0-9]+", ".*", "/api/.*", "(?i)/API/.*", "^/users/.*$",
		"/a|/u", "/api/v1/(users|orgs)/[^/]+", "/static/.*\\.css", "", "/keys/.*", "/Api/(?-i:V1)/.*",
		"/\u212aeys/.*", "/x/y/z\\b.*", "/api/v1/[^/]+/orgs", "(?i)/api/v1/[a-z]+/KEYS", "/users/[0-9]+/s/.*",
		"/s/[a-p]/x.*y", "/s/[c-f](/1)?",
	}
	// propFan are the children of "/s/": more than a node indexes by
	// scanning, so that the bitmap index is exercised.
	propFan           = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "S", "\xff", "\x00"}
	propMethods       = []string{"", "", "", "GET", "POST", "get"}
	propMethodRegexes = []string{"GET|HEAD", "P.*", "get", "(?i)get", "[A-Z]+"}
	propQueryNames    = []string{"q", "page", "a b", "tag", "é"}
	propQueryValues   = []string{"1", "x y", "", "go", "✓"}
	propQueryRegexes  = []string{"[0-9]+", "x.*", ".*", "[a-z ]+"}

	propReqHosts = []string{"api.example.com", "x.example.com", "a.b.example.com", "b.example.com", "example.com", "z.a.b.example.com", "other.org", "sub.other.org", "[::1]", "::1", "127.0.0.1", "unknown.net", "", ".example.com", "a..example.com", "www.example.org", "key.example.com", "\u212aey.example.com",
		"h", "host", "hosts", "a.b", "users-api.payments.svc.cluster.local", "users-apj.payments.svc.cluster.local", "orders.payments.svc.cluster.local", "svc.cluster.local", "api\x1aexample.com"}
	propReqMethods = []string{"GET", "POST", "get", "PUT", "HEAD"}
	// propTenants are the tenants of random routes; "ghost" declares none,
	// but Owners may list it.
	propTenants = []string{"", "t1", "t2", "t3"}
	// propOwnedHosts are the hosts Owners may claim: hosts routes name,
	// hosts only wildcards, host regexes or host-less routes reach, and an
	// IPv6 literal written with brackets.
	propOwnedHosts = []string{
		"api.example.com", "a.b.example.com", "example.com", "x.example.com", "unknown.net", "h", "host",
		"[::1]", "127.0.0.1", "other.org", "sub.other.org", "users-api.payments.svc.cluster.local", "key.example.com",
	}
	// propHugeHosts are the hosts of the routes with a huge Precedence that
	// would answer every request if ownership did not stop them.
	propHugeHosts = []string{"", "", "*.example.com", "*.org", "*.b.example.com"}
	propSuffixes  = []string{"", "", "x", "/", "/1", "foo", "/deep/er", ".css", "s/42", "42", "/\u212a", "\u017f/1"}
	// propFoldTraps fold to ASCII stems under RE2's (?i) (Kelvin sign, long
	// s) but not under ASCII case folding.
	propFoldTraps = []string{"/u\u017fers/42", "/\u212aeys/1", "/api/v1/u\u017fers/x", "/\u017ftatic/a.css", "/\u212aEYS"}
	propReqPairs  = []string{
		"q=1", "q=x+y", "q=x%20y", "%71=1", "q=2", "page=2", "page=", "page", "a+b=go", "a%20b=go",
		"tag=go", "tag=rust", "q=%zz", "q;x=1", "", "=1", "q=1;2", "tag=%E2%9C%93", "Q=1", "%C3%A9=1",
		"page=%", "q=abc", "tag=x+y+z",
		// Longer values, plain and escaped, for MaxRegexInput to cut off.
		"q=x%78%78%78%78%78x", "page=123456789", "tag=x+y+z+w+v",
	}
)

func pick[E any](rng *rand.Rand, pool []E) E { return pool[rng.IntN(len(pool))] }

func randomRoutes(rng *rand.Rand, n int) []Route[string] {
	// One set in four has a single tenant, so that an owner may have more
	// host-less and wildcard routes than New merges into its host's bucket.
	tenants := propTenants
	if rng.IntN(4) == 0 {
		tenants = propTenants[1:2]
	}
	routes := make([]Route[string], n)
	for i, id := range rng.Perm(n) { // shuffled IDs so input order and ID order differ
		r := Route[string]{
			ID:         fmt.Sprintf("r%03d", id),
			Tenant:     pick(rng, tenants),
			Host:       pick(rng, propHosts),
			Method:     pick(rng, propMethods),
			Precedence: rng.IntN(3) - rng.IntN(2),
		}
		if rng.IntN(6) == 0 {
			r.Host, r.HostRegex = pick(rng, propHostRegexes), true
		}
		if rng.IntN(8) == 0 {
			r.Method, r.MethodRegex = pick(rng, propMethodRegexes), true
		}
		switch k := rng.IntN(10); {
		case k < 6:
			r.Kind, r.Path = Prefix, pick(rng, propStems)
		case k < 9:
			r.Kind, r.Path = Exact, pick(rng, propStems)
		default:
			r.Kind, r.Path = Regex, pick(rng, propRegexes)
		}
		if r.Kind != Regex && rng.IntN(3) == 0 {
			r.Path = "/s/" + pick(rng, propFan) + pick(rng, []string{"", "", "/", "/x"})
		}
		r.CaseInsensitive = rng.IntN(4) == 0
		for range rng.IntN(3) {
			switch rng.IntN(7) {
			case 0:
				r.Headers = append(r.Headers, HeaderMatch{Name: "x-env", Value: pick(rng, []string{"canary", "prod"})})
			case 1:
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-Debug", Present: true, Regex: rng.IntN(2) == 0})
			case 2:
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-User", Value: "1"})
			case 3:
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-Env", Value: "can.*", Regex: true})
			case 4:
				// Long: its length outweighs two or three short conditions.
				r.Headers = append(r.Headers, HeaderMatch{Name: "x-tenant-identifier", Value: "enterprise"})
			case 5:
				// Empty: counts "*", like a presence condition.
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-Env"})
			default:
				r.Headers = append(r.Headers, HeaderMatch{Name: "x-user", Value: "[0-9]+", Regex: true})
			}
		}
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(2) {
				q := QueryMatch{Name: pick(rng, propQueryNames)}
				switch rng.IntN(3) {
				case 0:
					q.Present = true
				case 1:
					q.Value = pick(rng, propQueryValues)
				default:
					q.Value, q.Regex = pick(rng, propQueryRegexes), true
				}
				r.Query = append(r.Query, q)
			}
		}
		routes[i] = r
	}
	// Weighted groups: copies of a route with the same criteria, and now and
	// then an ungrouped copy, which must not join the group.
	for g := range 1 + rng.IntN(4+n/25) {
		base := routes[rng.IntN(n)]
		if rng.IntN(2) == 0 { // broader, so that requests reach the group often
			base.Headers, base.Query = nil, nil
		}
		members := 1 + rng.IntN(3)
		cuts := []int{0, 100}
		for range members - 1 {
			cuts = append(cuts, rng.IntN(101))
		}
		slices.Sort(cuts)
		for m := range members {
			r := base
			r.ID = fmt.Sprintf("g%d-%d", g, rng.IntN(1000)*10+m) // unique, in random ID order
			r.Group, r.Weight = fmt.Sprintf("group%d", g), cuts[m+1]-cuts[m]
			if rng.IntN(4) == 0 { // a group of several tenants
				r.Tenant = pick(rng, propTenants)
			}
			routes = append(routes, r)
		}
		if rng.IntN(2) == 0 {
			r := base
			r.ID = fmt.Sprintf("g%d-%d", g, rng.IntN(1000)*10+5) // may sort between members
			routes = append(routes, r)
		}
	}
	// Now and then routes with a huge Precedence, host-less, wildcard or
	// host-regex, which win wherever ownership does not stop them.
	if rng.IntN(3) == 0 {
		for k := range 1 + rng.IntN(3) {
			r := Route[string]{
				ID:         fmt.Sprintf("p%d", k),
				Tenant:     pick(rng, propTenants),
				Host:       pick(rng, propHugeHosts),
				Path:       pick(rng, propStems[:6]),
				Precedence: 1000 + rng.IntN(2),
			}
			if rng.IntN(3) == 0 {
				r.Host, r.HostRegex = pick(rng, propHostRegexes), true
			}
			routes = append(routes, r)
		}
	}
	for i := range routes {
		routes[i].Value = "v:" + routes[i].ID
	}
	return routes
}

// randomOptions returns, half of the time, owners for a few of the owned
// hosts, each listing some of the tenants (ghost ones too, and sometimes
// none), and a third of the time a bound on regex inputs short enough to
// cut off paths, hosts and query values.
func randomOptions(rng *rand.Rand) Options {
	var opts Options
	if rng.IntN(2) == 0 {
		opts.Owners = map[string][]string{}
		for range 1 + rng.IntN(5) {
			host := pick(rng, propOwnedHosts)
			if rng.IntN(4) == 0 {
				host = strings.ToUpper(host)
			}
			var tenants []string
			for _, t := range append(propTenants, "ghost") {
				if rng.IntN(3) == 0 {
					tenants = append(tenants, t)
				}
			}
			opts.Owners[host] = tenants
		}
	}
	switch rng.IntN(8) {
	case 0: // short enough to cut off methods, header and query values
		opts.MaxRegexInput = 1 + rng.IntN(8)
	case 1: // paths and hosts
		opts.MaxRegexInput = 1 + rng.IntN(24)
	}
	return opts
}

// ownedHosts returns the owned hosts of opts in a stable order, for
// randomRequest.
func ownedHosts(opts Options) []string {
	return slices.Sorted(maps.Keys(opts.Owners))
}

func randomCase(rng *rand.Rand, s string) string {
	b := []byte(s)
	for i := range b {
		if rng.IntN(3) == 0 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
	}
	return string(b)
}

// randomRequest aims at one of the routes: two times in three at its host
// (a wildcard filled in), now and then at its path and its method, and
// otherwise at values from the pools, so that requests reach the routes
// often enough to tell orders apart.
func randomRequest(rng *rand.Rand, routes []Route[string], owned []string) Request {
	aim := pick(rng, routes)
	host := pick(rng, propReqHosts)
	if rng.IntN(3) > 0 && !aim.HostRegex && aim.Host != "" {
		host = strings.Replace(aim.Host, "*", pick(rng, []string{"x", "a.b", "API"}), 1)
	}
	if len(owned) > 0 && rng.IntN(4) == 0 {
		host = pick(rng, owned)
	}
	host = randomCase(rng, host)
	switch rng.IntN(16) {
	case 0, 1:
		host += "." // the fully qualified spelling
	case 2:
		host += ".." // not a valid host
	}
	if rng.IntN(3) == 0 {
		if strings.Contains(host, ":") {
			host = "[" + strings.Trim(host, "[]") + "]"
		}
		host += ":8080"
	}
	path := pick(rng, propStems) + pick(rng, propSuffixes)
	switch rng.IntN(10) {
	case 0:
		path = pick(rng, propFoldTraps)
	case 1, 2:
		path = "/s/" + pick(rng, propFan) + pick(rng, propSuffixes)
	case 3, 4, 5:
		// The route's own path, and the paths around it.
		if aim.Kind != Regex {
			path = aim.Path + pick(rng, propSuffixes)
		}
	}
	switch rng.IntN(8) {
	case 0:
		path = strings.ToUpper(path)
	case 1:
		path = randomCase(rng, path)
	}
	method := pick(rng, propReqMethods)
	if rng.IntN(2) == 0 && aim.Method != "" && !aim.MethodRegex {
		method = strings.ToUpper(aim.Method)
	}
	h := http.Header{}
	if rng.IntN(2) == 0 {
		h.Set("X-Env", pick(rng, []string{"canary", "prod", ""}))
	}
	if rng.IntN(3) == 0 {
		h.Set("X-Debug", "")
	}
	if rng.IntN(3) == 0 {
		h.Set("X-User", pick(rng, []string{"1", "x"}))
	}
	if rng.IntN(3) == 0 {
		h.Set("X-Tenant-Identifier", "enterprise")
	}
	var pairs []string
	for range rng.IntN(4) {
		pairs = append(pairs, pick(rng, propReqPairs))
	}
	return Request{Host: host, Method: method, Path: path, RawQuery: strings.Join(pairs, "&"), Header: h}
}

// TestMatchAgreesWithReference is the main correctness argument: for random
// route sets full of ties, overlaps and groups, the table ranks routes as
// the linear reference does, and the tree picks what the linear scan over
// the documented order picks, for the same roll.
func TestMatchAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240601, 7))
	const sets, requestsPerSet = 200, 500 // 100,000 requests
	hits, grouped, decided := 0, 0, 0
	var shape tableShape
	for set := range sets {
		// Up to 200 routes: large sets have hosts that too many host-less,
		// wildcard and host-regex routes apply to for New to merge them,
		// small ones do not.
		routes := randomRoutes(rng, 1+rng.IntN(200))
		opts := randomOptions(rng)
		owned := ownedHosts(opts)
		tbl, err := NewTable(routes, opts)
		if err != nil {
			t.Fatalf("set %d: NewTable: %v", set, err)
		}
		shape.add(tbl)
		ref := newLinearOpts(routes, opts)
		// Without owners, to count the requests ownership decides.
		free := newLinearOpts(routes, Options{MaxRegexInput: opts.MaxRegexInput})
		// The whole order, not just the winners, must agree: a group is
		// adjacent in ID order in both.
		var got, want []string
		for _, r := range tbl.Routes() {
			got = append(got, r.ID)
		}
		for _, r := range ref.routes {
			want = append(want, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("set %d: evaluation order\n%v\nreference order\n%v", set, got, want)
		}
		for range requestsPerSet {
			req := randomRequest(rng, routes, owned)
			roll := rng.Uint32N(100)
			if rng.IntN(10) == 0 {
				roll = rng.Uint32()
			}
			got, gotOK := tbl.MatchRoll(&req, roll)
			want, wantOK := ref.matchRoll(&req, roll)
			if gotOK != wantOK || (gotOK && got.ID != want.ID) {
				var dump strings.Builder
				tbl.WriteTo(&dump)
				t.Fatalf("set %d (%+v): MatchRoll(%+v, %d) = %v, reference = %v\n%s", set, opts, req, roll, idOf(got), idOf(want), dump.String())
			}
			if opts.Owners != nil {
				if r, _ := free.matchRoll(&req, roll); idOf(r) != idOf(want) {
					decided++
				}
			}
			if !gotOK {
				continue
			}
			hits++
			if got.Value != "v:"+got.ID {
				t.Fatalf("route %q carries value %q", got.ID, got.Value)
			}
			if got.Group != "" {
				grouped++
				// Match picks at random, but within the same group.
				if r, _ := tbl.Match(&req); r.Group != got.Group || r.Weight == 0 {
					t.Fatalf("set %d: Match(%+v) = %s (group %q, weight %d), want a member of %q", set, req, r.ID, r.Group, r.Weight, got.Group)
				}
			} else if r, _ := tbl.Match(&req); r != got {
				t.Fatalf("set %d: Match(%+v) = %s, MatchRoll = %s", set, req, r.ID, got.ID)
			}
		}
	}
	// Guard against a generator that never matches, never reaches a group,
	// or never builds the structures the lookup treats specially (which
	// would prove nothing).
	t.Logf("%d of %d requests matched, %d a group, %d decided by owners; %+v", hits, sets*requestsPerSet, grouped, decided, shape)
	if hits < sets*requestsPerSet/5 || grouped < sets*requestsPerSet/100 || decided < sets*requestsPerSet/100 {
		t.Errorf("%d of %d requests matched, %d a group, %d decided by owners; the generator is too sparse", hits, sets*requestsPerSet, grouped, decided)
	}
	if min(shape.Complete, shape.Incomplete, shape.WideNodes, shape.Wildcards, shape.HostRegexes, shape.OwnedComplete) < sets/4 ||
		min(shape.OwnedIncomplete, shape.OwnedEmpty) < sets/40 {
		t.Errorf("the generated tables are too plain: %+v", shape)
	}
}

// tableShape counts, over many tables, the structures Match treats
// specially: exact-host buckets that New completed with the other buckets
// that apply to their host and those it left alone, nodes that index their
// children by bitmap, wildcard buckets and host-regex buckets; and owned
// hosts' buckets, complete or not, and those no route names.
type tableShape struct {
	Complete, Incomplete, WideNodes, Wildcards, HostRegexes int
	OwnedComplete, OwnedIncomplete, OwnedEmpty              int
}

func (s *tableShape) add(tbl *Table[string]) {
	trees := func(b *bucket) {
		s.WideNodes += len(b.exact.wide) + len(b.fold.wide)
	}
	tbl.exact.each(func(_ string, b *bucket) {
		switch {
		case b.allow != nil && b.units == 0:
			s.OwnedEmpty++
		case b.allow != nil && b.complete:
			s.OwnedComplete++
		case b.allow != nil:
			s.OwnedIncomplete++
		}
		if b.complete {
			s.Complete++
		} else {
			s.Incomplete++
		}
		trees(b)
	})
	tbl.wild.each(func(_ string, b *bucket) {
		s.Wildcards++
		trees(b)
	})
	for _, hr := range tbl.hostRes {
		s.HostRegexes++
		trees(hr.bucket)
	}
	if tbl.any != nil {
		trees(tbl.any)
	}
}

func idOf(r *Route[string]) string {
	if r == nil {
		return "<none>"
	}
	return r.ID
}
