package annotations

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// authJWT is a valid JWT Auth to which a case appends lines 7 on (indented
// two spaces to stay inside jwt).
const authJWT = "kind: Auth\nname: users-jwt\njwt:\n  issuer: https://login.example.com/\n  audiences: [api.example.com]\n  jwks_uri: https://login.example.com/.well-known/jwks.json\n"

// authKeys is a valid API key Auth to which a case appends lines 5 on.
const authKeys = "kind: Auth\nname: partner-keys\napi_key:\n  secrets: [partner-api-keys]\n"

// authExt is a valid external Auth to which a case appends lines 5 on.
const authExt = "kind: Auth\nname: ext\nexternal:\n  service: auth:3000\n"

const (
	jwtPath  = `Auth "users-jwt"`
	keysPath = `Auth "partner-keys"`
	extPath  = `Auth "ext"`
)

// usedBy is a Mapping document that names the Auth name, so that a valid
// Auth draws no "not used" warning.
func usedBy(name string) string {
	return "---\nkind: Mapping\nname: " + name + "-route\nprefix: /" + name + "/\nservice: users\nauth: " + name + "\n"
}

func TestParseAuthAllFields(t *testing.T) {
	src := `apiVersion: gatehouse.dev/v1
kind: Auth
name: users-jwt
jwt:
  issuer: https://login.example.com/
  audiences: [api.example.com, mobile.example.com]
  jwks_uri: https://login.example.com/.well-known/jwks.json
  claims_to_headers:
    email: x-user-email
    org_id: X-Org
  consumer_claim: client_id
  forward_token: true
  clock_skew_seconds: 0
---
kind: Auth
name: partner-keys
api_key:
  query: api_key
  secrets: [partner-keys-a, partner-keys-b]
  forward_key: true
---
kind: Auth
name: ext
external:
  service: https://auth.security:8443
  path_prefix: /check
  timeout_ms: 250
  failure_mode: allow
  allowed_request_headers: [x-tenant]
  allowed_upstream_headers: [x-user, X-Roles]
  consumer_header: x-consumer
  include_body_bytes: 4096
` + usedBy("users-jwt") + "rate_limits: [per-consumer]\n" +
		"---\nkind: Mapping\nname: partners\nprefix: /p/\nservice: p\nauth: partner-keys\nrequire_consumer: true\n" +
		"---\nkind: Mapping\nname: ext\nprefix: /e/\nservice: e\nauth: ext\n" +
		"---\nkind: RateLimit\nname: per-consumer\nrate: 10\nunit: second\nkey: consumer\n"
	cfg := checkProblems(t, src)
	if cfg == nil || len(cfg.Auths) != 3 {
		t.Fatalf("config %+v", cfg)
	}
	zero, timeout := 0, 250
	want := Auth{
		APIVersion: APIVersion,
		Kind:       KindAuth,
		Name:       "users-jwt",
		JWT: &JWTAuth{
			Issuer:           "https://login.example.com/",
			Audiences:        []string{"api.example.com", "mobile.example.com"},
			JWKSURI:          "https://login.example.com/.well-known/jwks.json",
			ClaimsToHeaders:  map[string]string{"email": "x-user-email", "org_id": "X-Org"},
			ConsumerClaim:    "client_id",
			ForwardToken:     true,
			ClockSkewSeconds: &zero,
		},
		Pos: Position{Line: 1, Column: 1},
		Positions: map[string]Position{
			"apiVersion": {1, 13}, "kind": {2, 7}, "name": {3, 7}, "jwt": {5, 3}, "jwt.issuer": {5, 11},
			"jwt.audiences": {6, 14}, "jwt.audiences[0]": {6, 15}, "jwt.audiences[1]": {6, 32},
			"jwt.jwks_uri": {7, 13}, "jwt.claims_to_headers": {9, 5}, "jwt.claims_to_headers.email": {9, 12},
			"jwt.claims_to_headers.org_id": {10, 13}, "jwt.consumer_claim": {11, 19}, "jwt.forward_token": {12, 18},
			"jwt.clock_skew_seconds": {13, 23},
		},
	}
	if got := cfg.Auths[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("jwt:\n got %+v\nwant %+v", got, want)
	}
	for i := range cfg.Auths {
		cfg.Auths[i].Positions = nil
	}
	wantKeys := Auth{Kind: KindAuth, Name: "partner-keys", Pos: Position{15, 1},
		APIKey: &APIKeyAuth{Query: "api_key", Secrets: []string{"partner-keys-a", "partner-keys-b"}, ForwardKey: true}}
	if got := cfg.Auths[1]; !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("api_key:\n got %+v\nwant %+v", got, wantKeys)
	}
	wantExt := Auth{Kind: KindAuth, Name: "ext", Pos: Position{22, 1}, External: &ExternalAuth{
		Service: "https://auth.security:8443", PathPrefix: "/check", TimeoutMS: &timeout, FailureMode: FailureModeAllow,
		AllowedRequestHeaders: []string{"x-tenant"}, AllowedUpstreamHeaders: []string{"x-user", "X-Roles"},
		ConsumerHeader: "x-consumer", IncludeBodyBytes: 4096,
	}}
	if got := cfg.Auths[2]; !reflect.DeepEqual(got, wantExt) {
		t.Errorf("external:\n got %+v\nwant %+v", got, wantExt)
	}
	m := cfg.Mappings[1]
	if cfg.Mappings[0].Auth != "users-jwt" || m.Auth != "partner-keys" || !m.RequireConsumer || m.BypassAuth {
		t.Errorf("mappings: %+v", cfg.Mappings)
	}
	if cfg.RateLimits[0].Key != KeyConsumer {
		t.Errorf("rate limit key %q", cfg.RateLimits[0].Key)
	}
}

