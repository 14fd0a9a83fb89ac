package router

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// shopRoutes are the routes of the ownership tests: tenant "shop" owns
// shop.example.com and delegates to "cdn"; "evil" tries every way in.
func shopRoutes() []Route[string] {
	return withValues(
		Route[string]{ID: "shop-cart", Tenant: "shop", Host: "shop.example.com", Path: "/cart/"},
		Route[string]{ID: "shop-any", Tenant: "shop", Path: "/shop-health", Kind: Exact},
		Route[string]{ID: "cdn-static", Tenant: "cdn", Host: "*.example.com", Path: "/static/"},
		Route[string]{ID: "evil-root", Tenant: "evil", Path: "/", Precedence: 1000},
		Route[string]{ID: "evil-exact", Tenant: "evil", Host: "shop.example.com", Path: "/cart/checkout", Precedence: 1000},
		Route[string]{ID: "evil-wild", Tenant: "evil", Host: "*.example.com", Path: "/cart/", Precedence: 999},
		Route[string]{ID: "evil-re", Tenant: "evil", Host: `shop\..*`, HostRegex: true, Path: "/", Precedence: 998},
		Route[string]{ID: "evil-ci", Tenant: "evil", Path: "/CART/", CaseInsensitive: true, Precedence: 997},
		Route[string]{ID: "evil-pay", Tenant: "evil", Host: "pay.example.com", Path: "/"},
		// Owned by "pay", which has no route: nobody answers it.
		Route[string]{ID: "shop-fallback", Tenant: "shop", Path: "/", Precedence: -1},
	)
}

var shopOwners = map[string][]string{
	"shop.example.com": {"shop", "cdn"},
	"pay.example.com":  {"pay"},
	"Only.Any.Example": {"shop"}, // no route names it; normalised to lower case
}

func TestMatchOwners(t *testing.T) {
	expect := expecterOpts(t, shopRoutes(), Options{Owners: shopOwners})
	expect(rq("shop.example.com", "GET", "/cart/x", nil), "shop-cart")        // evil's host-less / at precedence 1000 never answers
	expect(rq("shop.example.com", "GET", "/cart/checkout", nil), "shop-cart") // nor its route naming the owned host
	expect(rq("shop.example.com", "GET", "/other", nil), "shop-fallback")     // nor its host regex matching it
	expect(rq("shop.example.com", "GET", "/static/a.css", nil), "cdn-static") // a delegate listed in Owners answers
	expect(rq("shop.example.com", "GET", "/shop-health", nil), "shop-any")    // the owner's own host-less route answers its host
	expect(rq("SHOP.Example.COM.:8443", "GET", "/cart/x", nil), "shop-cart")  // case, port and trailing dot do not dodge the owner
	expect(rq("shop.example.com.", "GET", "/other", nil), "shop-fallback")
	expect(rq("shop.example.com..", "GET", "/cart/x", nil), "evil-root")   // two dots: another (invalid) host, not owned
	expect(rq("pay.example.com", "GET", "/", nil), "")                     // an owner without routes: nobody answers
	expect(rq("only.any.example", "GET", "/shop-health", nil), "shop-any") // owned, no exact route: the owner's host-less routes answer
	expect(rq("only.any.example", "GET", "/x", nil), "shop-fallback")
	expect(rq("www.example.com", "GET", "/cart/x", nil), "evil-root") // unowned hosts unchanged
	expect(rq("www.example.com", "GET", "/static/x", nil), "evil-root")
	expect(rq("shop.example.org", "GET", "/x", nil), "evil-root")
	expect(rq("shop.example.org", "GET", "/CART/", nil), "evil-root")
	expect(rq("other.net", "GET", "/shop-health", nil), "evil-root")
	expect(Request{Method: "GET", Path: "/cart/x", Header: http.Header{}}, "evil-root") // no host at all
}

