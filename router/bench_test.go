package router

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// githubPaths are a slice of GitHub's REST API, mounted under /api/v3 on
// every service host: a realistic mix of shared stems and leaf paths.
var githubPaths = []string{
	"/repos/", "/users/", "/orgs/", "/gists/", "/issues", "/search/code", "/search/issues",
	"/search/repositories", "/search/users", "/user/repos", "/user/", "/notifications",
	"/teams/", "/projects/", "/markdown", "/rate_limit", "/emojis", "/events", "/feeds",
	"/licenses/", "/gitignore/templates/", "/apps/", "/installation/repositories",
	"/marketplace_listing/plans",
}

// benchRoutes returns n routes: a few host-less routes, then services
// svc0.example.com, svc1.example.com, ... each with the API's prefixes, a
// query route, a case-insensitive route, a 90/10 weighted group, a regex, a
// header route, a method route and an exact route; after the first service,
// wildcard and host-regex routes.
func benchRoutes(n int) []Route[string] {
	routes := []Route[string]{
		{ID: "healthz", Path: "/healthz", Kind: Exact},
		{ID: "metrics", Path: "/metrics", Kind: Exact, Method: "GET"},
		{ID: "legacy", Path: "/v1/legacy/[a-z]+/[0-9]+", Kind: Regex, Precedence: 1},
	}
	for svc := 0; len(routes) < n; svc++ {
		host := fmt.Sprintf("svc%d.example.com", svc)
		id := func(s string) string { return fmt.Sprintf("ns%d/%s/%s", svc%7, host, s) }
		// First, so that even 10 routes hold every kind the benchmarks hit.
		routes = append(routes,
			Route[string]{ID: id("/repos/"), Host: host, Path: "/api/v3/repos/"},
			Route[string]{ID: id("/users/"), Host: host, Path: "/api/v3/users/"},
			Route[string]{ID: id("search-code"), Host: host, Path: "/api/v3/search/code", Query: []QueryMatch{{Name: "type", Value: "code"}}},
			Route[string]{ID: id("docs"), Host: host, Path: "/api/v3/docs/", CaseInsensitive: true},
			Route[string]{ID: id("checkout-a"), Host: host, Path: "/api/v3/checkout/", Group: id("checkout"), Weight: 90},
			Route[string]{ID: id("checkout-b"), Host: host, Path: "/api/v3/checkout/", Group: id("checkout"), Weight: 10},
			Route[string]{ID: id("pulls"), Host: host, Path: "/api/v3/repos/[^/]+/[^/]+/pulls/[0-9]+(/.*)?", Kind: Regex, Precedence: 1},
		)
		if svc == 0 {
			routes = append(routes,
				Route[string]{ID: "tenant-api", Host: "*.tenant.example.net", Path: "/api/v3/"},
				Route[string]{ID: "tenant-users", Host: "*.tenant.example.net", Path: "/api/v3/users/"},
				Route[string]{ID: "regions", Host: `[a-z]+-[0-9]\.regions\.example\.net`, HostRegex: true, Path: "/api/v3/"},
			)
		}
		routes = append(routes,
			Route[string]{ID: id("canary"), Host: host, Path: "/api/v3/repos/", Headers: []HeaderMatch{{Name: "X-Env", Value: "canary"}}},
			Route[string]{ID: id("create"), Host: host, Path: "/api/v3/repos/", Method: "POST"},
			Route[string]{ID: id("meta"), Host: host, Path: "/api/v3/meta", Kind: Exact},
		)
		for _, p := range githubPaths[2:] {
			routes = append(routes, Route[string]{ID: id(p), Host: host, Path: "/api/v3" + p})
		}
	}
	routes = routes[:n]
	if last := &routes[n-1]; strings.HasSuffix(last.ID, "checkout-a") {
		last.Group = "" // its partner was cut off
	}
	for i := range routes {
		routes[i].Value = routes[i].ID
	}
	return routes
}

type benchRequest struct {
	name string
	req  Request
}

