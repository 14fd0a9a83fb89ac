package router

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
)

// FuzzMatch lets the fuzzer choose requests against a fixed, overlapping
// route set of several tenants, some of whose hosts are owned, and checks
// the tree against the linear reference, with and without a bound on regex
// inputs.
func FuzzMatch(f *testing.F) {
	routes := randomRoutes(rand.New(rand.NewPCG(1, 2)), 150)
	routes = append(routes,
		Route[string]{ID: "k-host", Host: "key.example.com", Path: "/"},
		Route[string]{ID: "long-wild", Host: "*.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com", Path: "/"},
		Route[string]{ID: "q-re", Path: "/q", Query: []QueryMatch{{Name: "a&b", Value: "[^=]*=.*", Regex: true}}},
		Route[string]{ID: "ci-k", Path: "/kelvin/k", CaseInsensitive: true, Kind: Exact},
		Route[string]{ID: "w-a", Path: "/w", Group: "w", Weight: 33},
		Route[string]{ID: "w-b", Path: "/w", Group: "w", Weight: 67},
		// Another tenant's routes that would answer every owned host.
		Route[string]{ID: "evil-any", Tenant: "evil", Path: "/", Precedence: 1000},
		Route[string]{ID: "evil-re", Tenant: "evil", Host: `.*`, HostRegex: true, Path: "/", Precedence: 999},
		Route[string]{ID: "evil-wild", Tenant: "evil", Host: "*.example.com", Path: "/", Precedence: 998},
	)
	opts := Options{Owners: map[string][]string{
		"api.example.com": {"t1"},
		"x.example.com":   {"t2", "ghost"}, // no exact route
		"unknown.net":     {},              // nobody answers
		"key.example.com": {"", "t3"},
		"h":               {"t1", "t2"},
		"[::1]":           {"t3"},
	}}
	tables := []*Table[string]{}
	refs := []*linear[string]{}
	for _, max := range []int{0, 9} {
		opts.MaxRegexInput = max
		tbl, err := NewTable(routes, opts)
		if err != nil {
			f.Fatal(err)
		}
		tables, refs = append(tables, tbl), append(refs, newLinearOpts(routes, opts))
	}

	f.Add("api.example.com", "GET", "/api/v1/users/42", "", "canary", "", false, uint32(0))
	f.Add("A.B.Example.com:8080", "POST", "/users/7", "q=1&page=2", "prod", "1", true, uint32(5))
	f.Add("[::1]:443", "get", "/static/css/site.css", "tag=go&tag=rust", "", "", false, uint32(99))
	f.Add("\u212aey.example.com", "GET", "/", "", "", "", false, uint32(0)) // Kelvin sign: not ASCII "k"
	f.Add("other.org:", "PUT", "", "a+b=go;", "", "1", true, uint32(1))
	f.Add("[::1", "GET", "/API/V1/", "%71=x+y", "", "", false, uint32(3))
	f.Add("h", "GET", "/q", "a%26b=x%3Dy", "", "", false, uint32(0))
	f.Add("h", "GET", "/KELVIN/\u212a", "", "", "", false, uint32(0))
	f.Add("h", "GET", "/w", "", "", "", false, uint32(33))
	f.Add("API.Example.com.:443", "GET", "/api/v1/users/42", "", "", "", false, uint32(0))
	f.Add("x.example.com.", "GET", "/", "", "", "", false, uint32(0))
	f.Add("unknown.net", "GET", "/", "", "", "", false, uint32(0))
	f.Add("[::1].:80", "GET", "/users/7", "q=xxxxxxxxxx", "canary-prod", "", false, uint32(0))
	f.Fuzz(func(t *testing.T, host, method, path, query, env, user string, debug bool, roll uint32) {
		h := http.Header{}
		if env != "" {
			h.Set("X-Env", env)
		}
		if user != "" {
			h.Set("X-User", user)
		}
		if debug {
			h.Set("X-Debug", "")
		}
		req := Request{Host: host, Method: method, Path: path, RawQuery: query, Header: h}
		for i, tbl := range tables {
			got, gotOK := tbl.MatchRoll(&req, roll)
			want, wantOK := refs[i].matchRoll(&req, roll)
			if gotOK != wantOK || (gotOK && got.ID != want.ID) {
				t.Fatalf("table %d: MatchRoll(%+v, %d) = %v, reference = %v", i, req, roll, idOf(got), idOf(want))
			}
		}
	})
}

