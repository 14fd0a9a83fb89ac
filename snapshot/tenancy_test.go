package snapshot

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// shopIncumbent owns shop.example.com: the victim of every takeover below.
func shopIncumbent() *corev1.Service {
	return service("shop", "orders", mapping("orders", "/orders/", "orders", "host: shop.example.com"))
}

// TestTakeoverForms: every way another namespace could win requests for a
// host it does not own is denied, naming the owner: exact-host forms by
// ownership, wildcard and regex hosts covering the host by the rules of
// reach, and precedence by its reach. A host-less catch-all without
// precedence is admitted for the hosts nobody owns and never answers the
// owned one. The gateway's Build is the webhook-bypassed path: it decides
// the same, and Review agrees with it.
func TestTakeoverForms(t *testing.T) {
	for _, c := range []struct {
		name, config string
		rejected     bool
		why          string // in the rejection
		unowned      string // a path the route answers on a host nobody owns, when admitted
	}{
		{"host-less prefix / with precedence", mapping("grab", "/", "grab", "precedence: 1000000"), true, "precedence 1000000 would rank this route ahead of namespace \"shop\"", ""},
		{"host regex matching the host", mapping("grab", "/orders/", "grab", `host: "shop\\.example\\.com"`, "host_regex: true"), true, `covers host "shop.example.com", which belongs to namespace "shop"`, ""},
		{"host regex matching everything", mapping("grab", "/", "grab", `host: ".*"`, "host_regex: true"), true, `covers host "shop.example.com", which belongs to namespace "shop"`, ""},
		{"wildcard covering the host", mapping("grab", "/", "grab", `host: "*.example.com"`), true, `covers host "shop.example.com", which belongs to namespace "shop"`, ""},
		{"hostname glob covering the host", mapping("grab", "/", "grab", `hostname: "*.example.com"`), true, `covers host "shop.example.com"`, ""},
		{"longer prefix on the host", mapping("grab", "/orders/vip/", "grab", "host: shop.example.com"), true, `host "shop.example.com" belongs to namespace "shop" (claimed first by Service shop/orders)`, ""},
		{"exact path on the host", mapping("grab", "/orders/1", "grab", "host: shop.example.com", "prefix_exact: true"), true, `belongs to namespace "shop"`, ""},
		{"same host written in upper case", mapping("grab", "/x/", "grab", "host: SHOP.example.com"), true, `belongs to namespace "shop"`, ""},
		{"hostname form of the host", mapping("grab", "/x/", "grab", "hostname: shop.example.com"), true, `belongs to namespace "shop"`, ""},
		{"regex path on the host", mapping("grab", "/orders/.*", "grab", "host: shop.example.com", "prefix_regex: true", "precedence: 100"), true, `belongs to namespace "shop"`, ""},
		{"host-less catch-all without precedence", mapping("grab", "/", "grab"), false, "", "/orders/1"},
		{"longer host-less prefix", mapping("grab", "/orders/vip/", "grab"), false, "", "/orders/vip/1"},
		{"wildcard of another domain", mapping("grab", "/", "grab", `host: "*.example.org"`, "precedence: 5"), false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBuilder()
			build(t, b, Input{Services: []*corev1.Service{shopIncumbent()}})
			attacker := service("evil", "grab", c.config)
			s, reports := build(t, b, Input{Services: []*corev1.Service{attacker, shopIncumbent()}})
			rejected := false
			for _, r := range reports {
				if r.Service == "evil/grab" && r.Rejected {
					rejected = true
					if !strings.Contains(r.Problems.Error(), c.why) {
						t.Errorf("rejection does not say %q: %v", c.why, r.Problems)
					}
				}
			}
			if rejected != c.rejected {
				t.Fatalf("rejected = %v, want %v (reports %+v)", rejected, c.rejected, reports)
			}
			// The review agrees with the build.
			if got := s.Review(attacker)[annotations.Key].HasErrors(); got != c.rejected {
				t.Errorf("Review says rejected = %v", got)
			}
			assertOnlyOwner(t, s)
			if c.unowned != "" {
				if got := served(t, s, "other.example.org", c.unowned); got != "evil/grab" {
					t.Errorf("on a host nobody owns, %s is served by %q; the admitted route should answer", c.unowned, got)
				}
			}
		})
	}
}

