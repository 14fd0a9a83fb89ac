package server

import (
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// hostile is what an author may put in a Mapping, and a user in explain's
// form, hoping a page runs it.
const hostile = `<script>alert(1)</script>`

// diagService is a Service of namespace t whose annotation is config and
// whose endpoints are addrs (127.0.0.1:port).
func diagService(t *testing.T, name, config string, addrs ...string) (*corev1.Service, *discoveryv1.EndpointSlice) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name, Annotations: map[string]string{annotations.Key: config}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if len(addrs) == 0 {
		return svc, nil
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name + "-1", Labels: map[string]string{"kubernetes.io/service-name": name}}}
	for _, a := range addrs {
		host, portStr, _ := net.SplitHostPort(a)
		p, err := strconv.Atoi(portStr)
		if err != nil {
			t.Fatal(err)
		}
		port := int32(p)
		slice.Ports = []discoveryv1.EndpointPort{{Port: &port}}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{host}})
	}
	return svc, slice
}

// shopConfig routes /shop/ with a rate limit, and a header condition whose
// value is hostile.
const shopConfig = `kind: Mapping
name: shop
prefix: /shop/
service: shop
rate_limits: [per-client]
---
kind: Mapping
name: shop-hdr
prefix: /hdr/
headers:
  x-evil: "` + hostile + `"
service: shop
---
kind: RateLimit
name: per-client
rate: 5
unit: minute
key: client_ip
`

// diagInput is three Services: shop (accepted, with the hostile header
// condition), app (accepted) and bad (rejected: an unknown field, and a
// Mapping name that is hostile).
func diagInput(t *testing.T, shopAddr string, badConfig string) snapshot.Input {
	shop, shopSlice := diagService(t, "shop", shopConfig, shopAddr)
	app, appSlice := diagService(t, "app", "kind: Mapping\nname: app\nprefix: /\nservice: app\n", "127.0.0.1:9")
	bad, _ := diagService(t, "bad", badConfig)
	return snapshot.Input{Services: []*corev1.Service{shop, app, bad}, Slices: []*discoveryv1.EndpointSlice{shopSlice, appSlice}}
}

const badConfig = "kind: Mapping\nname: bad\nprefx: /bad/\nservice: app\n---\nkind: Mapping\nname: \"" + hostile + "\"\nprefix: /x/\nservice: app\n"

func newDiagServer(t *testing.T) *Server {
	t.Helper()
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true})
	t.Cleanup(s.stopBG)
	return s
}

// diagGet asks s's admin mux for target; the answer must be an HTML page.
func diagGet(t *testing.T, s *Server, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET %.80s: Content-Type %q", target, ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("GET %.80s: Content-Security-Policy %q lets something run", target, csp)
	}
	return rec.Code, rec.Body.String()
}

// TestDiagPages: every page renders what it is for.
func TestDiagPages(t *testing.T) {
	s := newDiagServer(t)
	s.Apply(diagInput(t, "127.0.0.1:8081", badConfig))
	for _, c := range []struct {
		target string
		want   []string
	}{
		{"/diag/", []string{"generation 1", "3 annotated", "1 rejected", `href="/diag/routes"`, `href="/diag/explain"`}},
		{"/diag/routes", []string{`id="route-1"`, "t/shop", "t/shop-hdr", "t/app", "prefix /shop/",
			`href="/diag/upstream?id=t%2fshop%3a80"`, `href="/diag/services#svc-t%2fshop"`, `href="/diag/limits#limit-t%2fshop%2fper-client"`, "t/per-client",
			"header X-Evil=&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;"}},
		{"/diag/services", []string{`id="svc-t/bad"`, "rejected", "none of its routes are served", `id="svc-t/shop"`, "accepted",
			"3:1", `Mapping &#34;bad&#34;.prefx`, `unknown field &#34;prefx&#34;`, `href="/diag/routes#route-`, `href="/diag/upstream?id=t%2fshop%3a80"`}},
		{"/diag/upstreams", []string{"t/shop:80", "t/app:80", "closed", `href="/diag/upstream?id=t%2fapp%3a80"`}},
		{"/diag/upstream?id=t/shop:80", []string{"127.0.0.1:8081", "in balancing", "closed", `href="/diag/routes#route-`, "t/shop-hdr"}},
		{"/diag/limits", []string{`id="limit-t/shop/per-client"`, "client-ip", "5/min", "t/shop"}},
		{"/diag/snapshots", []string{"<td>1</td>", "t/bad</a>: added, rejected", "t/shop</a>: added, accepted", " ms</td>"}},
		{"/diag/explain", []string{`<form method="get" action="/diag/explain"`, `name="url"`, `name="headers"`}},
		{"/diag/explain?method=get&url=" + url.QueryEscape("http://a.example.com/shop/x?q=1") + "&headers=" + url.QueryEscape("X-A: b\r\n\r\nHost: b.example.com"),
			[]string{`id="answer"`, "GET /shop/x?q=1", "b.example.com", "matched", `href="/diag/routes#route-`, "t/shop</a>", `href="/diag/upstream?id=t%2fshop%3a80"`, "/x?q=1", "t/per-client"}},
	} {
		code, body := diagGet(t, s, c.target)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", c.target, code, body)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %s in\n%s", c.target, w, body)
			}
		}
	}
}

