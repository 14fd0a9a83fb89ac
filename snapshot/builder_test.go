package snapshot

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

func newBuilder() *Builder { return newBuilderWith(Options{}) }

func newBuilderWith(opts Options) *Builder {
	return NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{}), opts)
}

func service(ns, name, config string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	if config != "" {
		svc.Annotations = map[string]string{annotations.Key: config}
	}
	return svc
}

func mapping(name, prefix, svc string, extra ...string) string {
	return "kind: Mapping\nname: " + name + "\nprefix: " + prefix + "\nservice: " + svc + "\n" + strings.Join(extra, "\n") + "\n"
}

// served returns which Mapping a GET of path (any host) reaches.
func served(t *testing.T, s *Snapshot, host, path string) string {
	t.Helper()
	r, ok := match(s, host, path)
	if !ok {
		return ""
	}
	return r.Value.Mapping
}

func match(s *Snapshot, host, path string) (*router.Route[*Route], bool) {
	return s.Table.Match(&router.Request{Host: host, Method: "GET", Path: path})
}

func build(t *testing.T, b *Builder, in Input) (*Snapshot, []Report) {
	t.Helper()
	return b.Build(in)
}

func TestBuildCompilesRoutes(t *testing.T) {
	b := newBuilder()
	cfg := mapping("users", "/users/", "users", "rate_limits: [rl]") + "---\nkind: RateLimit\nname: rl\nrate: 60\nunit: minute\nkey: client_ip\n---\n" +
		mapping("raw", "/raw/", "users", `rewrite: ""`, "timeout_ms: 0")
	s, reports := build(t, b, Input{Services: []*corev1.Service{service("team", "users", cfg)}})
	if len(reports) != 1 || reports[0].Rejected || len(reports[0].Problems) != 0 {
		t.Fatalf("reports %+v", reports)
	}
	if s.Generation != 1 || s.Table.Len() != 2 {
		t.Fatalf("generation %d, %d routes", s.Generation, s.Table.Len())
	}
	m, _ := match(s, "x", "/users/7")
	r := m.Value
	if r.Mapping != "team/users" || r.Service != "team/users" || r.Timeout != DefaultTimeout || r.UpstreamPath("/users/7") != "/7" {
		t.Errorf("route %+v", r)
	}
	if r.Upstream.ID() != "team/users:80" || r.Target.String() != "http://users.team:80" {
		t.Errorf("upstream %q target %q", r.Upstream.ID(), r.Target.String())
	}
	if len(r.Limiters) != 1 || r.RateLimits[0] != "team/rl" {
		t.Fatalf("limits %v", r.RateLimits)
	}
	p := r.Limiters[0].Policy()
	if p.Limit != 1 || p.Burst != 60 || p.Key != limiter.KeyClientIP {
		t.Errorf("policy %+v, want 1/s, burst 60 (= rate), per client", p)
	}
	m, _ = match(s, "x", "/raw/a")
	if m.Value.Timeout != 0 || m.Value.UpstreamPath("/raw/a") != "/raw/a" {
		t.Errorf("timeout_ms 0 and rewrite \"\": %+v", m.Value)
	}
}

func TestUpstreamPath(t *testing.T) {
	for _, c := range []struct {
		kind            router.PathKind
		prefix, rewrite string
		enabled         bool
		in, want        string
	}{
		{router.Prefix, "/backend/", "/", true, "/backend/x", "/x"},
		{router.Prefix, "/foo", "/", true, "/foo/bar", "//bar"}, // Emissary's behaviour
		{router.Prefix, "/old/", "/new/", true, "/old/a?b", "/new/a?b"},
		{router.Prefix, "/keep/", "", false, "/keep/a", "/keep/a"},
		{router.Exact, "/status", "/healthz", true, "/status", "/healthz"},
		{router.Regex, "^/a/[0-9]+$", "/b", true, "/a/1", "/b"},
		{router.Regex, "^/a/[0-9]+$", "", false, "/a/1", "/a/1"},
	} {
		r := &Route{Kind: c.kind, Prefix: c.prefix, Rewrite: c.rewrite, RewriteEnabled: c.enabled}
		if got := r.UpstreamPath(c.in); got != c.want {
			t.Errorf("%v %q rewrite %q: %q → %q, want %q", c.kind, c.prefix, c.rewrite, c.in, got, c.want)
		}
	}
}

