package annotations

import (
	"cmp"
	"net/textproto"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// fuzzSeeds are valid and invalid annotations covering each kind of problem.
var fuzzSeeds = []string{
	"",
	"---",
	mapping,
	rateLimit,
	mapping + "rate_limits: [per-ip]\n---\n" + rateLimit,
	"kind: Mapping\nname: users\nprefx: /u\nservice: 8080\nprecedence: high\n",
	"kind: mapping\nname: Users\nheaders:\n  x-a: false\n  X-A: 1\n",
	"kind: Mapping\nname: a\nprefix: '^/(?=x)\\1'\nprefix_regex: true\nprefix_exact: true\nservice: http://a.b.c.d:0/x\nhost: Foo*.com:80\nmethod: \"GE T\"\n",
	"kind: RateLimit\nname: r\nrate: 0\nunit: week\nburst: 0\nkey: client_ip\nheader: x\n",
	"a: &a [1]\nb: *a\n",
	"a: *b\n",
	"kind: Mapping\nheaders:\n\tx: y\n",
	"a:\n  b: 1\n c: 2\n",
	"a: [1,\nb: \"x\n",
	"a: 1\r\nb: 2\r c: 3",
	"x: \x01\xff\u2028y: 1\u0085",
	"\ufeffkind: Mapping\n\tname: x\n",
	"- a\n---\nnull\n---\n~\n",
	"%YAML 1.2\n---\na: 1\n...\n",
	"? [a]\n: b\n",
	"kind: Mapping\nname: a\nprefix: /\nservice: s\nrate_limits: [a, a, b]\n---\nkind: RateLimit\nname: a\nrate: 1\nunit: day\n---\nkind: Mapping\nname: a\n",
	// The full Mapping language.
	mapping + "hostname: '*.Example.com'\nhost: a.com\nhost_regex: true\nmethod: 'GET|('\nmethod_regex: true\ncase_sensitive: false\n",
	mapping + "regex_headers: {x-id: '^\\d+$', X-ID: '('}\nquery_parameters: {a: true, a=b: x, A: false}\nregex_query_parameters: {p: '[', '': x}\n",
	mapping + "regex_rewrite: {pattern: '^/(a)(?P<n>b)', substitution: '/\\1/$2x/${n}/${3/$$'}\nrewrite: /x\nhost_rewrite: '[::1]:0'\n",
	mapping + "add_request_headers: {Host: a, x-a: {value: \"a\\nb\", apend: 1}, Connection: c, ':path': p}\nremove_response_headers: [Upgrade, x, X]\n",
	mapping + "connect_timeout_ms: 0\nidle_timeout_ms: 0\nweight: 101\nretry_policy: {retry_on: 5xxx, num_retries: -1, per_try_timeout: 5, retry_back_off: {}}\n",
	mapping + "circuit_breakers: [{priority: high, max_connections: 0}, {}, {}, 5]\nload_balancer: {policy: ring_hash, header: 'x y', source_ip: true, cookie: {ttl: x}}\n",
	mapping + "cors: {origins: 'https://a.com,, *', methods: GET, max_age: 1d}\nallow_upgrade: [WebSocket, websocket, 'a b']\nuse_websocket: true\ngrpc: true\nshadow: true\n",
	"kind: Mapping\nname: a\nprefix: /\nservice: https://a.com/x\nhost_redirect: true\npath_redirect: x\nprefix_redirect: /y\nredirect_response_code: 300\n",
	mapping + "labels:\n  d:\n    - g: [remote_address, {request_headers: {key: k}}, {generic_key: {value: v}}, {x: 1}, [1]]\n    - {a: [], b: []}\n  e: x\nambassador_id: [x]\n",
	// The Emissary dialect.
	emMapping + "ambassador_id: [other, _automatic_]\nnamespace: other\nhost: a.com:80\nhostname: b.com\ntls: true\nprefx: 1\n",
	emCRD + "  ambassador_id: default\n  name: x\nstatus: {}\n---\nkind: Module\nname: m\n---\nkind: RateLimit\nname: r\n---\nkind: Mapping\nprefix: /\n",
	"apiVersion: ambassador/v0\nkind: Mapping\nname: quote-backend.v1\nprefix: /\nservice: s\nheaders: {x: True}\n---\napiVersion: x/v9\nkind: Mappin\nmetadata: 5\nspec: []\n",
	"apiVersion: ambassador/v0\nkind: Mapping\nname: qotm_Mapping\nprefix: /\nservice: http://s:8080\ntls: yes\nuse_websocket: on\nheaders: {x: no}\nrate_limits: [{descriptor: a}]\n" +
		"regex_rewrite: {pattern: '^/(a)(b)', substitution: '/\\2$1\\\\x\\3\\'}\n---\nkind: FilterPolicy\nname: f\n---\nkind: TLSContex\nname: 'a/b'\n",
	emMapping + "tls: ctx\nhost_redirect: true\nlabels:\n  d:\n    - g: [{x-a: {header: x-a, omit_if_not_present: yes}}, {y: {header: 'a b'}}, {request_header: {}}]\n  e: 1\n" +
		"retry_policy: {per_try_timeout: 5}\nredirect_response_code: 200\n---\n" + emMapping + "---\nkind: Mapping\nname: 'a b'\nprefix: /\nservice: s\n",
	// Hosts, native.
	host,
	host + "insecure: route\nhsts: {max_age: 31536000, include_subdomains: true, preload: true}\nmin_tls_version: 1.3\nclient_ca_secret: ca\nclient_cert: optional\n",
	host + "---\n" + hostWith("'*.Shop.example.com'", "wild-tls") + "---\n" + hostWith("Shop.Example.com", "other") + "---\n" + mapping + "host: shop.example.com\n",
	"kind: Host\nname: shop\nhostname: '*'\ntls_secret: ns/cert\ninsecure: Redirect\nhsts: {preload: true}\nmin_tls_version: v1.1\nclient_cert: required\nhost: a\n",
	"kind: host\nname: Shop\nhostname: '[::1]:443'\ntls_secret: cert.other\nhsts: {max_age: 63072001, includeSubDomains: 1}\nmin_tls_version: [1]\nambassador_id: x\n---\nkind: TLSContext\n",
	hostWith("'^shop\\.example\\.com$'", "Cert") + "client_ca_secret: a/b\nhsts: 5\n---\n" + hostWith("b\u00fccher.example:80", "''"),
	// Hosts, Emissary.
	emHost + "requestPolicy: {insecure: {action: Reject, additionalPort: 8080}}\ntls: {minTlsVersion: v1.3, caSecret: ca, certRequired: true, alpn_protocols: h2}\nacmeProvider: {authority: none}\n",
	emHost + "tlsContext: {name: ctx}\n---\n" + emContext + "ca_secret: ca.ns\ncert_required: true\nredirect_cleartext_from: 8080\ncipher_suites: [x]\ncert_chain_file: /x\n",
	emHost + "tls: {crl_secret: c, cert_required: true}\ntlsContext: {name: ctx}\nnamespace: other\n---\n" + strings.Replace(emContext, "ctx-tls", "ctx-tls.certs", 1) +
		"crl_file: /x\nmin_tls_version: v1.0\nsecret_namespacing: no\n---\nkind: TLSContext\nname: upstream\nsecret: a.b\n",
	"apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: shop-host}\nspec: {hostname: '*', tlsSecret: {name: x, namespace: other}, requestPolicy: {insecure: {action: redirect}}}\n---\n" +
		"apiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {name: shop-host-context}\nspec: {hosts: ['*', a.com, A.com], secret: s}\n",
	// Auths, native.
	authJWT + "  claims_to_headers: {email: x-email, org: X-Org}\n  consumer_claim: client_id\n  forward_token: true\n  clock_skew_seconds: 0\n" + usedBy("users-jwt") + "require_consumer: true\n",
	authKeys + "  header: x-partner-key\n  forward_key: true\n" + usedBy("partner-keys") + "rate_limits: [per-ip]\n---\n" + rateLimit + "key: consumer\n",
	authExt + "  path_prefix: /check\n  timeout_ms: 250\n  failure_mode: allow\n  allowed_request_headers: [x-tenant, cookie]\n  allowed_upstream_headers: [x-user]\n" +
		"  consumer_header: x-consumer\n  include_body_bytes: 4096\n" + usedBy("ext") + "require_consumer: true\n---\n" + mapping + "auth: ext\nbypass_auth: true\n",
	"kind: Auth\nname: a\njwt: {issuer: ' i', audiences: [], jwks_uri: 'http://u:p@x/#f', jwks_secret: other/s, claims_to_headers: {sub: Authorization, '': x-a, a: X-A}, clock_skew_seconds: 301}\n" +
		"api_key: {header: Connection, query: 'a=b', secrets: [a, a, B/c]}\nexternal: {service: 'grpc://a/b', path_prefix: x, timeout_ms: 0, failure_mode: open, include_body_bytes: 70000}\n" +
		"---\nkind: auth\nname: a\nissuer: x\n---\n" + mapping + "auth: b\nrequire_consumer: true\n---\nkind: AuthService\nname: s\n",
	authExt + "  allowed_upstream_headers: [x-request-id, Host, Keep-Alive, 'x y', x-a, X-A]\n  allowed_request_headers: [Content-Length, Proxy-Authorization, ':path']\n" +
		"---\n" + mapping + "auth: ''\nshadow: true\n---\n" + strings.Replace(mapping, "users", "u2", 2) + "auth: [ext]\nrequire_consumer: yes\n",
	// Auths, Emissary.
	emAuth + "path_prefix: /extauth\ntimeout_ms: 2000\nproto: http\ntls: true\nallowed_request_headers: [x-tenant]\nallowed_authorization_headers: [x-user, authorization]\n" +
		"include_body: {max_bytes: 4096}\nfailure_mode_allow: true\nstatus_on_error: {code: 503}\nadd_linkerd_headers: true\n---\n" + emMapping + "bypass_auth: true\n---\n" +
		strings.Replace(emMapping, "users", "orders", 2) + "auth: authentication\nrequire_consumer: true\n",
	emAuth + "proto: grpc\n---\n" + emAuth + "tls: ctx\n---\n" + strings.Replace(emAuth, "authentication", "second", 1) + "---\n" + emMapping + "auth: second\n",
	"apiVersion: getambassador.io/v3alpha1\nkind: AuthService\nmetadata: {name: a/b, namespace: other}\nspec: {auth_service: 'http://a:0', timeout_ms: 30000, proto: HTTP, include_body: {allow_partial: no}, " +
		"allowed_request_headers: [Host], path_prefix: 'x y'}\n---\n" + emMapping + "require_consumer: true\nbypass_auth: true\nauth: a/b\n",
}

// yamlLineCount counts lines as generously as any YAML reader could: every
// CR, LF, NEL, LS and PS starts a new line.
func yamlLineCount(s string) int {
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', 0x85, 0x2028, 0x2029:
			n++
		}
	}
	return n
}

