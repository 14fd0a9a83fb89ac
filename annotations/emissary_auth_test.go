package annotations

import (
	"reflect"
	"strings"
	"testing"
)

// emAuth is a valid flat Emissary AuthService to which a case appends
// lines 5 on.
const emAuth = "apiVersion: getambassador.io/v2\nkind: AuthService\nname: authentication\nauth_service: auth:3000\n"

const authSvcPath = `AuthService "authentication"`

// scopeWarning is the warning every AuthService that is read gets.
var scopeWarning = wantProblem{2, 7, authSvcPath + ".kind", `AuthService "authentication" authenticates the Emissary Mappings of namespace ns that do not set bypass_auth, and no others: Emissary applies an AuthService to every Mapping of the gateway, so Mappings of other namespaces are not authenticated by it`, true}

// emissaryAuths parses an Emissary annotation without errors, checking its
// problems, and returns its Auths with their positions cleared.
func emissaryAuths(t *testing.T, src string, want ...wantProblem) []Auth {
	t.Helper()
	cfg := checkProblemsWith(t, emissary, src, want...)
	if cfg == nil {
		t.FailNow()
	}
	for i := range cfg.Auths {
		cfg.Auths[i].Positions = nil
	}
	return cfg.Auths
}

func TestParseEmissaryAuthServiceFields(t *testing.T) {
	src := `apiVersion: getambassador.io/v2
kind: AuthService
name: authentication
auth_service: "auth.security:3000"
path_prefix: "/extauth"
timeout_ms: 2000
proto: http
allowed_request_headers:
- "x-tenant"
- "cookie"
allowed_authorization_headers:
- "x-user"
- "authorization"
- "x-roles"
include_body:
  max_bytes: 4096
  allow_partial: true
failure_mode_allow: true
status_on_error:
  code: 503
add_linkerd_headers: true
`
	cfg := checkProblemsWith(t, emissary, src,
		scopeWarning,
		wantProblem{10, 3, authSvcPath + ".allowed_request_headers[1]", `"cookie" is always sent to the authentication service; listing it changes nothing`, true},
		wantProblem{13, 3, authSvcPath + ".allowed_authorization_headers[1]", `header "authorization" is reserved: it carries the client's credentials; an authentication service cannot set it for the upstream; Gatehouse leaves it out`, true},
		wantProblem{19, 1, authSvcPath + ".status_on_error", "ignored: Gatehouse does not implement status_on_error; Gatehouse answers 403 when the authentication service cannot be reached (failure_mode_allow: true lets the request through instead)", true},
		wantProblem{21, 1, authSvcPath + ".add_linkerd_headers", "ignored: Gatehouse does not implement add_linkerd_headers", true},
	)
	if cfg == nil || len(cfg.Auths) != 1 {
		t.Fatalf("config %+v", cfg)
	}
	timeout := 2000
	want := Auth{
		APIVersion: "getambassador.io/v2",
		Kind:       KindAuth,
		Name:       "authentication",
		External: &ExternalAuth{
			Service:                "auth.security:3000",
			PathPrefix:             "/extauth",
			TimeoutMS:              &timeout,
			FailureMode:            FailureModeAllow,
			AllowedRequestHeaders:  []string{"x-tenant", "cookie"},
			AllowedUpstreamHeaders: []string{"x-user", "x-roles"},
			IncludeBodyBytes:       4096,
		},
		Namespaced: true,
		Pos:        Position{1, 1},
		Positions: map[string]Position{
			"apiVersion": {1, 13}, "kind": {2, 7}, "name": {3, 7},
			"external.service": {4, 15}, "external.path_prefix": {5, 14}, "external.timeout_ms": {6, 13},
			"external.allowed_request_headers": {9, 1}, "external.allowed_request_headers[0]": {9, 3}, "external.allowed_request_headers[1]": {10, 3},
			"external.allowed_upstream_headers": {12, 1}, "external.allowed_upstream_headers[0]": {12, 3}, "external.allowed_upstream_headers[1]": {14, 3},
			"external.include_body_bytes": {16, 14}, "external.failure_mode": {18, 21},
		},
	}
	if got := cfg.Auths[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("auth:\n got %+v\nwant %+v", got, want)
	}
	if got := cfg.Auths[0].FieldPos("external.consumer_header"); got != (Position{1, 1}) {
		t.Errorf("FieldPos(external.consumer_header) = %v", got)
	}
}

