package annotations

import (
	"reflect"
	"strings"
	"testing"
)

// emHost is a valid flat Emissary Host to which a case appends lines 6 on.
const emHost = "apiVersion: getambassador.io/v3alpha1\nkind: Host\nname: shop\nhostname: shop.example.com\ntlsSecret: {name: shop-tls}\n"

// emContext is a valid flat TLSContext to which a case appends lines 7 on.
const emContext = "apiVersion: getambassador.io/v2\nkind: TLSContext\nname: ctx\nhosts: [a.example.com, '*.b.example.com']\nsecret: ctx-tls\n"

const ctxPath = `TLSContext "ctx"`

// emissaryHosts parses an Emissary annotation without errors, checking its
// problems, and returns its Hosts with their positions cleared.
func emissaryHosts(t *testing.T, src string, want ...wantProblem) []Host {
	t.Helper()
	cfg := checkProblemsWith(t, emissary, src, want...)
	if cfg == nil {
		t.FailNow()
	}
	for i := range cfg.Hosts {
		cfg.Hosts[i].Positions = nil
	}
	return cfg.Hosts
}

func TestParseEmissaryHostFields(t *testing.T) {
	src := `apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: shop
  namespace: ns
spec:
  ambassador_id: [default]
  hostname: Shop.Example.com
  tlsSecret:
    name: shop.example.com-tls
    namespace: ns
  requestPolicy:
    insecure:
      action: Reject
      additionalPort: 8080
  tls:
    min_tls_version: v1.3
    ca_secret: partners-ca
    cert_required: true
    alpn_protocols: h2
    cert_chain_file: /etc/tls/tls.crt
  acmeProvider:
    authority: none
  mappingSelector:
    matchLabels: {app: shop}
`
	cfg := checkProblemsWith(t, emissary, src,
		wantProblem{15, 7, `Host "shop".spec.requestPolicy.insecure.additionalPort`, "ignored: Gatehouse does not implement additionalPort; plain HTTP is answered on the gateway's own HTTP port", true},
		wantProblem{20, 5, `Host "shop".spec.tls.alpn_protocols`, "ignored: Gatehouse does not implement alpn_protocols", true},
		wantProblem{21, 5, `Host "shop".spec.tls.cert_chain_file`, "ignored: Gatehouse does not implement cert_chain_file; files on the gateway's disk are never read", true},
		wantProblem{22, 3, `Host "shop".spec.acmeProvider`, "ignored: Gatehouse does not implement acmeProvider; ACME is not supported: issue certificates with cert-manager and name the Secret in tlsSecret", true},
		wantProblem{24, 3, `Host "shop".spec.mappingSelector`, "a Mapping's host or hostname decides which requests it serves, not labels", true},
	)
	want := Host{
		APIVersion:     "getambassador.io/v3alpha1",
		Kind:           KindHost,
		Name:           "shop",
		Hostname:       "shop.example.com",
		TLSSecret:      "shop.example.com-tls", // a Host's tlsSecret is a Kubernetes reference: the dot is the name's
		Insecure:       InsecureReject,
		MinTLSVersion:  "v1.3",
		ClientCASecret: "partners-ca",
		ClientCert:     ClientCertRequired,
		Pos:            Position{1, 1},
		Positions: map[string]Position{
			"apiVersion": {1, 13}, "kind": {2, 7}, "name": {4, 9}, "namespace": {5, 14}, "hostname": {8, 13}, "tls_secret": {10, 11},
			"insecure": {14, 15}, "min_tls_version": {17, 22}, "client_ca_secret": {18, 16}, "client_cert": {19, 20},
		},
	}
	if cfg == nil || len(cfg.Hosts) != 1 || !reflect.DeepEqual(cfg.Hosts[0], want) {
		t.Fatalf("hosts:\n got %+v\nwant %+v", cfg, want)
	}
	if got := cfg.Hosts[0].FieldPos("tls_secret"); got != (Position{10, 11}) {
		t.Errorf("FieldPos(tls_secret) = %v", got)
	}
}