func TestInvalidEditKeepsLastGood(t *testing.T) {
	b := newBuilder()
	good := service("team", "users", mapping("users", "/users/", "users"))
	other := service("team", "orders", mapping("orders", "/orders/", "orders"))
	s1, _ := build(t, b, Input{Services: []*corev1.Service{good, other}})
	up1, _ := match(s1, "", "/users/1")

	bad := service("team", "users", mapping("users", "/users/", "users", "prefx: /typo/"))
	s2, reports := build(t, b, Input{Services: []*corev1.Service{bad, other}})
	if len(reports) != 1 || reports[0].Service != "team/users" || !reports[0].Rejected || !reports[0].ServingLastGood {
		t.Fatalf("reports %+v", reports)
	}
	if len(reports[0].Problems) != 1 || reports[0].Problems[0].Pos.Line != 5 {
		t.Errorf("problems %v, want one on line 5", reports[0].Problems)
	}
	if got := served(t, s2, "", "/users/1"); got != "team/users" {
		t.Errorf("after an invalid edit /users/ is served by %q, want the last good team/users", got)
	}
	if got := served(t, s2, "", "/orders/1"); got != "team/orders" {
		t.Errorf("an unrelated Service lost its route: %q", got)
	}
	up2, _ := match(s2, "", "/users/1")
	if up1.Value.Upstream != up2.Value.Upstream {
		t.Errorf("upstream (and its breaker) was not kept across rebuilds")
	}

	// The same bad annotation again is reported again but not re-parsed into anything new.
	_, reports = build(t, b, Input{Services: []*corev1.Service{bad, other}})
	if len(reports) != 1 || !reports[0].ServingLastGood {
		t.Errorf("unchanged bad annotation: reports %+v", reports)
	}
	// Fixing it serves the fix.
	fixed := service("team", "users", mapping("users", "/people/", "users"))
	s4, reports := build(t, b, Input{Services: []*corev1.Service{fixed, other}})
	if len(reports) != 1 || reports[0].Rejected {
		t.Errorf("fixed: reports %+v", reports)
	}
	if served(t, s4, "", "/people/1") != "team/users" || served(t, s4, "", "/users/1") != "" {
		t.Errorf("fixed config not served")
	}
}

func TestInvalidAtStartServesOthers(t *testing.T) {
	b := newBuilder()
	s, reports := build(t, b, Input{Services: []*corev1.Service{
		service("team", "bad", "kind: Mapping\nname: bad\n"),
		service("team", "good", mapping("good", "/good/", "good")),
	}})
	if served(t, s, "", "/good/") != "team/good" || s.Table.Len() != 1 {
		t.Errorf("the valid Service does not serve")
	}
	var rejected []string
	for _, r := range reports {
		if r.Rejected {
			rejected = append(rejected, r.Service)
			if r.ServingLastGood {
				t.Errorf("%s has no last good config", r.Service)
			}
		}
	}
	if strings.Join(rejected, ",") != "team/bad" {
		t.Errorf("rejected %v", rejected)
	}
}

func TestDeletedServiceLosesRoutes(t *testing.T) {
	b := newBuilder()
	build(t, b, Input{Services: []*corev1.Service{service("team", "a", mapping("a", "/a/", "a"))}})
	s, _ := build(t, b, Input{})
	if s.Table.Len() != 0 {
		t.Errorf("%d routes after the Service is gone", s.Table.Len())
	}
}

func TestCrossNamespaceTargetRejected(t *testing.T) {
	b := newBuilder()
	s, reports := build(t, b, Input{Services: []*corev1.Service{service("team-b", "steal", mapping("steal", "/x/", "db.team-a:5432"))}})
	if s.Table.Len() != 0 || len(reports) != 1 || !reports[0].Rejected ||
		!strings.Contains(reports[0].Problems.Error(), `"team-a", which does not allow routes from namespace "team-b"`) {
		t.Errorf("cross-namespace target: %d routes, reports %+v", s.Table.Len(), reports)
	}
}

