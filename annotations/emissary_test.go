package annotations

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var emissary = Options{Namespace: "ns", Dialect: Emissary}

// emMapping is a valid flat Emissary Mapping to which a case appends lines 6 on.
const emMapping = "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: users\nprefix: /users/\nservice: users\n"

// withVersion is emMapping with another apiVersion.
func withVersion(v string) string {
	return strings.Replace(emMapping, "getambassador.io/v3alpha1", v, 1)
}

// emCRD is a valid CRD-shaped Mapping to which a case appends spec fields,
// lines 10 on.
const emCRD = `apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: users
  namespace: ns
  labels: {app: users}
spec:
  prefix: /users/
  service: users
`

func TestParseEmissary(t *testing.T) {
	const v3 = "apiVersion: getambassador.io/v3alpha1\n"
	for _, tc := range []struct {
		name     string
		src      string
		mappings int // how many Mappings are returned when there is no error
		want     []wantProblem
	}{
		// apiVersion.
		{"v3alpha1", emMapping, 1, nil},
		{"ambassador/v0", withVersion("ambassador/v0"), 1, []wantProblem{{1, 13, users + ".apiVersion", "apiVersion v0 is deprecated (current Emissary rejects it)", true}}},
		{"getambassador.io/v0", withVersion("getambassador.io/v0"), 1, []wantProblem{{1, 13, users + ".apiVersion", "apiVersion v0 is deprecated", true}}},
		{"ambassador/v1", withVersion("ambassador/v1"), 1, nil},
		{"ambassador/v2", withVersion("ambassador/v2"), 1, nil},
		{"getambassador.io/v1", withVersion("getambassador.io/v1"), 1, nil},
		{"getambassador.io/v2", withVersion("getambassador.io/v2"), 1, nil},
		{"missing apiVersion", "kind: Mapping\nname: users\nprefix: /\nservice: s\n", 1, []wantProblem{{1, 1, users, "missing apiVersion; Emissary requires one", true}}},
		{"unsupported apiVersion", withVersion("getambassador.io/v4"), 0, []wantProblem{{1, 13, users + ".apiVersion", `unsupported apiVersion "getambassador.io/v4"`, false}}},
		{"native apiVersion", withVersion("gatehouse.dev/v1"), 0, []wantProblem{{1, 13, users + ".apiVersion", "documents belong in the gatehouse.dev/config annotation", false}}},
		{"apiVersion not a string", withVersion("[v2]"), 0, []wantProblem{{1, 13, users + ".apiVersion", "expected a string, got a list", false}}},

		// CRD-shaped documents.
		{"crd", emCRD + "  ambassador_id: [default]\n", 1, nil},
		{"crd unknown spec field", emCRD + "  prefx: /x\n", 1, []wantProblem{
			{10, 3, users + ".spec.prefx", `unknown field "prefx" (did you mean "prefix"?); Emissary drops unknown fields, and so does Gatehouse`, true}}},
		{"crd missing prefix", v3 + "kind: Mapping\nmetadata:\n  name: users\nspec:\n  service: s\n", 0, []wantProblem{
			{6, 3, users + ".spec", `missing required field "prefix"`, false}}},
		{"crd name in spec", emCRD + "  name: other\n", 1, []wantProblem{{10, 3, users + ".spec.name", `unknown field "name": name belongs in metadata`, true}}},
		{"crd namespace mismatch", strings.Replace(emCRD, "namespace: ns", "namespace: billing", 1), 0, []wantProblem{
			{5, 14, users + ".metadata.namespace", "a Mapping in Service namespace ns cannot declare namespace billing", false}}},
		{"crd missing spec", v3 + "kind: Mapping\nmetadata: {name: users}\n", 0, []wantProblem{{1, 1, users, `missing required field "spec"`, false}}},
		{"crd spec not a mapping", v3 + "kind: Mapping\nmetadata: {name: users}\nspec: [a]\n", 0, []wantProblem{{4, 7, users + ".spec", "expected a mapping of fields, got a list", false}}},
		{"crd missing metadata", v3 + "kind: Mapping\nspec: {prefix: /, service: s}\n", 0, []wantProblem{{1, 1, "document 1", `missing required field "metadata"`, false}}},
		{"crd metadata not a mapping", v3 + "kind: Mapping\nmetadata: users\nspec: {prefix: /, service: s}\n", 0, []wantProblem{{3, 11, "document 1.metadata", "expected a mapping (name, namespace)", false}}},
		{"crd unknown root field", emCRD + "status: {}\n", 1, []wantProblem{{10, 1, users + ".status", `unknown field "status"; Emissary drops unknown fields`, true}}},
		{"crd unknown metadata field", strings.Replace(emCRD, "  labels:", "  uid: abc\n  labels:", 1), 1, []wantProblem{
			{6, 3, users + ".metadata.uid", `unknown field "uid"; Gatehouse reads only name and namespace from metadata`, true}}},
		{"crd duplicate root field", emCRD + "kind: Mapping\n", 1, []wantProblem{{10, 1, users + ".kind", `duplicate field "kind" (see line 2, column 1)`, false}}},

		// ambassador_id.
		{"other ambassador_id", emMapping + "ambassador_id: other\nprefx: 1\nprecedence: high\n", 0, nil},
		{"ambassador_id list", emMapping + "ambassador_id: [other, default]\n", 1, nil},
		{"ambassador_id automatic", emMapping + "ambassador_id: _automatic_\n", 1, nil},
		{"ambassador_id empty list", emMapping + "ambassador_id: []\n", 1, nil},
		{"ambassador_id not a string", emMapping + "ambassador_id: 5\n", 0, []wantProblem{{6, 16, users + ".ambassador_id", "expected a string or a list of strings, got integer 5", false}}},
		{"ambassador_id item", emMapping + "ambassador_id: [a, [b]]\n", 0, []wantProblem{{6, 20, users + ".ambassador_id[1]", "expected a string, got a list", false}}},
		{"ambassador_id before kind", "kind: Route\nname: r\nambassador_id: [other]\n", 0, nil},
		{"crd ambassador_id", strings.Replace(emCRD, "spec:\n", "spec:\n  ambassador_id: other\n", 1), 0, nil},

		// Kinds.
		{"module", v3 + "kind: Module\nname: ambassador\nconfig: {}\n---\n" + emMapping, 1, []wantProblem{
			{2, 7, `Module "ambassador".kind`, "kind Module is ignored by Gatehouse", true}}},
		{"rate limit", v3 + "kind: RateLimit\nname: r\ndomain: ambassador\nlimits: []\n", 0, []wantProblem{
			{2, 7, `RateLimit "r".kind`, "RateLimit is ignored here: it is an Edge Stack CRD", true}}},
		{"unknown kind", v3 + "kind: FilterPolicy\nname: r\nrules: [{host: '*', filters: null}]\n---\n" + emMapping, 1, []wantProblem{
			{2, 7, "document 1.kind", `unknown kind "FilterPolicy" is ignored by Gatehouse, which reads Mapping, Host, TLSContext and AuthService documents`, true}}},
		{"unknown kind alone", v3 + "kind: WebApplicationFirewall\n", 0, []wantProblem{
			{2, 7, "document 1.kind", `unknown kind "WebApplicationFirewall" is ignored`, true}}},
		{"near miss of an ignored kind", v3 + "kind: RateLimitServic\nname: t\n---\n" + emMapping, 1, []wantProblem{
			{2, 7, `RateLimitService "t".kind`, `unknown kind "RateLimitServic" (did you mean "RateLimitService"?) is ignored by Gatehouse`, true}}},
		{"near miss of a read kind", v3 + "kind: TLSContex\nname: t\nhosts: [a.com]\nsecret: s\n", 0, []wantProblem{
			{2, 7, `TLSContext "t".kind`, `unknown kind "TLSContex" (did you mean "TLSContext"?)`, false}}},
		{"kind near miss", v3 + "kind: mapping\nname: users\nprefix: /\nservice: s\nprefx: 1\n", 0, []wantProblem{
			{2, 7, users + ".kind", `unknown kind "mapping" (did you mean "Mapping"?)`, false},
			{6, 1, users + ".prefx", "unknown field", true}}},
		{"missing kind", v3 + "name: users\n", 0, []wantProblem{{1, 1, "document 1", `missing required field "kind"`, false}}},

		// Names.
		{"nameless", "apiVersion: getambassador.io/v2\nkind: Mapping\nprefix: /\nservice: s\n---\n" + emMapping, 1, []wantProblem{
			{1, 1, "document 1", "document has no name; Emissary drops it, and so does Gatehouse", true}}},
		{"empty name", v3 + "kind: Mapping\nname: ''\nprefix: /\nservice: s\n", 0, []wantProblem{{3, 1, "document 1", "document has no name", true}}},
		{"crd nameless", v3 + "kind: Mapping\nmetadata: {namespace: ns}\nspec: {prefix: /, service: s}\n", 0, []wantProblem{{3, 11, "document 1", "document has no name", true}}},
		{"name not a string", v3 + "kind: Mapping\nname: [a]\nprefix: /\nservice: s\n", 0, []wantProblem{{3, 7, "document 1.name", "expected a string, got a list", false}}},
		{"duplicate name", emMapping + "---\n" + emMapping, 0, []wantProblem{{9, 7, users + ".name", `duplicate Mapping name "users" (see line 3, column 7)`, false}}},
		{"names differing in case", emMapping + "---\n" + strings.Replace(emMapping, "name: users", "name: Users", 1), 2, nil},

		// Fields.
		{"unknown field", emMapping + "prefx: /x\n", 1, []wantProblem{
			{6, 1, users + ".prefx", `unknown field "prefx" (did you mean "prefix"?); Emissary drops unknown fields, and so does Gatehouse`, true}}},
		{"unknown nested field", emMapping + "retry_policy: {num_retrys: 1}\n", 1, []wantProblem{
			{6, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{6, 16, users + ".retry_policy.num_retrys", `(did you mean "num_retries"?); Emissary drops`, true}}},
		{"ignored field", emMapping + "add_linkerd_headers: true\n", 1, []wantProblem{{6, 1, users + ".add_linkerd_headers", "ignored: Gatehouse does not implement add_linkerd_headers", true}}},
		{"ignored nested field", emMapping + "retry_policy: {retry_back_off: {base_interval: 1s}}\n", 1, []wantProblem{
			{6, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{6, 16, users + ".retry_policy.retry_back_off", "ignored: Gatehouse does not implement retry_back_off", true}}},
		{"rate_limits", withVersion("ambassador/v0") + "rate_limits:\n  - descriptor: A test case\n    headers: [x-ambassador-test-allow]\n", 1, []wantProblem{
			{1, 13, users + ".apiVersion", "v0 is deprecated", true},
			{6, 1, users + ".rate_limits", "ignored: rate_limits is Emissary v0's rate-limit descriptors, which Emissary converts to labels for its external rate-limit service; Gatehouse does not call such a service (declare RateLimit documents in the gatehouse.dev/config annotation)", true}}},
		{"crd rate_limits", emCRD + "  rate_limits: [{descriptor: a}]\n", 1, []wantProblem{
			{10, 3, users + ".spec.rate_limits", "ignored: rate_limits is Emissary v0's rate-limit descriptors", true}}},
		{"null rate_limits", emMapping + "rate_limits:\n", 1, nil},
		{"type errors stay errors", emMapping + "precedence: high\n", 0, []wantProblem{{6, 13, users + ".precedence", "expected an integer", false}}},
		{"namespace", emMapping + "namespace: ns\n", 1, nil},
		{"namespace mismatch", emMapping + "namespace: other\n", 0, []wantProblem{
			{6, 12, users + ".namespace", "a Mapping in Service namespace ns cannot declare namespace other", false}}},
		{"host and hostname", emMapping + "host: a.com\nhostname: b.com\n", 1, []wantProblem{
			{6, 1, users + ".host", "host is ignored when hostname is set (Emissary behaviour)", true}}},
		{"host port", emMapping + "host: a.com:8080\n", 1, []wantProblem{{6, 7, users + ".host", "the port is ignored", true}}},
		{"header true", withVersion("ambassador/v0") + "headers: {x-a: true}\n", 1, []wantProblem{{1, 13, users + ".apiVersion", "v0 is deprecated", true}}},
		{"idle timeout zero", emMapping + "idle_timeout_ms: 0\n", 1, nil},
		{"labels", emMapping + "labels:\n  ambassador:\n    - g: [remote_address]\n", 1, []wantProblem{
			{6, 1, users + ".labels", "use rate_limits with a RateLimit document in the gatehouse.dev/config annotation", true}}},

		// Streams.
		{"lone marker", "---", 0, nil},
		{"empty", "", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := checkProblemsWith(t, emissary, tc.src, tc.want...)
			if cfg != nil && len(cfg.Mappings) != tc.mappings {
				t.Errorf("got %d Mappings, want %d", len(cfg.Mappings), tc.mappings)
			}
		})
	}
}

func TestParseEmissaryIgnoredKinds(t *testing.T) {
	// The kinds read come first, then RateLimit, which has its own message.
	for _, kind := range emissaryKindList[emissaryReadKinds+1:] {
		src := "apiVersion: getambassador.io/v3alpha1\nkind: " + kind + "\nname: x\nanything: [goes]\n---\n" + emMapping
		cfg := checkProblemsWith(t, emissary, src, wantProblem{2, 7, kind + ` "x".kind`, "kind " + kind + " is ignored by Gatehouse", true})
		if cfg == nil || len(cfg.Mappings) != 1 {
			t.Errorf("kind %s: the Mapping next to it was not read: %+v", kind, cfg)
		}
	}
}

func TestParseEmissaryAmbassadorID(t *testing.T) {
	blue := Options{Namespace: "ns", Dialect: Emissary, AmbassadorID: "blue"}
	for _, tc := range []struct {
		ids  string // the ambassador_id line, or ""
		want bool
	}{
		{"", false},
		{"ambassador_id: default\n", false},
		{"ambassador_id: blue\n", true},
		{"ambassador_id: [green, blue]\n", true},
		{"ambassador_id: [_automatic_]\n", true},
		{"ambassador_id: [Blue]\n", false},
	} {
		cfg, problems := Parse(emMapping+tc.ids, blue)
		if cfg == nil || len(cfg.Mappings) == 1 != tc.want || len(problems) != 0 {
			t.Errorf("%q: taken %v, want %v (problems %v)", tc.ids, cfg != nil && len(cfg.Mappings) == 1, tc.want, problems)
		}
	}
	cfg, _ := Parse(emMapping+"ambassador_id: [blue, green]\n", blue)
	if got := cfg.Mappings[0].AmbassadorID; !reflect.DeepEqual(got, []string{"blue", "green"}) {
		t.Errorf("AmbassadorID = %q", got)
	}
	cfg, _ = Parse(emMapping+"ambassador_id: blue\n", blue)
	if got := cfg.Mappings[0].AmbassadorID; !reflect.DeepEqual(got, []string{"blue"}) {
		t.Errorf("AmbassadorID = %q", got)
	}
}

func TestParseEmissaryNormalises(t *testing.T) {
	cfg := checkProblemsWith(t, emissary, emMapping+"idle_timeout_ms: 0\nhost: API.example.com:443\n",
		wantProblem{7, 7, users + ".host", "the port is ignored", true})
	if m := cfg.Mappings[0]; m.IdleTimeoutMS != nil || m.Host != "api.example.com" || m.AmbassadorID != nil {
		t.Errorf("got idle timeout %v, host %q, ambassador_id %q", m.IdleTimeoutMS, m.Host, m.AmbassadorID)
	}
	cfg, _ = Parse(emCRD, emissary)
	want := map[string]Position{"apiVersion": {1, 13}, "kind": {2, 7}, "name": {4, 9}, "namespace": {5, 14}, "prefix": {8, 11}, "service": {9, 12}}
	if got := cfg.Mappings[0].Positions; !reflect.DeepEqual(got, want) {
		t.Errorf("CRD positions:\n got %v\nwant %v", got, want)
	}
}

// TestParseEmissaryRealistic reads an annotation with the quirks real
// Emissary annotations have: leading blank lines, a lone "---", extra
// indentation, trailing spaces, no final newline (|-), capitalised True,
// comments and unquoted regular expressions.
func TestParseEmissaryRealistic(t *testing.T) {
	b, err := os.ReadFile("testdata/emissary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, quirk := range []string{"\n\n   \n---\n", "quote-backend.v1   \n", "  # ", "True", `^\d+$`, "ambassador_id: [blue]"} {
		if !strings.Contains(src, quirk) {
			t.Fatalf("testdata/emissary.yaml lost %q", quirk)
		}
	}
	if strings.HasSuffix(src, "\n") {
		t.Fatal("testdata/emissary.yaml must not end with a newline, like a |- block scalar")
	}
	cfg := checkProblemsWith(t, Options{Namespace: "shop", Dialect: Emissary}, src,
		wantProblem{16, 3, `Mapping "quote-backend.v1".use_websocket`, "deprecated: use allow_upgrade: [websocket]", true},
		wantProblem{19, 9, `Module "ambassador".kind`, "kind Module is ignored by Gatehouse", true},
		wantProblem{43, 3, `Mapping "quote-regex".spec.host`, "host is ignored when hostname is set", true},
		wantProblem{54, 3, `Host "quote-host".spec.acmeProvider`, "ignored: Gatehouse does not implement acmeProvider; ACME is not supported: issue certificates with cert-manager and name the Secret in tlsSecret", true},
		wantProblem{61, 7, `Host "quote-host".spec.requestPolicy.insecure.additionalPort`, "ignored: Gatehouse does not implement additionalPort", true},
		wantProblem{76, 3, `TLSContext "partners-mtls".alpn_protocols`, "ignored: Gatehouse does not implement alpn_protocols", true},
		wantProblem{80, 9, `AuthService "authentication".kind`, "authenticates the Emissary Mappings of namespace shop that do not set bypass_auth, and no others", true},
		wantProblem{92, 3, `AuthService "authentication".status_on_error`, "ignored: Gatehouse does not implement status_on_error", true},
	)
	if cfg == nil {
		return
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].Positions = nil
	}
	yes, empty, timeout := true, "", 5000
	want := []Mapping{{
		APIVersion:   "ambassador/v1",
		Kind:         KindMapping,
		Name:         "quote-backend.v1",
		Prefix:       "/backend/",
		Service:      "quote:8080",
		Headers:      map[string]HeaderValue{"x-canary": {Present: true}},
		RegexHeaders: map[string]string{"x-id": `^\d+$`},
		TimeoutMS:    &timeout,
		UseWebsocket: &yes,
		AllowUpgrade: []string{"websocket"},
		Pos:          Position{Line: 6, Column: 3},
	}, {
		APIVersion:   "getambassador.io/v3alpha1",
		Kind:         KindMapping,
		Name:         "quote-regex",
		AmbassadorID: []string{"default"},
		Prefix:       `^/v\d+/quote$`,
		PrefixRegex:  true,
		Hostname:     "*.example.com",
		Service:      "https://quote.shop:8443",
		Rewrite:      &empty,
		Pos:          Position{Line: 32, Column: 1},
	}, {
		APIVersion: "getambassador.io/v2",
		Kind:       KindMapping,
		Name:       "quote-health",
		Prefix:     "/health",
		Service:    "quote:8080",
		BypassAuth: true,
		Pos:        Position{Line: 95, Column: 3},
	}}
	if !reflect.DeepEqual(cfg.Mappings, want) {
		t.Errorf("mappings:\n got %+v\nwant %+v", cfg.Mappings, want)
	}
	for i := range cfg.Hosts {
		cfg.Hosts[i].Positions = nil
	}
	partners := Host{
		APIVersion:     "getambassador.io/v2",
		Kind:           KindHost,
		Insecure:       InsecureRedirect, // redirect_cleartext_from
		TLSSecret:      "partners-example-com-tls",
		MinTLSVersion:  "v1.2",
		ClientCASecret: "partners-ca",
		ClientCert:     ClientCertRequired,
		Pos:            Position{Line: 66, Column: 3},
	}
	partnersAPI := partners
	partners.Name, partners.Hostname = "partners-mtls:partners.example.com", "partners.example.com"
	partnersAPI.Name, partnersAPI.Hostname = "partners-mtls:api.partners.example.com", "api.partners.example.com"
	wantHosts := []Host{{
		APIVersion:    "getambassador.io/v3alpha1",
		Kind:          KindHost,
		Name:          "quote-host",
		Hostname:      "quote.example.com",
		TLSSecret:     "quote-example-com-tls",
		Insecure:      InsecureRedirect,
		MinTLSVersion: "v1.3",
		Pos:           Position{Line: 47, Column: 1},
	}, partners, partnersAPI}
	if !reflect.DeepEqual(cfg.Hosts, wantHosts) {
		t.Errorf("hosts:\n got %+v\nwant %+v", cfg.Hosts, wantHosts)
	}
	for i := range cfg.Auths {
		cfg.Auths[i].Positions = nil
	}
	authTimeout := 5000 // Emissary's default, kept
	wantAuths := []Auth{{
		APIVersion: "getambassador.io/v2",
		Kind:       KindAuth,
		Name:       "authentication",
		External: &ExternalAuth{
			Service:                "auth.shop:3000",
			PathPrefix:             "/extauth",
			TimeoutMS:              &authTimeout,
			FailureMode:            FailureModeDeny,
			AllowedRequestHeaders:  []string{"x-tenant"},
			AllowedUpstreamHeaders: []string{"x-user"},
			IncludeBodyBytes:       4096,
		},
		Namespaced: true,
		Pos:        Position{Line: 79, Column: 3},
	}}
	if !reflect.DeepEqual(cfg.Auths, wantAuths) {
		t.Errorf("auths:\n got %+v\nwant %+v", cfg.Auths, wantAuths)
	}
}

