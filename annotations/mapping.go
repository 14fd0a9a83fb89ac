package annotations

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checkMapping checks the meaning of a decoded Mapping, field by field and
// across fields, and applies the normalisations Parse documents.
func (p *parser) checkMapping(d *document, m *Mapping) {
	if p.opts.Dialect == Emissary {
		p.emissaryMappingDefaults(m)
	}
	p.validateTags(d.top, m)
	p.checkCommon(d, m.APIVersion, m.Name)
	p.checkPath(d, m)
	p.checkService(d, m)
	p.checkRewrites(d, m)
	p.checkHosts(d, m)
	p.checkMethod(d, m)
	p.checkHeaderChanges(d)
	p.checkRetryPolicy(d, m)
	p.checkCircuitBreakers(d, m)
	p.checkLoadBalancer(d, m)
	p.checkCORS(d, m)
	p.checkUpstreamTLS(d, m)
	p.checkUpgrades(d, m)
	p.checkRedirect(d, m)
	p.checkMappingAuth(d, m)
	p.checkNotEnforced(d, m)
	m.Positions = d.positions
}

// later returns whichever of two fields was written last, which is where a
// "not both" problem is reported.
func later(a, b fieldLoc) fieldLoc {
	if a.key.Line > b.key.Line || a.key.Line == b.key.Line && a.key.Column > b.key.Column {
		return a
	}
	return b
}

func isTrue(b *bool) bool { return b != nil && *b }

func (p *parser) checkPath(d *document, m *Mapping) {
	if n, ok := d.usable("prefix"); ok && m.Prefix != "" {
		switch {
		case m.PrefixRegex:
			if _, msg := compileRegexp(m.Prefix); msg != "" {
				p.errorAt(n, p.path("prefix"), msg)
			}
		case !strings.HasPrefix(m.Prefix, "/"):
			p.errorAt(n, p.path("prefix"), fmt.Sprintf("must start with \"/\"; got %q (set prefix_regex: true for a regular expression)", m.Prefix))
		case strings.IndexFunc(m.Prefix, isSpaceOrControl) >= 0:
			p.errorAt(n, p.path("prefix"), fmt.Sprintf("must not contain whitespace or control characters; got %q", m.Prefix))
		}
	}
	if m.PrefixExact && m.PrefixRegex {
		l := later(d.top.fields["prefix_exact"], d.top.fields["prefix_regex"])
		p.errorAt(l.key, p.path(l.key.Value), "prefix_exact and prefix_regex cannot both be true")
	}
}

// checkService checks the target: a Service reference, or with
// host_redirect the host clients are redirected to, which is not routed to
// and so not subject to the Service rules.
func (p *parser) checkService(d *document, m *Mapping) {
	n, ok := d.usable("service")
	if !ok || m.Service == "" {
		return
	}
	if isTrue(m.HostRedirect) {
		if msg := redirectTargetProblem(m.Service); msg != "" {
			p.errorAt(n, p.path("service"), fmt.Sprintf("invalid redirect target %q: %s", m.Service, msg))
		}
		return
	}
	if _, err := parseServiceRef(m.Service, p.opts.Namespace); err != nil {
		p.errorAt(n, p.path("service"), fmt.Sprintf("invalid service %q: %v", m.Service, err))
	}
}

