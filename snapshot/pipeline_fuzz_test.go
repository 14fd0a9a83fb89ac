package snapshot

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/router"
)

// FuzzPipeline is the differential test of the one pipeline: for any
// annotation, what Review (the webhook's verdict) admits, Build compiles and
// serves, and what Review denies, Build rejects; and whatever is admitted,
// the host another namespace owns is answered only by its owner. The
// incumbents own shop.example.com and hold a host-less path, so ownership,
// claims, grants and canary weights are all in play.
func FuzzPipeline(f *testing.F) {
	for _, seed := range []string{
		mapping("a", "/a/", "a"),
		mapping("grab", "/", "grab", "precedence: 1000000"),
		mapping("grab", "/orders/", "grab", `host: "shop\\.example\\.com"`, "host_regex: true", "precedence: 10"),
		mapping("grab", "/orders/vip/", "grab", "host: shop.example.com"),
		mapping("grab", "/orders/1", "grab", "host: shop.example.com", "prefix_exact: true"),
		mapping("grab", "/", "grab", `hostname: "*.example.com"`, "precedence: 10"),
		mapping("held", "/held/", "held"),
		mapping("x", "/x/", "db.finance:5432"),
		mapping("x", "/x/", "httpbin.org:80"),
		mapping("c", "/api/", "c", "weight: 30") + "---\n" + mapping("d", "/api/", "d", "weight: 80"),
		mapping("r", `"/r/[0-9]+"`, "r", "prefix_regex: true", "case_sensitive: false", "regex_headers:", `  x-a: "^a+$"`),
		mapping("m", "/m/", "m", "method: GET", "headers:", "  x-v: \"1\"", "query_parameters:", "  q: present"),
		mapping("dup", "/a/", "a") + "---\n" + mapping("dup", "/b/", "b"),
		"kind: Mapping\nname: x\nprefix: x\nservice: a\n",
		"kind: RateLimit\nname: r\nrate: 1\nunit: second\n",
		mapping("deep", `"`+strings.Repeat("(?:", 999)+"/a"+strings.Repeat(")", 999)+`"`, "deep", "prefix_regex: true"),
	} {
		f.Add(seed)
	}
	incumbents := []*corev1.Service{
		service("shop", "orders", mapping("orders", "/orders/", "orders", "host: shop.example.com")),
		service("blog", "held", mapping("held", "/held/", "held")),
	}
	f.Fuzz(func(t *testing.T, text string) {
		b := newBuilder()
		in := Input{Services: incumbents, Namespaces: []*corev1.Namespace{namespace("finance", "fuzz")}}
		s, _ := b.Build(in)
		svc := service("fuzz", "svc", text)
		verdict := s.Review(svc)
		admitted := !verdict[annotations.Key].HasErrors()

		in.Services = append([]*corev1.Service{svc}, incumbents...)
		s2, reports := b.Build(in)
		rejected := false
		for _, r := range reports {
			if r.Service == "fuzz/svc" && r.Rejected {
				rejected = true
			}
			if r.Service != "fuzz/svc" && r.Rejected {
				t.Fatalf("an incumbent was rejected: %+v", r)
			}
		}
		if admitted == rejected {
			t.Fatalf("Review admitted=%v but Build rejected=%v\nreview: %v\nreports: %+v", admitted, rejected, verdict, reports)
		}
		ids := map[string]bool{}
		for r := range s2.Table.All() {
			ids[r.ID] = true
		}
		if admitted {
			// Every routed Mapping is in the table.
			cfg, _ := annotations.Parse(text, annotations.Options{Namespace: "fuzz"})
			for _, m := range cfg.Mappings {
				if !m.Mirrors() && !ids["fuzz/svc/"+m.Name] {
					t.Fatalf("admitted Mapping %q is not in the table", m.Name)
				}
			}
		}
		for _, want := range []string{"shop/orders/orders", "blog/held/held"} {
			if !ids[want] {
				t.Fatalf("incumbent route %s lost", want)
			}
		}
		for _, path := range []string{"/orders/1", "/orders/vip/1", "/", "/a/", "/api/x", "/r/1"} {
			if r, ok := s2.Table.Match(&router.Request{Host: "shop.example.com", Method: "GET", Path: path, Header: map[string][]string{"X-A": {"a"}, "X-V": {"1"}}, RawQuery: "q=1"}); ok && r.Value.Service != "shop/orders" {
				t.Fatalf("owned host answered by %s for %s", r.Value.Service, path)
			}
		}
	})
}