func FuzzParse(f *testing.F) {
	f.Add(readRealistic(f), byte(Native))
	emissaryFixture, err := os.ReadFile("testdata/emissary.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(emissaryFixture), byte(Emissary))
	for _, s := range fuzzSeeds {
		f.Add(s, byte(Native))
		f.Add(s, byte(Emissary))
	}
	f.Fuzz(func(t *testing.T, src string, dialect byte) {
		opts := Options{Namespace: "ns", Dialect: Dialect(dialect % 2)}
		cfg, problems := Parse(src, opts)
		if (cfg == nil) != problems.HasErrors() {
			t.Fatalf("config %v with problems %v", cfg, problems)
		}
		lines := yamlLineCount(src)
		for _, p := range problems {
			if p.Pos.Line < 1 || p.Pos.Column < 1 || p.Pos.Line > lines+1 {
				t.Errorf("position out of range (%d lines): %v", lines, p)
			}
			if p.Message == "" {
				t.Errorf("empty message: %#v", p)
			}
			if r := p.Related; r != nil && (r.Line < 1 || r.Column < 1 || r.Line > lines+1) {
				t.Errorf("related position out of range (%d lines): %v", lines, p)
			}
		}
		if !slices.IsSortedFunc(problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
		}) {
			t.Errorf("problems not sorted: %v", problems)
		}
		if cfg2, problems2 := Parse(src, opts); !reflect.DeepEqual(problems, problems2) || !reflect.DeepEqual(cfg, cfg2) {
			t.Errorf("Parse is not deterministic:\n%v\n%v", problems, problems2)
		}
		if cfg != nil {
			checkConfigInvariants(t, cfg, opts.Dialect)
		}
	})
}