func TestParseEmissaryNames(t *testing.T) {
	for _, tc := range []struct {
		name string // as written in YAML
		msg  string // "" when accepted without any problem
	}{
		{"qotm_mapping", ""},
		{"ratelimit_target_mapping", ""},
		{"QuoteBackend", ""},
		{"quote-backend.v1", ""},
		{"_x_", ""},
		{"'a:b@c'", ""},
		{"a/b", `"a/b" contains '/'; a Mapping name must not contain '/', whitespace or control characters`},
		{"'a b'", `"a b" contains ' '`},
		{"\"a\\tb\"", `"a\tb" contains '\t'`},
		{"\"a\\u0085b\"", `contains '\u0085'`},
		{strings.Repeat("n", 254), "is 254 characters long; a Mapping name has at most 253"},
	} {
		src := "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: " + tc.name + "\nprefix: /\nservice: s\n"
		cfg, problems := Parse(src, emissary)
		if tc.msg == "" {
			if len(problems) != 0 || cfg == nil || len(cfg.Mappings) != 1 {
				t.Errorf("name %s: problems %v", tc.name, problems)
			}
			continue
		}
		if len(problems) != 1 || problems[0].Warning || problems[0].Pos != (Position{3, 7}) || !strings.Contains(problems[0].Message, tc.msg) {
			t.Errorf("name %s: got %v, want an error at 3:7 containing %q", tc.name, problems, tc.msg)
		}
	}
}