func TestNewcomerCannotTakeHostAndPath(t *testing.T) {
	b := newBuilder()
	incumbent := service("team-z", "shop", mapping("shop", "/cart/", "shop", "host: shop.example.com"))
	build(t, b, Input{Services: []*corev1.Service{incumbent}})

	// "team-a" sorts before "team-z"; ownership must not depend on that.
	newcomer := service("team-a", "shop", mapping("grab", "/cart/", "shop", "host: shop.example.com", "precedence: 100"))
	s, reports := build(t, b, Input{Services: []*corev1.Service{newcomer, incumbent}})
	if got := served(t, s, "shop.example.com", "/cart/1"); got != "team-z/shop" {
		t.Errorf("host and path served by %q, want the incumbent team-z/shop", got)
	}
	if len(reports) != 1 || reports[0].Service != "team-a/shop" || !reports[0].Rejected ||
		!strings.Contains(reports[0].Problems.Error(), `host "shop.example.com" belongs to namespace "team-z"`) {
		t.Errorf("reports %+v", reports)
	}

	// Same namespace may add to its own host and path.
	sibling := service("team-z", "shop-v2", mapping("shop-v2", "/cart/", "shop-v2", "host: shop.example.com", `headers:`, `  x-v2: "1"`))
	_, reports = build(t, b, Input{Services: []*corev1.Service{newcomer, incumbent, sibling}})
	for _, r := range reports {
		if r.Service == "team-z/shop-v2" && r.Rejected {
			t.Errorf("same-namespace route rejected: %v", r.Problems)
		}
	}
}

func TestLimiterStateSurvivesRebuild(t *testing.T) {
	b := newBuilder()
	cfg := mapping("a", "/a/", "a", "rate_limits: [rl]") + "---\nkind: RateLimit\nname: rl\nrate: 1\nunit: hour\n"
	s1, _ := build(t, b, Input{Services: []*corev1.Service{service("t", "a", cfg), service("t", "b", mapping("b", "/b/", "b"))}})
	s2, _ := build(t, b, Input{Services: []*corev1.Service{service("t", "a", cfg), service("t", "b", mapping("b", "/bb/", "b"))}})
	r1, _ := match(s1, "", "/a/")
	r2, _ := match(s2, "", "/a/")
	if r1.Value.Limiters[0] != r2.Value.Limiters[0] {
		t.Errorf("an unchanged RateLimit got fresh buckets on rebuild")
	}
}

func TestResolveEndpoints(t *testing.T) {
	yes, no := true, false
	port := func(name string, n int32) discoveryv1.EndpointPort {
		p := discoveryv1.EndpointPort{Port: &n}
		if name != "" {
			p.Name = &name
		}
		return p
	}
	slice := func(svc string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: svc + "-x", Labels: map[string]string{serviceNameLabel: svc}},
			Ports:      ports, Endpoints: eps,
		}
	}
	ep := func(addr string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	named := service("t", "web", "")
	numbered := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "api"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(9000)}}}}
	slices := []*discoveryv1.EndpointSlice{
		slice("web", []discoveryv1.EndpointPort{port("metrics", 9090), port("http", 8080)},
			ep("10.0.0.2", &yes), ep("10.0.0.1", nil), ep("10.0.0.3", &no)),
		slice("api", []discoveryv1.EndpointPort{port("", 9000)}, ep("fd00::1", &yes)),
		slice("other", []discoveryv1.EndpointPort{port("http", 8080)}, ep("10.9.9.9", &yes)),
	}
	for _, c := range []struct {
		svc  *corev1.Service
		port int
		want string
	}{
		{named, 80, "10.0.0.1:8080,10.0.0.2:8080"}, // by name; nil Ready counts as ready; not-ready dropped
		{numbered, 80, "[fd00::1]:9000"},           // by target port number
		{named, 81, ""},                            // no such Service port
		{nil, 80, ""},                              // no such Service
	} {
		var own []*discoveryv1.EndpointSlice
		if c.svc != nil {
			own = slicesByService(slices)[serviceName{c.svc.Namespace, c.svc.Name}]
		}
		if got := strings.Join(resolveEndpoints(c.svc, c.port, own), ","); got != c.want {
			t.Errorf("resolve %v:%d = %q, want %q", c.svc != nil, c.port, got, c.want)
		}
	}
}