func (p *parser) checkRewrites(d *document, m *Mapping) {
	if n, ok := d.usable("rewrite"); ok && m.Rewrite != nil && *m.Rewrite != "" && !strings.HasPrefix(*m.Rewrite, "/") {
		p.errorAt(n, p.path("rewrite"), fmt.Sprintf("must be empty or start with \"/\"; got %q", *m.Rewrite))
	}
	if n, ok := d.usable("host_rewrite"); ok && m.HostRewrite != "" {
		if msg := hostPortProblem(m.HostRewrite); msg != "" {
			p.errorAt(n, p.path("host_rewrite"), fmt.Sprintf("invalid host_rewrite %q: %s", m.HostRewrite, msg))
		}
	}
	if m.RegexRewrite == nil {
		return
	}
	rr := d.structs["regex_rewrite"]
	var re *regexp.Regexp
	if n, ok := rr.usable("pattern"); ok && m.RegexRewrite.Pattern != "" {
		compiled, msg := compileRegexp(m.RegexRewrite.Pattern)
		if msg != "" {
			p.errorAt(n, p.path("regex_rewrite.pattern"), msg)
		}
		re = compiled
	}
	if n, ok := rr.usable("substitution"); ok {
		p.checkSubstitution(n, re, &m.RegexRewrite.Substitution)
	}
	// rewrite: "" next to regex_rewrite only says "no prefix rewrite", which
	// agrees with it; any other rewrite would be silently ignored.
	if loc, ok := d.top.written("rewrite"); ok && m.Rewrite != nil && *m.Rewrite != "" {
		p.warnAt(loc.key, p.path("rewrite"), "regex_rewrite wins over rewrite (as in Emissary); rewrite is ignored")
	}
}

// checkSubstitution checks a regex_rewrite substitution against its
// pattern (nil when the pattern did not compile). In the Emissary dialect
// the substitution is Envoy's, which is what Emissary users must write, and
// is translated into Go's syntax in place.
func (p *parser) checkSubstitution(n *yaml.Node, re *regexp.Regexp, sub *string) {
	const rel = "regex_rewrite.substitution"
	written := *sub
	var msg string
	if p.opts.Dialect == Emissary {
		var translated string
		translated, msg = translateEnvoySubstitution(written)
		if msg == "" {
			msg = groupProblem(re, translated)
			*sub = translated
		}
		if msg == "" && dollarReference(written) {
			p.warnAt(n, p.path(rel), `"$" is literal text in Envoy's substitution syntax, which Emissary uses; write \1 for group 1`)
		}
	} else {
		msg = substitutionProblem(re, written)
	}
	if msg != "" {
		p.errorAt(n, p.path(rel), fmt.Sprintf("invalid substitution %q: %s", written, msg))
	}
}

func (p *parser) checkHosts(d *document, m *Mapping) {
	hostN, hasHost := d.usable("host")
	nameN, hasName := d.usable("hostname")
	hasHost = hasHost && m.Host != ""
	hasName = hasName && m.Hostname != ""
	if hasHost && hasName {
		if p.opts.Dialect == Emissary {
			p.warnAt(d.top.fields["host"].key, p.path("host"), "host is ignored when hostname is set (Emissary behaviour)")
			m.Host, m.HostRegex, hasHost = "", false, false
		} else {
			l := later(d.top.fields["host"], d.top.fields["hostname"])
			p.errorAt(l.key, p.path(l.key.Value), "set host or hostname, not both")
		}
	}
	switch {
	case hasHost && m.HostRegex:
		if _, msg := compileRegexp(m.Host); msg != "" {
			if strings.HasPrefix(m.Host, "*") {
				msg += ` (with host_regex the host is a regular expression, such as ^[^.]+\.example\.com$; without it, "*.example.com" is a wildcard)`
			}
			p.errorAt(hostN, p.path("host"), msg)
		}
	case hasHost:
		if p.opts.Dialect == Emissary {
			p.emissaryHostPort(d, m)
		}
		host, msg := normalizeHost(m.Host)
		if msg != "" {
			p.errorAt(hostN, p.path("host"), fmt.Sprintf("invalid host %q: %s", m.Host, msg))
		}
		m.Host = host
	case m.HostRegex:
		if loc, ok := d.top.written("host_regex"); ok {
			p.warnAt(loc.key, p.path("host_regex"), "host_regex has no effect without host")
		}
	}
	if hasName {
		name, msg := normalizeHostname(m.Hostname)
		if msg != "" {
			p.errorAt(nameN, p.path("hostname"), fmt.Sprintf("invalid hostname %q: %s", m.Hostname, msg))
		}
		m.Hostname = name
	}
}