// emissaryMapping parses an Emissary annotation that must hold one
// Mapping, checking its problems.
func emissaryMapping(t *testing.T, src string, want ...wantProblem) Mapping {
	t.Helper()
	cfg := checkProblemsWith(t, emissary, src, want...)
	if cfg == nil || len(cfg.Mappings) != 1 {
		t.Fatalf("want one Mapping, got %+v", cfg)
	}
	return cfg.Mappings[0]
}

func TestParseEmissaryTLS(t *testing.T) {
	const ctxWarning = "ignored: TLS contexts are not implemented; the upstream is reached with https:// and default verification"
	base := "apiVersion: getambassador.io/v2\nkind: Mapping\nname: users\nprefix: /users/\n"
	for _, tc := range []struct {
		name, src, service string
		want               []wantProblem
	}{
		{"true", emMapping + "tls: true\n", "https://users", nil},
		{"True", emMapping + "tls: True\n", "https://users", nil},
		{"false", emMapping + "tls: false\n", "users", nil},
		{"null", emMapping + "tls:\n", "users", nil},
		{"empty context name", emMapping + "tls: ''\n", "users", nil},
		{"context", emMapping + "tls: upstream-ctx\n", "https://users", []wantProblem{{6, 1, users + ".tls", ctxWarning, true}}},
		{"yes", emMapping + "tls: yes\n", "https://users", []wantProblem{{6, 6, users + ".tls", "yes is a YAML 1.1 boolean: read as true, as Emissary does; write true", true}}},
		{"port kept", base + "service: users.shop:8443\ntls: true\n", "https://users.shop:8443", nil},
		{"already https", base + "service: https://users\ntls: true\n", "https://users", nil},
		{"http", base + "service: HTTP://users:8080\ntls: true\n", "https://users:8080", []wantProblem{
			{6, 1, users + ".tls", "the service says http://, but tls makes Emissary originate TLS anyway (and report an error), and so does Gatehouse", true}}},
		{"before service", base + "tls: true\nservice: users\n", "https://users", nil},
		{"redirect", base + "service: www.example.com\nhost_redirect: true\ntls: true\n", "www.example.com", []wantProblem{
			{7, 1, users + ".tls", "tls has no effect on a host_redirect Mapping", true}}},
		{"crd", emCRD + "  tls: true\n", "https://users", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := emissaryMapping(t, tc.src, tc.want...)
			if m.Service != tc.service {
				t.Errorf("service %q, want %q", m.Service, tc.service)
			}
			if _, ok := m.Positions["tls"]; !ok && !strings.Contains(tc.src, "tls:\n") {
				t.Errorf("no position for tls: %v", m.Positions)
			}
		})
	}
	// An unusable value, and a bad service reported as written.
	checkProblemsWith(t, emissary, emMapping+"tls: [a]\n", wantProblem{6, 6, users + ".tls", "expected true, false or the name of a TLSContext, got a list", false})
	checkProblemsWith(t, emissary, base+"service: users/x\ntls: true\n", wantProblem{5, 10, users + ".service", `invalid service "users/x"`, false})
	ref, err := ParseServiceRef(emissaryMapping(t, emMapping+"tls: true\n").Service, "ns")
	if err != nil || ref.Port != 443 || ref.Scheme != "https" {
		t.Errorf("tls: true gives %+v, %v; want https on port 443", ref, err)
	}
	// The native dialect does not read tls.
	checkProblems(t, mapping+"tls: true\n", wantProblem{5, 1, users + ".tls", `unknown field "tls": an Emissary field that Gatehouse does not implement`, false})
}

