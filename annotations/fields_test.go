package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMappingFields(t *testing.T) {
	const redirect = "kind: Mapping\nname: users\nprefix: /users/\nservice: https://www.example.com:8443\nhost_redirect: true\n"
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		// Matching.
		{"case_sensitive", mapping + "case_sensitive: false\n", nil},
		{"case_sensitive not a bool", mapping + "case_sensitive: no\n", []wantProblem{{5, 17, users + ".case_sensitive", "expected a boolean", false}}},
		{"hostname", mapping + "hostname: \"*.Example.com\"\n", nil},
		{"hostname any", mapping + "hostname: \"*\"\n", nil},
		{"hostname exact", mapping + "hostname: api.example.com\n", nil},
		{"hostname suffix wildcard", mapping + "hostname: foo.*\n", []wantProblem{{5, 11, users + ".hostname", `invalid hostname "foo.*": supported hostnames are "*" (any host), "*.example.com"`, false}}},
		{"hostname inner wildcard", mapping + "hostname: a*b.com\n", []wantProblem{{5, 11, users + ".hostname", "supported hostnames are", false}}},
		{"hostname port", mapping + "hostname: a.com:80\n", []wantProblem{{5, 11, users + ".hostname", "must not include a port", false}}},
		{"host and hostname", mapping + "host: a.com\nhostname: b.com\n", []wantProblem{{6, 1, users + ".hostname", "set host or hostname, not both", false}}},
		{"host and hostname reversed", mapping + "hostname: b.com\nhost: a.com\n", []wantProblem{{6, 1, users + ".host", "set host or hostname, not both", false}}},
		{"host_regex", mapping + "host: '^[a-z]+\\.example\\.com$'\nhost_regex: true\n", nil},
		{"host_regex bad", mapping + "host: '(?=a)'\nhost_regex: true\n", []wantProblem{{5, 7, users + ".host", `look-ahead "(?=" is not supported`, false}}},
		{"host_regex wildcard", mapping + "host: '*.example.com'\nhost_regex: true\n", []wantProblem{{5, 7, users + ".host", `without it, "*.example.com" is a wildcard`, false}}},
		{"host_regex alone", mapping + "host_regex: true\n", []wantProblem{{5, 1, users + ".host_regex", "host_regex has no effect without host", true}}},
		{"method_regex", mapping + "method: 'GET|HEAD'\nmethod_regex: true\n", nil},
		{"method_regex bad", mapping + "method: 'GET|('\nmethod_regex: true\n", []wantProblem{{5, 9, users + ".method", "invalid regular expression: missing closing )", false}}},
		{"method_regex alone", mapping + "method_regex: true\n", []wantProblem{{5, 1, users + ".method_regex", "no effect without method", true}}},
		{"regex_headers", mapping + "regex_headers:\n  x-id: '^\\d+$'\n", nil},
		{"regex_headers bad", mapping + "regex_headers:\n  x-id: '(?<=a)b'\n", []wantProblem{{6, 9, users + ".regex_headers.x-id", `look-behind "(?<=" is not supported`, false}}},
		{"regex_headers name", mapping + "regex_headers:\n  \"x id\": a\n", []wantProblem{{6, 3, users + ".regex_headers.x id", `invalid header name "x id"`, false}}},
		{"regex_headers duplicate", mapping + "regex_headers:\n  X-Id: a\n  x-id: b\n", []wantProblem{{7, 3, users + ".regex_headers.x-id", "header names are case-insensitive", false}}},
		{"regex_headers null", mapping + "regex_headers:\n  x-id:\n", []wantProblem{{6, 3, users + ".regex_headers.x-id", "missing value", false}}},
		{"regex_headers number", mapping + "regex_headers:\n  x-id: 5\n", []wantProblem{{6, 9, users + ".regex_headers.x-id", `quote it: "5"`, false}}},
		{"query_parameters", mapping + "query_parameters:\n  debug: true\n  Mode: fast\n  mode: slow\n", nil},
		{"query_parameters duplicate", mapping + "query_parameters:\n  mode: a\n  mode: b\n", []wantProblem{{7, 3, users + ".query_parameters.mode", `duplicate query parameter "mode" (see line 6, column 3)`, false}}},
		{"query_parameters name", mapping + "query_parameters:\n  a=b: x\n", []wantProblem{{6, 3, users + ".query_parameters.a=b", `invalid query parameter name "a=b"`, false}}},
		{"query_parameters empty name", mapping + "query_parameters:\n  \"\": x\n", []wantProblem{{6, 3, users + ".query_parameters.", "must not be empty", false}}},
		{"query_parameters false", mapping + "query_parameters:\n  debug: false\n", []wantProblem{{6, 10, users + ".query_parameters.debug", "false is not supported", false}}},
		{"regex_query_parameters", mapping + "regex_query_parameters:\n  page: '^\\d+$'\n", nil},
		{"regex_query_parameters bad", mapping + "regex_query_parameters:\n  page: '['\n", []wantProblem{{6, 9, users + ".regex_query_parameters.page", "missing closing ]", false}}},

		// Rewrites.
		{"regex_rewrite", mapping + "regex_rewrite:\n  pattern: '^/users/(\\d+)/(?P<rest>.*)$'\n  substitution: '/u/${rest}/$1/$$'\n", nil},
		{"regex_rewrite without pattern", mapping + "regex_rewrite:\n  substitution: /x\n", []wantProblem{{6, 3, users + ".regex_rewrite", `missing required field "pattern"`, false}}},
		{"regex_rewrite empty pattern", mapping + "regex_rewrite: {pattern: '', substitution: /}\n", []wantProblem{{5, 26, users + ".regex_rewrite.pattern", "must not be empty", false}}},
		{"regex_rewrite bad pattern", mapping + "regex_rewrite:\n  pattern: '^/(a'\n", []wantProblem{{6, 12, users + ".regex_rewrite.pattern", "missing closing )", false}}},
		{"regex_rewrite envoy group", mapping + "regex_rewrite:\n  pattern: '^/(a)'\n  substitution: '/\\1'\n", []wantProblem{
			{7, 17, users + ".regex_rewrite.substitution", `Envoy-style group reference "\\1" is not supported; write "${1}"`, false}}},
		{"regex_rewrite missing group", mapping + "regex_rewrite:\n  pattern: '^/(a)'\n  substitution: '/$2'\n", []wantProblem{
			{7, 17, users + ".regex_rewrite.substitution", "refers to group 2, but the pattern has 1 group", false}}},
		{"regex_rewrite ambiguous group", mapping + "regex_rewrite:\n  pattern: '^/(a)'\n  substitution: '/$1x'\n", []wantProblem{
			{7, 17, users + ".regex_rewrite.substitution", `write "${1}x" for group 1 followed by text`, false}}},
		{"regex_rewrite unclosed", mapping + "regex_rewrite:\n  pattern: '^/(a)'\n  substitution: '/${1'\n", []wantProblem{
			{7, 17, users + ".regex_rewrite.substitution", `write "$$" for a literal "$"`, false}}},
		{"regex_rewrite unknown field", mapping + "regex_rewrite:\n  pattern: /\n  substitutoin: /x\n", []wantProblem{
			{7, 3, users + ".regex_rewrite.substitutoin", `unknown field "substitutoin" (did you mean "substitution"?)`, false}}},
		{"regex_rewrite not a mapping", mapping + "regex_rewrite: /x\n", []wantProblem{
			{5, 16, users + ".regex_rewrite", `expected a mapping with fields pattern, substitution; got string "/x"`, false}}},
		{"rewrite and regex_rewrite", mapping + "rewrite: /v2/\nregex_rewrite: {pattern: x}\n", []wantProblem{
			{5, 1, users + ".rewrite", "regex_rewrite wins over rewrite", true}}},
		{"empty rewrite and regex_rewrite", mapping + "rewrite: ''\nregex_rewrite: {pattern: x}\n", nil},
		{"host_rewrite", mapping + "host_rewrite: api.internal:8080\n", nil},
		{"host_rewrite ipv6", mapping + "host_rewrite: '[::1]:8080'\n", nil},
		{"host_rewrite ipv4", mapping + "host_rewrite: 10.0.0.1\n", nil},
		{"host_rewrite scheme", mapping + "host_rewrite: http://a.com\n", []wantProblem{{5, 15, users + ".host_rewrite", "without a scheme", false}}},
		{"host_rewrite path", mapping + "host_rewrite: a.com/x\n", []wantProblem{{5, 15, users + ".host_rewrite", "without a path", false}}},
		{"host_rewrite port", mapping + "host_rewrite: a.com:0\n", []wantProblem{{5, 15, users + ".host_rewrite", "port 0 is out of range", false}}},
		{"host_rewrite bare ipv6", mapping + "host_rewrite: '::1'\n", []wantProblem{{5, 15, users + ".host_rewrite", "must be written in brackets", false}}},

		// Header changes.
		{"add headers", mapping + "add_request_headers:\n  x-a: v\n  x-b: {value: w, append: false}\nadd_response_headers:\n  Host: h\n", nil},
		{"add Host", mapping + "add_request_headers:\n  Host: a\n", []wantProblem{{6, 3, users + ".add_request_headers.Host", "use host_rewrite", false}}},
		{"add hop-by-hop", mapping + "add_response_headers:\n  Transfer-Encoding: chunked\n", []wantProblem{
			{6, 3, users + ".add_response_headers.Transfer-Encoding", `"Transfer-Encoding" is a hop-by-hop header`, false}}},
		{"add proxy header", mapping + "add_request_headers:\n  proxy-authorization: x\n", []wantProblem{{6, 3, users + ".add_request_headers.proxy-authorization", "hop-by-hop", false}}},
		{"add pseudo-header", mapping + "add_request_headers:\n  ':authority': x\n", []wantProblem{{6, 3, users + ".add_request_headers.:authority", "pseudo-header", false}}},
		{"add newline", mapping + "add_request_headers:\n  x-a: \"a\\nb\"\n", []wantProblem{{6, 8, users + ".add_request_headers.x-a", "must not contain CR, LF or NUL", false}}},
		{"add newline in mapping", mapping + "add_request_headers:\n  x-a: {value: \"a\\rb\"}\n", []wantProblem{{6, 16, users + ".add_request_headers.x-a.value", "must not contain CR", false}}},
		{"add number", mapping + "add_request_headers:\n  x-v: 2\n", []wantProblem{{6, 8, users + ".add_request_headers.x-v", `quote it: "2"`, false}}},
		{"add null", mapping + "add_request_headers:\n  x-v:\n", []wantProblem{{6, 3, users + ".add_request_headers.x-v", "missing value", false}}},
		{"add without value", mapping + "add_request_headers:\n  x-v: {append: true}\n", []wantProblem{{6, 8, users + ".add_request_headers.x-v", `missing required field "value"`, false}}},
		{"add unknown field", mapping + "add_request_headers:\n  x-v: {value: a, apend: true}\n", []wantProblem{
			{6, 19, users + ".add_request_headers.x-v.apend", `(did you mean "append"?)`, false}}},
		{"add duplicate", mapping + "add_request_headers:\n  x-a: a\n  X-A: b\n", []wantProblem{{7, 3, users + ".add_request_headers.X-A", "case-insensitive", false}}},
		{"remove headers", mapping + "remove_request_headers: [x-internal]\nremove_response_headers: [server, Host]\n", nil},
		{"remove Host", mapping + "remove_request_headers: [x-a, Host]\n", []wantProblem{{5, 31, users + ".remove_request_headers[1]", "the Host header cannot be removed", false}}},
		{"remove hop-by-hop", mapping + "remove_response_headers:\n  - Upgrade\n", []wantProblem{{6, 5, users + ".remove_response_headers[0]", "hop-by-hop", false}}},
		{"remove duplicate", mapping + "remove_request_headers: [x-a, X-A]\n", []wantProblem{{5, 31, users + ".remove_request_headers[1]", `duplicate header "X-A" (see line 5, column 26)`, false}}},
		{"remove bad name", mapping + "remove_request_headers: ['x a']\n", []wantProblem{{5, 26, users + ".remove_request_headers[0]", "invalid header name", false}}},

		// Timeouts and weight.
		{"timeouts", mapping + "connect_timeout_ms: 500\nidle_timeout_ms: 1000\n", nil},
		{"connect timeout zero", mapping + "connect_timeout_ms: 0\n", []wantProblem{{5, 21, users + ".connect_timeout_ms", "must be at least 1; got 0", false}}},
		{"idle timeout zero", mapping + "idle_timeout_ms: 0\n", []wantProblem{{5, 18, users + ".idle_timeout_ms", "must be at least 1; got 0", false}}},
		{"weight zero", mapping + "weight: 0\n", nil},
		{"weight 100", mapping + "weight: 100\n", nil},
		{"weight too big", mapping + "weight: 101\n", []wantProblem{{5, 9, users + ".weight", "must be at most 100; got 101", false}}},
		{"weight negative", mapping + "weight: -1\n", []wantProblem{{5, 9, users + ".weight", "must not be negative", false}}},

		// Retry policy.
		{"retry_policy", mapping + "retry_policy:\n  retry_on: 5xx\n  num_retries: 3\n  per_try_timeout: 500ms\n", nil},
		{"retry_policy message", mapping + "retry_policy: {}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing (as in Emissary)", true}}},
		{"retry typo", mapping + "retry_policy:\n  num_retrys: 3\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{6, 3, users + ".retry_policy.num_retrys", `unknown field "num_retrys" (did you mean "num_retries"?)`, false}}},
		{"retry_on", mapping + "retry_policy: {retry_on: 5xxx}\n", []wantProblem{
			{5, 26, users + ".retry_policy.retry_on", `must be one of 5xx, gateway-error, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, reset; got "5xxx" (did you mean "5xx"?)`, false}}},
		{"retry_on reset", mapping + "retry_policy: {retry_on: reset}\n", nil},
		{"retry_on refused-stream", mapping + "retry_policy: {retry_on: refused-stream}\n", []wantProblem{
			{5, 26, users + ".retry_policy.retry_on", "refused-stream is an HTTP/2 condition", true}}},
		{"retry_on retriable-status-codes", mapping + "retry_policy: {retry_on: retriable-status-codes}\n", []wantProblem{
			{5, 26, users + ".retry_policy.retry_on", "nothing is retried", true}}},
		{"num_retries negative", mapping + "retry_policy: {num_retries: -1}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 29, users + ".retry_policy.num_retries", "must not be negative", false}}},
		{"per_try_timeout unitless", mapping + "retry_policy: {per_try_timeout: '5'}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 33, users + ".retry_policy.per_try_timeout", `invalid duration "5": write a number with a unit`, false}}},
		{"per_try_timeout number", mapping + "retry_policy: {per_try_timeout: 5}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 33, users + ".retry_policy.per_try_timeout", `expected a duration, got integer 5; write a duration such as "5s"`, false}}},
		{"per_try_timeout fraction", mapping + "retry_policy: {per_try_timeout: 0.25}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 33, users + ".retry_policy.per_try_timeout", `expected a duration, got number 0.25; write a duration such as "0.25s"`, false}}},
		{"per_try_timeout exponent", mapping + "retry_policy: {per_try_timeout: 1e3}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 33, users + ".retry_policy.per_try_timeout", `expected a duration, got number 1e3; write a duration such as "5s"`, false}}},
		{"per_try_timeout zero", mapping + "retry_policy: {per_try_timeout: 0s}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 33, users + ".retry_policy.per_try_timeout", `must be more than zero; got "0s"`, false}}},
		{"retry_back_off is Emissary's", mapping + "retry_policy: {retry_back_off: {}}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 16, users + ".retry_policy.retry_back_off", "an Emissary field that Gatehouse does not implement", false}}},
		{"retry duplicate field", mapping + "retry_policy: {num_retries: 1, num_retries: 2}\n", []wantProblem{
			{5, 1, users + ".retry_policy", "retry_policy without retry_on retries nothing", true},
			{5, 32, users + ".retry_policy.num_retries", `duplicate field "num_retries"`, false}}},

		// Circuit breakers.
		{"circuit_breakers enforced", mapping + "circuit_breakers:\n  - max_requests: 100\n    max_pending_requests: 10\n", nil},
		{"circuit_breakers connections and retries", mapping + "circuit_breakers:\n  - max_connections: 10\n    max_retries: 2\n", nil},
		{"circuit_breakers for a high priority Mapping", mapping + "priority: high\ncircuit_breakers:\n  - priority: high\n    max_requests: 5\n", nil},
		{"priority unknown", mapping + "priority: urgent\n", []wantProblem{
			{5, 11, users + ".priority", "must be one of default, high", false}}},
		{"circuit_breakers duplicate priority", mapping + "circuit_breakers:\n  - priority: default\n  - max_requests: 5\n", []wantProblem{
			{7, 5, users + ".circuit_breakers[1].priority", "duplicate circuit breaker for priority default (see line 6, column 15)", false}}},
		{"circuit_breakers high", mapping + "circuit_breakers:\n  - priority: high\n", []wantProblem{
			{6, 15, users + ".circuit_breakers[0].priority", "the Mapping's priority is default: these high thresholds do not apply to it", true}}},
		{"circuit_breakers bad priority", mapping + "circuit_breakers:\n  - priority: low\n", []wantProblem{
			{6, 15, users + ".circuit_breakers[0].priority", "must be one of default, high", false}}},
		{"circuit_breakers zero", mapping + "circuit_breakers:\n  - max_requests: 0\n", []wantProblem{
			{6, 19, users + ".circuit_breakers[0].max_requests", "must be at least 1; got 0", false}}},
		{"circuit_breakers not a list", mapping + "circuit_breakers: {max_requests: 1}\n", []wantProblem{
			{5, 19, users + ".circuit_breakers", "expected a list, got a mapping", false}}},
		{"circuit_breakers item", mapping + "circuit_breakers: [5]\n", []wantProblem{
			{5, 20, users + ".circuit_breakers[0]", "expected a mapping with fields priority, max_connections", false}}},

		// Load balancer.
		{"round_robin", mapping + "load_balancer: {policy: round_robin}\n", nil},
		{"round_robin source_ip false", mapping + "load_balancer: {policy: round_robin, source_ip: false}\n", nil},
		{"least_request", mapping + "load_balancer: {policy: least_request}\n", nil},
		{"ring_hash header", mapping + "load_balancer:\n  policy: ring_hash\n  header: x-user\n", nil},
		{"maglev cookie", mapping + "load_balancer:\n  policy: maglev\n  cookie: {name: sticky, path: /, ttl: 1h}\n", nil},
		{"cookie without ttl", mapping + "load_balancer:\n  policy: ring_hash\n  cookie: {name: sticky}\n", []wantProblem{
			{7, 18, users + ".load_balancer.cookie", "without ttl the gateway never sets the cookie", true}}},
		{"ring_hash without key", mapping + "load_balancer: {policy: ring_hash}\n", []wantProblem{
			{5, 25, users + ".load_balancer.policy", "ring_hash needs exactly one of cookie, header or source_ip: true", false}}},
		{"ring_hash two keys", mapping + "load_balancer:\n  policy: ring_hash\n  header: x-user\n  source_ip: true\n", []wantProblem{
			{8, 3, users + ".load_balancer.source_ip", "ring_hash hashes on exactly one of cookie, header or source_ip; header is set too", false}}},
		{"round_robin with header", mapping + "load_balancer: {policy: round_robin, header: x-user}\n", []wantProblem{
			{5, 38, users + ".load_balancer.header", "header is only used by the ring_hash and maglev policies; policy is round_robin", false}}},
		{"policy unknown", mapping + "load_balancer: {policy: random}\n", []wantProblem{
			{5, 25, users + ".load_balancer.policy", "must be one of round_robin, least_request, ring_hash, maglev", false}}},
		{"policy missing", mapping + "load_balancer: {header: x}\n", []wantProblem{
			{5, 16, users + ".load_balancer", `missing required field "policy"`, false}}},
		{"cookie without name", mapping + "load_balancer: {policy: maglev, cookie: {path: /}}\n", []wantProblem{
			{5, 41, users + ".load_balancer.cookie", `missing required field "name"`, false}}},
		{"cookie ttl", mapping + "load_balancer: {policy: maglev, cookie: {name: c, ttl: forever}}\n", []wantProblem{
			{5, 56, users + ".load_balancer.cookie.ttl", `invalid duration "forever"`, false}}},
		{"cookie ttl number", mapping + "load_balancer: {policy: maglev, cookie: {name: c, ttl: 60}}\n", []wantProblem{
			{5, 56, users + ".load_balancer.cookie.ttl", `expected a duration, got integer 60; write a duration such as "60s"`, false}}},
		{"hash header name", mapping + "load_balancer: {policy: maglev, header: 'x y'}\n", []wantProblem{
			{5, 41, users + ".load_balancer.header", `invalid header name "x y"`, false}}},

		// CORS.
		{"cors", mapping + "cors:\n  origins: [https://a.example.com, '*']\n  methods: [GET, POST]\n  headers: [x-a]\n  credentials: true\n  max_age: '86400'\n", []wantProblem{
			{9, 16, users + ".cors.credentials", `credentials with origin "*"`, true}}},
		{"cors comma origins", mapping + "cors:\n  origins: https://a.com, https://b.com:8443\n  exposed_headers: x-a,x-b\n", nil},
		{"cors regex and null origins", mapping + "cors:\n  origins: ['~https://[a-z]+\\.example\\.com', 'null']\n", nil},
		{"cors bad regex origin", mapping + "cors:\n  origins: ['~https://(?=x)']\n", []wantProblem{
			{6, 13, users + ".cors.origins[0]", "look-ahead", false}}},
		{"cors regex origin in string", mapping + "cors:\n  origins: 'https://a.com, ~https://b.*'\n", []wantProblem{
			{6, 12, users + ".cors.origins[1]", "write regular-expression origins as a YAML list", false}}},
		{"cors without origins", mapping + "cors: {methods: [GET]}\n", []wantProblem{
			{5, 7, users + ".cors.origins", "cors needs origins", false}}},
		{"cors empty item", mapping + "cors:\n  origins: ['*']\n  methods: GET,,POST\n", []wantProblem{
			{7, 12, users + ".cors.methods", `item 2 of the comma-separated list "GET,,POST" is empty`, false}}},
		{"cors bad origin", mapping + "cors:\n  origins: [a.com]\n", []wantProblem{
			{6, 13, users + ".cors.origins[0]", `invalid origin "a.com"`, false}}},
		{"cors bad origin in string", mapping + "cors:\n  origins: 'https://a.com, https://b c'\n", []wantProblem{
			{6, 12, users + ".cors.origins[1]", `invalid origin "https://b c"`, false}}},
		{"cors max_age", mapping + "cors: {origins: '*', max_age: 1d}\n", []wantProblem{
			{5, 31, users + ".cors.max_age", "must be a number of seconds", false}}},
		{"cors header", mapping + "cors: {origins: '*', headers: ['x y']}\n", []wantProblem{
			{5, 32, users + ".cors.headers[0]", `invalid header name "x y"`, false}}},

		// Upgrades, gRPC, shadow.
		{"allow_upgrade", mapping + "allow_upgrade: [WebSocket, spdy/3.1]\n", nil},
		{"allow_upgrade bad", mapping + "allow_upgrade: ['web socket']\n", []wantProblem{{5, 17, users + ".allow_upgrade[0]", `invalid protocol "web socket"`, false}}},
		{"allow_upgrade duplicate", mapping + "allow_upgrade: [websocket, WebSocket]\n", []wantProblem{{5, 28, users + ".allow_upgrade[1]", `duplicate protocol "WebSocket" (see line 5, column 17)`, false}}},
		{"use_websocket", mapping + "use_websocket: true\n", []wantProblem{{5, 1, users + ".use_websocket", "deprecated: use allow_upgrade: [websocket]", true}}},
		{"use_websocket false", mapping + "use_websocket: false\n", nil},
		{"grpc", mapping + "grpc: true\n", nil},
		{"upstream_tls", strings.Replace(mapping, "service: users", "service: https://users", 1) + "upstream_tls: {ca_secret: users-ca, client_secret: gw-client, sni: users.internal}\n", nil},
		{"upstream_tls without https", mapping + "upstream_tls: {ca_secret: users-ca}\n", []wantProblem{
			{5, 1, users + ".upstream_tls", "upstream_tls needs a TLS service", false}}},
		{"upstream_tls bad names", strings.Replace(mapping, "service: users", "service: https://users", 1) + "upstream_tls: {ca_secret: Users_CA, sni: 'a..b'}\n", []wantProblem{
			{5, 27, users + ".upstream_tls.ca_secret", `invalid Secret name "Users_CA"`, false},
			{5, 42, users + ".upstream_tls.sni", `invalid server name "a..b"`, false}}},
		{"http2 and grpc_web", mapping + "http2: true\ngrpc_web: true\n", nil},
		{"grpc false", mapping + "grpc: false\n", nil},
		{"shadow", mapping + "shadow: true\nweight: 10\n", nil},
		{"shadow with retries", mapping + "shadow: true\nretry_policy: {retry_on: 5xx}\n", []wantProblem{
			{6, 1, users + ".retry_policy", "retry_policy does not apply to a shadow Mapping", true}}},

		// Redirects.
		{"redirect", redirect + "path_redirect: /new\nredirect_response_code: 308\n", nil},
		{"redirect prefix", redirect + "prefix_redirect: /v2/\n", nil},
		{"redirect target host", "kind: Mapping\nname: users\nprefix: /\nservice: www.example.com\nhost_redirect: true\n", nil},
		{"redirect target path", "kind: Mapping\nname: users\nprefix: /\nservice: https://a.com/x\nhost_redirect: true\n", []wantProblem{
			{4, 10, users + ".service", `invalid redirect target "https://a.com/x": must be host[:port] without a path`, false}}},
		{"redirect target scheme", "kind: Mapping\nname: users\nprefix: /\nservice: ftp://a.com\nhost_redirect: true\n", []wantProblem{
			{4, 10, users + ".service", `unsupported scheme "ftp"`, false}}},
		{"path_redirect without host_redirect", mapping + "path_redirect: /new\n", []wantProblem{{5, 1, users + ".path_redirect", "path_redirect needs host_redirect: true", false}}},
		{"code without host_redirect", mapping + "host_redirect: false\nredirect_response_code: 302\n", []wantProblem{
			{6, 1, users + ".redirect_response_code", "redirect_response_code needs host_redirect: true", false}}},
		{"path and prefix redirect", redirect + "path_redirect: /a\nprefix_redirect: /b\n", []wantProblem{
			{7, 1, users + ".prefix_redirect", "set path_redirect or prefix_redirect, not both", false}}},
		{"path_redirect relative", redirect + "path_redirect: new\n", []wantProblem{{6, 16, users + ".path_redirect", `must start with "/"`, false}}},
		{"redirect code", redirect + "redirect_response_code: 300\n", []wantProblem{{6, 25, users + ".redirect_response_code", "must be one of 301, 302, 303, 307, 308; got 300", false}}},

		// Labels.
		{"labels", mapping + "labels:\n  ambassador:\n    - per_user:\n      - remote_address\n      - {request_headers: {key: user, header_name: x-user, omit_if_not_present: true}}\n      - {generic_key: {value: users}}\n      - users-api\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure Emissary's external rate-limit service, which Gatehouse does not call; use rate_limits with a RateLimit document", true}}},
		{"labels domain not a list", mapping + "labels:\n  ambassador: per_user\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{6, 15, users + ".labels.ambassador", `expected a list of label groups, got string "per_user"`, false}}},
		{"labels group with two keys", mapping + "labels:\n  ambassador:\n    - {a: [x], b: [y]}\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{7, 7, users + ".labels.ambassador[0]", "a label group is a mapping with one key, the group's name: {name: [label, ...]}; got a mapping with 2 keys", false}}},
		{"labels unknown kind", mapping + "labels:\n  ambassador:\n    - g:\n      - {request_header: {key: k, header_name: x}}\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{8, 10, users + ".labels.ambassador[0].g[0]", `unknown label kind string "request_header"; known kinds are source_cluster, destination_cluster, request_headers, remote_address, generic_key (did you mean "request_headers"?)`, false}}},
		{"labels missing header_name", mapping + "labels:\n  ambassador:\n    - g:\n      - request_headers: {key: k}\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{8, 26, users + ".labels.ambassador[0].g[0].request_headers", `missing required field "header_name"`, false}}},
		{"labels fixed key", mapping + "labels:\n  ambassador:\n    - g:\n      - remote_address: {key: client}\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{8, 31, users + ".labels.ambassador[0].g[0].remote_address.key", `the key of a remote_address label must be "remote_address"; got "client"`, false}}},
		{"labels generic without value", mapping + "labels:\n  ambassador:\n    - g:\n      - generic_key: {key: k}\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{8, 22, users + ".labels.ambassador[0].g[0].generic_key", `missing required field "value"`, false}}},
		{"labels group not a list", mapping + "labels:\n  ambassador:\n    - g: remote_address\n", []wantProblem{
			{5, 1, users + ".labels", "labels configure", true},
			{7, 10, users + ".labels.ambassador[0].g", `expected a list of labels, got string "remote_address"`, false}}},

		// Fields of the other dialect.
		{"ambassador_id", mapping + "ambassador_id: [a]\n", []wantProblem{{5, 1, users + ".ambassador_id", "ambassador_id is only read with --compat=emissary", false}}},
		{"emissary field", mapping + "add_linkerd_headers: true\n", []wantProblem{{5, 1, users + ".add_linkerd_headers", `unknown field "add_linkerd_headers": an Emissary field that Gatehouse does not implement`, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
}

func TestParseMappingNormalises(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		check     func(m Mapping) bool
	}{
		{"hostname lower case", mapping + "hostname: '*.Example.COM'\n", func(m Mapping) bool { return m.Hostname == "*.example.com" }},
		{"host regex kept", mapping + "host: '^API\\.example\\.com$'\nhost_regex: true\n", func(m Mapping) bool { return m.Host == `^API\.example\.com$` }},
		{"method regex kept", mapping + "method: 'get|head'\nmethod_regex: true\n", func(m Mapping) bool { return m.Method == "get|head" }},
		{"allow_upgrade lower case", mapping + "allow_upgrade: [WebSocket, SPDY/3.1]\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.AllowUpgrade, []string{"websocket", "spdy/3.1"})
		}},
		{"use_websocket folded", mapping + "use_websocket: true\nallow_upgrade: [h2c]\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.AllowUpgrade, []string{"h2c", "websocket"})
		}},
		{"use_websocket not doubled", mapping + "use_websocket: true\nallow_upgrade: [WebSocket]\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.AllowUpgrade, []string{"websocket"})
		}},
		{"added headers as written", mapping + "add_request_headers:\n  X-Env: prod\n  x-b: {value: v, append: false}\nremove_response_headers: [Server]\n", func(m Mapping) bool {
			f := false
			return reflect.DeepEqual(m.AddRequestHeaders, map[string]AddedHeader{"X-Env": {Value: "prod"}, "x-b": {Value: "v", Append: &f}}) &&
				reflect.DeepEqual(m.RemoveResponseHeaders, []string{"Server"})
		}},
		{"query parameters", mapping + "query_parameters: {debug: true, Mode: fast}\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.QueryParameters, map[string]HeaderValue{"debug": {Present: true}, "Mode": {Value: "fast"}})
		}},
		{"cors comma list", mapping + "cors: {origins: 'https://a.com , https://b.com'}\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.CORS.Origins, []string{"https://a.com", "https://b.com"})
		}},
		{"nested structs", mapping + "retry_policy: {retry_on: 5xx, num_retries: 2}\ncircuit_breakers: [{max_requests: 7}]\nregex_rewrite: {pattern: '^/a', substitution: /b}\n", func(m Mapping) bool {
			return m.RetryPolicy.RetryOn == "5xx" && *m.RetryPolicy.NumRetries == 2 && *m.CircuitBreakers[0].MaxRequests == 7 &&
				*m.RegexRewrite == RegexRewrite{Pattern: "^/a", Substitution: "/b"}
		}},
		{"labels", mapping + "labels:\n  ambassador:\n    - g:\n      - remote_address\n      - {request_headers: {key: user, header_name: x-user, omit_if_not_present: true}}\n      - {generic_key: {value: v}}\n      - api\n", func(m Mapping) bool {
			return reflect.DeepEqual(m.Labels, map[string][]LabelGroup{"ambassador": {{Name: "g", Labels: []Label{
				{Kind: "remote_address", Key: "remote_address"},
				{Kind: "request_headers", Key: "user", HeaderName: "x-user", OmitIfNotPresent: true},
				{Kind: "generic_key", Value: "v"},
				{Kind: "generic_key", Value: "api"},
			}}}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, problems := Parse(tc.src, Options{Namespace: "ns"})
			if cfg == nil {
				t.Fatalf("problems: %v", problems)
			}
			if m := cfg.Mappings[0]; !tc.check(m) {
				t.Errorf("unexpected result: %+v", m)
			}
		})
	}
}

func TestParsePositions(t *testing.T) {
	src := mapping + `headers:
  x-env: prod
regex_rewrite:
  pattern: '^/a'
rate_limits: [a, b]
add_request_headers:
  x-a: {value: v}
circuit_breakers:
  - max_requests: 3
cors: {origins: 'https://a.com, https://b.com'}
---
kind: RateLimit
name: a
rate: 1
unit: day
---
kind: RateLimit
name: b
rate: 1
unit: day
`
	cfg, problems := Parse(src, Options{Namespace: "ns"})
	if cfg == nil {
		t.Fatal(problems)
	}
	want := map[string]Position{
		"kind":                             {1, 7},
		"name":                             {2, 7},
		"prefix":                           {3, 9},
		"service":                          {4, 10},
		"headers":                          {6, 3},
		"headers.x-env":                    {6, 10},
		"regex_rewrite":                    {8, 3},
		"regex_rewrite.pattern":            {8, 12},
		"rate_limits":                      {9, 14},
		"rate_limits[0]":                   {9, 15},
		"rate_limits[1]":                   {9, 18},
		"add_request_headers":              {11, 3},
		"add_request_headers.x-a":          {11, 8},
		"add_request_headers.x-a.value":    {11, 16},
		"circuit_breakers":                 {13, 3},
		"circuit_breakers[0]":              {13, 5},
		"circuit_breakers[0].max_requests": {13, 19},
		"cors":                             {14, 7},
		"cors.origins":                     {14, 17},
		"cors.origins[0]":                  {14, 17},
		"cors.origins[1]":                  {14, 17},
	}
	if got := cfg.Mappings[0].Positions; !reflect.DeepEqual(got, want) {
		t.Errorf("positions:\n got %v\nwant %v", got, want)
	}
}
