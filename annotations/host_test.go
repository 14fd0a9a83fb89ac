package annotations

import (
	"reflect"
	"strings"
	"testing"
)

// host is a valid Host document to which a case appends lines 5 on.
const host = "kind: Host\nname: shop\nhostname: shop.example.com\ntls_secret: shop-tls\n"

const shop = `Host "shop"`

// hostWith is a Host document with the given hostname and tls_secret lines
// (3 and 4), for cases about their values.
func hostWith(hostname, secret string) string {
	return "kind: Host\nname: shop\nhostname: " + hostname + "\ntls_secret: " + secret + "\n"
}

func TestParseHostAllFields(t *testing.T) {
	src := `apiVersion: gatehouse.dev/v1
kind: Host
name: shop
hostname: Shop.Example.COM
tls_secret: shop-example-com-tls
insecure: route
hsts:
  max_age: 63072000
  include_subdomains: true
  preload: true
min_tls_version: TLSv1.3
client_ca_secret: partners-ca
client_cert: optional
`
	cfg := checkProblems(t, src)
	if cfg == nil || len(cfg.Hosts) != 1 || len(cfg.Mappings) != 0 {
		t.Fatalf("config %+v", cfg)
	}
	want := Host{
		APIVersion:     APIVersion,
		Kind:           KindHost,
		Name:           "shop",
		Hostname:       "shop.example.com",
		TLSSecret:      "shop-example-com-tls",
		Insecure:       InsecureRoute,
		HSTS:           &HSTS{MaxAge: 63072000, IncludeSubdomains: true, Preload: true},
		MinTLSVersion:  "v1.3",
		ClientCASecret: "partners-ca",
		ClientCert:     ClientCertOptional,
		Pos:            Position{Line: 1, Column: 1},
		Positions: map[string]Position{
			"apiVersion": {1, 13}, "kind": {2, 7}, "name": {3, 7}, "hostname": {4, 11}, "tls_secret": {5, 13},
			"insecure": {6, 11}, "hsts": {8, 3}, "hsts.max_age": {8, 12}, "hsts.include_subdomains": {9, 23},
			"hsts.preload": {10, 12}, "min_tls_version": {11, 18}, "client_ca_secret": {12, 19}, "client_cert": {13, 14},
		},
	}
	if got := cfg.Hosts[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("host:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseHostDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, src  string
		insecure   string
		minVersion string
		clientCert string
	}{
		{"none written", host, InsecureRedirect, "v1.2", ""},
		{"client CA", host + "client_ca_secret: ca\n", InsecureRedirect, "v1.2", ClientCertRequired},
		{"client CA required", host + "client_ca_secret: ca\nclient_cert: required\n", InsecureRedirect, "v1.2", ClientCertRequired},
		{"reject", host + "insecure: reject\n", InsecureReject, "v1.2", ""},
		{"null fields", host + "insecure:\nmin_tls_version: ~\nhsts: null\n", InsecureRedirect, "v1.2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := checkProblems(t, tc.src)
			h := cfg.Hosts[0]
			if h.Insecure != tc.insecure || h.MinTLSVersion != tc.minVersion || h.ClientCert != tc.clientCert || h.HSTS != nil {
				t.Errorf("got insecure %q, min_tls_version %q, client_cert %q, hsts %v", h.Insecure, h.MinTLSVersion, h.ClientCert, h.HSTS)
			}
		})
	}
}