func TestParseEmissaryBooleans(t *testing.T) {
	m := emissaryMapping(t, emMapping+"use_websocket: yes\nhost_regex: On\nhost: '[a-z]+\\.example\\.com'\ncase_sensitive: NO\nshadow: off\n",
		wantProblem{6, 1, users + ".use_websocket", "deprecated: use allow_upgrade: [websocket]", true},
		wantProblem{6, 16, users + ".use_websocket", "yes is a YAML 1.1 boolean: read as true, as Emissary does; write true", true},
		wantProblem{7, 13, users + ".host_regex", "On is a YAML 1.1 boolean: read as true, as Emissary does; write true", true},
		wantProblem{9, 17, users + ".case_sensitive", "NO is a YAML 1.1 boolean: read as false, as Emissary does; write false", true},
		wantProblem{10, 9, users + ".shadow", "off is a YAML 1.1 boolean: read as false", true},
	)
	if !isTrue(m.UseWebsocket) || !m.HostRegex || m.CaseSensitive == nil || *m.CaseSensitive || m.Shadow == nil || *m.Shadow {
		t.Errorf("booleans read wrong: %+v", m)
	}
	// Quoted, they are strings to PyYAML too; y and n are not booleans to it.
	checkProblemsWith(t, emissary, emMapping+"grpc: 'yes'\nshadow: y\n",
		wantProblem{6, 7, users + ".grpc", `expected a boolean (true or false), got string "yes"`, false},
		wantProblem{7, 9, users + ".shadow", `expected a boolean (true or false), got string "y"`, false})
	// A header value: Emissary may have read a presence check, Gatehouse
	// matches the text.
	m = emissaryMapping(t, emMapping+"headers: {x-canary: yes, x-off: off, x-q: 'on'}\nquery_parameters: {debug: on}\n",
		wantProblem{6, 21, users + ".headers.x-canary", `Emissary's YAML 1.1 reader takes unquoted yes as the boolean true, not as text; Gatehouse matches the value "yes": quote it to keep this meaning, or write true to require only that the header is present`, true},
		wantProblem{6, 33, users + ".headers.x-off", `takes unquoted off as the boolean false, not as text; Gatehouse matches the value "off": quote it to keep this meaning`, true},
		wantProblem{7, 27, users + ".query_parameters.debug", "or write true to require only that the query parameter is present", true})
	if m.Headers["x-canary"] != (HeaderValue{Value: "yes"}) || m.QueryParameters["debug"] != (HeaderValue{Value: "on"}) {
		t.Errorf("conditions: %v %v", m.Headers, m.QueryParameters)
	}
	checkProblems(t, mapping+"headers: {x-canary: yes}\n")
}