// assertOnlyOwner checks that no request for shop.example.com, in any
// spelling, reaches another namespace.
func assertOnlyOwner(t *testing.T, s *Snapshot) {
	t.Helper()
	for _, host := range []string{"shop.example.com", "SHOP.example.com:8080", "shop.example.com."} {
		for _, path := range []string{"/orders/1", "/orders/vip/1", "/", "/x/"} {
			if got := served(t, s, host, path); got != "" && got != "shop/orders" {
				t.Errorf("%s%s served by %q", host, path, got)
			}
		}
	}
}

// TestServedRoutesAreNotHeldHostage: routes a Service already serves are
// not judged again by the rules of reach when a later owner claims a host
// inside them, so an unrelated edit still passes; the router keeps them off
// the owned host all the same.
func TestServedRoutesAreNotHeldHostage(t *testing.T) {
	b := newBuilder()
	early := mapping("wild", "/", "grab", `host: "*.example.com"`, "precedence: 100") + "---\n" + mapping("all", "/", "grab", "precedence: 100")
	build(t, b, Input{Services: []*corev1.Service{service("evil", "grab", early)}})
	s, reports := build(t, b, Input{Services: []*corev1.Service{service("evil", "grab", early), shopIncumbent()}})
	for _, r := range reports {
		if r.Rejected {
			t.Fatalf("report %+v", r)
		}
	}
	assertOnlyOwner(t, s)
	if got := served(t, s, "shop.example.com", "/orders/1"); got != "shop/orders" {
		t.Errorf("the owner's route: served by %q", got)
	}
	if got := served(t, s, "a.example.com", "/x"); got != "evil/wild" {
		t.Errorf("the earlier wildcard elsewhere: served by %q", got)
	}
	edited := early + "---\n" + mapping("more", "/more/", "grab")
	s, reports = build(t, b, Input{Services: []*corev1.Service{service("evil", "grab", edited), shopIncumbent()}})
	for _, r := range reports {
		if r.Rejected {
			t.Errorf("an unrelated edit was held hostage: %+v", r)
		}
	}
	assertOnlyOwner(t, s)
	// Changing the wildcard route itself is judged afresh.
	changed := strings.Replace(edited, "precedence: 100", "precedence: 101", 1)
	if _, reports = build(t, b, Input{Services: []*corev1.Service{service("evil", "grab", changed), shopIncumbent()}}); len(reports) != 1 || !reports[0].Rejected {
		t.Errorf("a changed wildcard covering an owned host was admitted: %+v", reports)
	}
}

// TestOlderClaimOwns: with no incumbent (a restart, or two Services applied
// together with the webhook bypassed) the older Service owns the host,
// whatever the names; later builds keep it even if the order of input
// changes.
func TestOlderClaimOwns(t *testing.T) {
	old := service("zz-old", "a", mapping("a", "/", "a", "host: api.example.com"))
	old.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	young := service("aa-young", "b", mapping("b", "/b/", "b", "host: api.example.com"))
	young.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	b := newBuilder()
	s, reports := build(t, b, Input{Services: []*corev1.Service{young, old}})
	if got := served(t, s, "api.example.com", "/b/1"); got != "zz-old/a" {
		t.Errorf("served by %q, want the older claim zz-old/a", got)
	}
	if len(reports) != 2 || !reports[1].Rejected || reports[1].Service != "aa-young/b" {
		t.Errorf("reports %+v", reports)
	}
	// Releasing the host hands it to the next claim.
	s, _ = build(t, b, Input{Services: []*corev1.Service{young}})
	if got := served(t, s, "api.example.com", "/b/1"); got != "aa-young/b" {
		t.Errorf("after the owner left, served by %q", got)
	}
}