func TestParseAuthDefaults(t *testing.T) {
	cfg := checkProblems(t, authJWT+usedBy("users-jwt")+"---\n"+authKeys+usedBy("partner-keys")+"---\n"+authExt+usedBy("ext"))
	if cfg == nil {
		t.FailNow()
	}
	j := cfg.Auths[0].JWT
	if j.ConsumerClaim != "sub" || j.ClockSkewSeconds == nil || *j.ClockSkewSeconds != 30 || j.ForwardToken || j.ClaimsToHeaders != nil {
		t.Errorf("jwt defaults: %+v", j)
	}
	if k := cfg.Auths[1].APIKey; k.Header != "X-Api-Key" || k.Query != "" || k.ForwardKey {
		t.Errorf("api_key defaults: %+v", k)
	}
	if e := cfg.Auths[2].External; e.TimeoutMS == nil || *e.TimeoutMS != 500 || e.FailureMode != FailureModeDeny || e.IncludeBodyBytes != 0 || e.PathPrefix != "" {
		t.Errorf("external defaults: %+v", e)
	}
	for _, a := range cfg.Auths {
		if a.Namespaced {
			t.Errorf("native Auth %q is namespaced", a.Name)
		}
	}
	// A header written in any case is returned in canonical form; a
	// query parameter is kept as written and leaves Header empty.
	cfg = checkProblems(t, authKeys+"  header: x-partner-KEY\n"+usedBy("partner-keys"))
	if h := cfg.Auths[0].APIKey.Header; h != "X-Partner-Key" {
		t.Errorf("header %q", h)
	}
	cfg = checkProblems(t, authKeys+"  query: Key\n"+usedBy("partner-keys"))
	if k := cfg.Auths[0].APIKey; k.Header != "" || k.Query != "Key" {
		t.Errorf("query: %+v", k)
	}
	// A default points at the document; a written value at itself.
	if got := cfg.Auths[0].FieldPos("api_key.header"); got != (Position{4, 3}) {
		t.Errorf("FieldPos(api_key.header) = %v", got) // api_key's first field: where the api_key mapping starts
	}
	if got := cfg.Auths[0].FieldPos("api_key.secrets[0]"); got != (Position{4, 13}) {
		t.Errorf("FieldPos(api_key.secrets[0]) = %v", got)
	}
	if got := cfg.Auths[0].FieldPos("jwt.issuer"); got != (Position{1, 1}) {
		t.Errorf("FieldPos(jwt.issuer) on an API key Auth = %v", got)
	}
}

