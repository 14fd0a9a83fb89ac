package router

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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
func expecter(t *testing.T, routes []Route[string]) func(r Request, want string) {
	return expecterOpts(t, routes, Options{})
}

// expecterOpts is expecter for a table built with options.
func expecterOpts(t *testing.T, routes []Route[string], opts Options) func(r Request, want string) {
	tbl, err := NewTable(routes, opts)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	ref := newLinearOpts(routes, opts)
	return func(r Request, want string) {
		t.Helper()
		got := ""
		if m, ok := tbl.Match(&r); ok {
			got = m.ID
			if m.Value != "v:"+m.ID {
				t.Errorf("Match(%+v) returned route %q with value %q", r, m.ID, m.Value)
			}
		}
		if got != want {
			t.Errorf("Match(%+v) = %q, want %q", r, got, want)
		}
		refGot := ""
		if m, ok := ref.match(&r); ok {
			refGot = m.ID
		}
		if refGot != want {
			t.Errorf("reference(%+v) = %q, want %q", r, refGot, want)
		}
	}
}

// rq is the request of the terse table lines.
func rq(host, method, path string, h http.Header) Request {
	return Request{Host: host, Method: method, Path: path, Header: h}
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
	expect(rq("api.example.com", "GET", "/", nil), "exact") // ":authority" + host: 10 + 15 beats 10 + 13 for "wild"
	expect(rq("API.Example.COM", "GET", "/", nil), "exact")
	expect(rq("api.example.com:8443", "GET", "/", nil), "exact")
	expect(rq("API.EXAMPLE.COM:80", "GET", "/", nil), "exact")
	expect(rq("www.example.com", "GET", "/", nil), "wild")
	expect(rq("ZED.Example.COM", "GET", "/", nil), "zed")
	expect(rq("a.b.example.com", "GET", "/", nil), "deep-wild") // both wildcards match; the longer host wins
	expect(rq("x.a.example.com", "GET", "/", nil), "wild")
	expect(rq("example.com", "GET", "/", nil), "")
	expect(rq(".example.com", "GET", "/", nil), "")
	expect(rq("badexample.com", "GET", "/", nil), "")
	expect(rq("shop.example.org", "GET", "/", nil), "mixed-case")
	expect(rq("[::1]:8080", "GET", "/", nil), "v6")
	expect(rq("[::1]", "GET", "/", nil), "v6")
	expect(rq("::1", "GET", "/", nil), "v6")
	expect(rq("127.0.0.1:9000", "GET", "/", nil), "v4")
	expect(rq("api.example.com.", "GET", "/", nil), "exact") // the fully qualified spelling of the same host
	expect(rq("API.example.com.:8443", "GET", "/", nil), "exact")
	expect(rq("www.example.com.", "GET", "/", nil), "wild")
	expect(rq("api.example.com..", "GET", "/", nil), "") // only one dot goes
	expect(rq("[::1].", "GET", "/", nil), "v6")
	expect(rq(".", "GET", "/only-any", nil), "any")
	expect(rq("other.net", "GET", "/", nil), "")
	expect(rq("other.net", "GET", "/only-any/x", nil), "any")
	expect(rq("api.example.com", "GET", "/only-any", nil), "any") // longer path beats the host route
	expect(rq("", "GET", "/", nil), "")
	expect(rq(strings.Repeat("a", 250)+".example.com", "GET", "/", nil), "") // longer than any DNS name
}

func TestMatchPath(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "foo", Path: "/foo"},
		Route[string]{ID: "exact", Path: "/exact", Kind: Exact},
		Route[string]{ID: "re", Path: "/users/[0-9]+", Kind: Regex},
		Route[string]{ID: "re-anchored", Path: "^/a/.*$", Kind: Regex},
		Route[string]{ID: "re-alt", Path: "/x|/y", Kind: Regex},
	))
	expect(rq("h", "GET", "/foo", nil), "foo")
	expect(rq("h", "GET", "/foobar", nil), "foo") // not segment-aware
	expect(rq("h", "GET", "/foo/bar", nil), "foo")
	expect(rq("h", "GET", "/fo", nil), "")
	expect(rq("h", "GET", "/FOO", nil), "") // paths are case-sensitive
	expect(rq("h", "GET", "/exact", nil), "exact")
	expect(rq("h", "GET", "/exact/", nil), "")
	expect(rq("h", "GET", "/exac", nil), "")
	expect(rq("h", "GET", "/users/42", nil), "re")
	expect(rq("h", "GET", "/users/42/x", nil), "") // the whole path must match
	expect(rq("h", "GET", "/v1/users/42", nil), "")
	expect(rq("h", "GET", "/a/b", nil), "re-anchored")
	expect(rq("h", "GET", "/x", nil), "re-alt") // alternation is grouped before anchoring
	expect(rq("h", "GET", "/y", nil), "re-alt")
	expect(rq("h", "GET", "/xy", nil), "")
	expect(rq("h", "GET", "", nil), "")
}

