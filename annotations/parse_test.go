package annotations

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readRealistic(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/realistic.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestParseRealistic(t *testing.T) {
	src := readRealistic(t)
	// The fixture must keep the quirks it exists to cover; an editor that
	// strips trailing spaces would silently weaken this test.
	for _, quirk := range []string{"\n---\n", "users-canary   \n", "True", `\d+`, "# "} {
		if !strings.Contains(src, quirk) {
			t.Fatalf("testdata/realistic.yaml lost %q", quirk)
		}
	}
	cfg, problems := Parse(src, Options{Namespace: "shop"})
	if problems != nil {
		t.Fatalf("problems:\n%v", problems)
	}
	if got, want := cfg.Mappings[0].Positions["headers.x-env"], (Position{Line: 13, Column: 10}); got != want {
		t.Errorf("position of headers.x-env: got %v, want %v", got, want)
	}
	if got, want := cfg.Hosts[0].FieldPos("hsts.max_age"), (Position{Line: 43, Column: 12}); got != want {
		t.Errorf("position of hsts.max_age: got %v, want %v", got, want)
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].Positions = nil // checked in detail by TestParsePositions
	}
	for i := range cfg.Hosts {
		cfg.Hosts[i].Positions = nil // checked in detail by TestParseHostPositions
	}
	if got, want := cfg.Auths[1].FieldPos("jwt.claims_to_headers.email"), (Position{Line: 91, Column: 12}); got != want {
		t.Errorf("position of jwt.claims_to_headers.email: got %v, want %v", got, want)
	}
	for i := range cfg.Auths {
		cfg.Auths[i].Positions = nil // checked in detail by TestParseAuthAllFields
	}
	empty, timeout, skew := "", 5000, 30
	want := &Config{
		Mappings: []Mapping{{
			APIVersion: APIVersion,
			Kind:       KindMapping,
			Name:       "users-canary",
			Prefix:     "/users/",
			Service:    "users-canary:8080",
			Host:       "api.example.com",
			Method:     "GET",
			Headers: map[string]HeaderValue{
				"x-canary": {Present: true},
				"x-env":    {Value: "prod"},
			},
			Precedence: 10,
			TimeoutMS:  &timeout,
			RateLimits: []string{"per-ip"},
			Pos:        Position{Line: 4, Column: 1},
		}, {
			APIVersion:  APIVersion,
			Kind:        KindMapping,
			Name:        "api-versions",
			Prefix:      `^/api/v\d+/(users|orders)\.json$`,
			PrefixRegex: true,
			Rewrite:     &empty,
			Service:     "https://api.backend",
			RateLimits:  []string{"per-ip"},
			Pos:         Position{Line: 19, Column: 1},
		}, {
			Kind:            KindMapping,
			Name:            "partner-orders",
			Prefix:          "/partners/orders/",
			Service:         "orders:8080",
			Auth:            "partner-keys",
			RequireConsumer: true,
			RateLimits:      []string{"per-partner"},
			Pos:             Position{Line: 56, Column: 1},
		}, {
			Kind:    KindMapping,
			Name:    "me",
			Prefix:  "/me/",
			Service: "users:8080",
			Auth:    "users-jwt",
			Pos:     Position{Line: 78, Column: 1},
		}},
		RateLimits: []RateLimit{{
			Kind:  KindRateLimit,
			Name:  "per-ip",
			Rate:  100,
			Unit:  UnitMinute,
			Burst: 20,
			Key:   KeyClientIP,
			Pos:   Position{Line: 29, Column: 1},
		}, {
			Kind: KindRateLimit,
			Name: "per-partner",
			Rate: 10,
			Unit: UnitSecond,
			Key:  KeyConsumer,
			Pos:  Position{Line: 71, Column: 1},
		}},
		Hosts: []Host{{
			Kind:          KindHost,
			Name:          "api",
			Hostname:      "api.example.com",
			TLSSecret:     "api-example-com-tls",
			Insecure:      InsecureRedirect,
			HSTS:          &HSTS{MaxAge: 31536000, IncludeSubdomains: true},
			MinTLSVersion: "v1.2",
			Pos:           Position{Line: 38, Column: 1},
		}, {
			Kind:           KindHost,
			Name:           "partners",
			Hostname:       "*.partners.example.com",
			TLSSecret:      "wildcard-partners-example-com-tls",
			Insecure:       InsecureReject,
			MinTLSVersion:  "v1.3",
			ClientCASecret: "partners-ca",
			ClientCert:     ClientCertRequired,
			Pos:            Position{Line: 47, Column: 1},
		}},
		Auths: []Auth{{
			Kind:   KindAuth,
			Name:   "partner-keys",
			APIKey: &APIKeyAuth{Header: "X-Partner-Key", Secrets: []string{"partner-api-keys"}},
			Pos:    Position{Line: 64, Column: 1},
		}, {
			Kind: KindAuth,
			Name: "users-jwt",
			JWT: &JWTAuth{
				Issuer:           "https://login.example.com/",
				Audiences:        []string{"api.example.com"},
				JWKSURI:          "https://login.example.com/.well-known/jwks.json",
				ClaimsToHeaders:  map[string]string{"email": "x-user-email"},
				ConsumerClaim:    "sub",
				ClockSkewSeconds: &skew,
			},
			Pos: Position{Line: 84, Column: 1},
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config:\n got %+v\nwant %+v", cfg, want)
	}
}

// wantProblem is an expected Problem: exact position and path, and a
// substring of the message followed by its Related position as Error
// writes it, " (see line 2, column 7)".
type wantProblem struct {
	line, col int
	path, msg string
	warning   bool
}

func checkProblems(t *testing.T, src string, want ...wantProblem) *Config {
	t.Helper()
	return checkProblemsWith(t, Options{Namespace: "ns"}, src, want...)
}

func checkProblemsWith(t *testing.T, opts Options, src string, want ...wantProblem) *Config {
	t.Helper()
	cfg, got := Parse(src, opts)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		msg := g.Message
		if g.Related != nil {
			msg += fmt.Sprintf(" (see line %d, column %d)", g.Related.Line, g.Related.Column)
		}
		if g.Pos != (Position{w.line, w.col}) || g.Path != w.path || !strings.Contains(msg, w.msg) || g.Warning != w.warning {
			t.Errorf("problem %d:\n got %d:%d %q %q warning=%v\nwant %d:%d %q (message containing %q) warning=%v",
				i, g.Pos.Line, g.Pos.Column, g.Path, msg, g.Warning, w.line, w.col, w.path, w.msg, w.warning)
		}
	}
	if (cfg == nil) != got.HasErrors() {
		t.Errorf("config %v with problems %v", cfg, got)
	}
	return cfg
}

// mapping is a valid Mapping document to which a case appends lines 5 on.
const mapping = "kind: Mapping\nname: users\nprefix: /users/\nservice: users\n"

// rateLimit is a valid RateLimit document to which a case appends lines 5 on.
const rateLimit = "kind: RateLimit\nname: per-ip\nrate: 10\nunit: second\n"

const users = `Mapping "users"`

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		// Unknown fields and did-you-mean.
		{"typo", "kind: Mapping\nname: users\nprefx: /u\nservice: s\n", []wantProblem{
			{1, 1, users, `missing required field "prefix"`, false},
			{3, 1, users + ".prefx", `unknown field "prefx" (did you mean "prefix"?)`, false}}},
		{"camelCase", mapping + "prefixExact: true\n", []wantProblem{{5, 1, users + ".prefixExact", `(did you mean "prefix_exact"?)`, false}}},
		{"kebab-case", mapping + "prefix-exact: true\n", []wantProblem{{5, 1, users + ".prefix-exact", `(did you mean "prefix_exact"?)`, false}}},
		{"case", mapping + "Host: a.com\n", []wantProblem{{5, 1, users + ".Host", `(did you mean "host"?)`, false}}},
		{"missing unit suffix", mapping + "timeout: 5\n", []wantProblem{{5, 1, users + ".timeout", `(did you mean "timeout_ms"?)`, false}}},
		{"transposition", mapping + "hots: a.com\n", []wantProblem{{5, 1, users + ".hots", `(did you mean "host"?)`, false}}},
		{"no suggestion", mapping + "zzz: 1\n", []wantProblem{{5, 1, users + ".zzz", `unknown field "zzz"`, false}}},
		{"crd shape", mapping + "spec: {}\n", []wantProblem{{5, 1, users + ".spec", "documents are flat", false}}},
		{"field of the other kind", mapping + "rate: 5\n", []wantProblem{{5, 1, users + ".rate", `unknown field "rate"`, false}}},

		// Types.
		{"int as string", mapping + "precedence: high\n", []wantProblem{{5, 13, users + ".precedence", `expected an integer, got string "high"`, false}}},
		{"quoted int", mapping + "precedence: \"5\"\n", []wantProblem{{5, 13, users + ".precedence", "remove the quotes", false}}},
		{"hex int", mapping + "timeout_ms: 0x10\n", []wantProblem{{5, 13, users + ".timeout_ms", "expected a decimal integer, got 0x10", false}}},
		{"octal-looking int", mapping + "timeout_ms: 010\n", []wantProblem{{5, 13, users + ".timeout_ms", "leading zeros", false}}},
		{"float", mapping + "timeout_ms: 1.5\n", []wantProblem{{5, 13, users + ".timeout_ms", "expected an integer, got number 1.5", false}}},
		{"huge int", mapping + "precedence: 99999999999999999999\n", []wantProblem{{5, 13, users + ".precedence", "out of range", false}}},
		{"string as number", "kind: Mapping\nname: users\nprefix: /u\nservice: 8080\n", []wantProblem{
			{4, 10, users + ".service", `expected a string, got integer 8080; quote it: "8080"`, false}}},
		{"string as bool", mapping + "host: true\n", []wantProblem{{5, 7, users + ".host", `got boolean true; quote it`, false}}},
		{"string as list", mapping + "method: [GET]\n", []wantProblem{{5, 9, users + ".method", "expected a string, got a list", false}}},
		{"yes is not a bool", mapping + "prefix_exact: yes\n", []wantProblem{{5, 15, users + ".prefix_exact", `expected a boolean (true or false), got string "yes"; write true (yes is a boolean only to YAML 1.1 readers)`, false}}},
		{"OFF is not a bool", mapping + "prefix_exact: OFF\n", []wantProblem{{5, 15, users + ".prefix_exact", `got string "OFF"; write false`, false}}},
		{"quoted yes", mapping + "prefix_exact: 'yes'\n", []wantProblem{{5, 15, users + ".prefix_exact", `expected a boolean (true or false), got string "yes"`, false}}},
		{"quoted bool", mapping + "prefix_exact: \"true\"\n", []wantProblem{{5, 15, users + ".prefix_exact", "remove the quotes", false}}},
		{"custom tag", mapping + "host: !shout a.com\n", []wantProblem{{5, 7, users + ".host", "a value tagged !shout", false}}},
		{"list not a list", mapping + "rate_limits: per-ip\n", []wantProblem{{5, 14, users + ".rate_limits", "expected a list, got string \"per-ip\"; write [per-ip]", false}}},
		{"null list item", mapping + "rate_limits: [~]\n", []wantProblem{{5, 15, users + ".rate_limits[0]", "got null", false}}},

		// Duplicate keys.
		{"duplicate key", mapping + "prefix: /other\n", []wantProblem{{5, 1, users + ".prefix", `duplicate field "prefix" (see line 3, column 1)`, false}}},
		{"non-string key", mapping + "[a]: 1\n", []wantProblem{{5, 1, users, "field names must be plain strings", false}}},

		// Required fields and validator rules.
		{"missing fields", "kind: Mapping\nname: users\n", []wantProblem{
			{1, 1, users, `missing required field "prefix"`, false},
			{1, 1, users, `missing required field "service"`, false}}},
		{"null required", "kind: Mapping\nname: users\nprefix:\nservice: s\n", []wantProblem{
			{3, 1, users + ".prefix", `missing value for required field "prefix"`, false}}},
		{"empty required", "kind: Mapping\nname: users\nprefix: \"\"\nservice: s\n", []wantProblem{
			{3, 9, users + ".prefix", "must not be empty", false}}},
		{"missing name", "kind: Mapping\nprefix: /\nservice: s\n", []wantProblem{{1, 1, "document 1", `missing required field "name"`, false}}},
		{"oneof", "kind: RateLimit\nname: per-ip\nrate: 10\nunit: week\n", []wantProblem{
			{4, 7, `RateLimit "per-ip".unit`, `must be one of second, minute, hour, day; got "week"`, false}}},
		{"oneof near miss", "kind: RateLimit\nname: per-ip\nrate: 10\nunit: minutes\n", []wantProblem{
			{4, 7, `RateLimit "per-ip".unit`, `(did you mean "minute"?)`, false}}},
		{"rate zero", "kind: RateLimit\nname: per-ip\nrate: 0\nunit: second\n", []wantProblem{
			{3, 7, `RateLimit "per-ip".rate`, "must be at least 1; got 0", false}}},
		{"rate negative", "kind: RateLimit\nname: per-ip\nrate: -3\nunit: second\n", []wantProblem{
			{3, 7, `RateLimit "per-ip".rate`, "must be at least 1; got -3", false}}},
		{"rate missing", "kind: RateLimit\nname: per-ip\nunit: second\n", []wantProblem{
			{1, 1, `RateLimit "per-ip"`, `missing required field "rate"`, false}}},
		{"negative timeout", mapping + "timeout_ms: -1\n", []wantProblem{{5, 13, users + ".timeout_ms", "must not be negative; got -1", false}}},
		{"zero timeout", mapping + "timeout_ms: 0\n", nil},
		{"null optional", mapping + "rewrite: null\nhost: ~\ntimeout_ms:\n", nil},

		// Kind, apiVersion, name.
		{"missing kind", "name: users\nprefix: /\n", []wantProblem{{1, 1, "document 1", `missing required field "kind"`, false}}},
		{"unknown kind", "kind: Route\nname: users\n", []wantProblem{{1, 7, "document 1.kind", `unknown kind "Route"; known kinds are Mapping, RateLimit, Host`, false}}},
		{"kind case", "kind: mapping\nname: users\nprefix: /\nservice: s\nprefx: 1\n", []wantProblem{
			{1, 7, users + ".kind", `unknown kind "mapping" (did you mean "Mapping"?)`, false},
			{5, 1, users + ".prefx", "unknown field", false}}},
		{"kind not a string", "kind: 5\n", []wantProblem{{1, 7, "document 1.kind", "expected a string (Mapping, RateLimit, Host or Auth), got integer 5", false}}},
		{"api version", "apiVersion: gatehouse.dev/v2\n" + mapping, []wantProblem{
			{1, 13, users + ".apiVersion", `unsupported apiVersion "gatehouse.dev/v2"; the only apiVersion is "gatehouse.dev/v1"`, false}}},
		{"emissary api version", "apiVersion: getambassador.io/v3alpha1\n" + mapping, []wantProblem{
			{1, 13, users + ".apiVersion", "getambassador.io/config annotation", false}}},
		{"bad name", "kind: Mapping\nname: Users_1\nprefix: /\nservice: s\n", []wantProblem{
			{2, 7, `Mapping "Users_1".name`, "must be lowercase", false}}},
		{"name too long", "kind: Mapping\nname: " + strings.Repeat("a", 64) + "\nprefix: /\nservice: s\n", []wantProblem{
			{2, 7, `Mapping "` + strings.Repeat("a", 64) + `".name`, "is 64 characters long", false}}},
		{"name dash", "kind: Mapping\nname: users-\nprefix: /\nservice: s\n", []wantProblem{
			{2, 7, `Mapping "users-".name`, "must start and end with a letter or digit", false}}},
		{"duplicate name", mapping + "---\n" + mapping, []wantProblem{
			{7, 7, users + ".name", `duplicate Mapping name "users" (see line 2, column 7)`, false}}},
		{"same name, other kind", mapping + "rate_limits: [users]\n---\nkind: RateLimit\nname: users\nrate: 1\nunit: day\n", nil},

		// Document shape.
		{"list document", "- kind: Mapping\n", []wantProblem{{1, 1, "document 1", "a document must be a mapping of fields (kind: ..., name: ...), got a list", false}}},
		{"scalar document", mapping + "---\n  just text\n", []wantProblem{{6, 3, "document 2", `got string "just text"`, false}}},
		{"null document", "--- null\n", []wantProblem{{1, 5, "document 1", "got null", false}}},
		{"empty documents", "\n\n---\n# nothing\n---\n---\n" + mapping + "---\n", nil},
		{"empty annotation", "", nil},

		// Mapping semantics.
		{"prefix without slash", "kind: Mapping\nname: users\nprefix: users/\nservice: s\n", []wantProblem{
			{3, 9, users + ".prefix", `must start with "/"`, false}}},
		{"prefix with space", "kind: Mapping\nname: users\nprefix: /a b\nservice: s\n", []wantProblem{
			{3, 9, users + ".prefix", "must not contain whitespace", false}}},
		{"exact and regex", mapping + "prefix_exact: true\nprefix_regex: true\n", []wantProblem{
			{6, 1, users + ".prefix_regex", "prefix_exact and prefix_regex cannot both be true", false}}},
		{"bad service", "kind: Mapping\nname: users\nprefix: /\nservice: users:0\n", []wantProblem{
			{4, 10, users + ".service", `invalid service "users:0": port 0 is out of range 1-65535`, false}}},
		{"service with path", "kind: Mapping\nname: users\nprefix: /\nservice: http://users/api\n", []wantProblem{
			{4, 10, users + ".service", "a path, query or fragment is not allowed", false}}},
		{"rewrite", mapping + "rewrite: api\n", []wantProblem{{5, 10, users + ".rewrite", `must be empty or start with "/"; got "api"`, false}}},
		{"host port", mapping + "host: a.com:8080\n", []wantProblem{{5, 7, users + ".host", "must not include a port", false}}},
		{"host scheme", mapping + "host: https://a.com\n", []wantProblem{{5, 7, users + ".host", "without a scheme", false}}},
		{"host inner wildcard", mapping + "host: foo*.bar\n", []wantProblem{{5, 7, users + ".host", "only allowed as the whole leftmost label", false}}},
		{"host lone wildcard", mapping + "host: \"*\"\n", []wantProblem{{5, 7, users + ".host", "only allowed as the whole leftmost label", false}}},
		{"host space", mapping + "host: a .com\n", []wantProblem{{5, 7, users + ".host", "whitespace", false}}},
		{"host empty label", mapping + "host: a..com\n", []wantProblem{{5, 7, users + ".host", "empty label", false}}},
		{"host wildcard", mapping + "host: \"*.Example.com\"\n", nil},
		{"method token", mapping + "method: \"GE T\"\n", []wantProblem{{5, 9, users + ".method", `invalid method "GE T"`, false}}},
		{"method unusual", mapping + "method: purge\n", []wantProblem{{5, 9, users + ".method", `"PURGE" is not a standard HTTP method`, true}}},
		{"header false", mapping + "headers:\n  x-debug: false\n", []wantProblem{
			{6, 12, users + ".headers.x-debug", "use true to require presence; absence is not supported yet", false}}},
		{"header number", mapping + "headers:\n  x-v: 2\n", []wantProblem{{6, 8, users + ".headers.x-v", `quote it: "2"`, false}}},
		{"header null", mapping + "headers:\n  x-v:\n", []wantProblem{{6, 3, users + ".headers.x-v", "missing value", false}}},
		{"header name", mapping + "headers:\n  \"x v\": a\n", []wantProblem{{6, 3, users + `.headers.x v`, `invalid header name "x v"`, false}}},
		{"header case duplicate", mapping + "headers:\n  X-Env: a\n  x-env: b\n", []wantProblem{
			{7, 3, users + ".headers.x-env", `duplicate header "x-env": header names are case-insensitive and "X-Env" was written first (see line 6, column 3)`, false}}},
		{"headers not a mapping", mapping + "headers: [a]\n", []wantProblem{{5, 10, users + ".headers", "expected a mapping of header name to value, got a list", false}}},
		{"unknown rate limit", mapping + "rate_limits: [per-ipp]\n---\n" + rateLimit, []wantProblem{
			{5, 15, users + ".rate_limits[0]", `unknown RateLimit "per-ipp" (did you mean "per-ip"?)`, false}}},
		{"no rate limits declared", mapping + "rate_limits:\n  - per-ip\n", []wantProblem{
			{6, 5, users + ".rate_limits[0]", "declares no RateLimit documents", false}}},
		{"duplicate rate limit", mapping + "rate_limits: [per-ip, per-ip]\n---\n" + rateLimit, []wantProblem{
			{5, 23, users + ".rate_limits[1]", `duplicate rate limit "per-ip" (see line 5, column 15)`, false}}},

		// RateLimit semantics.
		{"burst zero", rateLimit + "burst: 0\n", []wantProblem{{5, 8, `RateLimit "per-ip".burst`, "must be at least 1; got 0", false}}},
		{"burst negative", rateLimit + "burst: -1\n", []wantProblem{{5, 8, `RateLimit "per-ip".burst`, "must be at least 1; got -1", false}}},
		{"key header without header", rateLimit + "key: header\n", []wantProblem{
			{1, 1, `RateLimit "per-ip"`, `missing required field "header" (required when key is header)`, false}}},
		{"header with client_ip", rateLimit + "key: client_ip\nheader: x-user\n", []wantProblem{
			{6, 9, `RateLimit "per-ip".header`, "header is only used with key: header; key is client_ip", false}}},
		{"header with default key", rateLimit + "header: x-user\n", []wantProblem{
			{5, 9, `RateLimit "per-ip".header`, "key is policy (the default)", false}}},
		{"header name", rateLimit + "key: header\nheader: \"x user\"\n", []wantProblem{
			{6, 9, `RateLimit "per-ip".header`, `invalid header name "x user"`, false}}},
		{"bad key", rateLimit + "key: ip\n", []wantProblem{{5, 6, `RateLimit "per-ip".key`, "must be one of policy, client_ip, header", false}}},
		{"unused rate limit", rateLimit, []wantProblem{unused(2)}},

		// Anchors and aliases.
		{"anchor", mapping + "host: &h a.com\n", []wantProblem{{5, 7, users, "YAML anchors (&h) are not supported", false}}},
		{"alias", "kind: Mapping\nname: &n users\nprefix: /\nservice: *n\n", []wantProblem{{2, 7, `Mapping "users"`, "YAML anchors (&n)", false}}},
		{"unknown alias", mapping + "host: *h\n", []wantProblem{{5, 7, "", "YAML aliases (*h) are not supported", false}}},
		{"unquoted wildcard", "kind: Host\nname: w\nhostname: *.example.com\ntls_secret: x\n", []wantProblem{{3, 1, "", `a value starting with "*" is read as a YAML alias: quote it`, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
}

// unused is the warning for an unused RateLimit named per-ip at line.
func unused(line int) wantProblem {
	return wantProblem{line, 7, `RateLimit "per-ip".name`, `RateLimit "per-ip" is not used by any Mapping`, true}
}

func TestParseRegexp(t *testing.T) {
	for _, tc := range []struct{ prefix, msg string }{
		{`^/(?=api)`, `look-ahead "(?=" is not supported by RE2 (Go regexp)`},
		{`^/(?!admin)`, `negative look-ahead "(?!" is not supported by RE2`},
		{`(?<=/v1)/users`, `look-behind "(?<=" is not supported by RE2`},
		{`(?<!/v1)/users`, `negative look-behind "(?<!" is not supported by RE2`},
		{`^/(a)/\1$`, `back-reference "\\1" is not supported by RE2`},
		{`^/(users`, "invalid regular expression: missing closing ): `^/(users`"},
		{`^/[`, "invalid regular expression: missing closing ]"},
	} {
		src := "kind: Mapping\nname: users\nprefix: '" + tc.prefix + "'\nprefix_regex: true\nservice: s\n"
		checkProblems(t, src, wantProblem{3, 9, users + ".prefix", tc.msg, false})
	}
	for _, ok := range []string{`^/api/v\d+/.*`, `\\1`, `[(?=]`, `^/(?<name>\w+)$`, `/users`} {
		checkProblems(t, "kind: Mapping\nname: users\nprefix: '"+ok+"'\nprefix_regex: true\nservice: s\n")
	}
}

func TestParseTwoErrors(t *testing.T) {
	src := `kind: Mapping
name: users
prefix: /users/
service: users
prefx: /x
---
kind: RateLimit
name: per-ip
rate: 10
unit: week
`
	_, problems := Parse(src, Options{})
	if len(problems) != 2 {
		t.Fatalf("want 2 problems, got %v", problems)
	}
	want := "line 5, column 1: Mapping \"users\".prefx: unknown field \"prefx\" (did you mean \"prefix\"?)\n" +
		"line 10, column 7: RateLimit \"per-ip\".unit: must be one of second, minute, hour, day; got \"week\""
	if got := problems.Error(); got != want {
		t.Errorf("Error():\n got %s\nwant %s", got, want)
	}
}

func TestParseNormalises(t *testing.T) {
	cfg := checkProblems(t, mapping+"host: \"*.Example.COM\"\nmethod: delete\nheaders:\n  X-Env: tRuE\n")
	m := cfg.Mappings[0]
	if m.Host != "*.example.com" || m.Method != "DELETE" || m.Headers["X-Env"] != (HeaderValue{Present: true}) {
		t.Errorf("got host %q, method %q, headers %v", m.Host, m.Method, m.Headers)
	}
	if m.Rewrite != nil || m.TimeoutMS != nil {
		t.Errorf("defaults were filled in: rewrite %v, timeout %v", m.Rewrite, m.TimeoutMS)
	}
}

func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Pos: Position{4, 3}, Path: `Mapping "users".prefx`, Message: "unknown field"}, `line 4, column 3: Mapping "users".prefx: unknown field`},
		{Problem{Pos: Position{1, 1}, Message: "too big"}, "line 1, column 1: too big"},
		{Problem{Pos: Position{2, 9}, Path: "x", Message: "odd", Warning: true}, "line 2, column 9: warning: x: odd"},
		{Problem{Pos: Position{7, 1}, Path: "p", Message: `duplicate field "a"`, Related: &Position{3, 5}}, `line 7, column 1: p: duplicate field "a" (see line 3, column 5)`},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	warn := Problems{{Warning: true}}
	if warn.HasErrors() || !append(warn, Problem{}).HasErrors() {
		t.Error("HasErrors counts warnings or misses errors")
	}
}

func BenchmarkParse(b *testing.B) {
	src := readRealistic(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if cfg, problems := Parse(src, Options{Namespace: "shop"}); cfg == nil {
			b.Fatal(problems)
		}
	}
}