// TestPrecedenceRuleIgnoresOrder: in one Build with no incumbents (a
// restart), a high-precedence route is denied against another namespace's
// route whichever was decided first: older, younger, or created in the same
// second with names sorting either way. Only the outranking route is
// rejected, and the other namespace serves.
func TestPrecedenceRuleIgnoresOrder(t *testing.T) {
	for _, c := range []struct {
		name            string
		grabAt, ownerAt int64
		grabNS, ownerNS string
	}{
		{"grab older", 1000, 2000, "zz-evil", "aa-shop"},
		{"grab younger", 2000, 1000, "aa-evil", "zz-shop"},
		{"same second, grab sorts first", 1000, 1000, "aa-evil", "zz-shop"},
		{"same second, grab sorts last", 1000, 1000, "zz-evil", "aa-shop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			grab := service(c.grabNS, "grab", mapping("grab", "/", "grab", "precedence: 1000000"))
			grab.CreationTimestamp = metav1.NewTime(time.Unix(c.grabAt, 0))
			owner := service(c.ownerNS, "posts", mapping("posts", "/posts/", "posts"))
			owner.CreationTimestamp = metav1.NewTime(time.Unix(c.ownerAt, 0))
			b := newBuilder()
			s, reports := build(t, b, Input{Services: []*corev1.Service{grab, owner}})
			var rejected []string
			for _, r := range reports {
				if r.Rejected {
					rejected = append(rejected, r.Service)
					if !strings.Contains(r.Problems.Error(), "precedence 1000000 would rank this route ahead of namespace \""+c.ownerNS) {
						t.Errorf("rejection: %v", r.Problems)
					}
				}
			}
			if want := []string{c.grabNS + "/grab"}; !slices.Equal(rejected, want) {
				t.Errorf("rejected %v, want %v", rejected, want)
			}
			if got := served(t, s, "blog.example.com", "/posts/1"); got != c.ownerNS+"/posts" {
				t.Errorf("/posts/1 served by %q", got)
			}
			if got := served(t, s, "blog.example.com", "/other"); got != "" {
				t.Errorf("/other served by %q; the outranking route was rejected", got)
			}
			// The next build agrees: nothing changed, nothing moves.
			s, _ = build(t, b, Input{Services: []*corev1.Service{owner, grab}})
			if got := served(t, s, "blog.example.com", "/posts/1"); got != c.ownerNS+"/posts" {
				t.Errorf("second build: /posts/1 served by %q", got)
			}
		})
	}
}

// TestDelegation: the owner's Namespace can let other namespaces serve its
// hosts; withdrawing the delegation stops their routes on those hosts at
// the next build, though they stay admitted for what they were.
func TestDelegation(t *testing.T) {
	delegating := func(value string) *corev1.Namespace {
		ns := namespace("shop", "")
		if value != "" {
			ns.Annotations = map[string]string{DelegateKey: value}
		}
		return ns
	}
	partner := service("payments", "pay", mapping("pay", "/pay/", "pay", "host: shop.example.com"))
	catchAll := service("payments", "all", mapping("all", "/", "all"))
	stranger := service("other", "x", mapping("x", "/x/", "x", "host: shop.example.com"))
	b := newBuilder()
	build(t, b, Input{Services: []*corev1.Service{shopIncumbent()}})
	in := Input{Services: []*corev1.Service{shopIncumbent(), partner, catchAll, stranger}, Namespaces: []*corev1.Namespace{delegating("payments")}}
	s, reports := build(t, b, in)
	for _, r := range reports {
		if r.Rejected != (r.Service == "other/x") {
			t.Errorf("report %+v", r)
		}
	}
	for path, want := range map[string]string{"/pay/1": "payments/pay", "/orders/1": "shop/orders", "/x/1": "payments/all", "/": "payments/all"} {
		if got := served(t, s, "shop.example.com", path); got != want {
			t.Errorf("delegated: %s served by %q, want %q", path, got, want)
		}
	}
	in.Namespaces = []*corev1.Namespace{delegating("")}
	s, _ = build(t, b, in)
	for path, want := range map[string]string{"/pay/1": "", "/orders/1": "shop/orders", "/x/1": ""} {
		if got := served(t, s, "shop.example.com", path); got != want {
			t.Errorf("withdrawn: %s served by %q, want %q", path, got, want)
		}
	}
	// "*" gives the protection up.
	in.Namespaces = []*corev1.Namespace{delegating("*")}
	s, _ = build(t, b, in)
	if got := served(t, s, "shop.example.com", "/x/1"); got != "other/x" {
		t.Errorf("delegated to everyone: /x/1 served by %q, want the stranger's route, now admitted", got)
	}
	if ps := s.Review(service("other", "y", mapping("y", "/y/", "y", "host: shop.example.com"))); ps[annotations.Key].HasErrors() {
		t.Errorf("delegated to everyone, a new namespace is still denied: %v", ps)
	}
}

