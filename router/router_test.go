package router

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func mustNew(t testing.TB, routes []Route[string]) *Table[string] {
	t.Helper()
	tbl, err := New(routes)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tbl
}

// expecter returns a closure that asserts which route ID a request picks
// ("" for no match) and that the reference agrees.
func expecter(t *testing.T, routes []Route[string]) func(host, method, path string, h http.Header, want string) {
	tbl := mustNew(t, routes)
	ref := newLinear(routes)
	return func(host, method, path string, h http.Header, want string) {
		t.Helper()
		got := ""
		if r, ok := tbl.Match(host, method, path, h); ok {
			got = r.ID
			if r.Value != "v:"+r.ID {
				t.Errorf("Match(%q, %q, %q) returned route %q with value %q", host, method, path, r.ID, r.Value)
			}
		}
		if got != want {
			t.Errorf("Match(%q, %q, %q, %v) = %q, want %q", host, method, path, h, got, want)
		}
		refGot := ""
		if r, ok := ref.match(host, method, path, h); ok {
			refGot = r.ID
		}
		if refGot != want {
			t.Errorf("reference(%q, %q, %q, %v) = %q, want %q", host, method, path, h, refGot, want)
		}
	}
}

// withValues sets each route's Value to "v:"+ID so tests can check that the
// returned pointer carries the right payload.
func withValues(routes ...Route[string]) []Route[string] {
	for i := range routes {
		routes[i].Value = "v:" + routes[i].ID
	}
	return routes
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestMatchHost(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "exact", Host: "api.example.com", Path: "/"},
		Route[string]{ID: "wild", Host: "*.example.com", Path: "/"},
		Route[string]{ID: "deep-wild", Host: "*.b.example.com", Path: "/"},
		Route[string]{ID: "mixed-case", Host: "Shop.Example.ORG", Path: "/"},
		Route[string]{ID: "zed", Host: "zed.example.com", Path: "/", Method: "GET"}, // the method outranks "wild"
		Route[string]{ID: "v6", Host: "[::1]", Path: "/"},
		Route[string]{ID: "v4", Host: "127.0.0.1", Path: "/"},
		Route[string]{ID: "any", Path: "/only-any"},
	))
	expect("api.example.com", "GET", "/", nil, "exact") // ties with "wild" on every key but the ID
	expect("API.Example.COM", "GET", "/", nil, "exact")
	expect("api.example.com:8443", "GET", "/", nil, "exact")
	expect("API.EXAMPLE.COM:80", "GET", "/", nil, "exact")
	expect("www.example.com", "GET", "/", nil, "wild")
	expect("ZED.Example.COM", "GET", "/", nil, "zed")
	expect("a.b.example.com", "GET", "/", nil, "deep-wild") // both wildcards match; ID breaks the tie
	expect("x.a.example.com", "GET", "/", nil, "wild")
	expect("example.com", "GET", "/", nil, "")
	expect(".example.com", "GET", "/", nil, "")
	expect("badexample.com", "GET", "/", nil, "")
	expect("shop.example.org", "GET", "/", nil, "mixed-case")
	expect("[::1]:8080", "GET", "/", nil, "v6")
	expect("[::1]", "GET", "/", nil, "v6")
	expect("::1", "GET", "/", nil, "v6")
	expect("127.0.0.1:9000", "GET", "/", nil, "v4")
	expect("api.example.com.", "GET", "/", nil, "")
	expect("other.net", "GET", "/", nil, "")
	expect("other.net", "GET", "/only-any/x", nil, "any")
	expect("api.example.com", "GET", "/only-any", nil, "any") // longer path beats the host route
	expect("", "GET", "/", nil, "")
	expect(strings.Repeat("a", 250)+".example.com", "GET", "/", nil, "") // longer than any DNS name
}