func TestParseAuthProblems(t *testing.T) {
	const own = "; write the Secret's name only"
	jwtWith := func(line string) string {
		return strings.Replace(authJWT, "  jwks_uri: https://login.example.com/.well-known/jwks.json\n", line, 1)
	}
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		// The method.
		{"no method", "kind: Auth\nname: a\n", []wantProblem{{1, 1, `Auth "a"`, "missing authentication method: write exactly one of jwt (JSON Web Tokens), api_key (keys from Secrets) or external (an authentication service)", false}}},
		{"two methods", authKeys + "external: {service: auth}\n", []wantProblem{{5, 1, keysPath + ".external", "set exactly one of jwt, api_key or external; api_key is set too", false}}},
		{"method not a mapping", "kind: Auth\nname: a\njwt: true\n", []wantProblem{
			{3, 6, `Auth "a".jwt`, "expected a mapping with fields issuer, audiences, jwks_secret, jwks_uri, claims_to_headers, consumer_claim, forward_token, clock_skew_seconds; got boolean true", false}}},
		{"method null", "kind: Auth\nname: a\njwt:\n", []wantProblem{{1, 1, `Auth "a"`, "missing authentication method", false}}},
		{"issuer at the top", "kind: Auth\nname: a\nissuer: x\n", []wantProblem{
			{1, 1, `Auth "a"`, "missing authentication method", false},
			{3, 1, `Auth "a".issuer`, `unknown field "issuer"; JSON Web Tokens are configured in jwt: {issuer: ..., audiences: [...], ...}`, false}}},
		{"auth_service at the top", "kind: Auth\nname: a\nauth_service: auth:3000\n", []wantProblem{
			{1, 1, `Auth "a"`, "missing authentication method", false},
			{3, 1, `Auth "a".auth_service`, "an authentication service is configured in external: {service: ...}", false}}},
		{"typo", authKeys + "api-key: {}\n", []wantProblem{{5, 1, keysPath + ".api-key", `unknown field "api-key" (did you mean "api_key"?)`, false}}},
		{"ambassador_id", authKeys + "ambassador_id: [a]\n", []wantProblem{{5, 1, keysPath + ".ambassador_id", "only read with --compat=emissary", false}}},
		{"bad name", strings.Replace(authKeys, "partner-keys\n", "Partner_Keys\n", 1), []wantProblem{{2, 7, `Auth "Partner_Keys".name`, "must be lowercase", false}}},
		{"duplicate name", authKeys + usedBy("partner-keys") + "---\n" + authKeys, []wantProblem{{13, 7, keysPath + ".name", `duplicate Auth name "partner-keys" (see line 2, column 7)`, false}}},
		{"same name as a Mapping", strings.Replace(authKeys, "partner-keys\n", "users\n", 1) + "---\n" + mapping + "auth: users\n", nil},
		{"AuthService kind", "kind: AuthService\nname: a\nauth_service: auth\n", []wantProblem{
			{1, 7, "document 1.kind", `unknown kind "AuthService"; known kinds are Mapping, RateLimit, Host, Auth (AuthService is Emissary's, read from the getambassador.io/config annotation with --compat=emissary; here an Auth with external: {service: ...} calls an authentication service, and Mappings name it in auth)`, false}}},
		{"kind case", strings.Replace(authKeys, "kind: Auth", "kind: auth", 1) + usedBy("partner-keys"), []wantProblem{
			{1, 7, keysPath + ".kind", `unknown kind "auth" (did you mean "Auth"?)`, false}}},
		{"unused", authKeys, []wantProblem{{2, 7, keysPath + ".name", `Auth "partner-keys" is not used by any Mapping in this annotation: name it in a Mapping's auth`, true}}},

		// jwt.
		{"jwt missing issuer", "kind: Auth\nname: a\njwt: {audiences: [x], jwks_secret: k}\n", []wantProblem{{3, 6, `Auth "a".jwt`, `missing required field "issuer"`, false}}},
		{"jwt missing audiences", "kind: Auth\nname: a\njwt: {issuer: i, jwks_secret: k}\n", []wantProblem{{3, 6, `Auth "a".jwt`, `missing required field "audiences"`, false}}},
		{"jwt no audience", strings.Replace(authJWT, "[api.example.com]", "[]", 1), []wantProblem{
			{5, 14, jwtPath + ".jwt.audiences", "must list at least one audience: a token issued for another service must not be accepted here", false}}},
		{"jwt audience string", strings.Replace(authJWT, "[api.example.com]", "api.example.com", 1), []wantProblem{
			{5, 14, jwtPath + ".jwt.audiences", `expected a list, got string "api.example.com"; write [api.example.com]`, false}}},
		{"jwt duplicate audience", strings.Replace(authJWT, "[api.example.com]", "[a, b, a]", 1), []wantProblem{
			{5, 21, jwtPath + ".jwt.audiences[2]", `duplicate audience "a" (see line 5, column 15)`, false}}},
		{"jwt empty audience", strings.Replace(authJWT, "[api.example.com]", "['']", 1), []wantProblem{
			{5, 15, jwtPath + ".jwt.audiences[0]", `audience "": must not be empty`, false}}},
		{"jwt issuer spaces", strings.Replace(authJWT, "issuer: https://login.example.com/", "issuer: ' https://login.example.com/'", 1), []wantProblem{
			{4, 11, jwtPath + ".jwt.issuer", `jwt.issuer " https://login.example.com/": has whitespace around it; it is compared exactly with the token's iss`, false}}},
		{"jwt audience typo", strings.Replace(authJWT, "audiences:", "audience:", 1), []wantProblem{
			{4, 3, jwtPath + ".jwt", `missing required field "audiences"`, false},
			{5, 3, jwtPath + ".jwt.audience", `unknown field "audience" (did you mean "audiences"?)`, false}}},
		{"jwt no key set", jwtWith(""), []wantProblem{
			{4, 3, jwtPath + ".jwt", "missing key set: write jwks_secret (a Secret of type gatehouse.dev/jwks in this namespace) or jwks_uri (an https:// URL)", false}}},
		{"jwt both key sets", authJWT + "  jwks_secret: users-jwks\n", []wantProblem{
			{7, 3, jwtPath + ".jwt.jwks_secret", "set jwks_secret or jwks_uri, not both", false}}},
		{"jwt jwks_secret", jwtWith("  jwks_secret: login.example.com-jwks\n") + usedBy("users-jwt"), nil},
		{"jwt jwks_secret namespaced", jwtWith("  jwks_secret: other/jwks\n"), []wantProblem{
			{6, 16, jwtPath + ".jwt.jwks_secret", `jwt.jwks_secret "other/jwks": key sets come from the Auth's own namespace` + own, false}}},
		{"jwt jwks_secret own namespace", jwtWith("  jwks_secret: ns/jwks\n"), []wantProblem{
			{6, 16, jwtPath + ".jwt.jwks_secret", `key sets come from the Auth's own namespace` + own + ` ("jwks")`, false}}},
		{"jwt jwks_secret invalid", jwtWith("  jwks_secret: JWKS\n"), []wantProblem{
			{6, 16, jwtPath + ".jwt.jwks_secret", `jwt.jwks_secret "JWKS": invalid Secret name: a lowercase RFC 1123 subdomain`, false}}},
		{"jwt jwks_uri http", jwtWith("  jwks_uri: http://x\n"), []wantProblem{
			{6, 13, jwtPath + ".jwt.jwks_uri", `jwt.jwks_uri "http://x": the key set must come over https: anyone on the path of a plain-HTTP fetch could replace the keys and sign tokens the gateway would accept`, false}}},
		{"jwt jwks_uri HTTP", jwtWith("  jwks_uri: HTTP://x/keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must come over https", false}}},
		{"jwt jwks_uri ftp", jwtWith("  jwks_uri: ftp://x/keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must be an https:// URL", false}}},
		{"jwt jwks_uri relative", jwtWith("  jwks_uri: /keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must be an https:// URL", false}}},
		{"jwt jwks_uri userinfo", jwtWith("  jwks_uri: https://u:p@x/keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must not contain user information", false}}},
		{"jwt jwks_uri fragment", jwtWith("  jwks_uri: https://x/keys#a\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must not have a fragment", false}}},
		{"jwt jwks_uri no host", jwtWith("  jwks_uri: https:///keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "has no host", false}}},
		{"jwt jwks_uri bad port", jwtWith("  jwks_uri: https://x:0/keys\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "the host port 0 is out of range", false}}},
		{"jwt jwks_uri space", jwtWith("  jwks_uri: 'https://x/a b'\n"), []wantProblem{{6, 13, jwtPath + ".jwt.jwks_uri", "must not contain whitespace", false}}},
		{"jwt jwks_uri query and port", jwtWith("  jwks_uri: https://login.example.com:8443/keys?v=2\n") + usedBy("users-jwt"), nil},
		{"jwt claims", authJWT + "  claims_to_headers: {email: x-email, 'https://example.com/roles': x-roles}\n" + usedBy("users-jwt"), nil},
		{"jwt claim reserved", authJWT + "  claims_to_headers:\n    sub: Authorization\n", []wantProblem{
			{8, 10, jwtPath + ".jwt.claims_to_headers.sub", `header "Authorization" is reserved: it carries the client's credentials; a claim cannot set it`, false}}},
		{"jwt claim x-forwarded", authJWT + "  claims_to_headers:\n    sub: X-Forwarded-User\n", []wantProblem{
			{8, 10, jwtPath + ".jwt.claims_to_headers.sub", `header "X-Forwarded-User" is reserved: the gateway sets it, and upstreams trust it to`, false}}},
		{"jwt claim host", authJWT + "  claims_to_headers:\n    aud: host\n", []wantProblem{
			{8, 10, jwtPath + ".jwt.claims_to_headers.aud", `the Host header cannot be set`, false}}},
		{"jwt claim hop-by-hop", authJWT + "  claims_to_headers:\n    sub: Keep-Alive\n", []wantProblem{
			{8, 10, jwtPath + ".jwt.claims_to_headers.sub", `"Keep-Alive" is a hop-by-hop header`, false}}},
		{"jwt claim bad header", authJWT + "  claims_to_headers:\n    sub: 'x user'\n", []wantProblem{
			{8, 10, jwtPath + ".jwt.claims_to_headers.sub", `invalid header name "x user"`, false}}},
		{"jwt claim duplicate header", authJWT + "  claims_to_headers:\n    sub: x-user\n    email: X-User\n", []wantProblem{
			{9, 12, jwtPath + ".jwt.claims_to_headers.email", `duplicate header "X-User": two claims cannot set one header (see line 8, column 10)`, false}}},
		{"jwt claim duplicate", authJWT + "  claims_to_headers:\n    sub: x-a\n    sub: x-b\n", []wantProblem{
			{9, 5, jwtPath + ".jwt.claims_to_headers.sub", `duplicate claim "sub" (see line 8, column 5)`, false}}},
		{"jwt claim null", authJWT + "  claims_to_headers:\n    sub:\n", []wantProblem{
			{8, 5, jwtPath + ".jwt.claims_to_headers.sub", "missing value: write the request header the upstream receives the claim in", false}}},
		{"jwt claim empty name", authJWT + "  claims_to_headers:\n    '': x-a\n", []wantProblem{
			{8, 5, jwtPath + ".jwt.claims_to_headers.", `claim name "": must not be empty`, false}}},
		{"jwt claims not a mapping", authJWT + "  claims_to_headers: [sub]\n", []wantProblem{
			{7, 22, jwtPath + ".jwt.claims_to_headers", "expected a mapping of claim name to request header, got a list", false}}},
		{"jwt too many claims", authJWT + "  claims_to_headers: {" + claims(17) + "}\n", []wantProblem{
			{7, 22, jwtPath + ".jwt.claims_to_headers", "at most 16 claims; got 17", false}}},
		{"jwt 16 claims", authJWT + "  claims_to_headers: {" + claims(16) + "}\n" + usedBy("users-jwt"), nil},
		{"jwt clock skew", authJWT + "  clock_skew_seconds: 301\n", []wantProblem{{7, 23, jwtPath + ".jwt.clock_skew_seconds", "must be at most 300; got 301", false}}},
		{"jwt clock skew negative", authJWT + "  clock_skew_seconds: -1\n", []wantProblem{{7, 23, jwtPath + ".jwt.clock_skew_seconds", "must not be negative; got -1", false}}},
		{"jwt clock skew duration", authJWT + "  clock_skew_seconds: 30s\n", []wantProblem{{7, 23, jwtPath + ".jwt.clock_skew_seconds", `expected an integer, got string "30s"`, false}}},
		{"jwt consumer_claim empty", authJWT + "  consumer_claim: ''\n", []wantProblem{{7, 19, jwtPath + ".jwt.consumer_claim", `jwt.consumer_claim "": must not be empty`, false}}},
		{"jwt forward_token string", authJWT + "  forward_token: 'true'\n", []wantProblem{{7, 18, jwtPath + ".jwt.forward_token", "remove the quotes", false}}},
		{"jwt jwks typo", authJWT + "  jwks_url: x\n", []wantProblem{{7, 3, jwtPath + ".jwt.jwks_url", "(did you mean jwks_uri or jwks_secret?)", false}}},

		// api_key.
		{"api_key header", authKeys + "  header: Authorization\n" + usedBy("partner-keys"), nil},
		{"api_key header and query", authKeys + "  header: x-key\n  query: key\n", []wantProblem{
			{6, 3, keysPath + ".api_key.query", "set header or query, not both: the key is read from one place", false}}},
		{"api_key header invalid", authKeys + "  header: 'x key'\n", []wantProblem{{5, 11, keysPath + ".api_key.header", `invalid header name "x key"`, false}}},
		{"api_key header hop-by-hop", authKeys + "  header: Proxy-Authorization\n", []wantProblem{
			{5, 11, keysPath + ".api_key.header", `"Proxy-Authorization" is a hop-by-hop header, which the proxy manages for each connection; it cannot carry a key`, false}}},
		{"api_key header Host", authKeys + "  header: host\n", []wantProblem{{5, 11, keysPath + ".api_key.header", "the Host header cannot carry a key", false}}},
		{"api_key query invalid", authKeys + "  query: a=b\n", []wantProblem{{5, 10, keysPath + ".api_key.query", `invalid query parameter name "a=b"`, false}}},
		{"api_key query empty", authKeys + "  query: ''\n", []wantProblem{{5, 10, keysPath + ".api_key.query", "must not be empty", false}}},
		{"api_key no secrets", "kind: Auth\nname: partner-keys\napi_key: {header: x-key}\n", []wantProblem{{3, 10, keysPath + ".api_key", `missing required field "secrets"`, false}}},
		{"api_key empty secrets", strings.Replace(authKeys, "[partner-api-keys]", "[]", 1), []wantProblem{
			{4, 12, keysPath + ".api_key.secrets", "must name at least one Secret of type gatehouse.dev/api-keys", false}}},
		{"api_key too many secrets", strings.Replace(authKeys, "[partner-api-keys]", "["+secrets(17)+"]", 1), []wantProblem{
			{4, 12, keysPath + ".api_key.secrets", "at most 16 Secrets; got 17", false}}},
		{"api_key secret namespaced", strings.Replace(authKeys, "[partner-api-keys]", "[a, other/keys]", 1), []wantProblem{
			{4, 16, keysPath + ".api_key.secrets[1]", `Secret "other/keys": keys come from the Auth's own namespace` + own, false}}},
		{"api_key secret dotted", strings.Replace(authKeys, "[partner-api-keys]", "[partners.example.com-keys]", 1) + usedBy("partner-keys"), nil},
		{"api_key duplicate secret", strings.Replace(authKeys, "[partner-api-keys]", "[a, a]", 1), []wantProblem{
			{4, 16, keysPath + ".api_key.secrets[1]", `duplicate Secret "a" (see line 4, column 13)`, false}}},
		{"api_key secrets string", strings.Replace(authKeys, "[partner-api-keys]", "partner-api-keys", 1), []wantProblem{
			{4, 12, keysPath + ".api_key.secrets", "expected a list", false}}},
		{"api_key typo", authKeys + "  secret: [a]\n", []wantProblem{{5, 3, keysPath + ".api_key.secret", `(did you mean "secrets"?)`, false}}},

		// external.
		{"external missing service", "kind: Auth\nname: ext\nexternal: {timeout_ms: 100}\n", []wantProblem{{3, 11, extPath + ".external", `missing required field "service"`, false}}},
		{"external bad service", strings.Replace(authExt, "auth:3000", "auth/check", 1), []wantProblem{
			{4, 12, extPath + ".external.service", `invalid service "auth/check": a path, query or fragment is not allowed`, false}}},
		{"external service scheme", strings.Replace(authExt, "auth:3000", "grpc://auth", 1), []wantProblem{
			{4, 12, extPath + ".external.service", `unsupported scheme "grpc"`, false}}},
		{"external https", strings.Replace(authExt, "auth:3000", "https://auth.security", 1) + usedBy("ext"), nil},
		{"external auth_service", authExt + "  auth_service: x\n", []wantProblem{{5, 3, extPath + ".external.auth_service", `unknown field "auth_service" (did you mean "service"?)`, false}}},
		{"external failure_mode_allow", authExt + "  failure_mode_allow: true\n", []wantProblem{
			{5, 3, extPath + ".external.failure_mode_allow", `(did you mean "failure_mode: allow"?)`, false}}},
		{"external allowed_authorization_headers", authExt + "  allowed_authorization_headers: [x]\n", []wantProblem{
			{5, 3, extPath + ".external.allowed_authorization_headers", `(did you mean "allowed_upstream_headers"?)`, false}}},
		{"external path_prefix", authExt + "  path_prefix: check\n", []wantProblem{{5, 16, extPath + ".external.path_prefix", `must start with "/"`, false}}},
		{"external path_prefix query", authExt + "  path_prefix: /check?x=1\n", []wantProblem{{5, 16, extPath + ".external.path_prefix", `no whitespace, control characters, '?' or '#'`, false}}},
		{"external timeout zero", authExt + "  timeout_ms: 0\n", []wantProblem{{5, 15, extPath + ".external.timeout_ms", "must be at least 1; got 0", false}}},
		{"external timeout too long", authExt + "  timeout_ms: 10001\n", []wantProblem{{5, 15, extPath + ".external.timeout_ms", "must be at most 10000; got 10001", false}}},
		{"external failure_mode", authExt + "  failure_mode: open\n", []wantProblem{{5, 17, extPath + ".external.failure_mode", `must be one of deny, allow; got "open"`, false}}},
		{"external failure_mode case", authExt + "  failure_mode: Allow\n", []wantProblem{{5, 17, extPath + ".external.failure_mode", `(did you mean "allow"?)`, false}}},
		{"external body", authExt + "  include_body_bytes: 65536\n" + usedBy("ext"), nil},
		{"external body too big", authExt + "  include_body_bytes: 65537\n", []wantProblem{{5, 23, extPath + ".external.include_body_bytes", "must be at most 65536; got 65537", false}}},
		{"external body negative", authExt + "  include_body_bytes: -1\n", []wantProblem{{5, 23, extPath + ".external.include_body_bytes", "must not be negative", false}}},
		{"external include_body", authExt + "  include_body: {max_bytes: 10}\n", []wantProblem{
			{5, 3, extPath + ".external.include_body", `unknown field "include_body" (did you mean "include_body_bytes"?)`, false}}},
		{"external request headers", authExt + "  allowed_request_headers: [x-tenant, X-Forwarded-Client-Cert, Proxy-Authorization]\n" + usedBy("ext"), []wantProblem{
			{5, 64, extPath + ".external.allowed_request_headers[2]", `"Proxy-Authorization" is always sent to the authentication service; listing it changes nothing`, true}}},
		{"external request header default", authExt + "  allowed_request_headers: [cookie]\n" + usedBy("ext"), []wantProblem{
			{5, 29, extPath + ".external.allowed_request_headers[0]", `"cookie" is always sent`, true}}},
		{"external request header hop-by-hop", authExt + "  allowed_request_headers: [Connection]\n", []wantProblem{
			{5, 29, extPath + ".external.allowed_request_headers[0]", `"Connection" is a hop-by-hop header`, false}}},
		{"external request header Content-Length", authExt + "  allowed_request_headers: [content-length]\n", []wantProblem{
			{5, 29, extPath + ".external.allowed_request_headers[0]", `header "content-length" belongs to the call to the authentication service itself`, false}}},
		{"external request header duplicate", authExt + "  allowed_request_headers: [x-a, X-A]\n", []wantProblem{
			{5, 34, extPath + ".external.allowed_request_headers[1]", `duplicate header "X-A" (see line 5, column 29)`, false}}},
		{"external request header invalid", authExt + "  allowed_request_headers: ['x a', ':path']\n", []wantProblem{
			{5, 29, extPath + ".external.allowed_request_headers[0]", `invalid header name "x a"`, false},
			{5, 36, extPath + ".external.allowed_request_headers[1]", `invalid header name ":path"`, false}}},
		{"external too many request headers", authExt + "  allowed_request_headers: [" + headers(33) + "]\n", []wantProblem{
			{5, 28, extPath + ".external.allowed_request_headers", "at most 32 headers; got 33", false}}},
		{"external upstream reserved", authExt + "  allowed_upstream_headers: [x-user, Authorization, x-request-id, Forwarded, Content-Length]\n", []wantProblem{
			{5, 38, extPath + ".external.allowed_upstream_headers[1]", `header "Authorization" is reserved: it carries the client's credentials; an authentication service cannot set it for the upstream`, false},
			{5, 53, extPath + ".external.allowed_upstream_headers[2]", `header "x-request-id" is reserved: the gateway sets it, and upstreams trust it to`, false},
			{5, 67, extPath + ".external.allowed_upstream_headers[3]", `header "Forwarded" is reserved`, false},
			{5, 78, extPath + ".external.allowed_upstream_headers[4]", `header "Content-Length" is reserved: it frames the request`, false}}},
		{"external upstream hop-by-hop", authExt + "  allowed_upstream_headers: [Proxy-Authorization]\n", []wantProblem{
			{5, 30, extPath + ".external.allowed_upstream_headers[0]", `"Proxy-Authorization" is a hop-by-hop header`, false}}},
		{"external consumer_header", authExt + "  consumer_header: 'x user'\n", []wantProblem{{5, 20, extPath + ".external.consumer_header", `invalid header name "x user"`, false}}},

		// RateLimit key consumer.
		{"key consumer with header", rateLimit + "key: consumer\nheader: x-user\n" + "---\n" + mapping + "rate_limits: [per-ip]\n", []wantProblem{
			{6, 9, `RateLimit "per-ip".header`, "header is only used with key: header; key is consumer", false}}},
		{"key consumers", rateLimit + "key: consumers\n", []wantProblem{
			{5, 6, `RateLimit "per-ip".key`, `must be one of policy, client_ip, header, consumer; got "consumers" (did you mean "consumer"?)`, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
}

// claims returns n claims_to_headers entries for a flow mapping.
func claims(n int) string {
	var b []string
	for i := range n {
		b = append(b, "c"+strconv.Itoa(i)+": x-c"+strconv.Itoa(i))
	}
	return strings.Join(b, ", ")
}

// secrets returns n Secret names for a flow list.
func secrets(n int) string {
	var b []string
	for i := range n {
		b = append(b, "s"+strconv.Itoa(i))
	}
	return strings.Join(b, ", ")
}

// headers returns n header names for a flow list.
func headers(n int) string {
	var b []string
	for i := range n {
		b = append(b, "x-h"+strconv.Itoa(i))
	}
	return strings.Join(b, ", ")
}

func TestParseMappingAuth(t *testing.T) {
	const keys = "---\n" + authKeys // lines 6 on
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"auth", mapping + "auth: partner-keys\n" + keys, nil},
		{"require_consumer", mapping + "auth: partner-keys\nrequire_consumer: true\n" + keys, nil},
		{"unknown auth", mapping + "auth: partner-key\n" + keys, []wantProblem{
			{5, 7, users + ".auth", `unknown Auth "partner-key" (did you mean "partner-keys"?)`, false}}},
		{"unknown auth listed", mapping + "auth: jwt\n" + keys, []wantProblem{
			{5, 7, users + ".auth", `unknown Auth "jwt"; this annotation declares partner-keys`, false}}},
		{"no Auth declared", mapping + "auth: jwt\n", []wantProblem{
			{5, 7, users + ".auth", `unknown Auth "jwt"; this annotation declares no Auth documents`, false}}},
		{"unknown auth in an unread part", mapping + "auth: jwt\n---\na: [\n", []wantProblem{
			{8, 1, "", "did not find expected node content", false}}},
		{"auth names a RateLimit", mapping + "auth: per-ip\n---\n" + rateLimit, []wantProblem{
			{5, 7, users + ".auth", `unknown Auth "per-ip"; this annotation declares no Auth documents`, false}}},
		{"auth empty", mapping + "auth: ''\n", []wantProblem{
			{5, 7, users + ".auth", "must name an Auth document of this annotation; leave auth out for none", false}}},
		{"auth not a string", mapping + "auth: [a]\n", []wantProblem{{5, 7, users + ".auth", "expected a string, got a list", false}}},
		{"auth and bypass_auth", mapping + "auth: partner-keys\nbypass_auth: true\n" + keys, []wantProblem{
			{6, 1, users + ".bypass_auth", "set auth or bypass_auth, not both: auth requires authentication, bypass_auth exempts the Mapping from it", false}}},
		{"auth and bypass_auth false", mapping + "auth: partner-keys\nbypass_auth: false\n" + keys, nil},
		{"bypass_auth alone", mapping + "bypass_auth: true\n", nil},
		{"require_consumer without auth", mapping + "require_consumer: true\n", []wantProblem{
			{5, 1, users + ".require_consumer", "require_consumer needs auth: only an Auth names the consumer of a request", false}}},
		{"require_consumer false", mapping + "require_consumer: false\n", nil},
		{"require_consumer with a bad auth", mapping + "auth: 5\nrequire_consumer: true\n", []wantProblem{{5, 7, users + ".auth", "expected a string", false}}},
		{"require_consumer without a consumer", mapping + "auth: ext\nrequire_consumer: true\n---\n" + authExt, []wantProblem{
			{6, 1, users + ".require_consumer", `Auth "ext" sets no external.consumer_header, so it never names a consumer: every request would be answered 403`, true}}},
		{"require_consumer with a consumer header", mapping + "auth: ext\nrequire_consumer: true\n---\n" + authExt + "  consumer_header: x-consumer\n", nil},
		{"shadow with auth", mapping + "shadow: true\nauth: partner-keys\n" + keys, []wantProblem{
			{6, 1, users + ".auth", "auth does not apply to a shadow Mapping", true}}},
		{"one Auth for two Mappings", mapping + "auth: partner-keys\n---\n" + strings.Replace(mapping, "users", "orders", 2) + "auth: partner-keys\n" + keys, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
	cfg := checkProblems(t, mapping+"auth: partner-keys\nrequire_consumer: true\n"+keys)
	if m := cfg.Mappings[0]; m.Auth != "partner-keys" || !m.RequireConsumer || m.FieldPos("auth") != (Position{5, 7}) {
		t.Errorf("mapping %+v", m)
	}
}

func TestReservedHeader(t *testing.T) {
	for _, h := range []string{"Host", "content-length", "Transfer-Encoding", "connection", "X-Forwarded-For", "x-forwarded-client-cert", "Forwarded", "X-Request-Id", "authorization"} {
		if !ReservedHeader(h) {
			t.Errorf("%s is not reserved", h)
		}
	}
	for _, h := range []string{"X-User", "Cookie", "X-Forwarded", "X-Requested-With", "Authorization-Hint"} {
		if ReservedHeader(h) {
			t.Errorf("%s is reserved", h)
		}
	}
	d := DefaultAuthRequestHeaders()
	d[0] = "changed"
	if DefaultAuthRequestHeaders()[0] != "Authorization" || len(d) != 9 {
		t.Errorf("defaults: %q", DefaultAuthRequestHeaders())
	}
}