func TestParseHostTLSVersions(t *testing.T) {
	for _, tc := range []struct{ written, want string }{
		{"v1.2", "v1.2"}, {"V1.3", "v1.3"}, {"1.2", "v1.2"}, {"'1.3'", "v1.3"}, {"TLSv1.2", "v1.2"}, {"tlsv1.3", "v1.3"}, {"TLS1.3", "v1.3"},
	} {
		cfg := checkProblems(t, host+"min_tls_version: "+tc.written+"\n")
		if cfg != nil && cfg.Hosts[0].MinTLSVersion != tc.want {
			t.Errorf("min_tls_version: %s gives %q, want %q", tc.written, cfg.Hosts[0].MinTLSVersion, tc.want)
		}
	}
	const path = shop + ".min_tls_version"
	for _, tc := range []struct{ written, msg string }{
		{"v1.1", `min_tls_version "v1.1": TLS 1.2 is the minimum; write v1.2 or v1.3`},
		{"1.0", `min_tls_version "1.0": TLS 1.2 is the minimum`},
		{"TLSv1", `min_tls_version "TLSv1": TLS 1.2 is the minimum`},
		{"SSLv3", `min_tls_version "SSLv3": SSL is not supported; TLS 1.2 is the minimum`},
		{"v2", `min_tls_version "v2": must be v1.2 or v1.3`},
		{"1.20", `min_tls_version "1.20": must be v1.2 or v1.3`},
	} {
		checkProblems(t, host+"min_tls_version: "+tc.written+"\n", wantProblem{5, 18, path, tc.msg, false})
	}
	checkProblems(t, host+"min_tls_version: [v1.2]\n", wantProblem{5, 18, path, "expected a string, got a list", false})
}