// checkConfigInvariants asserts what a compiler may rely on in a Config.
func checkConfigInvariants(t *testing.T, cfg *Config, dialect Dialect) {
	t.Helper()
	var rateLimits []string
	for _, rl := range cfg.RateLimits {
		if dnsLabelProblem(rl.Name) != "" || rl.Rate < 1 || !slices.Contains([]string{UnitSecond, UnitMinute, UnitHour, UnitDay}, rl.Unit) {
			t.Errorf("invalid RateLimit accepted: %+v", rl)
		}
		rateLimits = append(rateLimits, rl.Name)
	}
	for _, m := range cfg.Mappings {
		nameProblem := dnsLabelProblem(m.Name)
		if dialect == Emissary {
			nameProblem = emissaryNameProblem(KindMapping, m.Name)
		}
		if nameProblem != "" || m.Prefix == "" || m.Hostname != strings.ToLower(m.Hostname) || m.Positions == nil {
			t.Errorf("invalid Mapping accepted: %+v", m)
		}
		if !m.HostRegex && m.Host != strings.ToLower(m.Host) || !m.MethodRegex && m.Method != strings.ToUpper(m.Method) {
			t.Errorf("host or method not normalised: %+v", m)
		}
		if dialect == Emissary && m.Host != "" && m.Hostname != "" || dialect == Native && m.AmbassadorID != nil {
			t.Errorf("dialect rules broken: %+v", m)
		}
		for _, re := range []struct {
			on      bool
			pattern string
		}{{m.PrefixRegex, m.Prefix}, {m.HostRegex, m.Host}, {m.MethodRegex, m.Method}, {m.RegexRewrite != nil, regexRewritePattern(m)}} {
			if _, err := regexp.Compile(re.pattern); re.on && err != nil {
				t.Errorf("bad regular expression accepted: %v", err)
			}
		}
		if rr := m.RegexRewrite; rr != nil {
			// Whatever the dialect, the result is in Go's syntax and refers
			// only to groups that exist.
			if re, err := regexp.Compile(rr.Pattern); err == nil && groupProblem(re, rr.Substitution) != "" {
				t.Errorf("substitution %q accepted for %q: %s", rr.Substitution, rr.Pattern, groupProblem(re, rr.Substitution))
			}
		}
		for _, re := range m.RegexHeaders {
			if _, err := regexp.Compile(re); err != nil {
				t.Errorf("bad regex_headers accepted: %v", err)
			}
		}
		if m.HostRedirect != nil && *m.HostRedirect {
			if msg := redirectTargetProblem(m.Service); msg != "" {
				t.Errorf("bad redirect target %q accepted: %s", m.Service, msg)
			}
		} else if _, err := ParseServiceRef(m.Service, "ns"); err != nil {
			t.Errorf("Mapping with bad service accepted: %v", err)
		}
		if m.Weight != nil && (*m.Weight < 0 || *m.Weight > 100) {
			t.Errorf("weight %d accepted", *m.Weight)
		}
		for _, proto := range m.AllowUpgrade {
			if proto != strings.ToLower(proto) || !isProtocol(proto) {
				t.Errorf("allow_upgrade %q accepted", proto)
			}
		}
		if m.UseWebsocket != nil && *m.UseWebsocket && !slices.Contains(m.AllowUpgrade, "websocket") {
			t.Errorf("use_websocket not folded into allow_upgrade: %q", m.AllowUpgrade)
		}
		for name, ah := range m.AddRequestHeaders {
			if headerChangeProblem(name, true, "added") != "" || strings.ContainsAny(ah.Value, "\r\n\x00") {
				t.Errorf("added header %q: %q accepted", name, ah.Value)
			}
		}
		for _, name := range m.RateLimits {
			if !slices.Contains(rateLimits, name) {
				t.Errorf("Mapping %q refers to undeclared RateLimit %q", m.Name, name)
			}
		}
	}
	checkHostInvariants(t, cfg, dialect)
	checkAuthInvariants(t, cfg, dialect)
}