func (p *parser) checkMethod(d *document, m *Mapping) {
	n, ok := d.usable("method")
	if !ok || m.Method == "" {
		if loc, ok := d.top.written("method_regex"); ok && m.MethodRegex {
			p.warnAt(loc.key, p.path("method_regex"), "method_regex has no effect without method")
		}
		return
	}
	if m.MethodRegex {
		if _, msg := compileRegexp(m.Method); msg != "" {
			p.errorAt(n, p.path("method"), msg)
		}
		return
	}
	switch upper := strings.ToUpper(m.Method); {
	case !isToken(m.Method):
		p.errorAt(n, p.path("method"), fmt.Sprintf("invalid method %q: a method has only %s", m.Method, tokenRule))
	case !isStandardMethod(upper):
		p.warnAt(n, p.path("method"), fmt.Sprintf("%q is not a standard HTTP method (%s)", upper, strings.Join(standardMethods[:], ", ")))
		m.Method = upper
	default:
		m.Method = upper
	}
}

// checkHeaderChanges checks remove_request_headers and
// remove_response_headers; the add_ maps were checked while decoding.
func (p *parser) checkHeaderChanges(d *document) {
	for _, f := range []struct {
		name    string
		request bool
	}{{"remove_request_headers", true}, {"remove_response_headers", false}} {
		loc, ok := d.top.fields[f.name]
		if !ok || d.top.failed[f.name] || loc.value.Kind != yaml.SequenceNode {
			continue
		}
		seen := make(map[string]*yaml.Node, len(loc.value.Content))
		for i, item := range loc.value.Content {
			path := p.path(indexed(f.name, i))
			if msg := headerChangeProblem(item.Value, f.request, "removed"); msg != "" {
				p.errorAt(item, path, msg)
				continue
			}
			id := strings.ToLower(item.Value)
			if first, dup := seen[id]; dup {
				p.errorSee(item, first, path, fmt.Sprintf("duplicate header %q", item.Value))
				continue
			}
			seen[id] = item
		}
	}
}

func (p *parser) checkUpstreamTLS(d *document, m *Mapping) {
	t := m.UpstreamTLS
	sl := d.structs["upstream_tls"]
	if t == nil || sl == nil {
		return
	}
	for _, f := range []struct{ name, value string }{{"ca_secret", t.CASecret}, {"client_secret", t.ClientSecret}} {
		if n, ok := sl.usable(f.name); ok && f.value != "" {
			if errs := validation.IsDNS1123Subdomain(f.value); len(errs) > 0 {
				p.errorAt(n, p.path("upstream_tls."+f.name), fmt.Sprintf("invalid Secret name %q: %s", f.value, errs[0]))
			}
		}
	}
	if n, ok := sl.usable("sni"); ok && t.SNI != "" {
		if msg := hostNameProblem(t.SNI); msg != "" {
			p.errorAt(n, p.path("upstream_tls.sni"), fmt.Sprintf("invalid server name %q: %s", t.SNI, msg))
		}
	}
	if !d.top.failed["service"] && !strings.HasPrefix(strings.ToLower(m.Service), "https://") {
		p.errorAt(d.top.fields["upstream_tls"].key, p.path("upstream_tls"), "upstream_tls needs a TLS service: write service: https://…")
	}
}

func (p *parser) checkRetryPolicy(d *document, m *Mapping) {
	if m.RetryPolicy == nil {
		return
	}
	rp := d.structs["retry_policy"]
	if n, ok := rp.usable("retry_on"); ok {
		switch m.RetryPolicy.RetryOn {
		case "retriable-status-codes":
			p.warnAt(n, p.path("retry_policy.retry_on"), "retriable-status-codes retries the status codes listed in retriable_status_codes, which Emissary's retry_policy has no field for: nothing is retried")
		case "refused-stream":
			p.warnAt(n, p.path("retry_policy.retry_on"), "refused-stream is an HTTP/2 condition: requests to an HTTP/1.1 upstream are never retried by it")
		}
	} else if _, written := rp.written("retry_on"); !written {
		p.warnAt(d.top.fields["retry_policy"].key, p.path("retry_policy"), "retry_policy without retry_on retries nothing (as in Emissary)")
	}
	if n, ok := rp.usable("per_try_timeout"); ok {
		p.checkDuration(n, "retry_policy.per_try_timeout", m.RetryPolicy.PerTryTimeout, false)
	}
}