// TestMatchChildIndex covers both ways a node finds the child for a byte:
// the scan of at most eight first bytes, whose zero-byte trick must not
// take the padding for a child starting with 0x00, and the bitmap of a node
// with more, across all four of its words. Case-insensitive children are
// indexed by their lower case.
func TestMatchChildIndex(t *testing.T) {
	for _, fan := range []int{1, 7, 8, 9, 64, 256} {
		routes := []Route[string]{{ID: "pa", Path: "/p/a"}, {ID: "pb", Path: "/p/b"}}
		for i := range fan {
			c := string([]byte{byte(i * 255 / max(fan-1, 1))}) // spread over 0x00-0xff
			routes = append(routes,
				Route[string]{ID: fmt.Sprintf("%x", c), Path: "/f/" + c + "x"},
				Route[string]{ID: fmt.Sprintf("i%x", c), Path: "/i/" + c, CaseInsensitive: true, Kind: Exact})
		}
		tbl := mustNew(t, routes)
		if wide := len(tbl.any.exact.wide) > 0; wide != (fan > 8) {
			t.Errorf("%d children: bitmap index = %v", fan, wide)
		}
		ref := newLinear(routes)
		hits := 0
		for b := range 256 {
			c := string([]byte{byte(b)})
			for _, path := range []string{"/f/" + c + "x", "/f/" + c + "y", "/i/" + c, "/I/" + c, "/p/" + c} {
				r := Request{Host: "h", Method: "GET", Path: path}
				got, gotOK := tbl.Match(&r)
				want, wantOK := ref.match(&r)
				if gotOK != wantOK || gotOK && got.ID != want.ID {
					t.Fatalf("%d children: Match(%q) = %s, reference = %s", fan, path, idOf(got), idOf(want))
				}
				if gotOK {
					hits++
				}
			}
		}
		if hits < 2*fan+2 {
			t.Errorf("%d children: only %d hits", fan, hits)
		}
	}
}

// TestMatchUnmergedHosts checks the tables whose exact-host buckets New
// leaves incomplete: one with more host regexes × exact hosts than it
// tests, and one with more host-less routes than it copies into a bucket.
func TestMatchUnmergedHosts(t *testing.T) {
	var manyRegexes, manyAny []Route[string]
	for i := range 130 {
		manyRegexes = append(manyRegexes,
			Route[string]{ID: fmt.Sprintf("h%03d", i), Host: fmt.Sprintf("h%d.example.com", i), Path: "/a"},
			Route[string]{ID: fmt.Sprintf("re%03d", i), Host: fmt.Sprintf(`h%d\.example\.com`, i), HostRegex: true, Path: "/a/b"})
		manyAny = append(manyAny, Route[string]{ID: fmt.Sprintf("any%03d", i), Path: fmt.Sprintf("/a/%d", i)})
	}
	manyAny = append(manyAny, Route[string]{ID: "host", Host: "h1.example.com", Path: "/a/"})
	for name, routes := range map[string][]Route[string]{"host regexes": manyRegexes, "host-less routes": manyAny} {
		tbl := mustNew(t, routes)
		tbl.exact.each(func(key string, b *bucket) {
			if b.complete {
				t.Errorf("%s: bucket %q is complete", name, key)
			}
		})
		ref := newLinear(routes)
		for _, host := range []string{"h1.example.com", "H7.example.com:80", "x.example.com"} {
			for _, path := range []string{"/a", "/a/b", "/a/7", "/a/1", "/a/x"} {
				r := Request{Host: host, Method: "GET", Path: path}
				got, _ := tbl.Match(&r)
				want, _ := ref.match(&r)
				if idOf(got) != idOf(want) {
					t.Errorf("%s: Match(%s%s) = %s, reference = %s", name, host, path, idOf(got), idOf(want))
				}
			}
		}
	}
}

func TestMatchConditions(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "get", Path: "/m", Method: "get"},
		Route[string]{ID: "canary", Path: "/h", Headers: []HeaderMatch{{Name: "x-env", Value: "canary"}}},
		Route[string]{ID: "debug", Path: "/h", Headers: []HeaderMatch{{Name: "X-DEBUG", Value: "ignored", Present: true}}},
		Route[string]{ID: "both", Path: "/b", Headers: []HeaderMatch{{Name: "A", Value: "1"}, {Name: "B", Present: true}}},
	))
	expect(rq("h", "GET", "/m", nil), "get")
	expect(rq("h", "POST", "/m", nil), "")
	expect(rq("h", "get", "/m", nil), "") // request methods are not folded
	expect(rq("h", "GET", "/h", hdr("X-Env", "canary")), "canary")
	expect(rq("h", "GET", "/h", hdr("x-env", "prod")), "")
	expect(rq("h", "GET", "/h", hdr("X-Env", "prod", "X-Env", "canary")), "") // only the first value counts
	expect(rq("h", "GET", "/h", hdr("X-Debug", "")), "debug")                 // present, even if empty
	expect(rq("h", "GET", "/h", hdr("X-Debug", "1", "X-Env", "canary")), "canary")
	expect(rq("h", "GET", "/h", http.Header{"X-Debug": {}}), "") // a key with no values is absent
	expect(rq("h", "GET", "/b", hdr("A", "1", "B", "x")), "both")
	expect(rq("h", "GET", "/b", hdr("A", "1")), "")
	expect(rq("h", "GET", "/b", hdr("A", "2", "B", "x")), "")
}

