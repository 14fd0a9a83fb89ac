package annotations

import (
	"os"
	"reflect"
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
		{"crd duplicate root field", emCRD + "kind: Mapping\n", 1, []wantProblem{{10, 1, users + ".kind", `duplicate field "kind" (first at line 2)`, false}}},

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
		{"unknown kind", v3 + "kind: Route\nname: r\n---\n" + emMapping, 0, []wantProblem{
			{2, 7, "document 1.kind", `unknown kind "Route"; Gatehouse reads Mapping and ignores RateLimit, Module, AuthService`, false}}},
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
		{"dotted name", v3 + "kind: Mapping\nname: quote-backend.v1\nprefix: /\nservice: s\n", 1, []wantProblem{
			{3, 7, `Mapping "quote-backend.v1".name`, `"quote-backend.v1" contains '.'; must be a DNS label`, true}}},
		{"bad name", v3 + "kind: Mapping\nname: Quote_Backend\nprefix: /\nservice: s\n", 0, []wantProblem{
			{3, 7, `Mapping "Quote_Backend".name`, "must be lowercase; must be a Kubernetes object name", false}}},
		{"duplicate name", emMapping + "---\n" + emMapping, 0, []wantProblem{{9, 7, users + ".name", `duplicate Mapping name "users"`, false}}},

		// Fields.
		{"unknown field", emMapping + "prefx: /x\n", 1, []wantProblem{
			{6, 1, users + ".prefx", `unknown field "prefx" (did you mean "prefix"?); Emissary drops unknown fields, and so does Gatehouse`, true}}},
		{"unknown nested field", emMapping + "retry_policy: {num_retrys: 1}\n", 1, []wantProblem{
			{6, 1, users + ".retry_policy", "retry_policy is accepted but not enforced yet", true},
			{6, 16, users + ".retry_policy.num_retrys", `(did you mean "num_retries"?); Emissary drops`, true}}},
		{"ignored field", emMapping + "bypass_auth: true\n", 1, []wantProblem{{6, 1, users + ".bypass_auth", "ignored: Gatehouse does not implement bypass_auth", true}}},
		{"ignored tls", emMapping + "tls: true\n", 1, []wantProblem{{6, 1, users + ".tls", "ignored: Gatehouse does not implement tls; to originate TLS, write the service as https://name", true}}},
		{"ignored nested field", emMapping + "retry_policy: {retry_back_off: {base_interval: 1s}}\n", 1, []wantProblem{
			{6, 1, users + ".retry_policy", "retry_policy is accepted but not enforced yet", true},
			{6, 16, users + ".retry_policy.retry_back_off", "ignored: Gatehouse does not implement retry_back_off", true}}},
		{"rate_limits", emMapping + "rate_limits: [a]\n", 1, []wantProblem{
			{6, 1, users + ".rate_limits", `unknown field "rate_limits": rate_limits belongs to the gatehouse.dev/config annotation`, true}}},
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
	for _, kind := range emissaryKindList[2:] {
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
		wantProblem{8, 10, `Mapping "quote-backend.v1".name`, "accepted because Emissary allows any Kubernetes object name", true},
		wantProblem{16, 3, `Mapping "quote-backend.v1".use_websocket`, "deprecated: use allow_upgrade: [websocket]", true},
		wantProblem{19, 9, `Module "ambassador".kind`, "kind Module is ignored by Gatehouse", true},
		wantProblem{43, 3, `Mapping "quote-regex".spec.host`, "host is ignored when hostname is set", true},
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
	}}
	if !reflect.DeepEqual(cfg.Mappings, want) {
		t.Errorf("mappings:\n got %+v\nwant %+v", cfg.Mappings, want)
	}
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