// checkAuthInvariants asserts what the authentication compiler may rely on
// in Config.Auths and the Mappings that name them.
func checkAuthInvariants(t *testing.T, cfg *Config, dialect Dialect) {
	t.Helper()
	names := make(map[string]bool, len(cfg.Auths))
	namespaced := 0
	for _, a := range cfg.Auths {
		nameProblem := dnsLabelProblem(a.Name)
		if dialect == Emissary {
			nameProblem = emissaryNameProblem(kindAuthService, a.Name)
		}
		if a.Kind != KindAuth || nameProblem != "" || names[a.Name] || a.Positions == nil {
			t.Errorf("invalid Auth accepted: %+v", a)
		}
		names[a.Name] = true
		methods := 0
		for _, set := range []bool{a.JWT != nil, a.APIKey != nil, a.External != nil} {
			if set {
				methods++
			}
		}
		if methods != 1 || a.Namespaced && (dialect == Native || a.External == nil) {
			t.Errorf("Auth %q: %d methods, namespaced %v", a.Name, methods, a.Namespaced)
		}
		if a.Namespaced {
			namespaced++
		}
		if j := a.JWT; j != nil {
			if exactTextProblem(j.Issuer) != "" || len(j.Audiences) == 0 || (j.JWKSSecret == "") == (j.JWKSURI == "") || j.ConsumerClaim == "" ||
				j.ClockSkewSeconds == nil || *j.ClockSkewSeconds < 0 || *j.ClockSkewSeconds > 300 || len(j.ClaimsToHeaders) > maxClaimsToHeaders {
				t.Errorf("invalid jwt accepted: %+v", j)
			}
			if j.JWKSURI != "" && jwksURIProblem(j.JWKSURI) != "" || j.JWKSSecret != "" && len(validation.IsDNS1123Subdomain(j.JWKSSecret)) > 0 {
				t.Errorf("jwt key set accepted: %q %q", j.JWKSURI, j.JWKSSecret)
			}
			for claim, h := range j.ClaimsToHeaders {
				if claim == "" || ReservedHeader(h) || headerChangeProblem(h, true, "set") != "" {
					t.Errorf("claim %q → header %q accepted", claim, h)
				}
			}
		}
		if k := a.APIKey; k != nil {
			if (k.Header == "") == (k.Query == "") || k.Header != textproto.CanonicalMIMEHeaderKey(k.Header) || keyHeaderProblem(k.Header) != "" && k.Header != "" ||
				len(k.Secrets) == 0 || len(k.Secrets) > maxAPIKeySecrets {
				t.Errorf("invalid api_key accepted: %+v", k)
			}
			for _, s := range k.Secrets {
				if len(validation.IsDNS1123Subdomain(s)) > 0 {
					t.Errorf("api_key Secret %q accepted", s)
				}
			}
		}
		if e := a.External; e != nil {
			if _, err := ParseServiceRef(e.Service, "ns"); err != nil {
				t.Errorf("external service accepted: %v", err)
			}
			if authPathPrefixProblem(e.PathPrefix) != "" || e.TimeoutMS == nil || *e.TimeoutMS < 1 || *e.TimeoutMS > maxAuthTimeoutMS ||
				e.FailureMode != FailureModeDeny && e.FailureMode != FailureModeAllow || e.IncludeBodyBytes < 0 || e.IncludeBodyBytes > maxAuthBodyBytes ||
				len(e.AllowedRequestHeaders) > maxAuthHeaders || len(e.AllowedUpstreamHeaders) > maxAuthHeaders ||
				e.ConsumerHeader != "" && !isToken(e.ConsumerHeader) || a.Namespaced && e.ConsumerHeader != "" {
				t.Errorf("invalid external accepted: %+v", e)
			}
			for _, h := range e.AllowedUpstreamHeaders {
				if ReservedHeader(h) || isHopByHop(h) || !isToken(h) {
					t.Errorf("upstream header %q accepted", h)
				}
			}
			for _, h := range e.AllowedRequestHeaders {
				if !isToken(h) || strings.EqualFold(h, "Host") || strings.EqualFold(h, "Content-Length") || isHopByHop(h) && !strings.EqualFold(h, "Proxy-Authorization") {
					t.Errorf("request header %q accepted", h)
				}
			}
		}
	}
	if namespaced > 1 {
		t.Errorf("%d namespaced Auths", namespaced)
	}
	for _, m := range cfg.Mappings {
		if m.Auth != "" && !names[m.Auth] || m.Auth != "" && m.BypassAuth || m.RequireConsumer && m.Auth == "" && dialect == Native {
			t.Errorf("Mapping %q: auth %q, bypass_auth %v, require_consumer %v", m.Name, m.Auth, m.BypassAuth, m.RequireConsumer)
		}
	}
}