// benchRequests aims at the middle service of a table built by benchRoutes(n).
func benchRequests(n int) []benchRequest {
	routes := benchRoutes(n)
	services := 0
	for _, r := range routes {
		if strings.HasSuffix(r.ID, "/pulls") {
			services++
		}
	}
	host := fmt.Sprintf("svc%d.example.com:443", (services-1)/2)
	h := map[string][]string{"Accept": {"application/json"}, "User-Agent": {"gh/2.0"}, "X-Env": {"prod"}}
	get := func(name, host, path, query string) benchRequest {
		return benchRequest{name, Request{Host: host, Method: "GET", Path: path, RawQuery: query, Header: h}}
	}
	return []benchRequest{
		get("hit", host, "/api/v3/users/octocat/repos", ""),
		// A precedence-1 regex shares the /repos/ stem, so it runs (and fails) first.
		get("hit-regex-stem", host, "/api/v3/repos/gatehouse-dev/gatehouse/issues", ""),
		get("miss", "nowhere.example.org", "/api/v3/repos/gatehouse-dev/gatehouse", ""),
		get("deep", host, "/api/v3/repos/gatehouse-dev/gatehouse/git/refs/heads/feature/a/very/deep/branch/name/with/many/segments/in/it", ""),
		get("query", host, "/api/v3/search/code", "q=radix+tree&type=code&per_page=50"),
		get("case-insensitive", host, "/API/V3/Docs/getting-started", ""),
		get("weighted", host, "/api/v3/checkout/cart", ""),
	}
}

var benchSizes = []int{10, 1000, 10000}

func BenchmarkMatch(b *testing.B) {
	for _, n := range benchSizes {
		tbl := mustNew(b, benchRoutes(n))
		for _, q := range benchRequests(n) {
			if _, ok := tbl.Match(&q.req); ok != (q.name != "miss") {
				b.Fatalf("%d routes, %s: matched = %v", n, q.name, ok)
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tbl.Match(&q.req)
				}
			})
		}
	}
}

// ownedRoutes gives the routes of benchRoutes(n) tenants, the namespace
// their ID starts with ("system" for the host-less, wildcard and host-regex
// routes), and makes every service host owned by its namespace, with
// "system" as a delegate: the table a gateway enforcing ownership builds.
func ownedRoutes(n int) ([]Route[string], Options) {
	routes := benchRoutes(n)
	owners := map[string][]string{}
	for i := range routes {
		r := &routes[i]
		ns, _, found := strings.Cut(r.ID, "/")
		if !found {
			r.Tenant = "system"
			continue
		}
		r.Tenant = ns
		owners[r.Host] = []string{ns, "system"}
	}
	return routes, Options{Owners: owners}
}

// withBulk adds to an owned table a host whose owner has more host-less
// routes than New merges into its bucket, and another tenant's routes with
// a huge Precedence, so that its lookups take the slow way and check every
// candidate's tenant.
func withBulk(routes []Route[string], opts Options) ([]Route[string], Options) {
	for i := range maxMergedUnits + 1 {
		routes = append(routes, Route[string]{ID: fmt.Sprintf("bulk%d", i), Tenant: "bulk", Path: fmt.Sprintf("/bulk/%d/", i), Value: "bulk"})
	}
	routes = append(routes,
		Route[string]{ID: "evil", Tenant: "evil", Path: "/api/", Precedence: 1000, Value: "evil"},
		Route[string]{ID: "evil-re", Tenant: "evil", Host: `[a-z]+\.example\.com`, HostRegex: true, Path: "/api/", Precedence: 1000, Value: "evil"},
		Route[string]{ID: "bulk-api", Tenant: "bulk", Host: "*.example.com", Path: "/api/v3/users/", Value: "bulk"},
	)
	owners := maps.Clone(opts.Owners)
	owners["bulk.example.com"] = []string{"bulk"}
	return routes, Options{Owners: owners}
}