// TestTableFailureIsolated: should the routes of all Services together
// ever fail to make a table although each Service's made one alone (an
// interaction no check foresaw, or a bug), the Services the router names
// are taken out and reported, and the snapshot builds for everyone else.
// The failure is injected by corrupting one Service's compiled routes, as
// no input is known to cause it.
func TestTableFailureIsolated(t *testing.T) {
	b := newBuilder()
	build(t, b, Input{Services: []*corev1.Service{service("shop", "a", mapping("a", "/a/", "a")), service("blog", "b", mapping("b", "/b/", "b"))}})
	b.services["shop/a"].compiled.routes[0].Path = "no-slash"
	s, reports := build(t, b, Input{Services: []*corev1.Service{service("shop", "a", mapping("a", "/a/", "a")), service("blog", "b", mapping("b", "/b/", "b"))}})
	if got := served(t, s, "x", "/b/1"); got != "blog/b" {
		t.Errorf("others: /b/1 served by %q", got)
	}
	if len(reports) != 1 || reports[0].Service != "shop/a" || !reports[0].Rejected || !strings.Contains(reports[0].Problems.Error(), "taken out of the route table") {
		t.Errorf("reports %+v", reports)
	}
	// The next build compiles the Service afresh and serves it again.
	s, _ = build(t, b, Input{Services: []*corev1.Service{service("shop", "a", mapping("a", "/a/", "a")), service("blog", "b", mapping("b", "/b/", "b"))}})
	if got := served(t, s, "x", "/a/1"); got != "shop/a" {
		t.Errorf("after recompiling: /a/1 served by %q", got)
	}
}

// TestExternalUpstreams: a host outside the cluster is routed to only when
// the platform's policy allows it; the refusal names the flag.
func TestExternalUpstreams(t *testing.T) {
	policy, err := upstream.ParseExternalPolicy("httpbin.org, *.example.com, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		service string
		allowed bool
		target  string // the endpoint when allowed
	}{
		{"httpbin.org:80", true, "httpbin.org:80"},
		{"https://api.example.com", true, "api.example.com:443"},
		{"127.0.0.1:9000", true, "127.0.0.1:9000"},
		{"api.other.net", false, ""},
		{"10.1.2.3:80", false, ""},
		{`"[::1]:80"`, false, ""},
		{"users.shop", true, ""}, // a Service: namespace shop exists
	} {
		svc := service("shop", "x", mapping("x", "/x/", c.service))
		for _, opts := range []Options{{External: policy}, {}} {
			b := newBuilderWith(opts)
			s, reports := build(t, b, Input{Services: []*corev1.Service{svc}})
			allowed := c.allowed && (opts.External != nil || c.target == "")
			if rejected := len(reports) == 1 && reports[0].Rejected; rejected == allowed {
				t.Errorf("%s (policy %v): reports %+v", c.service, opts.External != nil, reports)
				continue
			}
			if !allowed {
				if msg := reports[0].Problems.Error(); !strings.Contains(msg, "host outside the cluster") || !strings.Contains(msg, "--external-upstreams") {
					t.Errorf("%s: refusal %q does not name the flag", c.service, msg)
				}
				continue
			}
			r, ok := match(s, "", "/x/1")
			if !ok {
				t.Fatalf("%s: not served", c.service)
			}
			if got := r.Value.Upstream.Endpoints(); c.target != "" && (len(got) != 1 || got[0] != c.target) {
				t.Errorf("%s: endpoints %v, want %s", c.service, got, c.target)
			}
		}
	}
}