func TestUpdateEndpointsWithoutRebuild(t *testing.T) {
	b := newBuilder()
	svc := service("t", "web", mapping("web", "/", "web"))
	port, name := int32(8080), "http"
	slice := func(addrs ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "web-1", Labels: map[string]string{serviceNameLabel: "web"}},
			Ports:      []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		}
		for _, a := range addrs {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
		}
		return s
	}
	s1, _ := build(t, b, Input{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{slice("10.0.0.1")}})
	r, _ := match(s1, "", "/")
	b.UpdateEndpoints(Input{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{slice("10.0.0.1", "10.0.0.2")}})
	if got := strings.Join(r.Value.Upstream.Endpoints(), ","); got != "10.0.0.1:8080,10.0.0.2:8080" {
		t.Errorf("endpoints after UpdateEndpoints: %q", got)
	}
	if b.generation != 1 {
		t.Errorf("UpdateEndpoints built a snapshot (generation %d)", b.generation)
	}
}

func TestSnapshotCheckAgreesWithBuild(t *testing.T) {
	b := newBuilder()
	incumbent := service("team-z", "shop", mapping("shop", "/cart/", "shop", "host: shop.example.com"))
	canary := service("team-z", "v1", mapping("v1", "/api/", "v1", "weight: 80"))
	s, _ := build(t, b, Input{Services: []*corev1.Service{incumbent, canary}})

	for _, c := range []struct {
		svc  *corev1.Service
		want string
	}{
		{service("team-a", "grab", mapping("grab", "/cart/", "grab", "host: shop.example.com")), `host "shop.example.com" belongs to namespace "team-z"`},
		{service("team-a", "steal", mapping("steal", "/x/", "db.team-z")), `does not allow routes from namespace "team-a"`},
		{service("team-z", "v2", mapping("v2", "/api/", "v2", "weight: 30")), `add up to 110%`},
		{service("team-z", "v2", mapping("v2", "/api/", "v2", "weight: 20")), ``},
		{incumbent, ``}, // re-applying yourself is fine
	} {
		got := s.Review(c.svc)[annotations.Key].Error()
		if c.want == "" && len(s.Review(c.svc)[annotations.Key]) != 0 || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s/%s: Check = %q, want %q", c.svc.Namespace, c.svc.Name, got, c.want)
		}
	}
}

// TestRebuildKeepsGroupsOfReusedRoutes: routes reused from an earlier build
// keep their places in canary groups when another Service changes, and a
// Service with several Mappings has each in its own group.
func TestRebuildKeepsGroupsOfReusedRoutes(t *testing.T) {
	b := newBuilder()
	a := service("t", "a", mapping("solo", "/a/", "a")+"---\n"+mapping("canary", "/b/", "a", "weight: 30"))
	bsvc := service("t", "b", mapping("main", "/b/", "b", "weight: 70"))
	other := service("t", "c", mapping("c", "/c/", "c"))
	in := Input{Services: []*corev1.Service{a, bsvc, other}}
	for round := range 3 {
		s, reports := build(t, b, in)
		for _, r := range reports {
			if r.Rejected {
				t.Fatalf("round %d: %+v", round, r)
			}
		}
		weights := map[string]int{}
		m, ok := match(s, "x", "/b/1")
		if !ok {
			t.Fatalf("round %d: /b/ unrouted", round)
		}
		for _, r := range s.Table.Group(m) {
			weights[r.Value.Mapping] = r.Value.Weight
		}
		if len(weights) != 2 || weights["t/canary"] != 30 || weights["t/main"] != 70 {
			t.Errorf("round %d: group of /b/ = %v, want t/canary 30 and t/main 70", round, weights)
		}
		if m, ok := match(s, "x", "/a/1"); !ok || m.Value.Mapping != "t/solo" || len(s.Table.Group(m)) != 1 || m.Value.Weight != 100 {
			t.Errorf("round %d: /a/ = %+v", round, m)
		}
		// Only the unrelated Service changes from here on.
		c := other.DeepCopy()
		c.Annotations[annotations.Key] = mapping("c", fmt.Sprintf("/c%d/", round), "c")
		in.Services[2] = c
	}
}