// TestMatchOwnersEveryBucket checks each bucket kind alone, with the owned
// host's bucket complete and (with many host-less routes) incomplete.
func TestMatchOwnersEveryBucket(t *testing.T) {
	var filler []Route[string]
	for i := range maxMergedUnits + 1 {
		filler = append(filler, Route[string]{ID: fmt.Sprintf("filler%03d", i), Tenant: "shop", Path: fmt.Sprintf("/f/%d", i)})
	}
	owners := map[string][]string{"shop.example.com": {"shop"}}
	for _, other := range []Route[string]{
		{ID: "other", Tenant: "evil", Path: "/", Precedence: 1000},
		{ID: "other", Tenant: "evil", Host: "*.example.com", Path: "/", Precedence: 1000},
		{ID: "other", Tenant: "evil", Host: `.*`, HostRegex: true, Path: "/", Precedence: 1000},
		{ID: "other", Tenant: "evil", Host: "shop.example.com", Path: "/", Precedence: 1000},
		{ID: "other", Tenant: "evil", Path: ".*", Kind: Regex, Precedence: 1000},
		{ID: "other", Tenant: "evil", Path: "/", CaseInsensitive: true, Method: "GET", Precedence: 1000},
		{ID: "other", Tenant: "evil", Path: "/", Group: "g", Weight: 100, Precedence: 1000},
	} {
		unowned := "other"
		if other.Host == "shop.example.com" {
			unowned = ""
		}
		for _, incomplete := range []bool{false, true} {
			routes := withValues(other, Route[string]{ID: "own", Tenant: "shop", Host: "shop.example.com", Path: "/"})
			if incomplete {
				routes = append(routes, withValues(filler...)...)
			}
			tbl, err := NewTable(routes, Options{Owners: owners})
			if err != nil {
				t.Fatal(err)
			}
			if b := tbl.exact.get("shop.example.com"); b.complete == incomplete {
				t.Errorf("%+v: complete = %v, want %v", other, b.complete, !incomplete)
			}
			expect := expecterOpts(t, routes, Options{Owners: owners})
			expect(rq("shop.example.com", "GET", "/x", nil), "own")
			expect(rq("Shop.Example.com.", "GET", "/x", nil), "own")
			expect(rq("www.example.com", "GET", "/x", nil), unowned)
		}
	}
}

func TestMatchOwnersGroups(t *testing.T) {
	routes := withValues(
		// One group, two tenants: it answers an owned host only if both may.
		// (Match picks at random: the first member takes all the traffic.)
		Route[string]{ID: "mix-a", Tenant: "shop", Group: "mix", Weight: 100, Path: "/m/"},
		Route[string]{ID: "mix-b", Tenant: "evil", Group: "mix", Weight: 0, Path: "/m/"},
		Route[string]{ID: "shop-a", Tenant: "shop", Group: "shop", Weight: 100, Path: "/s/"},
		Route[string]{ID: "shop-b", Tenant: "shop", Group: "shop", Weight: 0, Path: "/s/"},
		Route[string]{ID: "fallback", Tenant: "shop", Path: "/"},
	)
	expect := expecterOpts(t, routes, Options{Owners: map[string][]string{
		"shop.example.com": {"shop"},
		"both.example.com": {"evil", "shop"},
		"evil.example.com": {"evil"},
	}})
	expect(rq("shop.example.com", "GET", "/m/", nil), "fallback")
	expect(rq("both.example.com", "GET", "/m/", nil), "mix-a")
	expect(rq("evil.example.com", "GET", "/m/", nil), "")
	expect(rq("shop.example.com", "GET", "/s/", nil), "shop-a")
	expect(rq("evil.example.com", "GET", "/s/", nil), "")
	expect(rq("free.example.com", "GET", "/m/", nil), "mix-a")
}