// checkDuration checks a Go duration such as "500ms" or "2s"; zero is
// allowed only with zeroOK.
func (p *parser) checkDuration(n *yaml.Node, rel, s string, zeroOK bool) {
	dur, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errorAt(n, p.path(rel), fmt.Sprintf(`invalid duration %q: write a number with a unit, such as "500ms", "2s" or "1m30s"`, s))
	case dur < 0 || dur == 0 && !zeroOK:
		p.errorAt(n, p.path(rel), fmt.Sprintf("must be more than zero; got %q", s))
	}
}

func (p *parser) checkCircuitBreakers(d *document, m *Mapping) {
	first := make(map[string]*yaml.Node, len(m.CircuitBreakers))
	for i, cb := range m.CircuitBreakers {
		rel := indexed("circuit_breakers", i)
		sl := d.structs[rel]
		if sl == nil || sl.failed["priority"] {
			continue
		}
		at := sl.node
		if n, ok := sl.usable("priority"); ok {
			at = n
		}
		priority := cb.Priority
		if priority == "" {
			priority = "default"
		}
		if f, dup := first[priority]; dup {
			p.errorSee(at, f, p.path(join(rel, "priority")), "duplicate circuit breaker for priority "+priority)
		} else {
			first[priority] = at
		}
		if mine := cmp.Or(m.Priority, "default"); priority != mine && (priority == "default" || priority == "high") {
			p.warnAt(at, p.path(join(rel, "priority")), fmt.Sprintf("the Mapping's priority is %s: these %s thresholds do not apply to it", mine, priority))
		}
	}
}

func (p *parser) checkLoadBalancer(d *document, m *Mapping) {
	lb := m.LoadBalancer
	sl := d.structs["load_balancer"]
	if lb == nil || sl == nil {
		return
	}
	// The hash keys written, in the order written.
	var keys []fieldLoc
	for i := 0; i+1 < len(sl.node.Content); i += 2 {
		name := sl.node.Content[i].Value
		loc, ok := sl.written(name)
		switch {
		case !ok || sl.failed[name]:
		case name == "cookie", name == "header" && lb.Header != "", name == "source_ip" && isTrue(lb.SourceIP):
			keys = append(keys, loc)
		}
	}
	if n, ok := sl.usable("header"); ok && lb.Header != "" {
		if msg := headerNameProblem(lb.Header); msg != "" {
			p.errorAt(n, p.path("load_balancer.header"), msg)
		}
	}
	p.checkCookie(d, lb.Cookie)
	if sl.failed["policy"] {
		return
	}
	switch lb.Policy {
	case "ring_hash", "maglev":
		switch {
		case len(keys) == 0:
			at := sl.node
			if n, ok := sl.usable("policy"); ok {
				at = n
			}
			p.errorAt(at, p.path("load_balancer.policy"), fmt.Sprintf("%s needs exactly one of cookie, header or source_ip: true to hash on", lb.Policy))
			return
		case len(keys) > 1:
			p.errorAt(keys[1].key, p.path(join("load_balancer", keys[1].key.Value)),
				fmt.Sprintf("%s hashes on exactly one of cookie, header or source_ip; %s is set too", lb.Policy, keys[0].key.Value))
			return
		}
	case "round_robin", "least_request":
		for _, k := range keys {
			p.errorAt(k.key, p.path(join("load_balancer", k.key.Value)), fmt.Sprintf("%s is only used by the ring_hash and maglev policies; policy is %s", k.key.Value, lb.Policy))
		}
		if len(keys) > 0 {
			return
		}
	default:
		return // reported by the oneof check
	}
	if cs := d.structs["load_balancer.cookie"]; lb.Cookie != nil && cs != nil {
		if _, ttl := cs.written("ttl"); ttl {
			return
		}
		if n, ok := cs.usable("name"); ok {
			p.warnAt(n, p.path("load_balancer.cookie"), "without ttl the gateway never sets the cookie (as in Emissary): requests that do not carry it go to a random endpoint; write ttl (0s for a session cookie) to have it set")
		}
	}
}

