package router

import (
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
)

// FuzzMatch lets the fuzzer choose requests against a fixed, overlapping
// route set and checks the tree against the linear reference.
func FuzzMatch(f *testing.F) {
	routes := randomRoutes(rand.New(rand.NewPCG(1, 2)), 150)
	routes = append(routes,
		Route[string]{ID: "k-host", Host: "key.example.com", Path: "/"},
		Route[string]{ID: "long-wild", Host: "*.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com", Path: "/"},
	)
	tbl := mustNew(f, routes)
	ref := newLinear(routes)

	f.Add("api.example.com", "GET", "/api/v1/users/42", "canary", "", false)
	f.Add("A.B.Example.com:8080", "POST", "/users/7", "prod", "1", true)
	f.Add("[::1]:443", "get", "/static/css/site.css", "", "", false)
	f.Add("\u212aey.example.com", "GET", "/", "", "", false) // Kelvin sign: not ASCII "k"
	f.Add("other.org:", "PUT", "", "", "1", true)
	f.Add("[::1", "GET", "/API/V1/", "", "", false)
	f.Fuzz(func(t *testing.T, host, method, path, env, user string, debug bool) {
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
		got, gotOK := tbl.Match(host, method, path, h)
		want, wantOK := ref.match(host, method, path, h)
		if gotOK != wantOK || (gotOK && got.ID != want.ID) {
			t.Fatalf("Match(%q, %q, %q, %v) = %v, reference = %v", host, method, path, h, idOf(got), idOf(want))
		}
	})
}

// FuzzNew feeds arbitrary route fields to New: it must return an error or a
// table, never panic, and an accepted table must agree with the reference.
func FuzzNew(f *testing.F) {
	f.Add("id", "api.example.com", "/api/", uint8(0), "GET", "X-Env", "canary", false, 0, "/api/x")
	f.Add("id", "*.example.com", "/a/[0-9]+", uint8(2), "", "", "", true, 3, "/a/1")
	f.Add("", "[::1]", "x", uint8(1), "g et", "bad name", "", false, -1, "x")
	f.Add("fixed", "*", "(", uint8(9), "", "", "", false, 0, "")
	f.Add("id", "a.example.com:80", "/", uint8(0), "", "", "", false, 0, "/")
	f.Fuzz(func(t *testing.T, id, host, path string, kind uint8, method, hname, hvalue string, present bool, prec int, reqPath string) {
		r := Route[string]{ID: id, Host: host, Path: path, Kind: PathKind(kind), Method: method, Precedence: prec}
		if hname != "" || hvalue != "" {
			r.Headers = []HeaderMatch{{Name: hname, Value: hvalue, Present: present}}
		}
		routes := []Route[string]{{ID: "fixed", Path: "/"}, r}
		tbl, err := New(routes)
		if err != nil {
			if tbl != nil {
				t.Fatalf("New returned a table and an error: %v", err)
			}
			return
		}
		if tbl.Len() != 2 {
			t.Fatalf("Len = %d, want 2", tbl.Len())
		}
		ref := newLinear(routes)
		h := http.Header{}
		if hname != "" {
			h.Set(hname, hvalue)
		}
		for _, reqHost := range []string{host, "x." + host, host + ":1"} {
			got, gotOK := tbl.Match(reqHost, method, reqPath, h)
			want, wantOK := ref.match(reqHost, method, reqPath, h)
			if gotOK != wantOK || (gotOK && got.ID != want.ID) {
				t.Fatalf("Match(%q, %q, %q) = %v, reference = %v", reqHost, method, reqPath, idOf(got), idOf(want))
			}
		}
		if _, err := tbl.WriteTo(io.Discard); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	})
}