func TestMaxRegexInput(t *testing.T) {
	const max = 12
	long := strings.Repeat("x", max+1)
	expect := expecterOpts(t, withValues(
		Route[string]{ID: "host", Host: `[a-z.]+`, HostRegex: true, Path: "/host"},
		Route[string]{ID: "path", Path: "/p/.*", Kind: Regex},
		Route[string]{ID: "method", Path: "/m", Method: "[A-Z]+", MethodRegex: true},
		Route[string]{ID: "header", Path: "/hd", Headers: []HeaderMatch{{Name: "x", Value: "x*", Regex: true}}},
		Route[string]{ID: "header-exact", Path: "/he", Headers: []HeaderMatch{{Name: "x", Value: long}}},
		Route[string]{ID: "query", Path: "/q", Query: []QueryMatch{{Name: "q", Value: "[x ]*", Regex: true}}},
		Route[string]{ID: "any", Path: "/", Precedence: -1},
	), Options{MaxRegexInput: max})
	expect(rq("abcdefgh.com", "GET", "/host", nil), "host") // 12 bytes: at the bound
	expect(rq("abcdefghi.com", "GET", "/host", nil), "any")
	expect(rq("abcdefgh.com.", "GET", "/host", nil), "host") // the trailing dot is not part of the host
	expect(rq("h", "GET", "/p/"+strings.Repeat("x", max-3), nil), "path")
	expect(rq("h", "GET", "/p/"+strings.Repeat("x", max-2), nil), "any")
	expect(rq("h", "GETGETGETGET", "/m", nil), "method")
	expect(rq("h", "GETGETGETGETX", "/m", nil), "any")
	expect(rq("h", "GET", "/hd", hdr("X", long[1:])), "header")
	expect(rq("h", "GET", "/hd", hdr("X", long)), "any")
	expect(rq("h", "GET", "/he", hdr("X", long)), "header-exact") // only regexes are bounded
	q := func(raw string) Request { return Request{Host: "h", Method: "GET", Path: "/q", RawQuery: raw} }
	expect(q("q="+long[1:]), "query")
	expect(q("q="+long), "any")
	expect(q("q="+strings.Repeat("%78", max)), "query") // the decoded value counts
	expect(q("q="+strings.Repeat("%78", max+1)), "any")
	expect(q("q="+strings.Repeat("x+", max/2)), "query")
	expect(q("q="+strings.Repeat("x+", max/2)+"x"), "any")
}

// TestMaxRegexInputMerge checks that a host regex longer hosts never run on is
// not merged into an exact bucket it could not answer.
func TestMaxRegexInputMerge(t *testing.T) {
	routes := withValues(
		Route[string]{ID: "re", Host: `.*`, HostRegex: true, Path: "/"},
		Route[string]{ID: "short", Host: "a.io", Path: "/s"},
		Route[string]{ID: "long", Host: "abcdefghijklmnop.io", Path: "/s"},
	)
	expect := expecterOpts(t, routes, Options{MaxRegexInput: 10})
	expect(rq("a.io", "GET", "/x", nil), "re")
	expect(rq("abcdefghijklmnop.io", "GET", "/x", nil), "")
	expect(rq("abcdefghijklmnop.io", "GET", "/s", nil), "long")
}

func TestNewTableOptionErrors(t *testing.T) {
	ok := []Route[string]{{ID: "ok", Path: "/"}}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Owners: map[string][]string{"*.example.com": {"a"}}}, `owned host "*.example.com": a wildcard`},
		{Options{Owners: map[string][]string{"a.example.com:80": {"a"}}}, `owned host: invalid host "a.example.com:80": remove the port`},
		{Options{Owners: map[string][]string{"": {"a"}}}, "owned host: empty host"},
		{Options{Owners: map[string][]string{"a..com": {"a"}}}, "empty label"},
		{Options{MaxRegexInput: -1}, "MaxRegexInput is -1"},
	} {
		_, err := NewTable(ok, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTable(%+v) error = %v, want it to contain %q", tc.opts, err, tc.want)
		}
		if cerr := Check(ok, tc.opts); cerr == nil || err == nil || cerr.Error() != err.Error() {
			t.Errorf("Check(%+v) = %v, NewTable said %v", tc.opts, cerr, err)
		}
	}
	// Keys that normalise alike pool their tenants.
	expect := expecterOpts(t, withValues(
		Route[string]{ID: "a", Tenant: "a", Path: "/a"},
		Route[string]{ID: "b", Tenant: "b", Path: "/b"},
		Route[string]{ID: "c", Tenant: "c", Path: "/c"},
	), Options{Owners: map[string][]string{"h.io": {"a"}, "H.io": {"b"}, "[::1]": {"c"}}})
	expect(rq("h.io", "GET", "/a", nil), "a")
	expect(rq("h.io", "GET", "/b", nil), "b")
	expect(rq("h.io", "GET", "/c", nil), "")
	expect(rq("[::1]:80", "GET", "/c", nil), "c")
	expect(rq("::1", "GET", "/a", nil), "")
}

