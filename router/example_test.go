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
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, method := range []string{"GET", "POST"} {
		r, ok := tbl.Match("x.example.com:8080", method, "/api/v1/users", nil)
		fmt.Println(method, r.ID, r.Value, ok)
	}
	_, ok := tbl.Match("x.example.com", "GET", "/other", nil)
	fmt.Println("/other", ok)
	// Output:
	// GET b v1-reader true
	// POST a api-backend true
	// /other false
}

func ExampleTable_WriteTo() {
	tbl, _ := router.New([]router.Route[int]{
		{ID: "a", Host: "API.example.com", Path: "/api/", Kind: router.Exact, Method: "get"},
	})
	tbl.WriteTo(os.Stdout)
	// Output:
	// routes: 1
	// host "api.example.com"
	//   ""
	//     "/api/"
	//       #0 exact "/api/" id="a" method=GET
}

func ExampleNew_error() {
	_, err := router.New([]router.Route[int]{
		{ID: "default/users/api", Host: "api.example.com:8080", Path: "/"},
		{ID: "default/users/re", Path: "/users/(", Kind: router.Regex},
	})
	fmt.Println(err)
	// Output:
	// building route table: route "default/users/api" (index 0): invalid host "api.example.com:8080": remove the port, request ports are ignored
	// route "default/users/re" (index 1): compiling regex path "/users/(": error parsing regexp: missing closing ): `/users/(`
}