// TestBudgets: each budget at its limit is admitted and one past it is
// denied, naming the limit and the figure.
func TestBudgets(t *testing.T) {
	small := Budgets{MaxRoutes: 2, MaxConditions: 2, MaxRegexes: 2, MaxRegexProgram: 40, MaxRegexTotal: 60, MaxPrecedence: 10, MaxRateLimits: 1}
	docs := func(n int, each func(i int) string) string {
		var out []string
		for i := range n {
			out = append(out, each(i))
		}
		return strings.Join(out, "---\n")
	}
	name := func(i int) string { return string(rune('a' + i)) }
	rateLimit := func(i int) string { return "kind: RateLimit\nname: rl" + name(i) + "\nrate: 1\nunit: second\n" }
	for _, c := range []struct {
		budget      string
		atLimit     string
		pastLimit   string
		wantMessage string
	}{
		{"routes", docs(2, func(i int) string { return mapping(name(i), "/"+name(i)+"/", "s") }),
			docs(3, func(i int) string { return mapping(name(i), "/"+name(i)+"/", "s") }),
			"this is routed Mapping 3 of the Service; at most 2, the platform's --max-routes-per-service"},
		{"conditions", mapping("a", "/a/", "s", "headers:", "  x-a: \"1\"", "query_parameters:", "  q: \"1\""),
			mapping("a", "/a/", "s", "headers:", "  x-a: \"1\"", "  x-b: \"1\"", "query_parameters:", "  q: \"1\""),
			"the Mapping has 3 header and query conditions; at most 2, the platform's --max-conditions-per-route"},
		{"precedence", mapping("a", "/a/", "s", "precedence: -10"), mapping("a", "/a/", "s", "precedence: 11"),
			"precedence 11 is outside ±10, the platform's --max-precedence"},
		{"regex program", mapping("a", "/a/", "s", "regex_headers:", `  x-a: "[a-z]{30}"`),
			mapping("a", "/a/", "s", "regex_headers:", `  x-a: "[a-z]{50}"`),
			"regular expression compiles to 52 instructions; at most 40, the platform's --max-regex-program"},
		{"regex count", mapping("a", "/a/", "s", "regex_headers:", `  x-a: "a+"`, `  x-b: "b+"`) + "---\n" + mapping("b", "/b/", "s", "regex_headers:", `  x-a: "a+"`),
			mapping("a", "/a/", "s", "regex_headers:", `  x-a: "a+"`, `  x-b: "b+"`) + "---\n" + mapping("b", "/b/", "s", "regex_headers:", `  x-a: "c+"`),
			"the Service has more than 2, the platform's --max-regexes-per-service distinct regular expressions"},
		{"regex total", mapping("a", "/a/", "s", "regex_headers:", `  x-a: "[a-z]{30}"`, `  x-b: "[a-z]{20}"`),
			mapping("a", "/a/", "s", "regex_headers:", `  x-a: "[a-z]{30}"`, `  x-b: "[a-z]{29}"`),
			"the Service's regular expressions, counted at every use, compile to 63 instructions together; at most 60, the platform's --max-regex-total"},
		{"rate limits", mapping("a", "/a/", "s") + "---\n" + rateLimit(0),
			mapping("a", "/a/", "s") + "---\n" + docs(2, rateLimit),
			"the Service declares more than 1, the platform's --max-rate-limits-per-service RateLimits"},
	} {
		t.Run(c.budget, func(t *testing.T) {
			opts := Options{Budgets: small}
			if ps := opts.Review(service("t", "s", c.atLimit)); ps[annotations.Key].HasErrors() {
				t.Errorf("at the limit: %v", ps)
			}
			ps := opts.Review(service("t", "s", c.pastLimit))[annotations.Key]
			if !ps.HasErrors() || !strings.Contains(ps.Error(), c.wantMessage) {
				t.Errorf("past the limit: %v\nwant %q", ps, c.wantMessage)
			}
			b := newBuilderWith(opts)
			if _, reports := build(t, b, Input{Services: []*corev1.Service{service("t", "s", c.pastLimit)}}); len(reports) != 1 || !reports[0].Rejected {
				t.Errorf("the builder admits what the review denies: %+v", reports)
			}
		})
	}
}

