package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const auNS = "au-shop"

// signer makes JWTs with one key.
type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
}

func newSigner(t *testing.T, kid string, ec bool) signer {
	t.Helper()
	if ec {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return signer{kid, jose.ES256, k}
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid, jose.EdDSA, k}
}

func (s signer) public() jose.JSONWebKey {
	k := jose.JSONWebKey{Key: s.key, KeyID: s.kid, Use: "sig", Algorithm: string(s.alg)}
	return k.Public()
}

func (s signer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func jwks(t *testing.T, keys ...signer) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *kubeEnv) setSecret(t *testing.T, ns, name string, typ corev1.SecretType, data map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, Data: data}
	_, err := e.admin.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = e.admin.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("setting Secret %s/%s: %v", ns, name, err)
	}
}

// call sends GET base+path with headers and returns the reply.
func call(t *testing.T, base, path string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	return readReply(resp)
}

// TestAuth runs every authentication kind against the real API server
// with Secrets: JWTs from a JWKS Secret (rotation included), API keys
// (revocation included), an external auth service in a pod, per-consumer
// quotas, Emissary's AuthService with bypass_auth, and checks no
// credential reaches the gateway's log.
func TestAuth(t *testing.T) {
	env := startKubeEnv(t)
	ctx := context.Background()
	podA := env.pods[0]
	authz := startPods(t, filepath.Join(env.dir, "echo"), "authz-pod")[0]
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: auNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	key1, key2 := newSigner(t, "k1", true), newSigner(t, "k2", false)
	env.setSecret(t, auNS, "issuer-jwks", "gatehouse.dev/jwks", map[string][]byte{"jwks.json": jwks(t, key1)})
	const aliceKey, bobKey = "ak_alice_5b9c1d0e7f2a4b6c8d0e1f2a3b4c5d6e", "ak_bob_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	env.setSecret(t, auNS, "partner-keys", "gatehouse.dev/api-keys", map[string][]byte{"alice": []byte(aliceKey), "bob": []byte(bobKey)})

	g := startProcess(t, "", "serve", "--kubeconfig", env.gatehouseKubeconfig, "--compat=emissary",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")

	setIn := func(name, annotation string, emissary bool, p pod) {
		t.Helper()
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: auNS}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		key := "gatehouse.dev/config"
		if emissary {
			key = "getambassador.io/config"
		}
		svc.Annotations = map[string]string{key: annotation}
		if _, err := env.admin.CoreV1().Services(auNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		env.setEndpointsIn(t, auNS, name, p)
	}
	setIn("jwt", `kind: Mapping
name: jwt
prefix: /jwt/
service: jwt
auth: login
---
kind: Auth
name: login
jwt:
  issuer: https://login.example.com/
  audiences: [orders]
  jwks_secret: issuer-jwks
  claims_to_headers: {email: X-User-Email}
`, false, podA)
	setIn("keys", `kind: Mapping
name: keys
prefix: /keys/
service: keys
auth: partners
rate_limits: [per-partner]
---
kind: Auth
name: partners
api_key:
  secrets: [partner-keys]
---
kind: RateLimit
name: per-partner
rate: 3
unit: minute
key: consumer
`, false, podA)
	setIn("authz", `kind: Mapping
name: ext
prefix: /ext/
service: ext
auth: checker
require_consumer: true
---
kind: Mapping
name: ext-open
prefix: /ext-open/
service: ext
auth: lenient
---
kind: Auth
name: checker
external:
  service: authz
  path_prefix: /check
  timeout_ms: 500
  allowed_upstream_headers: [X-User]
  consumer_header: X-Consumer
---
kind: Auth
name: lenient
external:
  service: authz
  timeout_ms: 500
  failure_mode: allow
`, false, authz)
	if _, err := env.admin.CoreV1().Services(auNS).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: auNS},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.setEndpointsIn(t, auNS, "ext", podA)
	setIn("legacy", `apiVersion: getambassador.io/v3alpha1
kind: AuthService
name: legacy-auth
auth_service: authz
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
name: legacy
prefix: /legacy/
service: ext
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
name: legacy-public
prefix: /legacy-public/
service: ext
bypass_auth: true
`, true, authz)

	now := time.Now()
	good := map[string]any{"iss": "https://login.example.com/", "aud": "orders", "sub": "carol", "email": "carol@example.com", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	with := func(k string, v any) map[string]any {
		out := map[string]any{}
		for a, b := range good {
			out[a] = b
		}
		out[k] = v
		return out
	}
	valid := key1.token(t, good)
	waitFor(t, "the JWT route is served", 30*time.Second, func() bool {
		return call(t, g.base, "/jwt/x", "Authorization", "Bearer "+valid).status == 200
	})
	credentials := []string{valid, aliceKey, bobKey}

	t.Run("JWT", func(t *testing.T) {
		r := call(t, g.base, "/jwt/x", "Authorization", "Bearer "+valid, "X-User-Email", "forged@example.com", "X-Gatehouse-Consumer", "mallory")
		if r.status != 200 || r.echo.Headers["X-User-Email"] != "carol@example.com" || r.echo.Headers["X-Gatehouse-Consumer"] != "carol" || r.echo.Headers["Authorization"] != "" {
			t.Errorf("valid token: %d, upstream headers %v; want the claim, the consumer, no Authorization", r.status, r.echo.Headers)
		}
		for _, c := range []struct{ what, token string }{
			{"expired", key1.token(t, with("exp", now.Add(-time.Hour).Unix()))},
			{"wrong audience", key1.token(t, with("aud", "billing"))},
			{"wrong key", newSigner(t, "k1", true).token(t, good)},
			{"unknown key", key2.token(t, good)},
		} {
			r := call(t, g.base, "/jwt/x", "Authorization", "Bearer "+c.token)
			if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s: %d %q; want 401 invalid_token", c.what, r.status, r.header.Get("WWW-Authenticate"))
			}
			credentials = append(credentials, c.token)
		}
		if r := call(t, g.base, "/jwt/x"); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		// Rotation: the Secret gains k2, then loses k1.
		env.setSecret(t, auNS, "issuer-jwks", "gatehouse.dev/jwks", map[string][]byte{"jwks.json": jwks(t, key1, key2)})
		rotated := key2.token(t, good)
		credentials = append(credentials, rotated)
		waitFor(t, "a token of the added key is accepted", 20*time.Second, func() bool {
			return call(t, g.base, "/jwt/x", "Authorization", "Bearer "+rotated).status == 200
		})
		env.setSecret(t, auNS, "issuer-jwks", "gatehouse.dev/jwks", map[string][]byte{"jwks.json": jwks(t, key2)})
		waitFor(t, "a token of the removed key is refused", 20*time.Second, func() bool {
			return call(t, g.base, "/jwt/x", "Authorization", "Bearer "+valid).status == 401
		})
	})

	t.Run("API keys and per-consumer quotas", func(t *testing.T) {
		if r := call(t, g.base, "/keys/x", "X-Api-Key", "ak_nobody"); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "ApiKey") {
			t.Errorf("unknown key: %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		// Three a minute each: alice's fourth is refused, bob's first three
		// are not.
		for i := range 3 {
			r := call(t, g.base, "/keys/x", "X-Api-Key", aliceKey)
			if r.status != 200 || r.echo.Headers["X-Gatehouse-Consumer"] != "alice" {
				t.Fatalf("alice's request %d: %d %v", i+1, r.status, r.echo.Headers)
			}
			if i == 0 && (r.header.Get("RateLimit-Policy") == "" || r.header.Get("RateLimit") == "") {
				t.Errorf("no RateLimit fields: %v", r.header)
			}
		}
		if r := call(t, g.base, "/keys/x", "X-Api-Key", aliceKey); r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("alice's fourth: %d, Retry-After %q; want 429", r.status, r.header.Get("Retry-After"))
		}
		for i := range 3 {
			if r := call(t, g.base, "/keys/x", "X-Api-Key", bobKey); r.status != 200 {
				t.Errorf("bob's request %d after alice ran out: %d", i+1, r.status)
			}
		}
		// Usage, from the admin API and the metrics.
		resp, err := http.Get(g.admin + "/consumers")
		if err != nil {
			t.Fatal(err)
		}
		var usage struct {
			Consumers []struct {
				Namespace, Consumer string
				Requests            int
				Classes             map[string]int `json:"status_classes"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&usage)
		resp.Body.Close()
		found := false
		for _, u := range usage.Consumers {
			if u.Namespace == auNS && u.Consumer == "alice" {
				found = u.Requests == 4 && u.Classes["2xx"] == 3 && u.Classes["4xx"] == 1
				if !found {
					t.Errorf("alice's usage: %+v; want 4 requests, 3 2xx and 1 4xx", u)
				}
			}
		}
		if !found {
			t.Errorf("alice not in /consumers: %+v", usage)
		}
		mresp, err := http.Get(g.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		if want := fmt.Sprintf(`gatehouse_consumer_requests_total{class="2xx",consumer="bob",namespace="%s"} 3`, auNS); !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
		// Revocation: bob is taken out of the Secret.
		env.setSecret(t, auNS, "partner-keys", "gatehouse.dev/api-keys", map[string][]byte{"alice": []byte(aliceKey)})
		waitFor(t, "bob's revoked key is refused", 20*time.Second, func() bool {
			return call(t, g.base, "/keys/x", "X-Api-Key", bobKey).status == 401
		})
	})

	t.Run("external auth", func(t *testing.T) {
		r := call(t, g.base, "/ext/x", "Authorization", "Bearer allow-dave", "X-User", "forged")
		if r.status != 200 || r.echo.Headers["X-User"] != "dave" || r.echo.Headers["X-Gatehouse-Consumer"] != "dave" || r.echo.Headers["X-Internal"] != "" {
			t.Errorf("allowed: %d %v; want X-User dave from the service, consumer dave, no X-Internal", r.status, r.echo.Headers)
		}
		r = call(t, g.base, "/ext/x", "Authorization", "Bearer nope")
		if r.status != 403 || !strings.Contains(r.body, "denied by authz") || r.header.Get("WWW-Authenticate") != `Bearer realm="authz"` {
			t.Errorf("denied: %d %q %q; want the service's 403, body and challenge", r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
		if r := call(t, g.base, "/ext/x", "Authorization", "Bearer slow"); r.status != 403 {
			t.Errorf("timeout, failure_mode deny: %d, want 403", r.status)
		}
		if r := call(t, g.base, "/ext-open/x", "Authorization", "Bearer slow"); r.status != 200 {
			t.Errorf("timeout, failure_mode allow: %d, want 200", r.status)
		}
		// The Emissary AuthService covers the namespace's Emissary
		// Mappings, except those with bypass_auth.
		if r := call(t, g.base, "/legacy/x", "Authorization", "Bearer nope"); r.status != 403 {
			t.Errorf("Emissary Mapping under its namespace's AuthService: %d, want 403", r.status)
		}
		if r := call(t, g.base, "/legacy/x", "Authorization", "Bearer allow-erin"); r.status != 200 {
			t.Errorf("Emissary Mapping, allowed: %d", r.status)
		}
		if r := call(t, g.base, "/legacy-public/x"); r.status != 200 {
			t.Errorf("bypass_auth: %d, want 200 without asking the service", r.status)
		}
	})

	t.Run("no credential in the log", func(t *testing.T) {
		log := g.log()
		for _, c := range credentials {
			if strings.Contains(log, c) {
				t.Errorf("the gateway's log holds a credential (%.12s…)", c)
			}
		}
		for _, c := range []string{"allow-dave", "Bearer "} {
			if strings.Contains(log, c) {
				t.Errorf("the gateway's log holds %q", c)
			}
		}
	})
}
