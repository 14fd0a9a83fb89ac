package snapshot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

func TestAuthBudget(t *testing.T) {
	var docs []string
	for i := range 3 {
		docs = append(docs, fmt.Sprintf("kind: Auth\nname: a%d\napi_key:\n  secrets: [k]\n", i))
	}
	b := newBuilderWith(Options{Budgets: Budgets{MaxAuths: 2}})
	_, reports := build(t, b, Input{Services: []*corev1.Service{service("a", "many", strings.Join(docs, "---\n"))}})
	found := false
	for _, r := range reports {
		for _, p := range r.Problems {
			found = found || strings.Contains(p.Message, "more than 2, the platform's --max-auths-per-service")
		}
	}
	if !found {
		t.Errorf("three Auths with a budget of two: %+v", reports)
	}
}

// TestExplainAuth: explain says which Auth checks a route and whether it
// needs a consumer: a Mapping's own Auth, an Emissary namespace's
// AuthService, bypass_auth skipping that; nothing for a route without.
func TestExplainAuth(t *testing.T) {
	emissary := func(ns, name, body string) *corev1.Service {
		svc := service(ns, name, "")
		svc.Annotations = map[string]string{annotations.EmissaryKey: body}
		return svc
	}
	b := newBuilderWith(Options{Emissary: true})
	s, reports := build(t, b, Input{Services: []*corev1.Service{
		service("shop", "api", mapping("orders", "/orders/", "api", "auth: sso", "require_consumer: true")+
			"---\nkind: Auth\nname: sso\nexternal:\n  service: sso:3000\n  consumer_header: x-user\n---\n"+mapping("open", "/open/", "api")),
		emissary("legacy", "gw", "---\napiVersion: getambassador.io/v3alpha1\nkind: AuthService\nname: authn\nauth_service: authz:3000\n"+
			"---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: guarded\nprefix: /legacy/\nservice: gw\n"+
			"---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: public\nprefix: /legacy/public/\nservice: gw\nbypass_auth: true\n"),
	}})
	for _, r := range reports {
		if r.Rejected {
			t.Fatalf("rejected: %+v", r)
		}
	}
	for path, want := range map[string]string{
		"/orders/1":        "external: Auth shop/sso (Service shop/api), a consumer required",
		"/open/1":          "",
		"/legacy/x":        "external: the namespace's AuthService legacy/authn (Service legacy/gw)",
		"/legacy/public/x": "none: bypass_auth skips the namespace's AuthService legacy/authn",
	} {
		r, err := ExplainRequest("GET", "http://example.com"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e := Explain(s, r); !e.Matched || e.Auth != want {
			t.Errorf("%s: matched %v, auth %q; want %q", path, e.Matched, e.Auth, want)
		}
	}
}

// TestRoutesRedactCredentials: the route table (routes, the admin API,
// the diagnostics page) shows header and query values a Mapping adds or
// matches, except those whose names say they carry a credential.
func TestRoutesRedactCredentials(t *testing.T) {
	b := newBuilder()
	s, reports := build(t, b, Input{Services: []*corev1.Service{service("shop", "api", mapping("orders", "/orders/", "api",
		"add_request_headers:\n  Authorization: Bearer s3cret-upstream\n  X-Api-Key: k3y-upstream\n  X-Trace-Tag: visible-1",
		"add_response_headers:\n  Set-Cookie: sess=c00kie",
		"headers:\n  X-Internal-Token: t0ken-match\n  X-Team: visible-2",
		"regex_headers:\n  X-Client-Secret: '^r3gex-secret$'",
		"query_parameters:\n  api_key: q-k3y\n  page: visible-3"))}})
	for _, r := range reports {
		if r.Rejected {
			t.Fatalf("rejected: %+v", r)
		}
	}
	var out strings.Builder
	if err := WriteRoutes(&out, s); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret-upstream", "k3y-upstream", "c00kie", "t0ken-match", "r3gex-secret", "q-k3y"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the route table shows %q:\n%s", secret, out.String())
		}
	}
	for _, shown := range []string{"visible-1", "visible-2", "visible-3", "<redacted>"} {
		if !strings.Contains(out.String(), shown) {
			t.Errorf("the route table lacks %q:\n%s", shown, out.String())
		}
	}
	// The rows themselves, which /api/routes serves as JSON and the
	// diagnostics page renders, hold the same redacted values.
	js, err := json.Marshal(RouteRows(s))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret-upstream", "k3y-upstream", "c00kie", "t0ken-match", "r3gex-secret", "q-k3y"} {
		if strings.Contains(string(js), secret) {
			t.Errorf("the rows (JSON) hold %q:\n%s", secret, js)
		}
	}
	if !strings.Contains(string(js), "visible-2") || !strings.Contains(string(js), "visible-3") {
		t.Errorf("the rows (JSON) lack the plain condition values:\n%s", js)
	}
}