func namespace(name, grant string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if grant != "" {
		ns.Annotations = map[string]string{annotations.GrantKey: grant}
	}
	return ns
}

// TestGrantedCrossNamespaceTarget: a namespace's grant lets the namespaces
// it names route to its Services; withdrawing it stops those routes at the
// next build even though the Mapping itself did not change.
func TestGrantedCrossNamespaceTarget(t *testing.T) {
	b := newBuilder()
	front := service("frontend", "edge", mapping("pay", "/pay/", "billing.finance:8080"))
	in := Input{Services: []*corev1.Service{front}, Namespaces: []*corev1.Namespace{namespace("finance", "frontend, partners")}}
	s, reports := build(t, b, in)
	if len(reports) != 1 || reports[0].Rejected {
		t.Fatalf("granted: reports %+v", reports)
	}
	if m, ok := match(s, "x", "/pay/1"); !ok || m.Value.Target.Namespace != "finance" {
		t.Fatalf("granted route not served: %+v", m)
	}
	if ps := s.Review(service("other", "x", mapping("pay2", "/pay2/", "billing.finance:8080"))); len(ps[annotations.Key]) != 1 {
		t.Errorf("Check for a namespace the grant does not name: %v", ps)
	}

	in.Namespaces = []*corev1.Namespace{namespace("finance", "partners")}
	s, _ = build(t, b, in)
	if _, ok := match(s, "x", "/pay/1"); ok {
		t.Errorf("route still served after the grant was withdrawn")
	}
	in.Namespaces = []*corev1.Namespace{namespace("finance", "*")}
	s, _ = build(t, b, in)
	if _, ok := match(s, "x", "/pay/1"); !ok {
		t.Errorf("route not served again under a grant to every namespace")
	}
	in.Namespaces = []*corev1.Namespace{namespace("finance", "frontend,Not_A_Name")}
	s, _ = build(t, b, in)
	if _, ok := match(s, "x", "/pay/1"); ok {
		t.Errorf("a grant that does not parse still grants")
	}
}

func mustParse(t *testing.T, ns, text string) *annotations.Config {
	t.Helper()
	cfg, problems := annotations.Parse(text, annotations.Options{Namespace: ns})
	if cfg == nil {
		t.Fatalf("parse: %v", problems)
	}
	return cfg
}

// TestShadowsStayInTheirNamespace: a shadow Mapping mirrors the routes of
// its own namespace with the same match criteria, never another team's:
// mirroring is a copy of every request, credentials and all.
func TestShadowsStayInTheirNamespace(t *testing.T) {
	b := newBuilder()
	s, reports := build(t, b, Input{Services: []*corev1.Service{
		service("shop", "orders", mapping("orders", "/orders/", "orders")),
		service("shop", "orders-next", mapping("orders-copy", "/orders/", "orders-next", "shadow: true", "weight: 25")),
		service("evil", "tap", mapping("tap", "/orders/", "tap", "shadow: true")),
	}})
	for _, r := range reports {
		if r.Rejected {
			t.Fatalf("%s rejected: %v", r.Service, r.Problems)
		}
	}
	r, ok := match(s, "any", "/orders/1")
	if !ok || r.Value.Mapping != "shop/orders" {
		t.Fatalf("/orders/1 served by %v; a shadow must never serve", r)
	}
	if got := r.Value.Shadows; len(got) != 1 || got[0].Route.Mapping != "shop/orders-copy" || got[0].Percent != 25 {
		t.Fatalf("shadows %+v, want only shop/orders-copy at 25%%", got)
	}
}