func TestMatchOrder(t *testing.T) {
	expect := expecter(t, withValues(
		// Precedence beats a longer prefix.
		Route[string]{ID: "prec", Path: "/p/", Precedence: 1},
		Route[string]{ID: "long", Path: "/p/longer/"},
		// A longer prefix beats a shorter one.
		Route[string]{ID: "api", Path: "/api/"},
		Route[string]{ID: "api-v1", Path: "/api/v1/"},
		// A larger header length wins at equal path length: ":method" + GET
		// is 10, ":authority" + host + "X" + "*" is 10 + 13 + 2.
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
	expect(rq("h.example.com", "GET", "/p/longer/x", nil), "prec")
	expect(rq("h.example.com", "GET", "/api/v1/x", nil), "api-v1")
	expect(rq("h.example.com", "GET", "/api/v2/x", nil), "api")
	expect(rq("h.example.com", "GET", "/c/", hdr("X", "1")), "c-host-header")
	expect(rq("h.example.com", "GET", "/c/", nil), "c-method")
	expect(rq("other.example.com", "GET", "/c/", hdr("X", "1")), "c-method")
	expect(rq("h.example.com", "GET", "/kkk", nil), "k-c-exact")
	expect(rq("h.example.com", "GET", "/kkkk", nil), "k-b-prefix")
	expect(rq("h.example.com", "GET", "/kxk", nil), "k-a-regex")
	expect(rq("h.example.com", "GET", "/t/x", nil), "tie-a")
	expect(rq("h.example.com", "GET", "/hp/longer", nil), "any-prec")
	expect(rq("h.example.com", "GET", "/r/abc/12", nil), "r-long")
	expect(rq("h.example.com", "GET", "/r/abc/", nil), "r-prefix")
}

// TestMatchWeight covers the header and query lengths of the evaluation
// order. Each case is built so that the ID, and counting conditions as the
// router once did, would pick the other route.
func TestMatchWeight(t *testing.T) {
	h := func(name, value string) []HeaderMatch { return []HeaderMatch{{Name: name, Value: value}} }
	expect := expecter(t, withValues(
		// One long header (19 + 10 = 29) beats two short ones (2 + 2 = 4).
		Route[string]{ID: "a-two-short", Path: "/long", Headers: []HeaderMatch{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}},
		Route[string]{ID: "b-one-long", Path: "/long", Headers: h("x-tenant-identifier", "enterprise")},
		// A header (1 + 1 = 2) beats a longer query-only condition (6 + 6 + 1 = 13).
		Route[string]{ID: "a-query", Path: "/hq", Query: []QueryMatch{{Name: "tenant", Value: "[a-z]+", Regex: true}}},
		Route[string]{ID: "b-header", Path: "/hq", Headers: h("x", "1")},
		// A host beats no host at equal prefix, here even one with a header:
		// ":authority" + "h.io" is 14, "x-env" + "canary" 11.
		Route[string]{ID: "a-header", Path: "/host", Headers: h("x-env", "canary")},
		Route[string]{ID: "b-host", Host: "h.io", Path: "/host"},
		Route[string]{ID: "c-any", Path: "/host"},
		// A method counts ":method" + method: GET 10 < x-env: canary 11 < DELETE 13.
		Route[string]{ID: "a-get", Path: "/m", Method: "GET"},
		Route[string]{ID: "b-canary", Path: "/m", Headers: h("x-env", "canary")},
		Route[string]{ID: "c-delete", Path: "/m", Method: "delete"},
		// A regex adds 1: the same text wins as a regex.
		Route[string]{ID: "a-exact", Path: "/re", Headers: h("x-v", "a.c")},
		Route[string]{ID: "b-regex", Path: "/re", Headers: []HeaderMatch{{Name: "x-v", Value: "a.c", Regex: true}}},
		Route[string]{ID: "a-exact-host", Host: "h.io", Path: "/rh"},
		Route[string]{ID: "b-regex-host", Host: "h.io", HostRegex: true, Path: "/rh"},
		Route[string]{ID: "a-exact-method", Path: "/rm", Method: "OPTIONS"},
		Route[string]{ID: "b-regex-method", Path: "/rm", Method: "OPTIONS", MethodRegex: true},
		// Presence counts "*": x-debug present (7 + 1) ties x-debug: "1" and
		// loses to x-debug: "on" (7 + 2); an empty value counts "*" too.
		Route[string]{ID: "a-present", Path: "/p", Headers: []HeaderMatch{{Name: "x-debug", Present: true}}},
		Route[string]{ID: "b-one", Path: "/p", Headers: h("x-debug", "1")},
		Route[string]{ID: "c-on", Path: "/p", Headers: h("x-debug", "on")},
		Route[string]{ID: "0-empty", Path: "/p", Headers: h("x-debug", "")},
		// Query length decides at equal header length: 4 + 1 < 1 + 5.
		Route[string]{ID: "a-page", Path: "/q", Method: "GET", Query: []QueryMatch{{Name: "page", Present: true}}},
		Route[string]{ID: "b-q", Path: "/q", Method: "GET", Query: []QueryMatch{{Name: "q", Value: "radix"}}},
	))
	all := hdr("A", "1", "B", "2", "X-Tenant-Identifier", "enterprise")
	expect(rq("h", "GET", "/long", all), "b-one-long")
	expect(rq("h", "GET", "/long", hdr("A", "1", "B", "2")), "a-two-short")
	expect(Request{Method: "GET", Path: "/hq", RawQuery: "tenant=acme", Header: hdr("X", "1")}, "b-header")
	expect(Request{Method: "GET", Path: "/hq", RawQuery: "tenant=acme"}, "a-query")
	expect(rq("h.io", "GET", "/host", hdr("X-Env", "canary")), "b-host")
	expect(rq("x.io", "GET", "/host", hdr("X-Env", "canary")), "a-header")
	expect(rq("x.io", "GET", "/host", nil), "c-any")
	expect(rq("h", "GET", "/m", hdr("X-Env", "canary")), "b-canary")
	expect(rq("h", "GET", "/m", nil), "a-get")
	expect(rq("h", "DELETE", "/m", hdr("X-Env", "canary")), "c-delete")
	expect(rq("h", "GET", "/re", hdr("X-V", "a.c")), "b-regex")
	expect(rq("h.io", "GET", "/rh", nil), "b-regex-host")
	expect(rq("h", "OPTIONS", "/rm", nil), "b-regex-method")
	expect(rq("h", "GET", "/p", hdr("X-Debug", "on")), "c-on")
	expect(rq("h", "GET", "/p", hdr("X-Debug", "1")), "a-present")
	expect(rq("h", "GET", "/p", hdr("X-Debug", "")), "0-empty")
	expect(Request{Method: "GET", Path: "/q", RawQuery: "page=2&q=radix"}, "b-q")
	expect(Request{Method: "GET", Path: "/q", RawQuery: "page=2"}, "a-page")
}

// TestRouteWeight checks the arithmetic of the header and query lengths in
// the tree's keys and in the reference's, which computes them separately.
func TestRouteWeight(t *testing.T) {
	for _, tc := range []struct {
		name          string
		route         Route[string]
		header, query int
	}{
		{"none", Route[string]{}, 0, 0},
		{"long header", Route[string]{Headers: []HeaderMatch{{Name: "x-tenant-identifier", Value: "enterprise"}}}, 29, 0},
		{"two short headers", Route[string]{Headers: []HeaderMatch{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}}, 4, 0},
		{"header regex", Route[string]{Headers: []HeaderMatch{{Name: "x-user", Value: "[0-9]+", Regex: true}}}, 13, 0},
		{"header present", Route[string]{Headers: []HeaderMatch{{Name: "x-debug", Present: true, Value: "ignored", Regex: true}}}, 8, 0},
		{"header empty value", Route[string]{Headers: []HeaderMatch{{Name: "x-debug"}}}, 8, 0},
		{"host", Route[string]{Host: "API.Example.com"}, 25, 0},
		{"wildcard host", Route[string]{Host: "*.example.com"}, 23, 0},
		{"ipv6 host without brackets", Route[string]{Host: "[::1]"}, 13, 0},
		{"host regex", Route[string]{Host: `[a-z]+\.io`, HostRegex: true}, 21, 0},
		{"method", Route[string]{Method: "get"}, 10, 0},
		{"method regex", Route[string]{Method: "GET|HEAD", MethodRegex: true}, 16, 0},
		{"query", Route[string]{Query: []QueryMatch{{Name: "a b", Value: "c d"}}}, 0, 6},
		{"query regex", Route[string]{Query: []QueryMatch{{Name: "tenant", Value: "[a-z]+", Regex: true}}}, 0, 13},
		{"query present and empty", Route[string]{Query: []QueryMatch{{Name: "page", Present: true}, {Name: "q"}}}, 0, 7},
		{"everything", Route[string]{Host: "h.io", Method: "GET", Headers: []HeaderMatch{{Name: "x", Value: "1"}}, Query: []QueryMatch{{Name: "q", Value: "1"}}}, 26, 2},
	} {
		r := tc.route
		r.ID, r.Path = "r", "/"
		tbl := mustNew(t, []Route[string]{r})
		k := keyOf(&tbl.routes[0], 0)
		lr := newLinear([]Route[string]{r}).routes[0]
		if k.headerLen != tc.header || k.queryLen != tc.query || lr.headerLen != tc.header || lr.queryLen != tc.query {
			t.Errorf("%s: header, query length = %d, %d (reference %d, %d), want %d, %d",
				tc.name, k.headerLen, k.queryLen, lr.headerLen, lr.queryLen, tc.header, tc.query)
		}
	}
}

func TestMatchHostRegex(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "regions", Host: `[a-z]+\.regions\.example\.com`, HostRegex: true, Path: "/"},
		Route[string]{ID: "upper", Host: `API\.example\.com`, HostRegex: true, Path: "/upper"}, // hosts are lower-cased first
		Route[string]{ID: "folded", Host: `(?i)API\.example\.com`, HostRegex: true, Path: "/folded"},
		Route[string]{ID: "v6", Host: `::[0-9]`, HostRegex: true, Path: "/v6"},
		// Exact and regex hosts rank by the same keys: here the longer path.
		Route[string]{ID: "exact-host", Host: "eu.regions.example.com", Path: "/api/"},
		Route[string]{ID: "regex-long", Host: `eu\..*`, HostRegex: true, Path: "/api/v1/"},
		// At equal path a method outranks a bare regex host, whatever the IDs.
		Route[string]{ID: "a-any-re", Host: `.*`, HostRegex: true, Path: "/m/"},
		Route[string]{ID: "b-method", Host: `.*`, HostRegex: true, Path: "/m/", Method: "GET"},
		Route[string]{ID: "c-any", Path: "/m/"},
		Route[string]{ID: "fallback", Path: "/", Precedence: -1},
	))
	expect(rq("eu.regions.example.com", "GET", "/x", nil), "regions")
	expect(rq("EU.Regions.Example.COM:8443", "GET", "/x", nil), "regions")
	expect(rq("eu.regions.example.com.evil.org", "GET", "/x", nil), "fallback") // the whole host must match
	expect(rq("regions.example.com", "GET", "/x", nil), "fallback")
	expect(rq("api.example.com", "GET", "/upper", nil), "fallback")
	expect(rq("API.example.com", "GET", "/upper", nil), "fallback")
	expect(rq("API.example.com", "GET", "/folded", nil), "folded")
	expect(rq("[::1]:8080", "GET", "/v6", nil), "v6")
	expect(rq("eu.regions.example.com", "GET", "/api/v1/x", nil), "regex-long")
	expect(rq("eu.regions.example.com", "GET", "/api/v2/x", nil), "exact-host")
	expect(rq("us.regions.example.com", "GET", "/api/v1/x", nil), "regions")
	expect(rq("h", "GET", "/m/", nil), "b-method")
	expect(rq("h", "POST", "/m/", nil), "a-any-re")
	expect(rq("", "POST", "/m/", nil), "a-any-re") // ".*" matches the empty host
	expect(rq(strings.Repeat("a", 254), "POST", "/m/", nil), "c-any")
}