func TestParseHostProblems(t *testing.T) {
	const portMsg = `hostname "Shop.example.com:443": a Host's hostname has no port`
	const ipMsg = "certificates for IP addresses are not supported"
	const own = "certificates come from the Host's own namespace; write the Secret's name only"
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		// Hostnames.
		{"wildcard", hostWith(`"*.Example.com"`, "wildcard-tls"), nil},
		{"port", hostWith("Shop.example.com:443", "s"), []wantProblem{{3, 11, shop + ".hostname", portMsg, false}}},
		{"any host", hostWith(`"*"`, "s"), []wantProblem{{3, 11, shop + ".hostname",
			`hostname "*": a Host cannot cover every host; the default certificate, for hosts no Host names, is set by the platform (serve --tls-cert-file)`, false}}},
		{"ipv4", hostWith("10.0.0.1", "s"), []wantProblem{{3, 11, shop + ".hostname", `hostname "10.0.0.1": an IP address; a Host names a DNS name (` + ipMsg + ")", false}}},
		{"ipv4 with port", hostWith("10.0.0.1:443", "s"), []wantProblem{{3, 11, shop + ".hostname", ipMsg, false}}},
		{"ipv6", hostWith(`"::1"`, "s"), []wantProblem{{3, 11, shop + ".hostname", ipMsg, false}}},
		{"ipv6 brackets", hostWith(`"[2001:db8::1]:8443"`, "s"), []wantProblem{{3, 11, shop + ".hostname", ipMsg, false}}},
		{"two wildcards", hostWith(`"*.*.example.com"`, "s"), []wantProblem{{3, 11, shop + ".hostname", `a wildcard is "*." in front of a name, covering one label`, false}}},
		{"inner wildcard", hostWith(`"shop*.example.com"`, "s"), []wantProblem{{3, 11, shop + ".hostname", `a wildcard is "*." in front of a name`, false}}},
		{"suffix wildcard", hostWith(`"shop.*"`, "s"), []wantProblem{{3, 11, shop + ".hostname", `a wildcard is "*." in front of a name`, false}}},
		{"regex", hostWith(`'^shop\.example\.com$'`, "s"), []wantProblem{{3, 11, shop + ".hostname", "regular expressions are not supported", false}}},
		{"scheme", hostWith("https://shop.example.com", "s"), []wantProblem{{3, 11, shop + ".hostname", "a Host's hostname has no scheme", false}}},
		{"path", hostWith("shop.example.com/x", "s"), []wantProblem{{3, 11, shop + ".hostname", "a Host's hostname has no path", false}}},
		{"trailing dot", hostWith("shop.example.com.", "s"), []wantProblem{{3, 11, shop + ".hostname", "empty label", false}}},
		{"long label", hostWith(strings.Repeat("a", 64)+".com", "s"), []wantProblem{{3, 11, shop + ".hostname", "longer than 63 characters", false}}},
		{"long name", hostWith(strings.Repeat("a.", 127)+"com", "s"), []wantProblem{{3, 11, shop + ".hostname", "is 257 characters long; a host name has at most 253", false}}},
		{"underscore", hostWith("shop_1.example.com", "s"), []wantProblem{{3, 11, shop + ".hostname", `contains '_'`, false}}},
		{"hyphen", hostWith("-shop.example.com", "s"), []wantProblem{{3, 11, shop + ".hostname", "must start and end with a letter or digit", false}}},
		{"unicode", hostWith("bücher.example", "s"), []wantProblem{{3, 11, shop + ".hostname", `contains "ü"; write an internationalised name in its ASCII form (xn--...)`, false}}},
		{"punycode", hostWith("xn--bcher-kva.example", "s"), nil},
		{"empty", hostWith(`""`, "s"), []wantProblem{{3, 11, shop + ".hostname", "must not be empty", false}}},
		{"not a string", hostWith("[a.com]", "s"), []wantProblem{{3, 11, shop + ".hostname", "expected a string, got a list", false}}},
		{"missing", "kind: Host\nname: shop\ntls_secret: s\n", []wantProblem{{1, 1, shop, `missing required field "hostname"`, false}}},

		// Secrets.
		{"secret with namespace", hostWith("shop.example.com", "other/cert"), []wantProblem{{4, 13, shop + ".tls_secret", `tls_secret "other/cert": ` + own, false}}},
		{"secret with own namespace", hostWith("shop.example.com", "ns/cert"), []wantProblem{{4, 13, shop + ".tls_secret", `tls_secret "ns/cert": ` + own + ` ("cert")`, false}}},
		{"secret dotted (a name, as cert-manager users write them)", hostWith("shop.example.com", "shop.example.com-tls"), nil},
		{"secret in another namespace", hostWith("shop.example.com", "other/cert"), []wantProblem{{4, 13, shop + ".tls_secret", `tls_secret "other/cert": ` + own, false}}},
		{"secret upper case", hostWith("shop.example.com", "Shop-TLS"), []wantProblem{{4, 13, shop + ".tls_secret", `tls_secret "Shop-TLS": invalid Secret name: a lowercase RFC 1123 subdomain`, false}}},
		{"secret too long", hostWith("shop.example.com", strings.Repeat("s", 254)), []wantProblem{{4, 13, shop + ".tls_secret", "invalid Secret name: must be no more than 253 characters", false}}},
		{"secret missing", "kind: Host\nname: shop\nhostname: shop.example.com\n", []wantProblem{{1, 1, shop, `missing required field "tls_secret"`, false}}},
		{"secret empty", hostWith("shop.example.com", "''"), []wantProblem{{4, 13, shop + ".tls_secret", "must not be empty", false}}},
		{"client CA with namespace", host + "client_ca_secret: other/ca\n", []wantProblem{{5, 19, shop + ".client_ca_secret", `client_ca_secret "other/ca": ` + own, false}}},
		{"client CA dotted", host + "client_ca_secret: ca.example.com\n", nil},
		{"client CA in another namespace", host + "client_ca_secret: other/ca\n", []wantProblem{{5, 19, shop + ".client_ca_secret", `client_ca_secret "other/ca": ` + own, false}}},

		// Plain HTTP and client certificates.
		{"insecure", host + "insecure: Redirect\n", []wantProblem{{5, 11, shop + ".insecure", `must be one of redirect, route, reject; got "Redirect" (did you mean "redirect"?)`, false}}},
		{"insecure allow", host + "insecure: allow\n", []wantProblem{{5, 11, shop + ".insecure", `must be one of redirect, route, reject; got "allow"`, false}}},
		{"client_cert without CA", host + "client_cert: required\n", []wantProblem{{5, 1, shop + ".client_cert", "client_cert needs client_ca_secret", false}}},
		{"client_cert value", host + "client_ca_secret: ca\nclient_cert: require\n", []wantProblem{{6, 14, shop + ".client_cert", `must be one of required, optional; got "require" (did you mean "required"?)`, false}}},
		{"client_cert bool", host + "client_ca_secret: ca\nclient_cert: true\n", []wantProblem{{6, 14, shop + ".client_cert", `expected a string, got boolean true; quote it: "true"`, false}}},

		// HSTS.
		{"hsts", host + "hsts: {max_age: 0}\n", nil},
		{"hsts without max_age", host + "hsts:\n  include_subdomains: true\n", []wantProblem{{6, 3, shop + ".hsts", `missing required field "max_age"`, false}}},
		{"hsts empty", host + "hsts: {}\n", []wantProblem{{5, 7, shop + ".hsts", `missing required field "max_age"`, false}}},
		{"hsts null max_age", host + "hsts:\n  max_age:\n", []wantProblem{{6, 3, shop + ".hsts.max_age", `missing value for required field "max_age"`, false}}},
		{"hsts too long", host + "hsts:\n  max_age: 63072001\n", []wantProblem{{6, 12, shop + ".hsts.max_age", "must be at most 63072000 (two years); got 63072001", false}}},
		{"hsts negative", host + "hsts:\n  max_age: -1\n", []wantProblem{{6, 12, shop + ".hsts.max_age", "must not be negative; got -1", false}}},
		{"hsts duration", host + "hsts:\n  max_age: 1y\n", []wantProblem{{6, 12, shop + ".hsts.max_age", `expected an integer, got string "1y"`, false}}},
		{"hsts huge", host + "hsts:\n  max_age: 99999999999999999999\n", []wantProblem{{6, 12, shop + ".hsts.max_age", "out of range", false}}},
		{"hsts bool", host + "hsts: true\n", []wantProblem{{5, 7, shop + ".hsts", "expected a mapping with fields max_age, include_subdomains, preload; got boolean true", false}}},
		{"hsts typo", host + "hsts:\n  max_age: 600\n  includeSubDomains: true\n", []wantProblem{{7, 3, shop + ".hsts.includeSubDomains", `(did you mean "include_subdomains"?)`, false}}},
		{"hsts preload", host + "hsts:\n  max_age: 31536000\n  preload: true\n", []wantProblem{
			{7, 3, shop + ".hsts.preload", "the HSTS preload list takes only max_age of at least 31536000 (a year) with include_subdomains: true", true}}},
		{"hsts preload short", host + "hsts: {max_age: 600, include_subdomains: true, preload: true}\n", []wantProblem{{5, 48, shop + ".hsts.preload", "browsers will not preload this host", true}}},

		// Fields people bring from Emissary or from a Mapping.
		{"host", "kind: Host\nname: shop\nhost: shop.example.com\ntls_secret: s\n", []wantProblem{
			{1, 1, shop, `missing required field "hostname"`, false},
			{3, 1, shop + ".host", `unknown field "host" (did you mean "hostname"?)`, false}}},
		{"tlsSecret", "kind: Host\nname: shop\nhostname: shop.example.com\ntlsSecret: {name: s}\n", []wantProblem{
			{1, 1, shop, `missing required field "tls_secret"`, false},
			{4, 1, shop + ".tlsSecret", `unknown field "tlsSecret" (did you mean "tls_secret"?)`, false}}},
		{"secret", "kind: Host\nname: shop\nhostname: shop.example.com\nsecret: s\n", []wantProblem{
			{1, 1, shop, `missing required field "tls_secret"`, false},
			{4, 1, shop + ".secret", `unknown field "secret" (did you mean "tls_secret"?)`, false}}},
		{"ca_secret", host + "ca_secret: ca\n", []wantProblem{{5, 1, shop + ".ca_secret", `(did you mean "client_ca_secret"?)`, false}}},
		{"cert_required", host + "cert_required: true\n", []wantProblem{{5, 1, shop + ".cert_required", `(did you mean "client_cert"?)`, false}}},
		{"requestPolicy", host + "requestPolicy: {insecure: {action: Route}}\n", []wantProblem{{5, 1, shop + ".requestPolicy", `(did you mean "insecure"?)`, false}}},
		{"typo", host + "min_tls_verison: v1.3\n", []wantProblem{{5, 1, shop + ".min_tls_verison", `(did you mean "min_tls_version"?)`, false}}},
		{"spec", host + "spec: {}\n", []wantProblem{{5, 1, shop + ".spec", "documents are flat", false}}},
		{"ambassador_id", host + "ambassador_id: [a]\n", []wantProblem{{5, 1, shop + ".ambassador_id", "ambassador_id is only read with --compat=emissary", false}}},

		// Kinds and names.
		{"kind case", "kind: host\nname: shop\nhostname: shop.example.com\ntls_secret: s\n", []wantProblem{
			{1, 7, shop + ".kind", `unknown kind "host" (did you mean "Host"?)`, false}}},
		{"TLSContext", "kind: TLSContext\nname: shop\nhosts: [shop.example.com]\n", []wantProblem{
			{1, 7, "document 1.kind", `unknown kind "TLSContext"; known kinds are Mapping, RateLimit, Host, Auth (TLSContext is Emissary's, read from the getambassador.io/config annotation with --compat=emissary; here a Host gives a hostname its certificate)`, false}}},
		{"bad name", "kind: Host\nname: Shop.com\nhostname: shop.example.com\ntls_secret: s\n", []wantProblem{
			{2, 7, `Host "Shop.com".name`, "must be lowercase", false}}},
		{"missing name", "kind: Host\nhostname: shop.example.com\ntls_secret: s\n", []wantProblem{{1, 1, "document 1", `missing required field "name"`, false}}},
		{"duplicate name", host + "---\n" + strings.Replace(host, "shop.example.com", "www.example.com", 1), []wantProblem{
			{7, 7, shop + ".name", `duplicate Host name "shop" (see line 2, column 7)`, false}}},
		{"duplicate hostname", host + "---\nkind: Host\nname: shop-2\nhostname: Shop.Example.com\ntls_secret: other-tls\n", []wantProblem{
			{8, 11, `Host "shop-2".hostname`, `duplicate hostname "shop.example.com": Host "shop" already configures it (see line 3, column 11)`, false}}},
		{"wildcard and exact", host + "---\nkind: Host\nname: wild\nhostname: '*.example.com'\ntls_secret: wild-tls\n", nil},
		{"same name as a Mapping", host + "---\n" + strings.Replace(mapping, "users", "shop", 2), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
}

func TestParseHostPositions(t *testing.T) {
	cfg := checkProblems(t, "kind: Mapping\nname: users\nprefix: /\nservice: users\n---\n"+
		"kind: Host\nname: shop\nhostname: '*.Example.com'\ntls_secret: shop-tls\nhsts:\n  max_age: 600\n")
	h := cfg.Hosts[0]
	if !h.IsWildcard() || h.Hostname != "*.example.com" {
		t.Errorf("hostname %q, wildcard %v", h.Hostname, h.IsWildcard())
	}
	for _, tc := range []struct {
		field string
		want  Position
	}{
		{"hostname", Position{8, 11}},
		{"tls_secret", Position{9, 13}},
		{"hsts", Position{11, 3}},
		{"hsts.max_age", Position{11, 12}},
		{"hsts.preload", Position{11, 3}}, // not written: where hsts is
		{"insecure", Position{6, 1}},      // a default: where the document starts
		{"", Position{6, 1}},
	} {
		if got := h.FieldPos(tc.field); got != tc.want {
			t.Errorf("FieldPos(%q) = %v, want %v", tc.field, got, tc.want)
		}
	}
	exact := Host{Hostname: "shop.example.com"}
	if exact.IsWildcard() {
		t.Error("an exact host is a wildcard")
	}
}

func TestNormalizeHostHostname(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"shop.example.com", "shop.example.com"},
		{"SHOP.Example.Com", "shop.example.com"},
		{"*.Example.com", "*.example.com"},
		{"localhost", "localhost"},
		{"a-b.c0", "a-b.c0"},
		{"123.example.com", "123.example.com"},
	} {
		if got, msg := normalizeHostHostname(tc.in); got != tc.want || msg != "" {
			t.Errorf("%q: got %q, %q; want %q", tc.in, got, msg, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "*.", ".", "a..b", "a.com.", "*a.com", "a.*.com", "10.1.2.3", "::ffff:10.0.0.1", "a.com:80", "a com", "a\tcom", "http://a", "a/b", "(a|b).com", "a\u212a.com"} {
		if got, msg := normalizeHostHostname(bad); got != "" || msg == "" {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}