func TestParseEmissaryAuthService(t *testing.T) {
	five, ten := 5000, 10000
	base := Auth{APIVersion: "getambassador.io/v2", Kind: KindAuth, Name: "authentication", Namespaced: true, Pos: Position{1, 1},
		External: &ExternalAuth{Service: "auth:3000", TimeoutMS: &five, FailureMode: FailureModeDeny}}
	ext := func(f func(e *ExternalAuth)) []Auth {
		a := base
		e := *base.External
		f(&e)
		a.External = &e
		return []Auth{a}
	}
	const unread = "this one is not read"
	for _, tc := range []struct {
		name  string
		src   string
		auths []Auth // nil when the annotation has errors or no Auths
		want  []wantProblem
	}{
		{"defaults", emAuth, []Auth{base}, []wantProblem{scopeWarning}},
		{"proto http", emAuth + "proto: http\n", []Auth{base}, []wantProblem{scopeWarning}},
		{"crd", "apiVersion: getambassador.io/v3alpha1\nkind: AuthService\nmetadata: {name: authentication, namespace: ns}\nspec:\n  auth_service: auth:3000\n  ambassador_id: [default]\n",
			[]Auth{with2(base, func(a *Auth) { a.APIVersion = "getambassador.io/v3alpha1" })}, []wantProblem{scopeWarning}},
		{"timeout at the cap", emAuth + "timeout_ms: 10000\n", ext(func(e *ExternalAuth) { e.TimeoutMS = &ten }), []wantProblem{scopeWarning}},
		{"scheme", strings.Replace(emAuth, "auth:3000", "https://auth:3000", 1), ext(func(e *ExternalAuth) { e.Service = "https://auth:3000" }), []wantProblem{scopeWarning}},
		{"tls", emAuth + "tls: true\n", ext(func(e *ExternalAuth) { e.Service = "https://auth:3000" }), []wantProblem{scopeWarning}},
		{"tls context", emAuth + "tls: auth-ctx\n", ext(func(e *ExternalAuth) { e.Service = "https://auth:3000" }), []wantProblem{scopeWarning,
			{5, 1, authSvcPath + ".tls", "ignored: TLS contexts are not implemented; the authentication service is reached with https:// and default verification", true}}},
		{"tls over http", strings.Replace(emAuth, "auth:3000", "http://auth:3000", 1) + "tls: true\n", ext(func(e *ExternalAuth) { e.Service = "https://auth:3000" }), []wantProblem{scopeWarning,
			{5, 1, authSvcPath + ".tls", "the auth_service says http://, but tls makes Emissary originate TLS anyway", true}}},
		{"tls false", emAuth + "tls: false\n", []Auth{base}, []wantProblem{scopeWarning}},
		{"include_body partial", emAuth + "include_body: {max_bytes: 65536, allow_partial: true}\n", ext(func(e *ExternalAuth) { e.IncludeBodyBytes = 65536 }), []wantProblem{scopeWarning}},
		{"include_body not partial", emAuth + "include_body:\n  max_bytes: 100\n  allow_partial: false\n", ext(func(e *ExternalAuth) { e.IncludeBodyBytes = 100 }), []wantProblem{scopeWarning,
			{7, 18, authSvcPath + ".include_body.allow_partial", "allow_partial is false (Emissary's default), with which Emissary answers 413 to a longer body; Gatehouse sends the first max_bytes of it to the authentication service and lets the request go on", true}}},
		{"include_body default partial", emAuth + "include_body: {max_bytes: 100}\n", ext(func(e *ExternalAuth) { e.IncludeBodyBytes = 100 }), []wantProblem{scopeWarning,
			{5, 1, authSvcPath + ".include_body", "allow_partial is false (Emissary's default)", true}}},
		{"failure_mode_allow false", emAuth + "failure_mode_allow: false\n", []Auth{base}, []wantProblem{scopeWarning}},
		{"ignored fields", emAuth + "add_auth_headers: {x-a: b}\nallow_request_body: true\ncircuit_breakers: [{max_requests: 10}]\nprotocol_version: v3\nstats_name: auth\n",
			[]Auth{base}, []wantProblem{scopeWarning,
				{5, 1, authSvcPath + ".add_auth_headers", "ignored: Gatehouse does not implement add_auth_headers; the authentication service receives the request's own headers only", true},
				{6, 1, authSvcPath + ".allow_request_body", "to send the body, write include_body: {max_bytes: 4096, allow_partial: true}", true},
				{7, 1, authSvcPath + ".circuit_breakers", "each call is bounded by timeout_ms", true},
				{8, 1, authSvcPath + ".protocol_version", "ignored: Gatehouse does not implement protocol_version", true},
				{9, 1, authSvcPath + ".stats_name", "ignored", true}}},
		{"unknown field", emAuth + "path_prefx: /x\n", []Auth{base}, []wantProblem{scopeWarning,
			{5, 1, authSvcPath + ".path_prefx", `unknown field "path_prefx" (did you mean "path_prefix"?); Emissary drops unknown fields, and so does Gatehouse`, true}}},
		{"other gateway", emAuth + "ambassador_id: [blue]\nproto: grpc\n", []Auth{}, nil},

		// Left out with a warning, as the issue decided.
		{"grpc", emAuth + "proto: grpc\n---\n" + emMapping, []Auth{}, []wantProblem{
			{5, 8, authSvcPath + ".proto", `ignored: proto grpc is not supported (Gatehouse calls authentication services over HTTP), so AuthService "authentication" is not read and authenticates no Mapping: the Mappings that rely on it are served unauthenticated; write proto: http`, true}}},
		{"second", emAuth + "---\n" + strings.Replace(emAuth, "authentication", "other", 1) + "timeout_ms: 99999\n", []Auth{base}, []wantProblem{scopeWarning,
			{7, 7, `AuthService "other".kind`, `ignored: this annotation already has AuthService "authentication", and Gatehouse reads one AuthService per annotation (Emissary balances calls across several); ` + unread + ` (see line 3, column 7)`, true}}},
		{"second after grpc", emAuth + "proto: grpc\n---\n" + emAuth, []Auth{with2(base, func(a *Auth) { a.Pos = Position{7, 1} })}, []wantProblem{
			{5, 8, authSvcPath + ".proto", "ignored: proto grpc is not supported", true},
			{8, 7, authSvcPath + ".kind", "authenticates the Emissary Mappings of namespace ns", true}}},
		{"redirect from allowed_authorization_headers", emAuth + "allowed_authorization_headers: [x-user, Host, Connection]\n", ext(func(e *ExternalAuth) { e.AllowedUpstreamHeaders = []string{"x-user"} }), []wantProblem{scopeWarning,
			{5, 41, authSvcPath + ".allowed_authorization_headers[1]", `header "Host" is reserved: the gateway sends the route's host (host_rewrite changes it); an authentication service cannot set it for the upstream; Gatehouse leaves it out`, true},
			{5, 47, authSvcPath + ".allowed_authorization_headers[2]", `header "Connection" is reserved: it frames the request`, true}}},

		// Errors: leaving the AuthService out would serve its Mappings
		// unauthenticated, so the Service is rejected.
		{"missing auth_service", "apiVersion: getambassador.io/v2\nkind: AuthService\nname: authentication\npath_prefix: /x\n", nil, []wantProblem{
			{1, 1, authSvcPath, "missing auth_service: the authentication service, as [http://|https://]name[.namespace][:port]", false}}},
		{"empty auth_service", strings.Replace(emAuth, "auth:3000", "''", 1), nil, []wantProblem{
			{4, 1, authSvcPath + ".auth_service", "missing auth_service", false}}},
		{"bad auth_service", strings.Replace(emAuth, "auth:3000", "auth:3000/check", 1), nil, []wantProblem{
			{4, 15, authSvcPath + ".auth_service", `invalid auth_service "auth:3000/check": a path, query or fragment is not allowed`, false}}},
		{"timeout too long", emAuth + "timeout_ms: 30000\n", nil, []wantProblem{
			{5, 13, authSvcPath + ".timeout_ms", "must be at most 10000 (10 s), which bounds every call to an authentication service in Gatehouse; got 30000", false}}},
		{"timeout zero", emAuth + "timeout_ms: 0\n", nil, []wantProblem{{5, 13, authSvcPath + ".timeout_ms", "must be at least 1; got 0", false}}},
		{"proto", emAuth + "proto: https\n", nil, []wantProblem{{5, 8, authSvcPath + ".proto", `must be one of http, grpc; got "https"`, false}}},
		{"path_prefix", emAuth + "path_prefix: extauth\n", nil, []wantProblem{{5, 14, authSvcPath + ".path_prefix", `must start with "/"`, false}}},
		{"include_body without max_bytes", emAuth + "include_body: {allow_partial: true}\n", nil, []wantProblem{{5, 15, authSvcPath + ".include_body", `missing required field "max_bytes"`, false}}},
		{"include_body too big", emAuth + "include_body: {max_bytes: 1048576, allow_partial: true}\n", nil, []wantProblem{
			{5, 27, authSvcPath + ".include_body.max_bytes", "must be at most 65536 (64 KiB), the most of a body Gatehouse holds for an authentication service; got 1048576", false}}},
		{"bad header", emAuth + "allowed_request_headers: ['x a']\n", nil, []wantProblem{{5, 27, authSvcPath + ".allowed_request_headers[0]", `invalid header name "x a"`, false}}},
		{"namespace", emAuth + "namespace: other\n", nil, []wantProblem{{5, 12, authSvcPath + ".namespace", "an AuthService in Service namespace ns cannot declare namespace other", false}}},
		{"name", strings.Replace(emAuth, "name: authentication", "name: a/b", 1), nil, []wantProblem{{3, 7, `AuthService "a/b".name`, "contains '/'; an AuthService name must not contain '/'", false}}},
		{"near miss", strings.Replace(emAuth, "kind: AuthService", "kind: Authservice", 1), nil, []wantProblem{
			{2, 7, authSvcPath + ".kind", `unknown kind "Authservice" (did you mean "AuthService"?)`, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := checkProblemsWith(t, emissary, tc.src, tc.want...)
			if cfg == nil {
				if tc.auths != nil {
					t.Fatal("no config")
				}
				return
			}
			for i := range cfg.Auths {
				cfg.Auths[i].Positions = nil
			}
			if len(cfg.Auths) != len(tc.auths) || len(tc.auths) > 0 && !reflect.DeepEqual(cfg.Auths, tc.auths) {
				t.Errorf("auths:\n got %+v\nwant %+v", cfg.Auths, tc.auths)
			}
		})
	}
}

func with2(a Auth, f func(a *Auth)) Auth {
	f(&a)
	return a
}

// TestParseEmissaryMappingAuth covers the Mapping fields an Emissary
// Mapping uses with an AuthService: bypass_auth, and Gatehouse's own auth
// and require_consumer.
func TestParseEmissaryMappingAuth(t *testing.T) {
	const svc = "---\n" + emAuth // lines 7 on after emMapping and one line
	svcWarning := func(line int) wantProblem {
		w := scopeWarning
		w.line = line
		return w
	}
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"bypass_auth", emMapping + "bypass_auth: true\n" + svc, []wantProblem{svcWarning(9)}},
		{"bypass_auth yes", emMapping + "bypass_auth: yes\n", []wantProblem{{6, 14, users + ".bypass_auth", "yes is a YAML 1.1 boolean: read as true", true}}},
		{"auth names the AuthService", emMapping + "auth: authentication\n" + svc, []wantProblem{svcWarning(9)}},
		{"auth unknown", emMapping + "auth: authentication\n", []wantProblem{{6, 7, users + ".auth", `unknown Auth "authentication"; this annotation declares no Auth documents`, false}}},
		{"auth names a grpc AuthService", emMapping + "auth: authentication\n" + svc + "proto: grpc\n", []wantProblem{
			{6, 7, users + ".auth", `AuthService "authentication" is not read (see its warning), so it cannot authenticate this Mapping`, false},
			{12, 8, authSvcPath + ".proto", "ignored: proto grpc is not supported", true}}},
		{"auth and bypass_auth", emMapping + "bypass_auth: true\nauth: authentication\n" + svc, []wantProblem{
			{7, 1, users + ".auth", "set auth or bypass_auth, not both", false},
			svcWarning(10)}},
		{"require_consumer", emMapping + "require_consumer: true\n" + svc, []wantProblem{
			{6, 1, users + ".require_consumer", "require_consumer relies on the namespace's AuthService, which never names a consumer (Emissary has none): every request would be answered 403", true},
			svcWarning(9)}},
		{"require_consumer and bypass_auth", emMapping + "require_consumer: true\nbypass_auth: true\n", []wantProblem{
			{6, 1, users + ".require_consumer", "require_consumer with bypass_auth: no Auth applies to this Mapping, so every request would be answered 403", false}}},
		{"auth_context_extensions", emMapping + "auth_context_extensions: {a: b}\n", []wantProblem{
			{6, 1, users + ".auth_context_extensions", "ignored: Gatehouse does not implement auth_context_extensions; the authentication service receives the request's headers only", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblemsWith(t, emissary, tc.src, tc.want...)
		})
	}
	cfg := checkProblemsWith(t, emissary, emMapping+"bypass_auth: true\n"+svc, svcWarning(9))
	if m := cfg.Mappings[0]; !m.BypassAuth || m.Auth != "" || len(cfg.Auths) != 1 || !cfg.Auths[0].Namespaced {
		t.Errorf("mapping %+v, auths %+v", m, cfg.Auths)
	}
	// The native dialect has no AuthService, and an Auth there is never
	// namespaced.
	if auths := emissaryAuths(t, emAuth, scopeWarning); len(auths) != 1 {
		t.Errorf("auths %+v", auths)
	}
}