// TestExternalNameFollowsThePolicy: an ExternalName Service is a host
// outside the cluster by another name, and is dialled only when the policy
// allows its host.
func TestExternalNameFollowsThePolicy(t *testing.T) {
	policy, err := upstream.ParseExternalPolicy("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	target := func(host string) *corev1.Service {
		svc := service("shop", "ext", "")
		svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, host
		return svc
	}
	route := service("shop", "front", mapping("front", "/x/", "ext:443"))
	for _, c := range []struct {
		host string
		want []string
	}{
		{"api.example.com", []string{"api.example.com:443"}},
		{"metadata.google.internal", nil},
		{"localhost", nil},
	} {
		b := newBuilderWith(Options{External: policy})
		s, _ := build(t, b, Input{Services: []*corev1.Service{route, target(c.host)}})
		r, ok := match(s, "", "/x/1")
		if !ok {
			t.Fatalf("%s: not routed", c.host)
		}
		if got := r.Value.Upstream.Endpoints(); !slices.Equal(got, c.want) {
			t.Errorf("ExternalName %s: endpoints %v, want %v", c.host, got, c.want)
		}
	}
}

// TestEmissaryDialectFollowsOwnership: with --compat=emissary, Emissary's
// annotations are decided by the same rules between namespaces, whichever
// dialect the incumbent wrote.
func TestEmissaryDialectFollowsOwnership(t *testing.T) {
	emissary := func(ns, name, body string) *corev1.Service {
		svc := service(ns, name, "")
		svc.Annotations = map[string]string{annotations.EmissaryKey: "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: " + name + "\n" + body}
		return svc
	}
	b := newBuilderWith(Options{Emissary: true})
	build(t, b, Input{Services: []*corev1.Service{shopIncumbent()}})
	for _, attacker := range []*corev1.Service{
		emissary("evil", "grab", "hostname: shop.example.com\nprefix: /orders/vip/\nservice: grab\n"),
		emissary("evil", "all", "hostname: \"*\"\nprefix: /\nservice: grab\nprecedence: 10\n"),
	} {
		s, reports := build(t, b, Input{Services: []*corev1.Service{attacker, shopIncumbent()}})
		if len(reports) != 1 || !reports[0].Rejected || reports[0].Annotation != annotations.EmissaryKey || !strings.Contains(reports[0].Problems.Error(), `namespace "shop"`) {
			t.Errorf("%s: reports %+v", attacker.Name, reports)
		}
		assertOnlyOwner(t, s)
	}
}