func (p *parser) checkCookie(d *document, c *LoadBalancerCookie) {
	sl := d.structs["load_balancer.cookie"]
	if c == nil || sl == nil {
		return
	}
	if n, ok := sl.usable("name"); ok && c.Name != "" && !isToken(c.Name) {
		p.errorAt(n, p.path("load_balancer.cookie.name"), fmt.Sprintf("invalid cookie name %q: a cookie name has only %s", c.Name, tokenRule))
	}
	if n, ok := sl.usable("path"); ok && c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.IndexFunc(c.Path, isSpaceOrControl) >= 0 || strings.Contains(c.Path, ";")) {
		p.errorAt(n, p.path("load_balancer.cookie.path"), fmt.Sprintf("must start with \"/\" and contain no whitespace, control characters or ';'; got %q", c.Path))
	}
	if n, ok := sl.usable("ttl"); ok {
		p.checkDuration(n, "load_balancer.cookie.ttl", c.TTL, true)
	}
}

func (p *parser) checkCORS(d *document, m *Mapping) {
	c := m.CORS
	sl := d.structs["cors"]
	if c == nil || sl == nil {
		return
	}
	if _, ok := sl.written("origins"); !ok {
		if p.opts.Dialect == Emissary {
			// Emissary did nothing with it; neither does Gatehouse.
			p.warnAt(d.top.fields["cors"].key, p.path("cors"), "cors without origins allows no origin; ignored")
			m.CORS = nil
			return
		}
		p.errorAt(sl.node, p.path("cors.origins"), `cors needs origins: the origins allowed ("https://app.example.com", "~" and a regular expression, or "*")`)
	}
	for _, f := range []struct {
		name    string
		list    []string
		problem func(string) string
	}{
		{"origins", c.Origins, originProblem},
		{"methods", c.Methods, func(s string) string {
			if !isToken(s) {
				return fmt.Sprintf("invalid method %q: a method has only %s", s, tokenRule)
			}
			return ""
		}},
		{"headers", c.Headers, headerNameProblem},
		{"exposed_headers", c.ExposedHeaders, headerNameProblem},
	} {
		loc, ok := sl.written(f.name)
		if !ok || sl.failed[f.name] {
			continue
		}
		for i, item := range f.list {
			at := loc.value
			if loc.value.Kind == yaml.SequenceNode {
				at = loc.value.Content[i]
			}
			if msg := f.problem(item); msg != "" {
				p.errorAt(at, p.path(indexed(join("cors", f.name), i)), msg)
			} else if f.name == "origins" && loc.value.Kind != yaml.SequenceNode && strings.HasPrefix(item, "~") {
				p.errorAt(at, p.path(indexed(join("cors", f.name), i)), "write regular-expression origins as a YAML list; the comma-separated form splits at commas")
			}
		}
	}
	if n, ok := sl.usable("credentials"); ok && isTrue(c.Credentials) && slices.Contains(c.Origins, "*") {
		p.warnAt(n, p.path("cors.credentials"), `credentials with origin "*" lets every site read answers made with the user's cookies; list the origins instead`)
	}
	if n, ok := sl.usable("max_age"); ok && !isDecimal(c.MaxAge) {
		p.errorAt(n, p.path("cors.max_age"), fmt.Sprintf("must be a number of seconds, such as \"86400\"; got %q", c.MaxAge))
	}
}

// notSchemeChar reports whether r cannot appear in a URL scheme.
func notSchemeChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')
}