// TestDiagLinks: every link under /diag/, from the overview on, answers
// 200, and every #fragment names an element of its page.
func TestDiagLinks(t *testing.T) {
	s := newDiagServer(t)
	s.Apply(diagInput(t, "127.0.0.1:8081", badConfig))
	hrefs := regexp.MustCompile(`href="([^"]*)"`)
	seen := map[string]bool{"/diag/": true}
	queue := []string{"/diag/"}
	bodies := map[string]string{}
	var fragments [][2]string // page, fragment
	for len(queue) > 0 && len(seen) < 500 {
		target := queue[0]
		queue = queue[1:]
		code, body := diagGet(t, s, target)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", target, code)
			continue
		}
		bodies[target] = body
		for _, m := range hrefs.FindAllStringSubmatch(body, -1) {
			link := html.UnescapeString(m[1])
			if !strings.HasPrefix(link, "/diag/") {
				t.Errorf("%s links outside the page: %q", target, link)
				continue
			}
			page, frag, _ := strings.Cut(link, "#")
			if frag != "" {
				fragments = append(fragments, [2]string{page, frag})
			}
			if !seen[page] {
				seen[page] = true
				queue = append(queue, page)
			}
		}
	}
	for _, p := range []string{"/diag/routes", "/diag/services", "/diag/upstreams", "/diag/limits", "/diag/snapshots", "/diag/explain", "/diag/upstream?id=t%2fshop%3a80"} {
		if !seen[p] {
			t.Errorf("no link leads to %s (crawled %d pages)", p, len(seen))
		}
	}
	for _, f := range fragments {
		frag, err := url.PathUnescape(f[1])
		if err != nil {
			t.Errorf("%s#%s: %v", f[0], f[1], err)
			continue
		}
		if !strings.Contains(bodies[f[0]], `id="`+html.EscapeString(frag)+`"`) {
			t.Errorf("%s has no element #%s", f[0], frag)
		}
	}
}

// TestDiagEscapes: what Services and users write is shown, never run.
func TestDiagEscapes(t *testing.T) {
	s := newDiagServer(t)
	s.Apply(diagInput(t, "127.0.0.1:8081", badConfig))
	q := url.Values{"url": {`http://a.example.com/hdr/"><script>x</script>`}, "headers": {"X-Evil: " + hostile}, "method": {"GET"}}
	for _, target := range []string{"/diag/", "/diag/routes", "/diag/services", "/diag/upstreams", "/diag/upstream?id=t/shop:80", "/diag/limits", "/diag/snapshots", "/diag/explain?" + q.Encode()} {
		code, body := diagGet(t, s, target)
		if code != http.StatusOK || strings.Contains(strings.ToLower(body), "<script") {
			t.Errorf("GET %s: %d, a script element in\n%s", target, code, body)
		}
		shows := strings.Contains(target, "routes") || strings.Contains(target, "services") || strings.Contains(target, "explain")
		if shows && !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the hostile text is not shown, escaped:\n%s", target, body)
		}
	}
	// The explained request matched the hostile header condition.
	if _, body := diagGet(t, s, "/diag/explain?"+q.Encode()); !strings.Contains(body, "t/shop-hdr") {
		t.Errorf("the hostile header did not match its Mapping:\n%s", body)
	}
}