func TestParseEmissaryRegexRewrite(t *testing.T) {
	for _, tc := range []struct {
		pattern, sub string // as written in a single-quoted YAML scalar
		want         string // the translation
		problem      *wantProblem
	}{
		{`^/rr/old/(.*)$`, `/new/\1`, "/new/${1}", nil},
		{`^/(a)(b)`, `/\2\1x\0`, "/${2}${1}x${0}", nil},
		{`^/(a)`, `/a\\b/\\1`, `/a\b/\1`, nil},
		{`^/(a)`, `/cost$/x`, "/cost$$/x", nil},
		{`^/(a)`, `/plain`, "/plain", nil},
		{`^/(a)`, ``, "", nil},
		{`^/(a)`, `/$1`, "/$$1", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `"$" is literal text in Envoy's substitution syntax, which Emissary uses; write \1 for group 1`, true}},
		{`^/(a)`, `/${1}`, "/$${1}", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `"$" is literal text`, true}},
		{`^/(a)`, `/\2`, "", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `invalid substitution "/\\2": refers to group 2, but the pattern has 1 group`, false}},
		{`^/(a)`, `/\.x`, "", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `"\\." is not allowed: in Envoy's substitution syntax "\" is followed by a group number (\1) or another "\"`, false}},
		{`^/(a)`, `/\é`, "", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `"\\é" is not allowed`, false}},
		{`^/(a)`, `/x\`, "", &wantProblem{8, 17, users + ".regex_rewrite.substitution", `a "\" at the end must be written "\\"`, false}},
		{`^/(a`, `/\1`, "", &wantProblem{7, 12, users + ".regex_rewrite.pattern", "missing closing )", false}},
	} {
		src := emMapping + "regex_rewrite:\n  pattern: '" + tc.pattern + "'\n  substitution: '" + tc.sub + "'\n"
		var want []wantProblem
		if tc.problem != nil {
			want = append(want, *tc.problem)
		}
		cfg := checkProblemsWith(t, emissary, src, want...)
		if cfg == nil {
			continue
		}
		if got := cfg.Mappings[0].RegexRewrite.Substitution; got != tc.want {
			t.Errorf("substitution %s: translated to %q, want %q", tc.sub, got, tc.want)
		}
	}
	// The translation does what Envoy does with the written form.
	m := emissaryMapping(t, emMapping+"regex_rewrite:\n  pattern: '^/users/([0-9]+)/(.*)$'\n  substitution: '/u/\\2/$/\\1'\n")
	re := regexp.MustCompile(m.RegexRewrite.Pattern)
	if got := re.ReplaceAllString("/users/42/orders", m.RegexRewrite.Substitution); got != "/u/orders/$/42" {
		t.Errorf("rewrite gives %q", got)
	}
	// The native dialect keeps Go's syntax and refuses Envoy's.
	checkProblems(t, mapping+"regex_rewrite:\n  pattern: '^/(a)'\n  substitution: '/\\1'\n",
		wantProblem{7, 17, users + ".regex_rewrite.substitution", `Envoy-style group reference "\\1" is not supported; write "${1}"`, false})
}