func TestParseEmissaryHost(t *testing.T) {
	base := Host{APIVersion: "getambassador.io/v3alpha1", Kind: KindHost, Name: "shop", Hostname: "shop.example.com", TLSSecret: "shop-tls",
		Insecure: InsecureRedirect, MinTLSVersion: "v1.2", Pos: Position{1, 1}}
	with := func(f func(h *Host)) Host {
		h := base
		f(&h)
		return h
	}
	const own = "certificates come from the Host's own namespace"
	for _, tc := range []struct {
		name  string
		src   string
		hosts []Host // nil when the annotation has errors or no Hosts
		want  []wantProblem
	}{
		{"defaults", emHost, []Host{base}, nil},
		{"redirect", emHost + "requestPolicy: {insecure: {action: Redirect}}\n", []Host{base}, nil},
		{"route", emHost + "requestPolicy: {insecure: {action: Route}}\n", []Host{with(func(h *Host) { h.Insecure = InsecureRoute })}, nil},
		{"action case", emHost + "requestPolicy: {insecure: {action: redirect}}\n", nil, []wantProblem{
			{6, 36, `Host "shop".requestPolicy.insecure.action`, `must be one of Redirect, Reject, Route; got "redirect" (did you mean "Redirect"?)`, true}}},
		{"own namespace", emHost + "namespace: ns\n", []Host{base}, nil},
		{"other namespace", emHost + "namespace: other\n", nil, []wantProblem{{6, 12, `Host "shop".namespace`, "a Host in Service namespace ns cannot declare namespace other", false}}},

		// tls.
		{"ca_secret alone", emHost + "tls: {ca_secret: ca}\n", []Host{with(func(h *Host) { h.ClientCASecret, h.ClientCert = "ca", ClientCertOptional })}, nil},
		{"cert_required false", emHost + "tls: {ca_secret: ca, cert_required: false}\n", []Host{with(func(h *Host) { h.ClientCASecret, h.ClientCert = "ca", ClientCertOptional })}, nil},
		{"cert_required without ca_secret", emHost + "tls: {cert_required: true}\n", nil, []wantProblem{
			{6, 22, `Host "shop".tls.cert_required`, "cert_required needs ca_secret: client certificates are verified against the CAs it holds (cacert_chain_file, a file on the gateway's disk, is never read)", true}}},
		{"camelCase", emHost + "tls: {minTlsVersion: v1.3, caSecret: ca, certRequired: true}\n",
			[]Host{with(func(h *Host) { h.MinTLSVersion, h.ClientCASecret, h.ClientCert = "v1.3", "ca", ClientCertRequired })}, nil},
		{"both spellings", emHost + "tls:\n  min_tls_version: v1.2\n  minTlsVersion: v1.3\n", []Host{with(func(h *Host) { h.MinTLSVersion = "v1.3" })}, []wantProblem{
			{7, 3, `Host "shop".tls.min_tls_version`, "min_tls_version is ignored: minTlsVersion, also written, wins (as in Emissary)", true}}},
		{"old TLS", emHost + "tls: {min_tls_version: v1.0}\n", nil, []wantProblem{
			{6, 24, `Host "shop".tls.min_tls_version`, `min_tls_version "v1.0": TLS 1.2 is the minimum; write v1.2 or v1.3`, true}}},
		{"ca_secret with namespace", emHost + "tls: {ca_secret: other/ca}\n", nil, []wantProblem{{6, 18, `Host "shop".tls.ca_secret`, `ca_secret "other/ca": ` + own, true}}},
		{"crl_secret", emHost + "tls: {ca_secret: ca, crl_secret: crl}\n", nil, []wantProblem{
			{6, 22, `Host "shop".tls.crl_secret`, "crl_secret is not supported: Gatehouse does not check certificate revocation lists, so it would accept the client certificates this one revokes", true}}},
		{"redirect_cleartext_from", emHost + "tls: {redirect_cleartext_from: 8080}\n", []Host{base}, []wantProblem{
			{6, 7, `Host "shop".tls.redirect_cleartext_from`, "requestPolicy.insecure.action says what plain HTTP gets", true}}},
		{"tls typo", emHost + "tls: {min_tls_verison: v1.3}\n", []Host{base}, []wantProblem{
			{6, 7, `Host "shop".tls.min_tls_verison`, `(did you mean "min_tls_version"?); Emissary drops unknown fields, and so does Gatehouse`, true}}},
		{"tls and tlsContext", emHost + "tls: {}\ntlsContext: {name: ctx}\n", nil, []wantProblem{
			{7, 1, `Host "shop".tlsContext`, "set tls or tlsContext, not both (Emissary ignores a Host with both)", true}}},

		// hostname and tlsSecret.
		{"any host", strings.Replace(emHost, "shop.example.com", `"*"`, 1), nil, []wantProblem{
			{4, 11, `Host "shop".hostname`, `hostname "*": a Host cannot cover every host; the default certificate, for hosts no Host names, is set by the platform (serve --tls-cert-file) (Emissary's catch-all Host: leave it out)`, true}}},
		{"no hostname", "apiVersion: getambassador.io/v3alpha1\nkind: Host\nname: shop\ntlsSecret: {name: s}\n", nil, []wantProblem{
			{1, 1, `Host "shop"`, `missing hostname: Emissary reads a Host without one as "*", every host`, true}}},
		{"empty hostname", strings.Replace(emHost, "shop.example.com", `""`, 1), nil, []wantProblem{
			{4, 1, `Host "shop".hostname`, "missing hostname", true}}},
		{"hostname port", strings.Replace(emHost, "shop.example.com", "shop.example.com:8443", 1), nil, []wantProblem{
			{4, 11, `Host "shop".hostname`, `hostname "shop.example.com:8443": a Host's hostname has no port`, true}}},
		{"no tlsSecret", "apiVersion: getambassador.io/v3alpha1\nkind: Host\nname: shop\nhostname: shop.example.com\n", nil, []wantProblem{
			{1, 1, `Host "shop"`, "missing tlsSecret: a Host serves the certificate in a kubernetes.io/tls Secret of its own namespace, named by tlsSecret: {name: ...}", true}}},
		{"ACME", "apiVersion: getambassador.io/v3alpha1\nkind: Host\nname: shop\nhostname: shop.example.com\nacmeProvider: {email: ops@example.com}\n", nil, []wantProblem{
			{1, 1, `Host "shop"`, "missing tlsSecret: a Host serves the certificate in a kubernetes.io/tls Secret of its own namespace, named by tlsSecret: {name: ...}; ACME is not supported: issue the certificate with cert-manager", true},
			{5, 1, `Host "shop".acmeProvider`, "ACME is not supported", true}}},
		{"tlsSecret without name", strings.Replace(emHost, "{name: shop-tls}", "{namespace: ns}", 1), nil, []wantProblem{
			{5, 12, `Host "shop".tlsSecret`, `missing required field "name"`, true}}},
		{"tlsSecret other namespace", strings.Replace(emHost, "{name: shop-tls}", "{name: shop-tls, namespace: certs}", 1), nil, []wantProblem{
			{5, 40, `Host "shop".tlsSecret.namespace`, `tlsSecret.namespace "certs": certificates come from the Host's own namespace (ns); write the Secret's name only`, true}}},
		{"tlsSecret string", strings.Replace(emHost, "{name: shop-tls}", "shop-tls", 1), nil, []wantProblem{
			{5, 12, `Host "shop".tlsSecret`, `expected a mapping with fields name, namespace; got string "shop-tls"`, true}}},
		{"tlsSecret slash", strings.Replace(emHost, "{name: shop-tls}", "{name: certs/shop-tls}", 1), nil, []wantProblem{
			{5, 19, `Host "shop".tlsSecret.name`, `tlsSecret.name "certs/shop-tls": ` + own, true}}},
		{"name with slash", strings.Replace(emHost, "name: shop\n", "name: a/b\n", 1), nil, []wantProblem{
			{3, 7, `Host "a/b".name`, "a Host name must not contain '/'", true}}},
		{"duplicate name", emHost + "---\n" + strings.Replace(emHost, "shop.example.com", "www.example.com", 1), nil, []wantProblem{
			{9, 7, `Host "shop".name`, `duplicate Host name "shop"`, false}}},
		{"duplicate hostname", emHost + "---\n" + strings.Replace(emHost, "name: shop", "name: shop2", 1), []Host{base}, []wantProblem{
			{10, 11, `Host "shop2".hostname`, `duplicate hostname "shop.example.com": Host "shop" already configures it`, true}}},
		{"other gateway", emHost + "ambassador_id: [blue]\nhostname: '*'\n", []Host{}, nil},
		{"flat and CRD", emHost + "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: www}\nspec: {hostname: www.example.com, tlsSecret: {name: www-tls}}\n",
			[]Host{base, with(func(h *Host) {
				h.Name, h.Hostname, h.TLSSecret, h.Pos = "www", "www.example.com", "www-tls", Position{7, 1}
			})}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := checkProblemsWith(t, emissary, tc.src, tc.want...)
			if cfg == nil {
				if tc.hosts != nil {
					t.Fatal("no config")
				}
				return
			}
			for i := range cfg.Hosts {
				cfg.Hosts[i].Positions = nil
			}
			if len(cfg.Hosts) != len(tc.hosts) || len(tc.hosts) > 0 && !reflect.DeepEqual(cfg.Hosts, tc.hosts) {
				t.Errorf("hosts:\n got %+v\nwant %+v", cfg.Hosts, tc.hosts)
			}
		})
	}
}