// FuzzNew feeds arbitrary route fields to New: it must return an error or a
// table, never panic, and an accepted table must agree with the reference.
// With group set, the route and a copy form a group weighted weight and
// 100-weight.
func FuzzNew(f *testing.F) {
	f.Add("id", "api.example.com", "/api/", uint8(0), "GET", "X-Env", "canary", uint8(0), "q", "1", uint8(0), false, 0, "/api/x")
	f.Add("id", "*.example.com", "/a/[0-9]+", uint8(2), "", "", "", uint8(1), "", "", uint8(0), true, 3, "/a/1")
	f.Add("", "[::1]", "x", uint8(1), "g et", "bad name", "", uint8(0), "", "", uint8(0), false, -1, "x")
	f.Add("fixed", "*", "(", uint8(9), "", "", "", uint8(0), "", "", uint8(0), false, 0, "")
	f.Add("id", "a.example.com:80", "/", uint8(0), "", "", "", uint8(0), "", "", uint8(0), false, 0, "/")
	f.Add("id", `[a-z]+\.example\.com`, "(?i)/K/.*", uint8(2|8), "GET|HEAD", "x", "[0-9]+", uint8(2), "a b", "x.*", uint8(2), true, 90, "/\u212a/x")
	f.Add("id", "API.*", "/Docs/", uint8(8|16), "P.*", "x", "", uint8(1), "q", "", uint8(1), false, 0, "/DOCS/x")
	f.Add("id", "Shop.Example.com", "/", uint8(64), "", "", "", uint8(0), "", "", uint8(0), false, 0, "/")
	f.Add("id", "*.example.com", "/", uint8(64), "", "", "", uint8(0), "", "", uint8(0), false, 0, "/")
	// kind's low bits are the PathKind, bit 3 CaseInsensitive, bit 4
	// MethodRegex, bit 5 HostRegex, bit 6 makes the route's tenant the
	// owner of host (when it is not a regex), which the fixed route's tenant
	// is not; hflags and qflags: bit 0 Present, bit 1 Regex.
	f.Fuzz(func(t *testing.T, id, host, path string, kind uint8, method, hname, hvalue string, hflags uint8,
		qname, qvalue string, qflags uint8, group bool, prec int, reqPath string) {
		r := Route[string]{
			ID: id, Host: host, Path: path, Kind: PathKind(kind & 7), Method: method, Precedence: prec,
			CaseInsensitive: kind&8 != 0, MethodRegex: kind&16 != 0, HostRegex: kind&32 != 0,
		}
		if hname != "" || hvalue != "" {
			r.Headers = []HeaderMatch{{Name: hname, Value: hvalue, Present: hflags&1 != 0, Regex: hflags&2 != 0}}
		}
		if qname != "" || qvalue != "" {
			r.Query = []QueryMatch{{Name: qname, Value: qvalue, Present: qflags&1 != 0, Regex: qflags&2 != 0}}
		}
		routes := []Route[string]{{ID: "fixed", Tenant: "other", Path: "/"}, r}
		var opts Options
		if kind&64 != 0 && !r.HostRegex {
			routes[1].Tenant = "mine"
			opts.Owners = map[string][]string{host: {"mine"}}
		}
		if group {
			weight := prec % 101
			if weight < 0 {
				weight = -weight
			}
			other := r
			other.ID = id + "~"
			routes[1].Group, routes[1].Weight = "g", weight
			other.Group, other.Weight = "g", 100-weight
			routes = append(routes, other)
		}
		tbl, err := NewTable(routes, opts)
		if cerr := Check(routes, opts); (cerr == nil) != (err == nil) || err != nil && cerr.Error() != err.Error() {
			t.Fatalf("Check = %v, NewTable = %v", cerr, err)
		}
		if _, kerr := CriteriaKey(&r, nil); kerr != nil && err == nil {
			t.Fatalf("CriteriaKey: %v, but NewTable accepted the route", kerr)
		}
		if err != nil {
			if tbl != nil {
				t.Fatalf("New returned a table and an error: %v", err)
			}
			return
		}
		if tbl.Len() != len(routes) {
			t.Fatalf("Len = %d, want %d", tbl.Len(), len(routes))
		}
		ref := newLinearOpts(routes, opts)
		h := http.Header{}
		if hname != "" {
			h.Set(hname, hvalue)
		}
		queries := []string{qname + "=" + qvalue, url.QueryEscape(qname) + "=" + url.QueryEscape(qvalue), qname}
		for _, reqHost := range []string{host, "x." + host, host + ":1"} {
			for _, query := range queries {
				for _, roll := range []uint32{0, uint32(prec), 99} {
					req := Request{Host: reqHost, Method: method, Path: reqPath, RawQuery: query, Header: h}
					got, gotOK := tbl.MatchRoll(&req, roll)
					want, wantOK := ref.matchRoll(&req, roll)
					if gotOK != wantOK || (gotOK && got.ID != want.ID) {
						t.Fatalf("MatchRoll(%+v, %d) = %v, reference = %v", req, roll, idOf(got), idOf(want))
					}
				}
			}
		}
		if _, err := tbl.WriteTo(io.Discard); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	})
}