func TestParseEmissaryLabels(t *testing.T) {
	const labels = "labels:\n  ambassador:\n"
	labelsWarning := wantProblem{6, 1, users + ".labels", "labels configure Emissary's external rate-limit service", true}
	m := emissaryMapping(t, emMapping+labels+
		"    - request_label_group:\n"+
		"      - x-ambassador-test-allow:\n"+
		"          header: \"x-ambassador-test-allow\"\n"+
		"          omit_if_not_present: true\n"+
		"      - {user: {header: x-user}}\n"+
		"      - remote_address\n", labelsWarning)
	want := map[string][]LabelGroup{"ambassador": {{Name: "request_label_group", Labels: []Label{
		{Kind: "request_headers", Key: "x-ambassador-test-allow", HeaderName: "x-ambassador-test-allow", OmitIfNotPresent: true},
		{Kind: "request_headers", Key: "user", HeaderName: "x-user"},
		{Kind: "remote_address", Key: "remote_address"},
	}}}}
	if !reflect.DeepEqual(m.Labels, want) {
		t.Errorf("labels:\n got %+v\nwant %+v", m.Labels, want)
	}
	if got := m.Positions["labels.ambassador[0].request_label_group[0].x-ambassador-test-allow.header"]; got != (Position{10, 19}) {
		t.Errorf("position of the custom label's header: %v", got)
	}

	// Problems inside labels are warnings, and a domain that could not be
	// read whole is left out.
	m = emissaryMapping(t, emMapping+labels+
		"    - g:\n"+
		"      - {request_header: {key: k, header_name: x}}\n"+
		"      - {custom: {header: 'x y'}}\n"+
		"      - {custom: {header: x, omit: true}}\n"+
		"      - generic_key: {key: k}\n"+
		"      - source_cluster\n"+
		"  other: 5\n"+
		"  good:\n"+
		"    - g: [source_cluster, {custom: {header: x}}]\n",
		labelsWarning,
		wantProblem{9, 10, users + ".labels.ambassador[0].g[0]", `unknown label kind string "request_header"; known kinds are source_cluster, destination_cluster, request_headers, remote_address, generic_key (did you mean "request_headers"?), or a label name with {header: ...}`, true},
		wantProblem{10, 27, users + ".labels.ambassador[0].g[1].custom.header", `invalid header name "x y"`, true},
		wantProblem{11, 30, users + ".labels.ambassador[0].g[2].custom.omit", `unknown field "omit" (did you mean "omit_if_not_present"?); Emissary drops unknown fields`, true},
		wantProblem{12, 22, users + ".labels.ambassador[0].g[3].generic_key", `missing required field "value"`, true},
		wantProblem{14, 10, users + ".labels.other", "expected a list of label groups, got integer 5", true})
	want = map[string][]LabelGroup{"good": {{Name: "g", Labels: []Label{
		{Kind: "source_cluster", Key: "source_cluster"},
		{Kind: "request_headers", Key: "custom", HeaderName: "x"},
	}}}}
	if !reflect.DeepEqual(m.Labels, want) {
		t.Errorf("labels:\n got %+v\nwant %+v", m.Labels, want)
	}
	emissaryMapping(t, emMapping+"labels: [a]\n", labelsWarning,
		wantProblem{6, 9, users + ".labels", "expected a mapping of domain name to a list of label groups, got a list", true})

	// The native dialect reads the custom form too, and stays strict.
	checkProblems(t, mapping+labels+"    - g:\n      - {custom: {header: x}}\n      - {custom: {header: 5}}\n",
		wantProblem{5, 1, users + ".labels", "labels configure", true},
		wantProblem{9, 27, users + ".labels.ambassador[0].g[1].custom.header", "expected a string, got integer 5", false})
}

func TestParseDialectString(t *testing.T) {
	if Native.String() != "native" || Emissary.String() != "emissary" || Dialect(7).String() != "Dialect(7)" {
		t.Errorf("got %s, %s, %s", Native, Emissary, Dialect(7))
	}
	if cfg, problems := Parse(emMapping, Options{Dialect: 7}); cfg != nil || !problems.HasErrors() {
		t.Errorf("unknown dialect accepted: %v", problems)
	}
	// The same name is an error in the native dialect.
	checkProblems(t, "kind: Mapping\nname: quote-backend.v1\nprefix: /\nservice: s\n",
		wantProblem{2, 7, `Mapping "quote-backend.v1".name`, "contains '.'; must be a DNS label", false})
}

func BenchmarkParseEmissary(b *testing.B) {
	src, err := os.ReadFile("testdata/emissary.yaml")
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Namespace: "shop", Dialect: Emissary}
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if cfg, problems := Parse(string(src), opts); cfg == nil {
			b.Fatal(problems)
		}
	}
}