// BenchmarkMatchOwned runs BenchmarkMatch's requests against a table whose
// service hosts are all owned: the same names, so the figures compare one to
// one. Sub-benchmark "owned-slow" is a hit on an owned host whose bucket is
// incomplete.
func BenchmarkMatchOwned(b *testing.B) {
	for _, n := range benchSizes {
		routes, opts := ownedRoutes(n)
		tbl, err := NewTable(routes, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range benchRequests(n) {
			if _, ok := tbl.Match(&q.req); ok != (q.name != "miss") {
				b.Fatalf("%d routes, %s: matched = %v", n, q.name, ok)
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tbl.Match(&q.req)
				}
			})
		}
		slow, err := NewTable(withBulk(routes, opts))
		if err != nil {
			b.Fatal(err)
		}
		req := Request{Host: "bulk.example.com:443", Method: "GET", Path: "/api/v3/users/octocat/repos"}
		if r, _ := slow.Match(&req); idOf(r) != "bulk-api" || slow.exact.get("bulk.example.com").complete {
			b.Fatalf("%d routes, owned-slow: matched %s", n, idOf(r))
		}
		b.Run(fmt.Sprintf("routes=%d/owned-slow", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				slow.Match(&req)
			}
		})
	}
}

// BenchmarkLinear runs the same requests against the reference scan, so the
// tree's speed-up can be quoted from one run.
func BenchmarkLinear(b *testing.B) {
	for _, n := range benchSizes {
		ref := newLinear(benchRoutes(n))
		for _, q := range benchRequests(n) {
			b.Run(fmt.Sprintf("routes=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ref.match(&q.req)
				}
			})
		}
	}
}

// muxPattern returns the Go 1.22 http.ServeMux pattern for a route, or ""
// when a pattern cannot express it: wildcard and regex hosts, regex paths,
// case-insensitive paths, header and query conditions, method regexes. A
// Prefix path becomes a subtree pattern ("host/path/"), which differs only
// in being segment-aware; an Exact one an exact pattern.
func muxPattern(r *Route[string]) string {
	if r.HostRegex || strings.HasPrefix(r.Host, "*.") || r.Kind == Regex || r.CaseInsensitive ||
		r.MethodRegex || len(r.Headers) > 0 || len(r.Query) > 0 {
		return ""
	}
	p := r.Host + r.Path
	switch {
	case r.Kind == Prefix && !strings.HasSuffix(p, "/"):
		p += "/"
	case r.Kind == Exact && strings.HasSuffix(p, "/"):
		p += "{$}"
	}
	if r.Method != "" {
		p = r.Method + " " + p
	}
	return p
}

// BenchmarkServeMux runs the requests that net/http.ServeMux can answer
// like the tree (a hit, a miss and a deep path) against a mux holding the
// patterns of the comparable routes, in the same run as BenchmarkMatch and
// BenchmarkLinear. ServeMux.Handler does the lookup without serving.
func BenchmarkServeMux(b *testing.B) {
	for _, n := range benchSizes {
		routes := benchRoutes(n)
		tbl := mustNew(b, routes)
		mux := http.NewServeMux()
		patterns := map[string]bool{}
		for i := range routes {
			if p := muxPattern(&routes[i]); p != "" && !patterns[p] {
				patterns[p] = true
				mux.Handle(p, http.NotFoundHandler())
			}
		}
		for _, q := range benchRequests(n) {
			if q.name != "hit" && q.name != "miss" && q.name != "deep" {
				continue
			}
			req := &http.Request{Method: q.req.Method, Host: q.req.Host, URL: &url.URL{Path: q.req.Path, RawQuery: q.req.RawQuery}, Header: q.req.Header}
			// Both must pick the same route (or none).
			want := ""
			if r, ok := tbl.Match(&q.req); ok {
				want = muxPattern(r)
			}
			if _, got := mux.Handler(req); got != want {
				b.Fatalf("%d routes, %s: ServeMux picked %q, the tree %q", n, q.name, got, want)
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					mux.Handler(req)
				}
			})
		}
	}
}

func BenchmarkNew(b *testing.B) {
	routes := benchRoutes(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(routes); err != nil {
			b.Fatal(err)
		}
	}
}