func TestMatchMethodRegex(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "read", Path: "/r", Method: "GET|HEAD", MethodRegex: true},
		Route[string]{ID: "lower", Path: "/l", Method: "get", MethodRegex: true}, // regexes are not upper-cased
		Route[string]{ID: "any", Path: "/"},
	))
	expect(rq("h", "GET", "/r", nil), "read")
	expect(rq("h", "HEAD", "/r", nil), "read")
	expect(rq("h", "GETX", "/r", nil), "any") // the whole method must match
	expect(rq("h", "POST", "/r", nil), "any")
	expect(rq("h", "GET", "/l", nil), "any")
	expect(rq("h", "get", "/l", nil), "lower")
}

func TestMatchHeaderRegex(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "canary", Path: "/", Headers: []HeaderMatch{{Name: "x-env", Value: "canary-[0-9]+", Regex: true}}},
		Route[string]{ID: "present", Path: "/p", Headers: []HeaderMatch{{Name: "x-env", Value: "(", Regex: true, Present: true}}},
		Route[string]{ID: "any", Path: "/", Precedence: -1},
	))
	expect(rq("h", "GET", "/", hdr("X-Env", "canary-12")), "canary")
	expect(rq("h", "GET", "/", hdr("X-Env", "canary-12x")), "any")
	expect(rq("h", "GET", "/", hdr("X-Env", "prod", "X-Env", "canary-1")), "any") // the first value counts
	expect(rq("h", "GET", "/", nil), "any")
	expect(rq("h", "GET", "/p", hdr("X-Env", "")), "present") // Present wins over a (bad) regex
}