// TestAllowedHosts: a Namespace's gatehouse.dev/allowed-hosts limits the
// hosts its Services may route and attach certificates to, exactly or
// under a listed wildcard (whatever the case); a Mapping that
// would answer any host is refused there; a namespace without the
// annotation, or with "*", is not limited; a value that does not parse
// allows nothing. Each refusal names the field and the list.
func TestAllowedHosts(t *testing.T) {
	withHosts := func(name, v string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{HostsKey: v}}}
	}
	cases := []struct {
		ns, config string
		refused    string // "" when accepted; else a piece of the message
		path       string
	}{
		{"shop", mapping("m", "/", "s", "host: shop.example.com"), "", ""},
		{"shop", mapping("m", "/", "s", "host: SHOP.Example.com"), "", ""},
		{"shop", mapping("m", "/", "s", "host: api.shop.example.com"), "", ""},
		{"shop", mapping("m", "/", "s", "hostname: '*.shop.example.com'"), "", ""},
		{"shop", mapping("m", "/", "s", "hostname: '*.eu.shop.example.com'"), "", ""},
		{"shop", hostDoc("h", "shop.example.com", "tls"), "", ""},
		{"shop", mapping("m", "/", "s", "host: login.example.com"), `host "login.example.com" is not among those namespace "shop" may claim`, `Mapping "m".host`},
		{"shop", mapping("m", "/", "s", "hostname: '*.example.com'"), `host "*.example.com" is not among`, `Mapping "m".hostname`},
		{"shop", mapping("m", "/", "s"), `a Mapping without an exact host or a listed wildcard would answer any host`, `Mapping "m".host`},
		{"shop", mapping("m", "/", "s", "host: '.*'", "host_regex: true"), `would answer any host`, `Mapping "m".host`},
		{"shop", hostDoc("h", "login.example.com", "tls"), `host "login.example.com" is not among`, `Host "h".hostname`},
		{"free", mapping("m", "/", "s", "host: login.example.com"), "", ""},
		{"free", mapping("m", "/", "s"), "", ""},
		{"star", mapping("m", "/", "s", "host: anything.example.org"), "", ""},
		{"typo", mapping("m", "/", "s", "host: shop.example.com"), `may claim no host: its gatehouse.dev/allowed-hosts annotation does not parse`, `Mapping "m".host`},
	}
	namespaces := []*corev1.Namespace{
		withHosts("shop", "shop.example.com, *.shop.example.com"),
		withHosts("star", "*"),
		withHosts("typo", "shop.example.com, https://x"),
	}
	for _, tc := range cases {
		b := newBuilder()
		_, reports := build(t, b, Input{Services: []*corev1.Service{service(tc.ns, "s", tc.config)}, Namespaces: namespaces})
		var found *annotations.Problem
		rejected := false
		for _, r := range reports {
			rejected = rejected || r.Rejected
			for i, p := range r.Problems {
				if strings.Contains(p.Message, HostsKey) {
					found = &r.Problems[i]
				}
			}
		}
		switch {
		case tc.refused == "" && (rejected || found != nil):
			t.Errorf("%s: %q refused: %+v", tc.ns, tc.config, reports)
		case tc.refused != "" && (!rejected || found == nil):
			t.Errorf("%s: %q accepted; want refused with %q", tc.ns, tc.config, tc.refused)
		case tc.refused != "" && (!strings.Contains(found.Message, tc.refused) || found.Path != tc.path):
			t.Errorf("%s: %q: %s: %s; want %s: …%s…", tc.ns, tc.config, found.Path, found.Message, tc.path, tc.refused)
		}
	}
}

// FuzzParseHostAllow: any annotation value parses without panicking into
// a list that allows each host it names and, when it does not parse,
// allows nothing.
func FuzzParseHostAllow(f *testing.F) {
	f.Add("shop.example.com, *.shop.example.com", "api.shop.example.com")
	f.Add("*", "x")
	f.Add("https://x, *.*.y", "y")
	f.Add("A.B.\t*.C.d.", "x.c.d")
	f.Fuzz(func(t *testing.T, v, host string) {
		a := parseHostAllow(v)
		if a == nil {
			if !strings.Contains(v, "*") {
				t.Fatalf("%q allows every host", v)
			}
			return
		}
		if a.err != nil {
			if a.allows(host) || a.allows("shop.example.com") {
				t.Fatalf("%q does not parse but allows %q", v, host)
			}
			return
		}
		for h := range a.exact {
			if !a.allows(h) || !a.allows(strings.ToUpper(h)) {
				t.Fatalf("%q does not allow its own %q", v, h)
			}
		}
		for _, d := range a.wild {
			if !a.allows("x."+d) || !a.allows("*."+d) || a.allows(d) && !a.exact[d] {
				t.Fatalf("%q: wildcard *.%s allows wrongly", v, d)
			}
		}
	})
}