func TestParseEmissaryTLSContext(t *testing.T) {
	a := Host{APIVersion: "getambassador.io/v2", Kind: KindHost, Name: "ctx:a.example.com", Hostname: "a.example.com", TLSSecret: "ctx-tls",
		Insecure: InsecureRoute, MinTLSVersion: "v1.2", Pos: Position{1, 1}}
	b := a
	b.Name, b.Hostname = "ctx:*.b.example.com", "*.b.example.com"
	both := func(f func(h *Host)) []Host {
		a, b := a, b
		f(&a)
		f(&b)
		return []Host{a, b}
	}
	const own = "certificates come from the Host's own namespace; write the Secret's name only"
	for _, tc := range []struct {
		name  string
		src   string
		hosts []Host // nil when the annotation has errors or no Hosts
		want  []wantProblem
	}{
		{"hosts", emContext, []Host{a, b}, nil},
		{"redirect_cleartext_from", emContext + "redirect_cleartext_from: 8080\n", both(func(h *Host) { h.Insecure = InsecureRedirect }), nil},
		{"mTLS", emContext + "ca_secret: partners-ca\ncert_required: true\nmin_tls_version: v1.3\n",
			both(func(h *Host) {
				h.ClientCASecret, h.ClientCert, h.MinTLSVersion = "partners-ca", ClientCertRequired, "v1.3"
			}), nil},
		{"ca_secret alone", emContext + "ca_secret: partners-ca\n", both(func(h *Host) { h.ClientCASecret, h.ClientCert = "partners-ca", ClientCertOptional }), nil},
		{"secret in own namespace", strings.Replace(emContext, "secret: ctx-tls", "secret: ctx-tls.ns", 1), []Host{a, b}, nil},
		{"secret in another namespace", strings.Replace(emContext, "secret: ctx-tls", "secret: ctx-tls.certs", 1), nil, []wantProblem{
			{5, 9, ctxPath + ".secret", `secret "ctx-tls.certs": ` + own + ` (in a TLSContext "ctx-tls.certs" is Secret "ctx-tls" of namespace "certs"; with secret_namespacing: false the "." is part of the name)`, true}}},
		{"secret_namespacing false", strings.Replace(emContext, "secret: ctx-tls", "secret: ctx.example.com-tls", 1) + "secret_namespacing: false\n",
			both(func(h *Host) { h.TLSSecret = "ctx.example.com-tls" }), nil},
		{"secret dotted", strings.Replace(emContext, "secret: ctx-tls", "secret: ctx.example.com-tls", 1), nil, []wantProblem{
			{5, 9, ctxPath + ".secret", `in a TLSContext "ctx.example.com-tls" is Secret "ctx.example" of namespace "com-tls"`, true}}},
		{"ca_secret in another namespace", emContext + "ca_secret: ca.certs\n", nil, []wantProblem{{6, 12, ctxPath + ".ca_secret", `ca_secret "ca.certs": ` + own, true}}},
		{"no secret", "apiVersion: getambassador.io/v2\nkind: TLSContext\nname: ctx\nhosts: [a.example.com]\ncert_chain_file: /tls.crt\n", nil, []wantProblem{
			{1, 1, ctxPath, "missing secret: a TLSContext with hosts serves the certificate in a kubernetes.io/tls Secret of its own namespace, named by secret (cert_chain_file is a file on the gateway's disk, which is never read)", true},
			{5, 1, ctxPath + ".cert_chain_file", "files on the gateway's disk are never read", true}}},
		{"ignored fields", emContext + "alpn_protocols: h2\nmax_tls_version: v1.2\ncipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]\necdh_curves: [P-256]\nsni: a.example.com\n" +
			"cacert_chain_file: /ca.pem\nprivate_key_file: /tls.key\n", []Host{a, b}, []wantProblem{
			{6, 1, ctxPath + ".alpn_protocols", "ignored: Gatehouse does not implement alpn_protocols", true},
			{7, 1, ctxPath + ".max_tls_version", "ignored: Gatehouse does not implement max_tls_version", true},
			{8, 1, ctxPath + ".cipher_suites", "ignored: Gatehouse does not implement cipher_suites", true},
			{9, 1, ctxPath + ".ecdh_curves", "ignored: Gatehouse does not implement ecdh_curves", true},
			{10, 1, ctxPath + ".sni", "ignored: Gatehouse does not implement sni; sni names the upstream in TLS Emissary originates", true},
			{11, 1, ctxPath + ".cacert_chain_file", "files on the gateway's disk are never read", true},
			{12, 1, ctxPath + ".private_key_file", "files on the gateway's disk are never read", true}}},
		{"crl_secret", emContext + "crl_secret: crl\n", nil, []wantProblem{{6, 1, ctxPath + ".crl_secret", "crl_secret is not supported", true}}},
		{"old TLS", emContext + "min_tls_version: v1.1\n", nil, []wantProblem{
			{6, 18, ctxPath + ".min_tls_version", `min_tls_version "v1.1": TLS 1.2 is the minimum`, true}}},
		{"any host", strings.Replace(emContext, "'*.b.example.com'", "'*'", 1), nil, []wantProblem{
			{4, 24, ctxPath + ".hosts[1]", `hostname "*": a Host cannot cover every host; the default certificate, for hosts no Host names, is set by the platform (serve --tls-cert-file) (Emissary's catch-all Host`, true}}},
		{"duplicate host", strings.Replace(emContext, "'*.b.example.com'", "A.example.com", 1), []Host{a}, []wantProblem{
			{4, 24, ctxPath + ".hosts[1]", `duplicate hostname "a.example.com": Host "ctx:a.example.com" already configures it`, true}}},
		{"hosts not a list", strings.Replace(emContext, "[a.example.com, '*.b.example.com']", "a.example.com", 1), nil, []wantProblem{
			{4, 8, ctxPath + ".hosts", "expected a list, got string \"a.example.com\"; write [a.example.com]", true}}},
		{"no hosts", "apiVersion: getambassador.io/v2\nkind: TLSContext\nname: upstream\nsecret: client.other\nalpn_protocols: h2\n", []Host{}, []wantProblem{
			{2, 7, `TLSContext "upstream".kind`, "ignored: a TLSContext without hosts configures no host; Emissary uses such a context for TLS to upstreams, named by a Mapping's tls, which Gatehouse reads as https://", true}}},
		{"empty hosts", "apiVersion: getambassador.io/v2\nkind: TLSContext\nname: upstream\nhosts: []\nsecret: s\n", []Host{}, []wantProblem{
			{4, 1, `TLSContext "upstream".hosts`, "ignored: a TLSContext without hosts configures no host", true}}},
		{"crd", "apiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {name: ctx}\nspec:\n  hosts: [a.example.com]\n  secret: ctx-tls\n",
			[]Host{with(a, func(h *Host) { h.APIVersion = "getambassador.io/v3alpha1" })}, nil},
		{"duplicate context name", emContext + "---\n" + strings.Replace(emContext, "a.example.com, '*.b.example.com'", "c.example.com", 1), nil, []wantProblem{
			{9, 7, ctxPath + ".name", `duplicate TLSContext name "ctx"`, false}}},
		{"derived name meets a Host's", emContext + "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nname: ctx:a.example.com\nhostname: c.example.com\ntlsSecret: {name: c}\n", nil, []wantProblem{
			{9, 7, `Host "ctx:a.example.com".name`, `duplicate Host name "ctx:a.example.com"`, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := checkProblemsWith(t, emissary, tc.src, tc.want...)
			if cfg == nil {
				if tc.hosts != nil {
					t.Fatal("no config")
				}
				return
			}
			for i := range cfg.Hosts {
				cfg.Hosts[i].Positions = nil
			}
			if len(cfg.Hosts) != len(tc.hosts) || len(tc.hosts) > 0 && !reflect.DeepEqual(cfg.Hosts, tc.hosts) {
				t.Errorf("hosts:\n got %+v\nwant %+v", cfg.Hosts, tc.hosts)
			}
		})
	}

	// Each derived Host points at its own entry of hosts, and at the
	// context's settings.
	cfg := checkProblemsWith(t, emissary, emContext+"ca_secret: partners-ca\n")
	for i, want := range []Position{{4, 9}, {4, 24}} {
		h := cfg.Hosts[i]
		if got := h.FieldPos("hostname"); got != want {
			t.Errorf("%s: FieldPos(hostname) = %v, want %v", h.Name, got, want)
		}
		if got := h.FieldPos("client_ca_secret"); got != (Position{6, 12}) {
			t.Errorf("%s: FieldPos(client_ca_secret) = %v", h.Name, got)
		}
		if got := h.FieldPos("insecure"); got != (Position{1, 1}) {
			t.Errorf("%s: FieldPos(insecure) = %v", h.Name, got)
		}
	}
}

func with(h Host, f func(h *Host)) Host {
	f(&h)
	return h
}

// TestParseEmissaryHostLinks covers a Host that takes its TLS settings
// from a TLSContext, named by tlsContext or, as Emissary does, implicitly
// by "<Host name>-context".
func TestParseEmissaryHostLinks(t *testing.T) {
	const ctx = "---\napiVersion: getambassador.io/v2\nkind: TLSContext\nname: shop-ctx\nhosts: [shop.example.com, www.example.com]\nsecret: shop-tls\n" +
		"min_tls_version: v1.3\nca_secret: ca\ncert_required: true\nredirect_cleartext_from: 8080\n"
	shopHost := Host{APIVersion: "getambassador.io/v3alpha1", Kind: KindHost, Name: "shop", Hostname: "shop.example.com", TLSSecret: "shop-tls",
		Insecure: InsecureRedirect, MinTLSVersion: "v1.3", ClientCASecret: "ca", ClientCert: ClientCertRequired, Pos: Position{1, 1}}
	www := Host{APIVersion: "getambassador.io/v2", Kind: KindHost, Name: "shop-ctx:www.example.com", Hostname: "www.example.com", TLSSecret: "shop-tls",
		Insecure: InsecureRedirect, MinTLSVersion: "v1.3", ClientCASecret: "ca", ClientCert: ClientCertRequired, Pos: Position{7, 1}}

	// Linked by name: the Host takes the context's settings and replaces the
	// Host the context would give its hostname; its positions point there.
	cfg := checkProblemsWith(t, emissary, emHost+"tlsContext: {name: shop-ctx}\nrequestPolicy: {insecure: {action: Redirect}}\n"+ctx)
	if got := cfg.Hosts[0].FieldPos("min_tls_version"); got != (Position{14, 18}) {
		t.Errorf("linked min_tls_version at %v", got)
	}
	if got := cfg.Hosts[0].FieldPos("tls_secret"); got != (Position{5, 19}) {
		t.Errorf("linked tls_secret at %v", got)
	}
	if hosts := emissaryHosts(t, emHost+"tlsContext: {name: shop-ctx}\nrequestPolicy: {insecure: {action: Redirect}}\n"+ctx); !reflect.DeepEqual(hosts, []Host{shopHost, with(www, func(h *Host) { h.Pos = Position{9, 1} })}) {
		t.Errorf("linked:\n got %+v", hosts)
	}
	// Implicitly, when the context is named "<Host name>-context"; the
	// Host's own requestPolicy (default Redirect) stands.
	implicit := strings.Replace(ctx, "name: shop-ctx", "name: shop-context", 1)
	if hosts := emissaryHosts(t, emHost+implicit); !reflect.DeepEqual(hosts, []Host{shopHost, with(www, func(h *Host) { h.Name = "shop-context:www.example.com" })}) {
		t.Errorf("implicit:\n got %+v", hosts)
	}
	// Not linked: the same hostname twice is a warning that says how to
	// link; the first one is read, and the Service keeps its routes.
	checkProblemsWith(t, emissary, emHost+ctx, wantProblem{10, 9, `TLSContext "shop-ctx".hosts[0]`,
		`duplicate hostname "shop.example.com": Host "shop" already configures it; to give a Host a TLSContext's settings, link it with tlsContext: {name: ...}; this one is not read`, true})
	// A Host with tls of its own does not link implicitly.
	checkProblemsWith(t, emissary, emHost+"tls: {}\n"+implicit, wantProblem{11, 9, `TLSContext "shop-context".hosts[0]`, "duplicate hostname", true})

	// Links that Emissary would refuse still give the settings, with a
	// warning; a context that is not there gives nothing.
	hosts := emissaryHosts(t, strings.Replace(emHost, "shop-tls", "own-tls", 1)+"tlsContext: {name: shop-ctx}\n"+strings.Replace(ctx, "[shop.example.com, www.example.com]", "[www.example.com]", 1),
		wantProblem{6, 20, `Host "shop".tlsContext.name`, `TLSContext "shop-ctx" does not list "shop.example.com" in its hosts, which Emissary refuses; Gatehouse takes its settings anyway`, true},
		wantProblem{6, 20, `Host "shop".tlsContext.name`, `TLSContext "shop-ctx" names Secret "shop-tls", which is not served: the Host serves its tlsSecret, "own-tls"`, true})
	if len(hosts) != 2 || hosts[0].TLSSecret != "own-tls" || hosts[0].MinTLSVersion != "v1.3" || hosts[0].ClientCert != ClientCertRequired {
		t.Errorf("refused link: %+v", hosts)
	}
	hosts = emissaryHosts(t, emHost+"tlsContext: {name: elsewhere}\n",
		wantProblem{6, 20, `Host "shop".tlsContext.name`, `ignored: TLSContext "elsewhere" is not in this annotation (for this gateway), so the Host takes no settings from it`, true})
	if !reflect.DeepEqual(hosts, []Host{with(shopHost, func(h *Host) { h.MinTLSVersion, h.ClientCASecret, h.ClientCert = "v1.2", "", "" })}) {
		t.Errorf("missing context: %+v", hosts)
	}
	emissaryHosts(t, emHost+"tlsContext: {name: upstream}\n---\napiVersion: getambassador.io/v2\nkind: TLSContext\nname: upstream\nsecret: client-cert\n",
		wantProblem{6, 20, `Host "shop".tlsContext.name`, `ignored: TLSContext "upstream" has no hosts, so Gatehouse does not read it and the Host takes no settings from it`, true},
		wantProblem{9, 7, `TLSContext "upstream".kind`, "ignored: a TLSContext without hosts configures no host", true})
}

func TestParseEmissaryHostKinds(t *testing.T) {
	// A near miss of Host is read as a Host, so its problems show too.
	checkProblemsWith(t, emissary, strings.Replace(emHost, "kind: Host", "kind: host", 1)+"hostname: x\n",
		wantProblem{2, 7, `Host "shop".kind`, `unknown kind "host" (did you mean "Host"?)`, false},
		wantProblem{6, 1, `Host "shop".hostname`, `duplicate field "hostname"`, true})
	// Mappings and Hosts of one annotation are read together.
	cfg := checkProblemsWith(t, emissary, emMapping+"host: shop.example.com\n---\n"+emHost+"---\n"+emContext)
	if len(cfg.Mappings) != 1 || len(cfg.Hosts) != 3 {
		t.Errorf("got %d Mappings and %d Hosts", len(cfg.Mappings), len(cfg.Hosts))
	}
}