func TestMatchPath(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "foo", Path: "/foo"},
		Route[string]{ID: "exact", Path: "/exact", Kind: Exact},
		Route[string]{ID: "re", Path: "/users/[0-9]+", Kind: Regex},
		Route[string]{ID: "re-anchored", Path: "^/a/.*$", Kind: Regex},
		Route[string]{ID: "re-alt", Path: "/x|/y", Kind: Regex},
	))
	expect("h", "GET", "/foo", nil, "foo")
	expect("h", "GET", "/foobar", nil, "foo") // not segment-aware
	expect("h", "GET", "/foo/bar", nil, "foo")
	expect("h", "GET", "/fo", nil, "")
	expect("h", "GET", "/FOO", nil, "") // paths are case-sensitive
	expect("h", "GET", "/exact", nil, "exact")
	expect("h", "GET", "/exact/", nil, "")
	expect("h", "GET", "/exac", nil, "")
	expect("h", "GET", "/users/42", nil, "re")
	expect("h", "GET", "/users/42/x", nil, "") // the whole path must match
	expect("h", "GET", "/v1/users/42", nil, "")
	expect("h", "GET", "/a/b", nil, "re-anchored")
	expect("h", "GET", "/x", nil, "re-alt") // alternation is grouped before anchoring
	expect("h", "GET", "/y", nil, "re-alt")
	expect("h", "GET", "/xy", nil, "")
	expect("h", "GET", "", nil, "")
}

func TestMatchConditions(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "get", Path: "/m", Method: "get"},
		Route[string]{ID: "canary", Path: "/h", Headers: []HeaderMatch{{Name: "x-env", Value: "canary"}}},
		Route[string]{ID: "debug", Path: "/h", Headers: []HeaderMatch{{Name: "X-DEBUG", Value: "ignored", Present: true}}},
		Route[string]{ID: "both", Path: "/b", Headers: []HeaderMatch{{Name: "A", Value: "1"}, {Name: "B", Present: true}}},
	))
	expect("h", "GET", "/m", nil, "get")
	expect("h", "POST", "/m", nil, "")
	expect("h", "get", "/m", nil, "") // request methods are not folded
	expect("h", "GET", "/h", hdr("X-Env", "canary"), "canary")
	expect("h", "GET", "/h", hdr("x-env", "prod"), "")
	expect("h", "GET", "/h", hdr("X-Env", "prod", "X-Env", "canary"), "") // only the first value counts
	expect("h", "GET", "/h", hdr("X-Debug", ""), "debug")                 // present, even if empty
	expect("h", "GET", "/h", hdr("X-Debug", "1", "X-Env", "canary"), "canary")
	expect("h", "GET", "/h", http.Header{"X-Debug": {}}, "") // a key with no values is absent
	expect("h", "GET", "/b", hdr("A", "1", "B", "x"), "both")
	expect("h", "GET", "/b", hdr("A", "1"), "")
	expect("h", "GET", "/b", hdr("A", "2", "B", "x"), "")
}