// checkHostInvariants asserts what the edge TLS builder may rely on in
// Config.Hosts.
func checkHostInvariants(t *testing.T, cfg *Config, dialect Dialect) {
	t.Helper()
	hostnames := make(map[string]bool, len(cfg.Hosts))
	names := make(map[string]bool, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		if got, msg := normalizeHostHostname(h.Hostname); msg != "" || got != h.Hostname {
			t.Errorf("Host with hostname %q accepted: %s", h.Hostname, msg)
		}
		if _, msg := normalizeHostname(h.Hostname); msg != "" {
			t.Errorf("Host hostname %q is not a Mapping hostname: %s", h.Hostname, msg)
		}
		secrets := []string{h.TLSSecret}
		if h.ClientCASecret != "" {
			secrets = append(secrets, h.ClientCASecret)
		}
		for _, secret := range secrets {
			if len(validation.IsDNS1123Subdomain(secret)) > 0 || dialect == Native && strings.Contains(secret, ".") {
				t.Errorf("Host with Secret %q accepted", secret)
			}
		}
		if h.Kind != KindHost || h.Positions == nil || h.Name == "" || strings.ContainsAny(h.Name, "/ \t\r\n") ||
			dialect == Native && dnsLabelProblem(h.Name) != "" {
			t.Errorf("invalid Host accepted: %+v", h)
		}
		if !slices.Contains([]string{InsecureRedirect, InsecureRoute, InsecureReject}, h.Insecure) || h.MinTLSVersion != "v1.2" && h.MinTLSVersion != "v1.3" {
			t.Errorf("Host defaults not filled: %+v", h)
		}
		if (h.ClientCASecret == "") != (h.ClientCert == "") || h.ClientCert != "" && h.ClientCert != ClientCertRequired && h.ClientCert != ClientCertOptional {
			t.Errorf("Host client certificates: %+v", h)
		}
		if h.HSTS != nil && (h.HSTS.MaxAge < 0 || h.HSTS.MaxAge > hstsMaxAge) {
			t.Errorf("HSTS max_age %d accepted", h.HSTS.MaxAge)
		}
		if hostnames[h.Hostname] || names[h.Name] {
			t.Errorf("two Hosts for %q or named %q", h.Hostname, h.Name)
		}
		hostnames[h.Hostname], names[h.Name] = true, true
	}
}

