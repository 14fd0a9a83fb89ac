package router_test

import (
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/router"
)

func ExampleTable_Match() {
	tbl, err := router.New([]router.Route[string]{
		{ID: "a", Path: "/api/", Value: "api-backend"},
		{ID: "b", Path: "/api/v1/", Method: "GET", Value: "v1-reader"},
		{ID: "c", Path: "/api/", Query: []router.QueryMatch{{Name: "debug", Present: true}}, Value: "debugger"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, method := range []string{"GET", "POST"} {
		r, ok := tbl.Match(&router.Request{Host: "x.example.com:8080", Method: method, Path: "/api/v1/users"})
		fmt.Println(method, r.ID, r.Value, ok)
	}
	r, _ := tbl.Match(&router.Request{Method: "POST", Path: "/api/v1/users", RawQuery: "debug"})
	fmt.Println("?debug", r.ID)
	_, ok := tbl.Match(&router.Request{Host: "x.example.com", Method: "GET", Path: "/other"})
	fmt.Println("/other", ok)
	// Output:
	// GET b v1-reader true
	// POST a api-backend true
	// ?debug c
	// /other false
}

func ExampleTable_MatchRoll() {
	tbl, _ := router.New([]router.Route[string]{
		{ID: "checkout-v1", Group: "checkout", Weight: 90, Path: "/checkout/"},
		{ID: "checkout-v2", Group: "checkout", Weight: 10, Path: "/checkout/"},
	})
	req := &router.Request{Method: "GET", Path: "/checkout/cart"}
	for _, roll := range []uint32{0, 89, 90, 99} {
		r, _ := tbl.MatchRoll(req, roll)
		fmt.Println(roll, r.ID)
	}
	r, _ := tbl.Match(req) // a random member, 90 % of the time checkout-v1
	for _, m := range tbl.Group(r) {
		fmt.Println(m.ID, m.Weight)
	}
	// Output:
	// 0 checkout-v1
	// 89 checkout-v1
	// 90 checkout-v2
	// 99 checkout-v2
	// checkout-v1 90
	// checkout-v2 10
}

func ExampleTable_WriteTo() {
	tbl, _ := router.New([]router.Route[int]{
		{ID: "a", Host: "API.example.com", Path: "/api/", Kind: router.Exact, Method: "get"},
	})
	tbl.WriteTo(os.Stdout)
	// Output:
	// routes: 1
	// host "api.example.com"
	//   "/api/"
	//     #0 exact "/api/" id="a" method=GET
}

func ExampleNewTable() {
	tbl, err := router.NewTable([]router.Route[string]{
		{ID: "shop/cart", Tenant: "shop", Host: "shop.example.com", Path: "/cart/"},
		{ID: "cdn/static", Tenant: "cdn", Host: "*.example.com", Path: "/static/"},
		{ID: "evil/all", Tenant: "evil", Path: "/", Precedence: 1000},
	}, router.Options{
		// shop owns its host and lets the CDN serve static files on it.
		Owners:        map[string][]string{"shop.example.com": {"shop", "cdn"}},
		MaxRegexInput: 4096,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, req := range []router.Request{
		{Host: "shop.example.com", Path: "/cart/1"},
		{Host: "Shop.Example.com.:443", Path: "/static/app.js"},
		{Host: "shop.example.com", Path: "/admin"},
		{Host: "blog.example.com", Path: "/static/app.js"},
	} {
		if r, ok := tbl.Match(&req); ok {
			fmt.Println(req.Host, req.Path, "→", r.ID, "of", r.Tenant)
		} else {
			fmt.Println(req.Host, req.Path, "→ no route")
		}
	}
	// Output:
	// shop.example.com /cart/1 → shop/cart of shop
	// Shop.Example.com.:443 /static/app.js → cdn/static of cdn
	// shop.example.com /admin → no route
	// blog.example.com /static/app.js → evil/all of evil
}

func ExampleNew_error() {
	_, err := router.New([]router.Route[int]{
		{ID: "default/users/api", Host: "api.example.com:8080", Path: "/"},
		{ID: "default/users/re", Path: "/users/(", Kind: router.Regex},
		{ID: "default/shop/v1", Path: "/shop/", Group: "default/shop", Weight: 80},
		{ID: "default/shop/v2", Path: "/shop/", Group: "default/shop", Weight: 30},
	})
	fmt.Println(err)
	// Output:
	// building route table: route "default/users/api" (index 0): invalid host "api.example.com:8080": remove the port, request ports are ignored
	// route "default/users/re" (index 1): compiling regex path "/users/(": error parsing regexp: missing closing ): `/users/(`
	// group "default/shop" (routes "default/shop/v1", "default/shop/v2"): weights add up to 110, want 100 ("default/shop/v1"=80, "default/shop/v2"=30)
}