// TestDiagBadInput: explain's form is bounded and checked as /api/explain
// is; unknown upstreams are 404; before the first snapshot, the pages say
// so.
func TestDiagBadInput(t *testing.T) {
	s := newDiagServer(t)
	for _, target := range []string{"/diag/routes", "/diag/services", "/diag/upstreams", "/diag/upstream?id=x", "/diag/limits", "/diag/snapshots", "/diag/explain?url=/"} {
		if code, body := diagGet(t, s, target); code != http.StatusServiceUnavailable || !strings.Contains(body, "no snapshot served yet") {
			t.Errorf("GET %s before the first snapshot: %d\n%s", target, code, body)
		}
	}
	if code, body := diagGet(t, s, "/diag/"); code != http.StatusOK || !strings.Contains(body, "not ready") {
		t.Errorf("GET /diag/ before the first snapshot: %d\n%s", code, body)
	}
	s.Apply(diagInput(t, "127.0.0.1:8081", badConfig))
	var many strings.Builder
	for i := range maxExplainHeaders + 1 {
		fmt.Fprintf(&many, "X-%d: v\n", i)
	}
	for _, c := range []struct{ query, want string }{
		{"url=/a&verb=GET", `unknown parameter &#34;verb&#34;`},
		{"url=%zz", "query: "},
		{"url=/a&url=/b", "want one url"},
		{"url=/a&method=G%20T", `method &#34;G T&#34;: not an HTTP method`},
		{"url=ftp://x/", "want http://host/path"},
		{"url=/a&headers=" + url.QueryEscape("X-A"), `want &#39;Name: value&#39;`},
		{"url=/a&headers=" + url.QueryEscape(many.String()), "65 headers, more than the 64 allowed"},
		{"url=" + url.QueryEscape("/"+strings.Repeat("x", maxExplainURL)), "more than the 8192 allowed"},
		{"url=/a&headers=" + url.QueryEscape("X-A: "+strings.Repeat("v", maxExplainHeader)), "header 1: 8197 bytes"},
	} {
		code, body := diagGet(t, s, "/diag/explain?"+c.query)
		if code != http.StatusBadRequest || !strings.Contains(body, `id="error"`) || !strings.Contains(body, c.want) || strings.Contains(body, `id="answer"`) {
			t.Errorf("?%.60s: %d, want 400 and %q in\n%.2000s", c.query, code, c.want, body)
		}
	}
	if code, body := diagGet(t, s, "/diag/upstream?id=t/nothing:80"); code != http.StatusNotFound || !strings.Contains(body, "no route of generation 1 uses an upstream") {
		t.Errorf("an unknown upstream: %d\n%s", code, body)
	}
	rec := httptest.NewRecorder()
	s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/diag", nil))
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/diag/" {
		t.Errorf("GET /diag: %d to %q, want a redirect to /diag/", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/diag/explain?url=/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /diag/explain: %d, want 405", rec.Code)
	}
}