func regexRewritePattern(m Mapping) string {
	if m.RegexRewrite == nil {
		return ""
	}
	return m.RegexRewrite.Pattern
}

// FuzzHost feeds the host validators: host (with its "*." wildcard),
// hostname (Emissary's DNS glob), host:port and host_regex.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"a.com", "*.Example.COM", "*", "foo.*", "a*b.com", "a.com:80", "[::1]:8080", "::1", "10.0.0.1:0",
		"http://a.com", "a..com", "-a.com", strings.Repeat("a", 64) + ".com", "\u212a.com", "A.COM.", "^[a-z]+\\.com$", "(?=x)",
		"10.0.0.1", "[::1]:443", "*.*.a.com", "b\u00fccher.de", "xn--bcher-kva.de", "*."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		for _, c := range []struct {
			name      string
			normalize func(string) (string, string)
		}{{"host", normalizeHost}, {"hostname", normalizeHostname}, {"Host hostname", normalizeHostHostname}} {
			got, msg := c.normalize(h)
			if msg != "" {
				if got != "" {
					t.Fatalf("%s %q: problem %q with result %q", c.name, h, msg, got)
				}
				continue
			}
			if got != strings.ToLower(got) || strings.ContainsAny(got, ": \t\r\n/") || (got == "") != (h == "") || !strings.EqualFold(got, h) {
				t.Fatalf("%s %q accepted as %q", c.name, h, got)
			}
			if again, msg := c.normalize(got); again != got || msg != "" {
				t.Fatalf("%s %q: normalising %q again gives %q, %q", c.name, h, got, again, msg)
			}
			if c.name == "host" && got != "" && hostPortProblem(got) != "" && !strings.HasPrefix(got, "*.") {
				t.Fatalf("host %q accepted, but not as host_rewrite: %s", got, hostPortProblem(got))
			}
			// A Host's hostname is a name a Mapping can claim, and never
			// an address or every host.
			if c.name == "Host hostname" {
				if _, msg := normalizeHostname(got); msg != "" || got == "*" || isIPLiteral(got) {
					t.Fatalf("Host hostname %q accepted: %s", got, msg)
				}
			}
		}
		if hostPortProblem(h) == "" && (h == "" || strings.ContainsAny(h, "/?#@ ")) {
			t.Fatalf("host:port %q accepted", h)
		}
		if _, msg := compileRegexp(h); msg == "" {
			if _, err := regexp.Compile(h); err != nil {
				t.Fatalf("host_regex %q accepted but does not compile: %v", h, err)
			}
		}
	})
}

