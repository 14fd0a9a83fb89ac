package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// Pools for random routes and requests: small, so that routes collide on
// hosts, stems and ranks, and requests hit the interesting boundaries.
var (
	propHosts = []string{
		"", "", "", "api.example.com", "API.Example.com", "*.example.com", "*.b.example.com",
		"a.b.example.com", "example.com", "other.org", "*.org", "[::1]", "127.0.0.1",
	}
	propStems = []string{
		"/", "/a", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v1/users", "/api/v1/users/",
		"/api/v1/users/42", "/api/v2/", "/apix", "/users", "/users/", "/users/42", "/u",
		"/static/css/", "/static/", "/x/y/z",
	}
	propRegexes = []string{
		"/api/v[0-9]+/.*", "/users/[0-9]+", ".*", "/api/.*", "(?i)/API/.*", "^/users/.*$",
		"/a|/u", "/api/v1/(users|orgs)/[^/]+", "/static/.*\\.css", "",
	}
	propMethods    = []string{"", "", "", "GET", "POST", "get"}
	propReqHosts   = []string{"api.example.com", "x.example.com", "a.b.example.com", "b.example.com", "example.com", "z.a.b.example.com", "other.org", "sub.other.org", "[::1]", "::1", "127.0.0.1", "unknown.net", "", ".example.com", "a..example.com"}
	propReqMethods = []string{"GET", "POST", "get", "PUT"}
	propSuffixes   = []string{"", "", "x", "/", "/1", "foo", "/deep/er", ".css", "s/42", "42"}
)

func randomRoutes(rng *rand.Rand, n int) []Route[string] {
	routes := make([]Route[string], n)
	for i, id := range rng.Perm(n) { // shuffled IDs so input order and ID order differ
		r := Route[string]{
			ID:         fmt.Sprintf("r%03d", id),
			Host:       propHosts[rng.IntN(len(propHosts))],
			Method:     propMethods[rng.IntN(len(propMethods))],
			Precedence: rng.IntN(3) - rng.IntN(2),
		}
		switch k := rng.IntN(10); {
		case k < 6:
			r.Kind, r.Path = Prefix, propStems[rng.IntN(len(propStems))]
		case k < 9:
			r.Kind, r.Path = Exact, propStems[rng.IntN(len(propStems))]
		default:
			r.Kind, r.Path = Regex, propRegexes[rng.IntN(len(propRegexes))]
		}
		for range rng.IntN(3) {
			switch rng.IntN(3) {
			case 0:
				r.Headers = append(r.Headers, HeaderMatch{Name: "x-env", Value: []string{"canary", "prod"}[rng.IntN(2)]})
			case 1:
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-Debug", Present: true})
			default:
				r.Headers = append(r.Headers, HeaderMatch{Name: "X-User", Value: "1"})
			}
		}
		r.Value = "v:" + r.ID
		routes[i] = r
	}
	return routes
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

func randomRequest(rng *rand.Rand) (host, method, path string, h http.Header) {
	host = randomCase(rng, propReqHosts[rng.IntN(len(propReqHosts))])
	if rng.IntN(3) == 0 {
		if strings.Contains(host, ":") {
			host = "[" + strings.Trim(host, "[]") + "]"
		}
		host += ":8080"
	}
	path = propStems[rng.IntN(len(propStems))] + propSuffixes[rng.IntN(len(propSuffixes))]
	if rng.IntN(20) == 0 {
		path = strings.ToUpper(path)
	}
	h = http.Header{}
	if rng.IntN(2) == 0 {
		h.Set("X-Env", []string{"canary", "prod"}[rng.IntN(2)])
	}
	if rng.IntN(3) == 0 {
		h.Set("X-Debug", "")
	}
	if rng.IntN(3) == 0 {
		h.Set("X-User", "1")
	}
	return host, propReqMethods[rng.IntN(len(propReqMethods))], path, h
}

// TestMatchAgreesWithReference is the main correctness argument: for random
// route sets full of ties and overlaps, the tree picks what the linear scan
// over the documented order picks.
func TestMatchAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240601, 7))
	const sets, requestsPerSet = 100, 500 // 50,000 requests
	hits := 0
	for set := range sets {
		routes := randomRoutes(rng, 1+rng.IntN(120))
		tbl := mustNew(t, routes)
		ref := newLinear(routes)
		for range requestsPerSet {
			host, method, path, h := randomRequest(rng)
			got, gotOK := tbl.Match(host, method, path, h)
			want, wantOK := ref.match(host, method, path, h)
			if gotOK != wantOK || (gotOK && got.ID != want.ID) {
				var dump strings.Builder
				tbl.WriteTo(&dump)
				t.Fatalf("set %d: Match(%q, %q, %q, %v) = %v, reference = %v\n%s", set, host, method, path, h, idOf(got), idOf(want), dump.String())
			}
			if gotOK {
				hits++
				if got.Value != "v:"+got.ID {
					t.Fatalf("route %q carries value %q", got.ID, got.Value)
				}
			}
		}
	}
	// Guard against a generator that never matches (which would prove nothing).
	if hits < sets*requestsPerSet/5 {
		t.Errorf("only %d of %d requests matched; the generator is too sparse", hits, sets*requestsPerSet)
	}
}

func idOf(r *Route[string]) string {
	if r == nil {
		return "<none>"
	}
	return r.ID
}