func TestMatchQuery(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "page", Path: "/", Query: []QueryMatch{{Name: "page", Value: "2"}}},
		Route[string]{ID: "debug", Path: "/", Query: []QueryMatch{{Name: "debug", Present: true, Value: "ignored"}}},
		Route[string]{ID: "spaced", Path: "/", Query: []QueryMatch{{Name: "a b", Value: "c d"}}},
		Route[string]{ID: "id-re", Path: "/", Query: []QueryMatch{{Name: "id", Value: "[0-9]+ [a-z]", Regex: true}}},
		Route[string]{ID: "empty", Path: "/", Query: []QueryMatch{{Name: "e", Value: ""}}},
		Route[string]{ID: "both", Path: "/", Query: []QueryMatch{{Name: "x", Value: "1"}, {Name: "y", Present: true}}},
		Route[string]{ID: "any", Path: "/", Precedence: -1},
	))
	q := func(raw string) Request { return Request{Host: "h", Method: "GET", Path: "/", RawQuery: raw} }
	expect(q("page=2"), "page")
	expect(q("x=1&page=2&z"), "page")
	expect(q("page=3&page=2"), "any") // the first value counts
	expect(q("page=2&page=3"), "page")
	expect(q("Page=2"), "any") // names are case-sensitive
	expect(q("pa%67e=%32"), "page")
	expect(q("page=%zz&page=2"), "page") // a malformed pair is dropped, so the next one is first
	expect(q("page=2;x=1"), "any")       // as are pairs with ';'
	expect(q("page=2%"), "any")
	expect(q("debug"), "debug")
	expect(q("debug="), "debug")
	expect(q("&&debug&"), "debug")
	expect(q("debugx"), "any")
	expect(q("a+b=c%20d"), "spaced")
	expect(q("a%20b=c+d"), "spaced")
	expect(q("id=42+x"), "id-re")
	expect(q("id=42%20x"), "id-re")
	expect(q("id=42x"), "any")
	expect(q("e="), "empty")
	expect(q("e"), "empty")
	expect(q("e=1"), "any")
	expect(q("x=1&y"), "both")
	expect(q("x=1"), "any")
	expect(q(""), "any")
	expect(q(strings.Repeat("&", maxQueryParams)+"debug"), "any") // url.ParseQuery's limit
	expect(q(strings.Repeat("&", maxQueryParams-1)+"debug"), "debug")
}

func TestMatchCaseInsensitive(t *testing.T) {
	expect := expecter(t, withValues(
		Route[string]{ID: "docs", Path: "/Docs/", CaseInsensitive: true},
		Route[string]{ID: "readme", Path: "/docs/README", Kind: Exact, CaseInsensitive: true},
		Route[string]{ID: "keys", Path: "/keys/", CaseInsensitive: true},
		Route[string]{ID: "user", Path: "/users/[0-9]+", Kind: Regex, CaseInsensitive: true},
		Route[string]{ID: "sensitive", Path: "/docs/api/"}, // longer path: outranks "docs"
		Route[string]{ID: "any", Path: "/", Precedence: -1},
	))
	expect(rq("h", "GET", "/docs/x", nil), "docs")
	expect(rq("h", "GET", "/DOCS/x", nil), "docs")
	expect(rq("h", "GET", "/dOcS/", nil), "docs")
	expect(rq("h", "GET", "/Docs", nil), "any")
	expect(rq("h", "GET", "/DOCS/readme", nil), "readme")
	expect(rq("h", "GET", "/DOCS/readme/", nil), "docs")
	expect(rq("h", "GET", "/docs/api/x", nil), "sensitive")
	expect(rq("h", "GET", "/DOCS/API/x", nil), "docs")
	expect(rq("h", "GET", "/KEYS/1", nil), "keys")
	expect(rq("h", "GET", "/\u212aeys/1", nil), "any") // ASCII case only: the Kelvin sign is not "k"
	expect(rq("h", "GET", "/USERS/42", nil), "user")
	expect(rq("h", "GET", "/u\u017fers/42", nil), "user") // but a regex folds as RE2 does: long s
	expect(rq("h", "GET", "/USERS/42x", nil), "any")
}