// FuzzRegexValidator feeds the regular expression and substitution checks.
func FuzzRegexValidator(f *testing.F) {
	for _, c := range [][2]string{
		{`^/api/(v\d+)/(?P<rest>.*)$`, "/${rest}/$1/$$"},
		{`(?=a)`, ""}, {`(?<!a)b`, ""}, {`(a)\1`, ""}, {`\\1`, `\1`}, {`[(?=]`, "$1x"}, {`(`, "${"}, {`a{1001}`, "$0"},
		{`(?P<n>a)(b)`, "${n}${2}$3${01}"}, {`(a)`, "$\u00e9"},
		{`^/(a)(b)`, `/\2$1\\x\0${1}$`}, {`(a)`, `\.`}, {`(a)`, `x\`},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, sub string) {
		re, msg := compileRegexp(pattern)
		_, err := regexp.Compile(pattern)
		if (msg == "") != (err == nil) || (re == nil) != (err != nil) {
			t.Fatalf("compileRegexp(%q) = %v, %q; regexp.Compile says %v", pattern, re, msg, err)
		}
		if msg != "" && !strings.HasPrefix(msg, "invalid regular expression: ") {
			t.Fatalf("message %q", msg)
		}
		if re == nil {
			return
		}
		checkEnvoyTranslation(t, re, sub)
		if substitutionProblem(re, sub) != "" {
			return
		}
		// An accepted substitution refers only to groups that exist, so
		// expanding it never silently drops a reference.
		if strings.Contains(sub, "\\") {
			for i := 0; i+1 < len(sub); i++ {
				if sub[i] == '\\' && sub[i+1] >= '0' && sub[i+1] <= '9' {
					t.Fatalf("Envoy-style reference accepted in %q", sub)
				}
			}
		}
		for rest := sub; ; {
			i := strings.IndexByte(rest, '$')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if strings.HasPrefix(rest, "$") {
				rest = rest[1:]
				continue
			}
			name, num, after, ok := expandRef(rest)
			if !ok {
				continue
			}
			rest = after
			if num > re.NumSubexp() || num < 0 && re.SubexpIndex(name) < 0 {
				t.Fatalf("substitution %q refers to a missing group %q of %q", sub, name, pattern)
			}
		}
		_ = re.ExpandString(nil, sub, "", nil)
	})
}

// checkEnvoyTranslation checks that a substitution in Envoy's syntax,
// translated into Go's, rewrites as Envoy would: group k is given the text
// "<k>", and the result must equal Envoy's reading of sub with the same
// groups (\k is group k, \\ a backslash, every other byte itself).
func checkEnvoyTranslation(t *testing.T, re *regexp.Regexp, sub string) {
	t.Helper()
	goSub, msg := translateEnvoySubstitution(sub)
	if msg != "" || groupProblem(re, goSub) != "" {
		return
	}
	var src strings.Builder
	match := make([]int, 0, 2*(re.NumSubexp()+1))
	for k := 0; k <= re.NumSubexp(); k++ {
		start := src.Len()
		src.WriteString("<" + strconv.Itoa(k) + ">")
		match = append(match, start, src.Len())
	}
	var want strings.Builder
	for i := 0; i < len(sub); i++ {
		switch {
		case sub[i] == '\\' && sub[i+1] == '\\':
			want.WriteByte('\\')
			i++
		case sub[i] == '\\':
			want.WriteString("<" + string(sub[i+1]) + ">")
			i++
		default:
			want.WriteByte(sub[i])
		}
	}
	if got := string(re.Expand(nil, []byte(goSub), []byte(src.String()), match)); got != want.String() {
		t.Fatalf("Envoy substitution %q, translated to %q, gives %q; Envoy gives %q", sub, goSub, got, want.String())
	}
}

func FuzzParseServiceRef(f *testing.F) {
	for _, s := range []string{"users", "users.shop:8080", "https://u.n.svc.cluster.local", "http://u/x", "u:0", "U", ":", "://", "a.b.c"} {
		f.Add(s, "ns")
	}
	f.Fuzz(func(t *testing.T, s, ns string) {
		ref, err := ParseServiceRef(s, ns)
		if err != nil {
			if ref != (ServiceRef{}) || !strings.HasPrefix(err.Error(), "parsing service reference ") {
				t.Fatalf("error %v with ref %+v", err, ref)
			}
			return
		}
		if ref.Scheme != "http" && ref.Scheme != "https" || ref.Port < 1 || ref.Port > 65535 || ref.Host == "" {
			t.Fatalf("ParseServiceRef(%q) = %+v", s, ref)
		}
		if !ref.InCluster() {
			// A host that can only be external: no Service fields, and
			// the canonical form parses back to the same host.
			again, err := ParseServiceRef(ref.String(), "")
			if ref.Namespace != "" || err != nil || again != ref {
				t.Fatalf("external %+v: round trip through %q: %+v, %v", ref, ref.String(), again, err)
			}
			return
		}
		if dnsLabelProblem(ref.Name) != "" {
			t.Fatalf("ParseServiceRef(%q) = %+v", s, ref)
		}
		if ref.Namespace != ns && dnsLabelProblem(ref.Namespace) != "" {
			t.Fatalf("ParseServiceRef(%q) namespace %q", s, ref.Namespace)
		}
		if dnsLabelProblem(ref.Namespace) == "" || ref.Namespace == "" {
			again, err := ParseServiceRef(ref.String(), "")
			// Host is as written: "users" comes back as "users.ns".
			again.Host = ref.Host
			if err != nil || again != ref {
				t.Fatalf("round trip of %+v through %q: %+v, %v", ref, ref.String(), again, err)
			}
		}
	})
}