// originProblem checks a CORS origin: "*" or scheme://host[:port].
func originProblem(s string) string {
	if s == "*" || strings.EqualFold(s, "null") {
		return ""
	}
	if pattern, ok := strings.CutPrefix(s, "~"); ok {
		// A regular expression over the whole origin (package cors).
		if _, msg := compileRegexp(pattern); msg != "" {
			return msg
		}
		return ""
	}
	scheme, hostPort, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.IndexFunc(scheme, notSchemeChar) >= 0 {
		return fmt.Sprintf("invalid origin %q: an origin is \"*\" or scheme://host[:port], such as https://app.example.com", s)
	}
	if msg := hostPortProblem(hostPort); msg != "" {
		return fmt.Sprintf("invalid origin %q: the host %s", s, msg)
	}
	return ""
}

func (p *parser) checkUpgrades(d *document, m *Mapping) {
	if loc, ok := d.top.fields["allow_upgrade"]; ok && !d.top.failed["allow_upgrade"] && loc.value.Kind == yaml.SequenceNode {
		seen := make(map[string]*yaml.Node, len(m.AllowUpgrade))
		for i, proto := range m.AllowUpgrade {
			item := loc.value.Content[i]
			path := p.path(indexed("allow_upgrade", i))
			if !isProtocol(proto) {
				p.errorAt(item, path, fmt.Sprintf("invalid protocol %q: a protocol is a name, optionally with /version, of %s", proto, tokenRule))
				continue
			}
			lower := strings.ToLower(proto)
			if first, dup := seen[lower]; dup {
				p.errorSee(item, first, path, fmt.Sprintf("duplicate protocol %q", proto))
				continue
			}
			seen[lower] = item
			m.AllowUpgrade[i] = lower
		}
	}
	if isTrue(m.UseWebsocket) {
		p.warnAt(d.top.fields["use_websocket"].key, p.path("use_websocket"), "deprecated: use allow_upgrade: [websocket]")
		if !slices.Contains(m.AllowUpgrade, "websocket") {
			m.AllowUpgrade = append(m.AllowUpgrade, "websocket")
		}
	}
}

func (p *parser) checkRedirect(d *document, m *Mapping) {
	redirect := isTrue(m.HostRedirect)
	for _, name := range []string{"path_redirect", "prefix_redirect", "redirect_response_code"} {
		if loc, ok := d.top.written(name); ok && !redirect {
			p.errorAt(loc.key, p.path(name), name+" needs host_redirect: true")
		}
	}
	path, hasPath := d.top.written("path_redirect")
	prefix, hasPrefix := d.top.written("prefix_redirect")
	if hasPath && hasPrefix {
		l := later(path, prefix)
		p.errorAt(l.key, p.path(l.key.Value), "set path_redirect or prefix_redirect, not both")
	}
	for _, f := range []struct{ name, value string }{{"path_redirect", m.PathRedirect}, {"prefix_redirect", m.PrefixRedirect}} {
		n, ok := d.usable(f.name)
		if !ok {
			continue
		}
		if !strings.HasPrefix(f.value, "/") || strings.IndexFunc(f.value, isSpaceOrControl) >= 0 {
			p.errorAt(n, p.path(f.name), fmt.Sprintf("must start with \"/\" and contain no whitespace or control characters; got %q", f.value))
		}
	}
}

// checkNotEnforced warns about fields that Gatehouse reads but does not act
// on (yet): the annotation must not silently mean less than it says.
func (p *parser) checkNotEnforced(d *document, m *Mapping) {
	if isTrue(m.Shadow) {
		for _, f := range []string{"rate_limits", "auth", "require_consumer", "retry_policy", "cors", "circuit_breakers", "load_balancer"} {
			if loc, ok := d.top.written(f); ok {
				p.warnAt(loc.key, p.path(f), f+" does not apply to a shadow Mapping: it only receives copies of requests another Mapping serves")
			}
		}
	}
	if loc, ok := d.top.written("labels"); ok {
		msg := "labels configure Emissary's external rate-limit service, which Gatehouse does not call; use rate_limits with a RateLimit document"
		if p.opts.Dialect == Emissary {
			msg += " in the " + Key + " annotation"
		}
		p.warnAt(loc.key, p.path("labels"), msg)
	}
}