func TestMatchGroups(t *testing.T) {
	routes := withValues(
		Route[string]{ID: "c-blue", Group: "web", Weight: 50, Path: "/web/", Method: "get"},
		Route[string]{ID: "a-green", Group: "web", Weight: 30, Path: "/web/", Method: "GET"},
		Route[string]{ID: "b-off", Group: "web", Weight: 0, Path: "/web/", Method: "GET"},
		Route[string]{ID: "d-last", Group: "web", Weight: 20, Path: "/web/", Method: "GET"},
		// Same criteria and no common group: the ID decides, and "a-alone"
		// beats the group because the group ranks by its lowest ID, "a-green".
		Route[string]{ID: "a-alone", Path: "/web/", Method: "GET"},
		Route[string]{ID: "z-alone", Path: "/web/", Method: "GET", Group: "solo", Weight: 100},
		Route[string]{ID: "other", Path: "/web/", Method: "GET", Group: "second", Weight: 100, Headers: []HeaderMatch{{Name: "X", Present: true}}},
	)
	tbl := mustNew(t, routes)
	ref := newLinear(routes)
	for _, tc := range []struct {
		req  Request
		roll uint32
		want string
	}{
		{rq("h", "GET", "/web/", nil), 0, "a-alone"},
		{rq("h", "GET", "/web/", hdr("X", "1")), 0, "other"},
		{rq("h", "POST", "/web/", nil), 0, "<none>"},
	} {
		got, _ := tbl.MatchRoll(&tc.req, tc.roll)
		want, _ := ref.matchRoll(&tc.req, tc.roll)
		if idOf(got) != tc.want || idOf(want) != tc.want {
			t.Errorf("MatchRoll(%+v, %d) = %s, reference %s, want %s", tc.req, tc.roll, idOf(got), idOf(want), tc.want)
		}
	}

	// The group ranks by its lowest ID, "a", before "b", after "0".
	tie := withValues(
		Route[string]{ID: "a", Group: "g", Weight: 50, Path: "/"},
		Route[string]{ID: "c", Group: "g", Weight: 50, Path: "/"},
		Route[string]{ID: "b", Path: "/"},
	)
	if got, _ := mustNew(t, tie).MatchRoll(&Request{Path: "/"}, 99); got.ID != "c" {
		t.Errorf("group vs route between its IDs: MatchRoll = %s, want c", got.ID)
	}
	tie = append(tie, Route[string]{ID: "0", Path: "/"})
	if got, _ := mustNew(t, tie).MatchRoll(&Request{Path: "/"}, 99); got.ID != "0" {
		t.Errorf("group vs route before its IDs: MatchRoll = %s, want 0", got.ID)
	}

	grouped := mustNew(t, routes[:4])
	req := rq("h", "GET", "/web/x", nil)
	for _, tc := range []struct {
		rolls []uint32
		want  string
	}{
		{[]uint32{0, 29, 100, 129}, "a-green"},
		{[]uint32{30, 79, 130}, "c-blue"},
		{[]uint32{80, 99, 199, 1<<32 - 1 - 96}, "d-last"}, // rolls wrap modulo 100
	} {
		for _, roll := range tc.rolls {
			if got, ok := grouped.MatchRoll(&req, roll); !ok || got.ID != tc.want {
				t.Errorf("MatchRoll(%d) = %s, want %s", roll, idOf(got), tc.want)
			}
		}
	}
	members := grouped.Group(&Route[string]{ID: "c-blue"})
	var ids []string
	for _, m := range members {
		ids = append(ids, m.ID+":"+strconv.Itoa(m.Weight))
	}
	if got := strings.Join(ids, " "); got != "a-green:30 b-off:0 c-blue:50 d-last:20" {
		t.Errorf("Group = %s", got)
	}
	if r, _ := tbl.Match(&Request{Method: "GET", Path: "/web/"}); len(tbl.Group(r)) != 1 || tbl.Group(r)[0] != r {
		t.Errorf("Group of an ungrouped route = %v, want just it", tbl.Group(r))
	}
	if g := tbl.Group(&Route[string]{ID: "nope"}); g != nil {
		t.Errorf("Group of an unknown route = %v", g)
	}
	if g := tbl.Group(nil); g != nil {
		t.Errorf("Group(nil) = %v", g)
	}
	var nilTable *Table[string]
	if g := nilTable.Group(members[0]); g != nil {
		t.Errorf("nil table: Group = %v", g)
	}
	got := grouped.Routes()
	if len(got) != 4 || got[0].ID != "a-green" || got[3].ID != "d-last" {
		t.Errorf("Routes = %v, want the members adjacent in ID order", got)
	}
}

// TestMatchWeightDistribution checks the random pick of Match, not just
// MatchRoll: 10,000 picks of a 90/10 group land within 3 points of the
// weights (the tolerance is ten standard deviations).
func TestMatchWeightDistribution(t *testing.T) {
	tbl := mustNew(t, []Route[string]{
		{ID: "main", Group: "g", Weight: 90, Path: "/"},
		{ID: "canary", Group: "g", Weight: 10, Path: "/"},
	})
	const picks = 10000
	canary := 0
	req := rq("h", "GET", "/", nil)
	for range picks {
		r, ok := tbl.Match(&req)
		if !ok {
			t.Fatal("no match")
		}
		if r.ID == "canary" {
			canary++
		}
	}
	if share := float64(canary) / picks; share < 0.07 || share > 0.13 {
		t.Errorf("canary got %.3f of the traffic, want 0.10 ± 0.03", share)
	}
}

func TestNilAndEmptyTable(t *testing.T) {
	var nilTable *Table[string]
	empty := mustNew(t, nil)
	req := rq("h", "GET", "/", nil)
	for name, tbl := range map[string]*Table[string]{"nil": nilTable, "empty": empty, "zero": {}} {
		if r, ok := tbl.Match(&req); ok || r != nil {
			t.Errorf("%s: Match = %v, %v; want nil, false", name, r, ok)
		}
		if r, ok := tbl.MatchRoll(&req, 3); ok || r != nil {
			t.Errorf("%s: MatchRoll = %v, %v; want nil, false", name, r, ok)
		}
		if n := tbl.Len(); n != 0 {
			t.Errorf("%s: Len = %d", name, n)
		}
		if rs := tbl.Routes(); len(rs) != 0 {
			t.Errorf("%s: Routes = %v", name, rs)
		}
		for r := range tbl.All() {
			t.Errorf("%s: All yields %v", name, r)
		}
	}
}