// TestCheck compares Check with NewTable on good and bad inputs: the same
// verdict, the same error, the same *RouteError and *GroupError values.
func TestCheck(t *testing.T) {
	bad := []Route[string]{
		{ID: "a", Path: "x"},
		{ID: "b", Path: "(", Kind: Regex},
		{ID: "g1", Path: "/g", Group: "g", Weight: 40},
		{ID: "g2", Path: "/g", Group: "g", Weight: 40},
	}
	opts := Options{Owners: map[string][]string{"*.x.io": nil}}
	for name, tc := range map[string]struct {
		routes []Route[string]
		opts   Options
	}{
		"good":      {shopRoutes(), Options{Owners: shopOwners, MaxRegexInput: 100}},
		"empty":     {nil, Options{}},
		"bad":       {bad, Options{}},
		"bad opts":  {shopRoutes(), opts},
		"bad both":  {bad, opts},
		"dup group": {append(shopRoutes(), shopRoutes()[0]), Options{}},
	} {
		_, want := NewTable(tc.routes, tc.opts)
		got := Check(tc.routes, tc.opts)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Errorf("%s: Check = %v, NewTable = %v", name, got, want)
			continue
		}
		var gr, wr *RouteError
		if errors.As(got, &gr) != errors.As(want, &wr) || gr != nil && (gr.ID != wr.ID || gr.Index != wr.Index || gr.Error() != wr.Error()) {
			t.Errorf("%s: *RouteError %+v, NewTable's %+v", name, gr, wr)
		}
		var gg, wg *GroupError
		if errors.As(got, &gg) != errors.As(want, &wg) || gg != nil && gg.Error() != wg.Error() {
			t.Errorf("%s: *GroupError %+v, NewTable's %+v", name, gg, wg)
		}
	}
}

func TestWriteToOwners(t *testing.T) {
	tbl, err := NewTable(withValues(
		Route[string]{ID: "cart", Tenant: "shop", Host: "shop.example.com", Path: "/cart/"},
		Route[string]{ID: "evil", Tenant: "evil", Host: "shop.example.com", Path: "/"},
		Route[string]{ID: "health", Tenant: "shop", Path: "/healthz", Kind: Exact},
		Route[string]{ID: "root", Tenant: "evil", Path: "/", Precedence: 1000},
		Route[string]{ID: "g-a", Tenant: "shop", Path: "/g/", Group: "g", Weight: 60},
		Route[string]{ID: "g-b", Tenant: "cdn", Path: "/g/", Group: "g", Weight: 40},
	), Options{Owners: map[string][]string{"shop.example.com": {"shop", "cdn"}, "empty.example.com": nil}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	tbl.WriteTo(&b)
	// The owned host's bucket holds neither of evil's routes.
	want := `routes: 6
host "empty.example.com" owners []
host "shop.example.com" owners ["cdn" "shop"]
  "/"
    "cart/"
      #2 prefix "/cart/" id="cart" tenant="shop"
    "g/"
      #3 prefix "/g/" group="g" from-any-host
        id="g-a" weight=60 tenant="shop"
        id="g-b" weight=40 tenant="cdn"
    "healthz"
      #1 exact "/healthz" id="health" tenant="shop" from-any-host
any host
  "/"
    #0 prefix "/" id="root" tenant="evil" precedence=1000
    "g/"
      #3 prefix "/g/" group="g"
        id="g-a" weight=60 tenant="shop"
        id="g-b" weight=40 tenant="cdn"
    "healthz"
      #1 exact "/healthz" id="health" tenant="shop"
`
	if b.String() != want {
		t.Errorf("WriteTo:\n%s\nwant:\n%s", b.String(), want)
	}
}
