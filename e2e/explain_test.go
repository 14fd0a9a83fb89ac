package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainAgreesWithGateway asks `gatehouse explain` about requests and
// sends the same requests through a running gateway over the same
// manifests: the answers must agree (route, upstream Service, path and query,
// Host header, redirects, 404s).
func TestExplainAgreesWithGateway(t *testing.T) {
	shop := startUpstream(t, echo("shop"))
	api := startUpstream(t, echo("api"))
	legacy := startUpstream(t, echo("legacy"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop.yaml"), serviceYAML("shop", `kind: Mapping
name: shop
host: shop.example.com
prefix: /
service: shop
---
kind: Mapping
name: cart
host: shop.example.com
prefix: /cart/
rewrite: /v2/cart/
host_rewrite: cart.internal
service: shop
---
kind: Mapping
name: item
prefix: ^/items/([0-9]+)$
prefix_regex: true
regex_rewrite:
  pattern: ^/items/([0-9]+)$
  substitution: /catalog/${1}
service: shop
---
kind: Mapping
name: moved
prefix: /old/
host_redirect: true
service: www.example.com
prefix_redirect: /new/
`, shop))
	writeFile(t, filepath.Join(dir, "api.yaml"), serviceYAML("api", `kind: Mapping
name: api
prefix: /api/
service: api
---
kind: Mapping
name: api-beta
prefix: /api/
headers:
  x-beta: true
query_parameters:
  v: "2"
service: api
rewrite: /beta/
---
kind: Mapping
name: api-any-case
prefix: /API-DOCS/
case_sensitive: false
service: api
rewrite: /docs/
---
kind: Mapping
name: api-post
prefix: /api/orders
prefix_exact: true
method_regex: true
method: POST|PUT
service: api
rewrite: ""
`, api))
	// An Emissary annotation, read with --compat=emissary.
	legacyYAML := `apiVersion: v1
kind: Service
metadata:
  name: legacy
  namespace: default
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: legacy_mapping
      prefix: /legacy/
      service: legacy
      precedence: 1
      headers:
        x-legacy: True
      ---
      apiVersion: getambassador.io/v2
      kind: Module
      name: ambassador
      config: {}
spec:
  ports:
  - name: http
    port: 80
---
` + strings.SplitN(serviceYAML("legacy", "", legacy), "---\n", 2)[1]
	writeFile(t, filepath.Join(dir, "legacy.yaml"), legacyYAML)

	g := startGateway(t, dir, "--compat=emissary")
	manifests, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))

	for _, c := range []struct {
		method, host, target string
		headers              []string
	}{
		{"GET", "shop.example.com", "/", nil},
		{"GET", "shop.example.com:8443", "/cart/42?coupon=x&y=1", nil},
		{"GET", "SHOP.example.com", "/cart/", nil},
		{"GET", "other.example.com", "/cart/42", nil},
		{"GET", "", "/items/17", nil},
		{"GET", "", "/items/17x", nil},
		{"GET", "", "/old/page?a=b", nil},
		{"GET", "", "/api/users?v=2", nil},
		{"GET", "", "/api/users?v=2", []string{"X-Beta", "on"}},
		{"GET", "", "/api/users?v=3", []string{"X-Beta", "on"}},
		{"GET", "", "/api-docs/intro", nil},
		{"GET", "", "/Api-Docs/intro", nil},
		{"POST", "", "/api/orders", nil},
		{"PUT", "", "/api/orders", nil},
		{"GET", "", "/api/orders", nil},
		{"DELETE", "", "/api/orders/1", nil},
		{"GET", "", "/api/a%2Fb/c", nil},
		{"GET", "", "/api/x/../y", nil},
		{"GET", "", "/legacy/thing", []string{"X-Legacy", "1"}},
		{"GET", "", "/legacy/thing", nil},
		{"GET", "", "/nowhere", nil},
	} {
		host := c.host
		if host == "" {
			host = strings.TrimPrefix(g.base, "http://")
		}
		args := []string{"explain", "-o", "json", "--compat=emissary"}
		for _, m := range manifests {
			args = append(args, "-f", m)
		}
		args = append(args, c.method, "http://"+host+c.target)
		for i := 0; i+1 < len(c.headers); i += 2 {
			args = append(args, "-H", c.headers[i]+": "+c.headers[i+1])
		}
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("explain %v: %v\n%s", args, err, out)
		}
		var e struct {
			Matched              bool
			Status               int
			Mapping, Upstream    string
			Path, Host, Redirect string
		}
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("explain output %q: %v", out, err)
		}

		r := g.doRaw(c.method, c.host, c.target, c.headers...)
		what := c.method + " " + c.host + c.target
		switch {
		case !e.Matched:
			if r.status != e.Status {
				t.Errorf("%s: explain says %d, gateway answered %d", what, e.Status, r.status)
			}
		case e.Redirect != "":
			if r.status != e.Status || r.header.Get("Location") != e.Redirect {
				t.Errorf("%s: explain says %d → %s, gateway answered %d → %s", what, e.Status, e.Redirect, r.status, r.header.Get("Location"))
			}
		default:
			service := strings.SplitN(strings.TrimPrefix(e.Upstream, "http://"), ".", 2)[0]
			got := r.echo.Path
			if r.echo.Query != "" {
				got += "?" + r.echo.Query
			}
			if r.status != 200 || r.echo.Service != service || got != e.Path || r.echo.Host != e.Host {
				t.Errorf("%s: explain says %s → %s %s host %s; gateway reached %q with %s host %s (status %d)",
					what, e.Mapping, service, e.Path, e.Host, r.echo.Service, got, r.echo.Host, r.status)
			}
		}
	}
}

// doRaw sends a request with target written to the wire as is (no client-side
// cleaning of dot segments or escapes), without following redirects.
func (g *gateway) doRaw(method, host, target string, headers ...string) reply {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+"/", nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.URL.Opaque = target // sent verbatim as the request target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		req.URL.Opaque, req.URL.RawQuery = target[:i], target[i+1:]
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	return readReply(resp)
}