func TestRoutesAreNormalisedCopiesInOrder(t *testing.T) {
	in := []Route[string]{
		{ID: "b", Host: "API.Example.com", Path: "/a", Method: "post", Headers: []HeaderMatch{{Name: "x-env", Value: "v"}}},
		{ID: "a", Host: "[::1]", Path: "/a/b", Query: []QueryMatch{{Name: "q", Value: "x", Regex: true, Present: true}}},
		{ID: "c", Host: "API.*", HostRegex: true, Path: "/", Method: "get|post", MethodRegex: true, Headers: []HeaderMatch{}, Query: []QueryMatch{}},
	}
	tbl := mustNew(t, in)
	in[0].Headers[0].Name = "changed" // the table must not share the caller's slice
	in[1].Query[0].Name = "changed"
	got := tbl.Routes()
	if len(got) != 3 || got[0].ID != "a" || got[1].ID != "b" || got[2].ID != "c" {
		t.Fatalf("Routes order = %v", got)
	}
	if got[0].Host != "::1" || got[1].Host != "api.example.com" || got[1].Method != "POST" || got[1].Headers[0].Name != "X-Env" {
		t.Errorf("Routes not normalised: %+v", got)
	}
	if q := got[0].Query[0]; q != (QueryMatch{Name: "q", Present: true}) {
		t.Errorf("Present query condition not normalised: %+v", q)
	}
	if got[2].Host != "API.*" || got[2].Method != "get|post" || got[2].Headers != nil || got[2].Query != nil {
		t.Errorf("regex route not kept verbatim: %+v", got[2])
	}
	got[1].Headers[0].Name = "mutated"
	got[0].Query[0].Name = "mutated"
	if r, ok := tbl.Match(&Request{Host: "api.example.com", Method: "POST", Path: "/a", Header: hdr("X-Env", "v")}); !ok || r.ID != "b" {
		t.Errorf("Match after mutating copies = %v, %v; want b", r, ok)
	}
	if r, ok := tbl.Match(&Request{Host: "::1", Path: "/a/b", RawQuery: "q"}); !ok || r.ID != "a" {
		t.Errorf("Match after mutating copies = %v, %v; want a", r, ok)
	}
	if tbl.Len() != 3 {
		t.Errorf("Len = %d, want 3", tbl.Len())
	}
	var ids []string
	for r := range tbl.All() {
		ids = append(ids, r.ID)
		if r.ID == "b" && r.Headers[0].Name != "X-Env" {
			t.Errorf("All yields a mutated copy: %+v", r)
		}
		if len(ids) == 2 {
			break // stopping early must be safe
		}
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("All yielded %v, want a,b", ids)
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
		{Route[string]{ID: "r", Path: ")|(", Kind: Regex, CaseInsensitive: true}, "compiling regex path"},
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
		{Route[string]{ID: "r", Path: "/", Host: "(", HostRegex: true}, `compiling host regex "("`},
		{Route[string]{ID: "r", Path: "/", HostRegex: true}, "empty host regex"},
		{Route[string]{ID: "r", Path: "/", Method: "GE T"}, "not an HTTP token"},
		{Route[string]{ID: "r", Path: "/", Method: "GET|(", MethodRegex: true}, `compiling method regex "GET|("`},
		{Route[string]{ID: "r", Path: "/", MethodRegex: true}, "empty method regex"},
		{Route[string]{ID: "r", Path: "/", Headers: []HeaderMatch{{Name: ""}}}, "header 0: name"},
		{Route[string]{ID: "r", Path: "/", Headers: []HeaderMatch{{Name: "x", Value: "[", Regex: true}}}, `header 0 (X): compiling regex "["`},
		{Route[string]{ID: "r", Path: "/", Query: []QueryMatch{{Name: "a"}, {Value: "x"}}}, "query 1: empty name"},
		{Route[string]{ID: "r", Path: "/", Query: []QueryMatch{{Name: "q", Value: "*", Regex: true}}}, `query 0 (q): compiling regex "*"`},
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

func TestNewGroupErrors(t *testing.T) {
	member := func(id string, weight int) Route[string] {
		return Route[string]{ID: id, Group: "g", Weight: weight, Path: "/", Method: "GET", Headers: []HeaderMatch{{Name: "a", Value: "1"}, {Name: "b", Present: true}}}
	}
	with := func(r Route[string], change func(*Route[string])) Route[string] {
		r.Headers = slices.Clone(r.Headers)
		change(&r)
		return r
	}
	for _, tc := range []struct {
		routes []Route[string]
		want   string
	}{
		{[]Route[string]{member("b", 60), member("a", 30)}, `group "g" (routes "a", "b"): weights add up to 90, want 100 ("a"=30, "b"=60)`},
		{[]Route[string]{member("a", 0)}, "weights add up to 0"},
		{[]Route[string]{member("a", 150), member("b", -50)}, `route "a" has weight 150, want 0 to 100`},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.Path = "/x" })}, `route "b" differs from "a" in path`},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.CaseInsensitive = true })}, "in case sensitivity"},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.Headers[1].Present = false })}, "in headers"},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.Query = []QueryMatch{{Name: "q"}} })}, "in query"},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.Precedence = 1 })}, "in precedence"},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.Host = ".*"; r.HostRegex = true })}, "in host"},
		{[]Route[string]{member("a", 50), with(member("b", 50), func(r *Route[string]) { r.MethodRegex = true })}, "in method regex flag"},
	} {
		_, err := New(tc.routes)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want it to contain %q", tc.routes, err, tc.want)
			continue
		}
		var ge *GroupError
		if !errors.As(err, &ge) || ge.Group != "g" || len(ge.IDs) != len(tc.routes) {
			t.Errorf("error %v: want a *GroupError for g", err)
		}
	}

	// Criteria are compared after normalisation and as sets.
	same := []Route[string]{
		member("a", 50),
		with(member("b", 50), func(r *Route[string]) {
			r.Method = "get"
			r.Headers = []HeaderMatch{{Name: "B", Present: true, Value: "x"}, {Name: "A", Value: "1"}}
		}),
	}
	if _, err := New(same); err != nil {
		t.Errorf("New with equivalent criteria: %v", err)
	}
	// A broken member is reported as a route; the group's weights are still checked.
	_, err := New([]Route[string]{member("a", 50), with(member("b", 40), func(r *Route[string]) { r.Path = "x" })})
	if err == nil || !strings.Contains(err.Error(), `route "b" (index 1)`) || !strings.Contains(err.Error(), "add up to 90") {
		t.Errorf("New with a broken member: %v", err)
	}
}