// TestDiagServiceStatus: a bad edit leaves a Service serving its last good
// configuration, accepted when it was; the history says what changed in
// each build and keeps the last maxBuilds.
func TestDiagServiceStatus(t *testing.T) {
	s := newDiagServer(t)
	in := diagInput(t, "127.0.0.1:8081", badConfig)
	s.Apply(in)
	status := func(name string) serviceStatus {
		t.Helper()
		for _, st := range s.diag.statuses() {
			if st.Name == name {
				return st
			}
		}
		t.Fatalf("no status for %s", name)
		return serviceStatus{}
	}
	shop := status("t/shop")
	if shop.Rejected || shop.AcceptedAt.IsZero() {
		t.Fatalf("t/shop: %+v", shop)
	}
	if bad := status("t/bad"); !bad.Rejected || bad.ServingLastGood || !bad.AcceptedAt.IsZero() || len(bad.Problems) == 0 {
		t.Fatalf("t/bad: %+v", bad)
	}

	// Unchanged: nothing changed, the time accepted stays.
	s.Apply(in)
	if st := status("t/shop"); !st.AcceptedAt.Equal(shop.AcceptedAt) {
		t.Errorf("t/shop accepted again at %v, first %v", st.AcceptedAt, shop.AcceptedAt)
	}
	// A bad edit: the last good configuration, accepted when it was.
	in.Services[0] = in.Services[0].DeepCopy()
	in.Services[0].Annotations[annotations.Key] = shopConfig + "---\nkind: Mapping\nname: more\nprefix: /more/\nservice: shop\ntimeout_ms: soon\n"
	s.Apply(in)
	if st := status("t/shop"); !st.Rejected || !st.ServingLastGood || !st.AcceptedAt.Equal(shop.AcceptedAt) {
		t.Errorf("t/shop after a bad edit: %+v", st)
	}
	_, body := diagGet(t, s, "/diag/services")
	if !strings.Contains(body, "serving last good") || !strings.Contains(body, "timeout_ms") {
		t.Errorf("services page after a bad edit:\n%s", body)
	}
	// Fixed: accepted anew. Removed: gone.
	in.Services[0] = in.Services[0].DeepCopy()
	in.Services[0].Annotations[annotations.Key] = shopConfig + "---\nkind: Mapping\nname: more\nprefix: /more/\nservice: shop\n"
	s.Apply(in)
	if st := status("t/shop"); st.Rejected || !st.AcceptedAt.After(shop.AcceptedAt) {
		t.Errorf("t/shop fixed: %+v, first accepted %v", st, shop.AcceptedAt)
	}
	in.Services = in.Services[:2]
	s.Apply(in)

	h := s.diag.history()
	changes := func(b buildRecord) string {
		var out []string
		for _, c := range b.Changed {
			out = append(out, c.Service+": "+c.What)
		}
		return strings.Join(out, "; ")
	}
	for i, want := range []string{ // newest first
		"t/bad: removed",
		"t/shop: accepted a change",
		"t/shop: rejected",
		"",
		"t/app: added, accepted; t/bad: added, rejected; t/shop: added, accepted",
	} {
		if got := changes(h[i]); got != want {
			t.Errorf("build %d changed %q, want %q", h[i].Generation, got, want)
		}
	}
	if h[0].Generation != 5 || h[0].Services != 2 || h[0].Rejected != 0 || h[4].Rejected != 1 || h[0].Routes == 0 {
		t.Errorf("last build: %+v; first %+v", h[0], h[4])
	}

	for range maxBuilds + 10 {
		s.Apply(in)
	}
	if h := s.diag.history(); len(h) != maxBuilds || h[0].Generation != 5+maxBuilds+10 || h[maxBuilds-1].Generation != 16 {
		t.Errorf("history: %d builds, %d to %d", len(h), h[len(h)-1].Generation, h[0].Generation)
	}
}

// TestDiagHosts: the hosts page says which namespace owns each exact host,
// from which Service's claim, whom it delegates to, and shows each
// Namespace's grant, delegation and allowed hosts, flagging a value read
// as nothing.
func TestDiagHosts(t *testing.T) {
	s := newDiagServer(t)
	shop, _ := diagService(t, "shop", "kind: Mapping\nname: shop\nhost: shop.example.com\nprefix: /\nservice: shop\n")
	ns := func(name string, ann map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	}
	s.Apply(snapshot.Input{Services: []*corev1.Service{shop}, Namespaces: []*corev1.Namespace{
		ns("t", map[string]string{snapshot.DelegateKey: "u, v", snapshot.HostsKey: "shop.example.com, *.shop.example.com"}),
		ns("w", map[string]string{snapshot.HostsKey: "https://x" + hostile, annotations.GrantKey: "*"}),
	}})
	code, body := diagGet(t, s, "/diag/hosts")
	if code != http.StatusOK {
		t.Fatalf("GET /diag/hosts: %d\n%s", code, body)
	}
	for _, want := range []string{`id="host-shop.example.com"`, `href="/diag/services#svc-t%2fshop"`, "u v ", `id="ns-t"`,
		"shop.example.com, *.shop.example.com", `id="ns-w"`, "read as nothing", "is not a host or *.domain", "&lt;script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, hostile) {
		t.Errorf("a Namespace annotation was written unescaped")
	}
	if code, body := diagGet(t, s, "/diag/"); code != http.StatusOK || !strings.Contains(body, `href="/diag/hosts"`) {
		t.Errorf("the overview does not link the hosts page")
	}
	// The same as JSON.
	rec := httptest.NewRecorder()
	s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/hosts", nil))
	var got struct {
		Hosts      []snapshot.HostOwner         `json:"hosts"`
		Namespaces []snapshot.NamespaceSettings `json:"namespaces"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("/api/hosts: %d %v\n%s", rec.Code, err, rec.Body.String())
	}
	if len(got.Hosts) != 1 || got.Hosts[0].Host != "shop.example.com" || got.Hosts[0].Service != "t/shop" || strings.Join(got.Hosts[0].Delegates, ",") != "u,v" ||
		len(got.Namespaces) != 2 || got.Namespaces[1].Namespace != "w" || len(got.Namespaces[1].Problems) != 1 || got.Namespaces[1].Grant != "*" {
		t.Errorf("/api/hosts: %s", rec.Body.String())
	}
}