func TestMatchOrder(t *testing.T) {
	expect := expecter(t, withValues(
		// Precedence beats a longer prefix.
		Route[string]{ID: "prec", Path: "/p/", Precedence: 1},
		Route[string]{ID: "long", Path: "/p/longer/"},
		// A longer prefix beats a shorter one.
		Route[string]{ID: "api", Path: "/api/"},
		Route[string]{ID: "api-v1", Path: "/api/v1/"},
		// More constraints win at equal path length.
		Route[string]{ID: "c-method", Path: "/c/", Method: "GET"},
		Route[string]{ID: "c-host-header", Host: "h.example.com", Path: "/c/", Headers: []HeaderMatch{{Name: "X", Present: true}}},
		// Exact before Prefix before Regex at equal length and constraints.
		// (IDs sort against the kind order so the ID cannot decide.)
		Route[string]{ID: "k-b-prefix", Path: "/kkk"},
		Route[string]{ID: "k-c-exact", Path: "/kkk", Kind: Exact},
		Route[string]{ID: "k-a-regex", Path: "/k.k", Kind: Regex},
		// The ID breaks remaining ties, whatever the input order.
		Route[string]{ID: "tie-b", Path: "/t/"},
		Route[string]{ID: "tie-a", Path: "/t/"},
		// A host-less route with higher precedence beats a host route.
		Route[string]{ID: "host-route", Host: "h.example.com", Path: "/hp/longer"},
		Route[string]{ID: "any-prec", Path: "/hp/", Precedence: 2},
		// A regex ranks by its source length, so a long one beats a short prefix.
		Route[string]{ID: "r-long", Path: "/r/[a-z]+/[0-9]+", Kind: Regex},
		Route[string]{ID: "r-prefix", Path: "/r/"},
	))
	expect("h.example.com", "GET", "/p/longer/x", nil, "prec")
	expect("h.example.com", "GET", "/api/v1/x", nil, "api-v1")
	expect("h.example.com", "GET", "/api/v2/x", nil, "api")
	expect("h.example.com", "GET", "/c/", hdr("X", "1"), "c-host-header")
	expect("h.example.com", "GET", "/c/", nil, "c-method")
	expect("other.example.com", "GET", "/c/", hdr("X", "1"), "c-method")
	expect("h.example.com", "GET", "/kkk", nil, "k-c-exact")
	expect("h.example.com", "GET", "/kkkk", nil, "k-b-prefix")
	expect("h.example.com", "GET", "/kxk", nil, "k-a-regex")
	expect("h.example.com", "GET", "/t/x", nil, "tie-a")
	expect("h.example.com", "GET", "/hp/longer", nil, "any-prec")
	expect("h.example.com", "GET", "/r/abc/12", nil, "r-long")
	expect("h.example.com", "GET", "/r/abc/", nil, "r-prefix")
}

func TestNilAndEmptyTable(t *testing.T) {
	var nilTable *Table[string]
	empty := mustNew(t, nil)
	for name, tbl := range map[string]*Table[string]{"nil": nilTable, "empty": empty, "zero": {}} {
		if r, ok := tbl.Match("h", "GET", "/", nil); ok || r != nil {
			t.Errorf("%s: Match = %v, %v; want nil, false", name, r, ok)
		}
		if n := tbl.Len(); n != 0 {
			t.Errorf("%s: Len = %d", name, n)
		}
		if rs := tbl.Routes(); len(rs) != 0 {
			t.Errorf("%s: Routes = %v", name, rs)
		}
	}
}

func TestRoutesAreNormalisedCopiesInOrder(t *testing.T) {
	in := []Route[string]{
		{ID: "b", Host: "API.Example.com", Path: "/a", Method: "post", Headers: []HeaderMatch{{Name: "x-env", Value: "v"}}},
		{ID: "a", Host: "[::1]", Path: "/a/b"},
	}
	tbl := mustNew(t, in)
	in[0].Headers[0].Name = "changed" // the table must not share the caller's slice
	got := tbl.Routes()
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("Routes order = %v", got)
	}
	if got[0].Host != "::1" || got[1].Host != "api.example.com" || got[1].Method != "POST" || got[1].Headers[0].Name != "X-Env" {
		t.Errorf("Routes not normalised: %+v", got)
	}
	got[1].Headers[0].Name = "mutated"
	if r, ok := tbl.Match("api.example.com", "POST", "/a", hdr("X-Env", "v")); !ok || r.ID != "b" {
		t.Errorf("Match after mutating copies = %v, %v; want b", r, ok)
	}
	if tbl.Len() != 2 {
		t.Errorf("Len = %d, want 2", tbl.Len())
	}
}

