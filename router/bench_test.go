package router

import (
	"fmt"
	"net/http"
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

// benchRoutes returns n routes: a few host-less and wildcard routes, then
// services svc0.example.com, svc1.example.com, ... each with the API's
// prefixes, an exact route, a method route, a header route and a regex.
func benchRoutes(n int) []Route[string] {
	routes := []Route[string]{
		{ID: "healthz", Path: "/healthz", Kind: Exact},
		{ID: "metrics", Path: "/metrics", Kind: Exact, Method: "GET"},
		{ID: "tenant-api", Host: "*.tenant.example.net", Path: "/api/v3/"},
		{ID: "tenant-users", Host: "*.tenant.example.net", Path: "/api/v3/users/"},
		{ID: "legacy", Path: "/v1/legacy/[a-z]+/[0-9]+", Kind: Regex, Precedence: 1},
	}
	for svc := 0; len(routes) < n; svc++ {
		host := fmt.Sprintf("svc%d.example.com", svc)
		id := func(s string) string { return fmt.Sprintf("ns%d/%s/%s", svc%7, host, s) }
		for _, p := range githubPaths[:2] { // first, so that even 10 routes hold /repos/ and /users/
			routes = append(routes, Route[string]{ID: id(p), Host: host, Path: "/api/v3" + p})
		}
		routes = append(routes,
			Route[string]{ID: id("pulls"), Host: host, Path: "/api/v3/repos/[^/]+/[^/]+/pulls/[0-9]+(/.*)?", Kind: Regex, Precedence: 1},
			Route[string]{ID: id("canary"), Host: host, Path: "/api/v3/repos/", Headers: []HeaderMatch{{Name: "X-Env", Value: "canary"}}},
			Route[string]{ID: id("create"), Host: host, Path: "/api/v3/repos/", Method: "POST"},
			Route[string]{ID: id("meta"), Host: host, Path: "/api/v3/meta", Kind: Exact},
		)
		for _, p := range githubPaths[2:] {
			routes = append(routes, Route[string]{ID: id(p), Host: host, Path: "/api/v3" + p})
		}
	}
	routes = routes[:n]
	for i := range routes {
		routes[i].Value = routes[i].ID
	}
	return routes
}

type benchRequest struct {
	name, host, method, path string
	h                        http.Header
}

// benchRequests aims at the middle service of a table built by benchRoutes(n).
func benchRequests(n int) []benchRequest {
	routes := benchRoutes(n)
	services := 0
	for _, r := range routes {
		if r.ID[len(r.ID)-len("pulls"):] == "pulls" {
			services++
		}
	}
	host := fmt.Sprintf("svc%d.example.com:443", (services-1)/2)
	h := http.Header{"Accept": {"application/json"}, "User-Agent": {"gh/2.0"}, "X-Env": {"prod"}}
	return []benchRequest{
		{"hit", host, "GET", "/api/v3/users/octocat/repos", h},
		// A precedence-1 regex shares the /repos/ stem, so it runs (and fails) first.
		{"hit-regex-stem", host, "GET", "/api/v3/repos/gatehouse-dev/gatehouse/issues", h},
		{"miss", "nowhere.example.org", "GET", "/api/v3/repos/gatehouse-dev/gatehouse", h},
		{"deep", host, "GET", "/api/v3/repos/gatehouse-dev/gatehouse/git/refs/heads/feature/a/very/deep/branch/name/with/many/segments/in/it", h},
	}
}

var benchSizes = []int{10, 1000, 10000}

func BenchmarkMatch(b *testing.B) {
	for _, n := range benchSizes {
		tbl := mustNew(b, benchRoutes(n))
		for _, req := range benchRequests(n) {
			if _, ok := tbl.Match(req.host, req.method, req.path, req.h); ok != (req.name != "miss") {
				b.Fatalf("%d routes, %s: matched = %v", n, req.name, ok)
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, req.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tbl.Match(req.host, req.method, req.path, req.h)
				}
			})
		}
	}
}

// BenchmarkLinear runs the same requests against the reference scan, so the
// tree's speed-up can be quoted from one run.
func BenchmarkLinear(b *testing.B) {
	for _, n := range benchSizes {
		ref := newLinear(benchRoutes(n))
		for _, req := range benchRequests(n) {
			b.Run(fmt.Sprintf("routes=%d/%s", n, req.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ref.match(req.host, req.method, req.path, req.h)
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