func TestPathKindString(t *testing.T) {
	for k, want := range map[PathKind]string{Prefix: "prefix", Exact: "exact", Regex: "regex", 7: "PathKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("PathKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// TestMatchAllocs builds each Request inside the measured function, so an
// escaping *Request would show up as an allocation.
func TestMatchAllocs(t *testing.T) {
	routes := append(benchRoutes(300),
		Route[string]{ID: "re-host", Host: `[a-z]+\.regions\.example\.com`, HostRegex: true, Path: "/", Precedence: 5},
		Route[string]{ID: "re-query", Path: "/search", Precedence: 5, Query: []QueryMatch{{Name: "q", Value: "[a-z ]+", Regex: true}}},
	)
	tbl := mustNew(t, routes)
	h := hdr("X-Env", "canary")
	routes, opts := withBulk(ownedRoutes(300))
	owned, err := NewTable(routes, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, host, method, path, query, want string
	}{
		{"owned hit", "svc3.example.com.", "GET", "/api/v3/users/x", "", "ns3/svc3.example.com//users/"},
		{"owned incomplete hit", "BULK.example.com", "GET", "/api/v3/users/x", "", "bulk-api"},
		{"owned incomplete miss", "bulk.example.com", "GET", "/x", "", ""},
	} {
		r := Request{Host: tc.host, Method: tc.method, Path: tc.path, RawQuery: tc.query, Header: h}
		if got, _ := owned.Match(&r); idOf(got) != tc.want && !(tc.want == "" && got == nil) {
			t.Errorf("%s: Match = %s, want %s", tc.name, idOf(got), tc.want)
		}
		allocs := testing.AllocsPerRun(200, func() {
			r := Request{Host: tc.host, Method: tc.method, Path: tc.path, RawQuery: tc.query, Header: h}
			owned.Match(&r)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Match, want 0", tc.name, allocs)
		}
	}
	for _, tc := range []struct {
		name, host, method, path, query, want string
	}{
		{"hit", "SVC3.Example.com:8443", "GET", "/api/v3/repos/gatehouse-dev/gatehouse/issues", "", "ns3/svc3.example.com/canary"},
		{"regex hit", "svc3.example.com", "GET", "/api/v3/repos/o/r/pulls/12/files", "", "ns3/svc3.example.com/pulls"},
		{"wildcard hit", "a.b.tenant.example.net", "GET", "/api/v3/users/x", "", "tenant-users"},
		{"miss", "nowhere.example.org", "GET", "/no/such/path", "", ""},
		{"query hit", "svc3.example.com", "GET", "/api/v3/search/code", "q=router&type=code", "ns3/svc3.example.com/search-code"},
		{"escaped query hit", "svc3.example.com", "GET", "/api/v3/search/code", "q=a%20b&t%79pe=c%6Fde", "ns3/svc3.example.com/search-code"},
		{"case-insensitive hit", "svc3.example.com", "GET", "/API/V3/Docs/Intro", "", "ns3/svc3.example.com/docs"},
		{"weighted pick", "svc3.example.com", "GET", "/api/v3/checkout/cart", "", "ns3/svc3.example.com/checkout-"},
		{"host regex hit", "eu.regions.example.com", "GET", "/x", "", "re-host"},
		// These two borrow a pooled buffer, which the race detector's
		// sync.Pool drops on purpose: their budget is checked without -race.
		{"mixed-case host regex hit", "EU.Regions.example.com", "GET", "/x", "", "re-host"},
		{"escaped query regex hit", "h", "GET", "/search", "q=router+tree", "re-query"},
	} {
		r := Request{Host: tc.host, Method: tc.method, Path: tc.path, RawQuery: tc.query, Header: h}
		got, _ := tbl.Match(&r)
		if !strings.HasPrefix(idOf(got), tc.want) || (tc.want == "") != (got == nil) {
			t.Errorf("%s: Match = %s, want %s", tc.name, idOf(got), tc.want)
		}
		allocs := testing.AllocsPerRun(200, func() {
			r := Request{Host: tc.host, Method: tc.method, Path: tc.path, RawQuery: tc.query, Header: h}
			tbl.Match(&r)
		})
		pooled := strings.Contains(tc.name, "regex hit") && (strings.Contains(tc.name, "mixed-case") || strings.Contains(tc.name, "escaped query"))
		if allocs != 0 && !(pooled && raceEnabled) {
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
				got, _ := tbl.MatchRoll(&q.req, uint32(i))
				want, _ := ref.matchRoll(&q.req, uint32(i))
				if idOf(got) != idOf(want) {
					t.Errorf("%s: MatchRoll = %s, reference = %s", q.name, idOf(got), idOf(want))
					return
				}
				// A random pick must stay within the reference's unit.
				if r, ok := tbl.Match(&q.req); ok != (want != nil) || (ok && r.Group != want.Group) || (ok && r.Group == "" && r.ID != want.ID) {
					t.Errorf("%s: Match = %s, reference = %s", q.name, idOf(r), idOf(want))
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