func TestNewErrors(t *testing.T) {
	ok := Route[string]{ID: "ok", Path: "/"}
	for _, tc := range []struct {
		route Route[string]
		want  string
	}{
		{Route[string]{ID: "ok", Path: "/x"}, "duplicate ID (also at index 0)"},
		{Route[string]{ID: "", Path: "/"}, "empty ID"},
		{Route[string]{ID: "r", Path: "(", Kind: Regex}, "compiling regex path"},
		{Route[string]{ID: "r", Path: ")|(", Kind: Regex}, "compiling regex path"},
		{Route[string]{ID: "r", Path: "api", Kind: Prefix}, `prefix path "api" does not start with "/"`},
		{Route[string]{ID: "r", Path: "", Kind: Exact}, `exact path "" does not start with "/"`},
		{Route[string]{ID: "r", Path: "/", Kind: 9}, "unknown path kind 9"},
		{Route[string]{ID: "r", Path: "/", Host: "a.example.com:8080"}, "remove the port"},
		{Route[string]{ID: "r", Path: "/", Host: "[::1]:8080"}, "remove the port"},
		{Route[string]{ID: "r", Path: "/", Host: "::g"}, "not an IPv6 address"},
		{Route[string]{ID: "r", Path: "/", Host: "a..example.com"}, "empty label"},
		{Route[string]{ID: "r", Path: "/", Host: "*"}, `"*" is only allowed`},
		{Route[string]{ID: "r", Path: "/", Host: "a.*.com"}, `"*" is only allowed`},
		{Route[string]{ID: "r", Path: "/", Host: "a b.com"}, "invalid character"},
		{Route[string]{ID: "r", Path: "/", Host: "[example.com]"}, "brackets are only for IPv6"},
		{Route[string]{ID: "r", Path: "/", Host: "fe80::1%eth0"}, "zone"},
		{Route[string]{ID: "r", Path: "/", Host: strings.Repeat("a", 64) + ".com"}, "longer than 63"},
		{Route[string]{ID: "r", Path: "/", Method: "GE T"}, "not an HTTP token"},
		{Route[string]{ID: "r", Path: "/", Headers: []HeaderMatch{{Name: ""}}}, "header 0: name"},
	} {
		_, err := New([]Route[string]{ok, tc.route})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want it to contain %q", tc.route, err, tc.want)
			continue
		}
		var re *RouteError
		if !errors.As(err, &re) || re.ID != tc.route.ID || re.Index != 1 {
			t.Errorf("New(%+v) error %v: want a *RouteError for %q at index 1", tc.route, err, tc.route.ID)
		}
		if !strings.Contains(err.Error(), `route "`+tc.route.ID+`"`) {
			t.Errorf("error %q does not name the route", err)
		}
	}

	// Every bad route is reported, not just the first.
	_, err := New([]Route[string]{{ID: "a", Path: "x"}, ok, {ID: "b", Path: "y"}})
	if err == nil || !strings.Contains(err.Error(), `route "a"`) || !strings.Contains(err.Error(), `route "b"`) {
		t.Errorf("New with two bad routes: %v", err)
	}
}

func TestPathKindString(t *testing.T) {
	for k, want := range map[PathKind]string{Prefix: "prefix", Exact: "exact", Regex: "regex", 7: "PathKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("PathKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	tbl := mustNew(t, benchRoutes(200))
	h := hdr("X-Env", "canary")
	for _, tc := range []struct{ name, host, method, path string }{
		{"hit", "SVC3.Example.com:8443", "GET", "/api/v3/repos/gatehouse-dev/gatehouse/issues"},
		{"regex hit", "svc3.example.com", "GET", "/api/v3/repos/o/r/pulls/12/files"},
		{"wildcard hit", "a.b.tenant.example.net", "GET", "/api/v3/users/x"},
		{"miss", "nowhere.example.org", "GET", "/no/such/path"},
	} {
		allocs := testing.AllocsPerRun(200, func() { tbl.Match(tc.host, tc.method, tc.path, h) })
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Match, want 0", tc.name, allocs)
		}
	}
}

func TestMatchConcurrent(t *testing.T) {
	routes := benchRoutes(300)
	tbl := mustNew(t, routes)
	ref := newLinear(routes)
	reqs := benchRequests(300)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				q := reqs[i%len(reqs)]
				got, _ := tbl.Match(q.host, q.method, q.path, q.h)
				want, _ := ref.match(q.host, q.method, q.path, q.h)
				if idOf(got) != idOf(want) {
					t.Errorf("%s: Match = %s, reference = %s", q.name, idOf(got), idOf(want))
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
