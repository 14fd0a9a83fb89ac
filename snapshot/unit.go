package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/cors"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// unit is one Service's annotations compiled on their own, before any
// other Service is looked at: the part of the pipeline that the webhook,
// the CLI and the builder share, router included, so that what is admitted
// compiles. Nothing in it is bound to the gateway's registries yet (no
// upstreams, buckets or counters), so reviewing a Service costs the
// gateway nothing it keeps.
type unit struct {
	routes []unitRoute
	// shadows are the Mappings with shadow: true: not routed, they mirror
	// the traffic of the routes of their namespace with the same match
	// criteria (their group).
	shadows []unitRoute
	// hosts are the Host documents: certificates for hostnames the
	// Service's namespace owns.
	hosts []unitHost
	// auths are the Auth documents, compiled.
	auths []*AuthSpec
}

// unitRoute is one routed Mapping.
type unitRoute struct {
	src    string               // the annotation key it came from
	m      *annotations.Mapping // as parsed; read-only
	route  router.Route[*Route] // Value is this unit's own, not yet bound
	group  string               // canary group: namespace and match criteria
	limits []limiter.Policy     // the RateLimits it uses, in order
}

// compileUnit compiles the parsed annotations srcs of svc: Mapping names
// unique across annotations, targets (in the cluster or, where the policy
// allows, outside it), the budgets, and the router's own checks on the
// Service's routes. warnings are each annotation's parse problems, whose
// warnings routes carry for `routes` and `explain`; known says whether a
// namespace exists; rc compiles each expression once (nil: a cache of the
// call's own, for callers on other goroutines than the builder's).
func compileUnit(svc *corev1.Service, srcs []sourced, warnings func(key string) annotations.Problems, known func(ns string) bool, opts *Options, rc *router.RegexCache) (*unit, map[string]annotations.Problems) {
	if rc == nil {
		rc = router.NewRegexCache()
	}
	budgets := opts.Budgets.withDefaults()
	key := svc.Namespace + "/" + svc.Name
	problems := map[string]annotations.Problems{}
	u := &unit{}
	names := map[string]string{}            // Mapping name → annotation key
	regexes := map[regexKey]int{}           // distinct expressions → program size
	rewrites := map[string]*regexp.Regexp{} // regex_rewrite patterns, compiled once
	var programs, routed, limits, hostDocs, authDocs int
	hostnames := map[string]string{} // Host hostname → annotation key
	over := map[string]bool{}        // budgets already reported: one problem each is enough
	for _, src := range srcs {
		problem := func(pos annotations.Position, path, msg string) {
			problems[src.key] = append(problems[src.key], annotations.Problem{Pos: pos, Path: path, Message: msg})
		}
		policies := make(map[string]limiter.Policy, len(src.cfg.RateLimits))
		for _, rl := range src.cfg.RateLimits {
			if limits++; limits > budgets.MaxRateLimits {
				if !over["ratelimits"] {
					over["ratelimits"] = true
					problem(rl.Pos, `RateLimit "`+rl.Name+`"`, fmt.Sprintf("the Service declares more than %s RateLimits", budgetFlag("max-rate-limits-per-service", budgets.MaxRateLimits)))
				}
				continue
			}
			policies[rl.Name] = policy(key, rl)
		}
		authSpecs := map[string]*AuthSpec{}
		for i := range src.cfg.Auths {
			a := &src.cfg.Auths[i]
			if authDocs++; authDocs > budgets.MaxAuths {
				if !over["auths"] {
					over["auths"] = true
					problem(a.FieldPos("name"), fmt.Sprintf("Auth %q", a.Name), fmt.Sprintf("the Service declares more than %s Auths", budgetFlag("max-auths-per-service", budgets.MaxAuths)))
				}
				continue
			}
			spec, field, err := compileAuth(svc, src.key, a, known, opts)
			if err != nil {
				path := fmt.Sprintf("Auth %q", a.Name)
				if field != "" {
					path += "." + field
				}
				problem(a.FieldPos(field), path, err.Error())
				continue
			}
			authSpecs[a.Name] = spec
			u.auths = append(u.auths, spec)
		}
		for i := range src.cfg.Hosts {
			h := &src.cfg.Hosts[i]
			if hostDocs++; hostDocs > budgets.MaxHosts {
				if !over["hosts"] {
					over["hosts"] = true
					problem(h.FieldPos("name"), fmt.Sprintf("Host %q", h.Name), fmt.Sprintf("the Service declares more than %s Hosts", budgetFlag("max-hosts-per-service", budgets.MaxHosts)))
				}
				continue
			}
			if other, dup := hostnames[h.Hostname]; dup {
				problem(h.FieldPos("hostname"), fmt.Sprintf("Host %q.hostname", h.Name), fmt.Sprintf("hostname %q has a Host in annotation %s already", h.Hostname, other))
				continue
			}
			hostnames[h.Hostname] = src.key
			u.hosts = append(u.hosts, unitHost{src: src.key, h: h})
		}
		for i := range src.cfg.Mappings {
			m := &src.cfg.Mappings[i]
			add := func(field, msg string) { problem(m.FieldPos(field), mappingPath(m.Name, field), msg) }
			if other, dup := names[m.Name]; dup {
				add("name", fmt.Sprintf("Mapping %q is also declared in annotation %s", m.Name, other))
				continue
			}
			names[m.Name] = src.key
			if routed++; routed > budgets.MaxRoutes {
				if !over["routes"] {
					over["routes"] = true
					add("name", fmt.Sprintf("this is routed Mapping %d of the Service; at most %s are allowed per Service", routed, budgetFlag("max-routes-per-service", budgets.MaxRoutes)))
				}
				continue
			}
			if n := len(m.Headers) + len(m.RegexHeaders) + len(m.QueryParameters) + len(m.RegexQueryParameters); n > budgets.MaxConditions {
				add(conditionsField(m), fmt.Sprintf("the Mapping has %d header and query conditions; at most %s are allowed per route", n, budgetFlag("max-conditions-per-route", budgets.MaxConditions)))
				continue
			}
			if p := m.Precedence; p > budgets.MaxPrecedence || p < -budgets.MaxPrecedence {
				add("precedence", fmt.Sprintf("precedence %d is outside ±%s", p, budgetFlag("max-precedence", budgets.MaxPrecedence)))
				continue
			}
			fits := true
			for _, rx := range regexesOf(m) {
				size, seen := regexes[rx.key]
				if !seen {
					var err error
					if size, err = programSize(rx.key); err != nil {
						add(rx.field, "invalid regular expression: "+err.Error())
						fits = false
						continue
					}
					if size > budgets.MaxRegexProgram {
						add(rx.field, fmt.Sprintf("regular expression compiles to %d instructions; at most %s are allowed per expression", size, budgetFlag("max-regex-program", budgets.MaxRegexProgram)))
						fits = false
						continue
					}
					regexes[rx.key] = size // compiled once however often it is written
					if len(regexes) > budgets.MaxRegexes {
						if !over["regexes"] {
							over["regexes"] = true
							add(rx.field, fmt.Sprintf("the Service has more than %s distinct regular expressions", budgetFlag("max-regexes-per-service", budgets.MaxRegexes)))
						}
						fits = false
						continue
					}
				}
				// Matching time is spent at every use.
				if programs += size; programs > budgets.MaxRegexTotal {
					if !over["programs"] {
						over["programs"] = true
						add(rx.field, fmt.Sprintf("the Service's regular expressions, counted at every use, compile to %d instructions together; at most %s are allowed per Service", programs, budgetFlag("max-regex-total", budgets.MaxRegexTotal)))
					}
					fits = false
				}
			}
			if !fits {
				continue
			}
			r, field, err := newRoute(svc, src.key, m, known, opts, rewrites)
			if err != nil {
				add(field, err.Error())
				continue
			}
			prefix := `Mapping "` + m.Name + `"`
			for _, pr := range warnings(src.key) {
				if pr.Warning && (pr.Path == prefix || strings.HasPrefix(pr.Path, prefix+".")) {
					r.Warnings = append(r.Warnings, pr.Path+": "+pr.Message)
				}
			}
			r.Auth, r.BypassAuth, r.RequireConsumer = authSpecs[m.Auth], m.BypassAuth, m.RequireConsumer
			ur := unitRoute{src: src.key, m: m}
			for _, name := range m.RateLimits {
				ur.limits = append(ur.limits, policies[name])
				r.RateLimits = append(r.RateLimits, displayName(svc.Namespace, name))
			}
			ur.route = routerRoute(m, key+"/"+m.Name, r)
			ur.route.Tenant = svc.Namespace
			criteria, err := router.CriteriaKey(&ur.route, rc)
			if err != nil {
				add("", "cannot be routed: "+err.Error())
				continue
			}
			ur.group = svc.Namespace + "\x00" + criteria
			if m.Mirrors() {
				u.shadows = append(u.shadows, ur)
				continue
			}
			u.routes = append(u.routes, ur)
		}
	}
	if anyErrors(problems) {
		return u, problems
	}
	// The router is the last judge: the Service's routes must make a table
	// on their own, whatever the checks above missed.
	routes := make([]router.Route[*Route], len(u.routes))
	for i := range u.routes {
		routes[i] = u.routes[i].route
	}
	if err := router.Check(routes, router.Options{MaxRegexInput: budgets.MaxRegexInput, Cache: rc}); err != nil {
		for _, ur := range u.routes {
			if msg := routeErrorFor(err, ur.route.ID); msg != "" {
				problems[ur.src] = append(problems[ur.src], annotations.Problem{Pos: ur.m.Pos, Path: mappingPath(ur.m.Name, ""), Message: "cannot be routed: " + msg})
			}
		}
		if !anyErrors(problems) { // an error no route owns: say so rather than admit
			src := u.routes[0].src
			problems[src] = append(problems[src], annotations.Problem{Pos: u.routes[0].m.Pos, Message: "the Service's routes cannot be routed: " + err.Error()})
		}
	}
	return u, problems
}

// routeErrorFor returns what err says about route id, or "".
func routeErrorFor(err error, id string) string {
	var msgs []string
	var walk func(error)
	walk = func(e error) {
		var re *router.RouteError
		var ge *router.GroupError
		switch {
		case errors.As(e, &re) && re.ID == id:
			msgs = append(msgs, re.Err.Error())
		case errors.As(e, &ge) && slices.Contains(ge.IDs, id):
			msgs = append(msgs, ge.Err.Error())
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return strings.Join(slices.Compact(msgs), "; ")
}

// regexField is one regular expression of a Mapping and the field it is
// written in.
type regexField struct {
	field string
	key   regexKey
}

// regexesOf lists the expressions a Mapping compiles, as the router and
// the rewrite compile them.
func regexesOf(m *annotations.Mapping) []regexField {
	var out []regexField
	if m.PrefixRegex {
		out = append(out, regexField{"prefix", regexKey{m.Prefix, !m.PathCaseSensitive()}})
	}
	if m.RouteHostRegex() {
		out = append(out, regexField{"host", regexKey{m.Host, false}})
	}
	if m.MethodRegex {
		out = append(out, regexField{"method", regexKey{m.Method, false}})
	}
	for _, name := range sortedKeys(m.RegexHeaders) {
		out = append(out, regexField{"regex_headers." + name, regexKey{m.RegexHeaders[name], false}})
	}
	for _, name := range sortedKeys(m.RegexQueryParameters) {
		out = append(out, regexField{"regex_query_parameters." + name, regexKey{m.RegexQueryParameters[name], false}})
	}
	if m.RegexRewrite != nil {
		out = append(out, regexField{"regex_rewrite.pattern", regexKey{m.RegexRewrite.Pattern, false}})
	}
	if m.CORS != nil {
		for i, o := range m.CORS.Origins {
			if pattern, ok := strings.CutPrefix(o, cors.RegexPrefix); ok {
				out = append(out, regexField{fmt.Sprintf("cors.origins[%d]", i), regexKey{pattern, false}})
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// conditionsField is where a Mapping's conditions are written, for a
// problem about all of them.
func conditionsField(m *annotations.Mapping) string {
	for _, f := range []string{"headers", "regex_headers", "query_parameters", "regex_query_parameters"} {
		if _, ok := m.Positions[f]; ok {
			return f
		}
	}
	return ""
}

// mappingPath is the field path of a problem: `Mapping "name".field`.
func mappingPath(name, field string) string {
	p := `Mapping "` + name + `"`
	if field != "" && field != "name" {
		p += "." + field
	}
	return p
}

// newRoute compiles one Mapping's data-plane settings and target; the
// returned field is where an error belongs.
func newRoute(svc *corev1.Service, annotation string, m *annotations.Mapping, known func(ns string) bool, opts *Options, rewrites map[string]*regexp.Regexp) (*Route, string, error) {
	r := &Route{
		Mapping:         displayName(svc.Namespace, m.Name),
		Service:         svc.Namespace + "/" + svc.Name,
		Annotation:      annotation,
		Kind:            pathKind(m),
		Prefix:          m.Prefix,
		CaseInsensitive: !m.PathCaseSensitive(),
		Rewrite:         "/",
		RewriteEnabled:  true,
		HostRewrite:     m.HostRewrite,
		Timeout:         DefaultTimeout,
		ConnectTimeout:  DefaultConnectTimeout,
		AllowUpgrade:    m.AllowUpgrade,
	}
	if m.Rewrite != nil {
		r.Rewrite = *m.Rewrite
		r.RewriteEnabled = *m.Rewrite != ""
	}
	if m.RegexRewrite != nil {
		re := rewrites[m.RegexRewrite.Pattern]
		if re == nil {
			var err error
			if re, err = regexp.Compile(m.RegexRewrite.Pattern); err != nil {
				return nil, "regex_rewrite.pattern", err
			}
			rewrites[m.RegexRewrite.Pattern] = re
		}
		r.RegexRewrite, r.Substitution = re, m.RegexRewrite.Substitution
	}
	if m.TimeoutMS != nil {
		r.Timeout = time.Duration(*m.TimeoutMS) * time.Millisecond
	}
	if m.ConnectTimeoutMS != nil {
		r.ConnectTimeout = time.Duration(*m.ConnectTimeoutMS) * time.Millisecond
	}
	if m.IdleTimeoutMS != nil {
		r.IdleTimeout = time.Duration(*m.IdleTimeoutMS) * time.Millisecond
	}
	if m.MaxRequestBodyBytes != nil {
		r.MaxRequestBody = int64(*m.MaxRequestBodyBytes)
		if r.MaxRequestBody == 0 {
			r.MaxRequestBody = -1
		}
	}
	if m.RetryPolicy != nil {
		r.Retry = retryPolicy(m.RetryPolicy)
	}
	if t := m.UpstreamTLS; t != nil {
		r.TLS = &UpstreamTLS{Namespace: svc.Namespace, CASecret: t.CASecret, ClientSecret: t.ClientSecret, ServerName: t.SNI}
	}
	r.GRPC = isTrue(m.GRPC) || isTrue(m.GRPCWeb)
	r.HTTP2 = r.GRPC || isTrue(m.HTTP2)
	r.GRPCWeb = isTrue(m.GRPCWeb)
	if lb := m.LoadBalancer; lb != nil {
		r.Balance, r.Hash = balancePolicy(lb.Policy), hashOn(lb)
	}
	if m.CORS != nil {
		policy, err := cors.CompileOptions(m.CORS, cors.Options{MaxRegexProgram: opts.Budgets.MaxRegexProgram})
		if err != nil {
			if fe := (*cors.FieldError)(nil); errors.As(err, &fe) {
				return nil, "cors." + fe.Field, errors.New(fe.Reason)
			}
			return nil, "cors", err
		}
		r.CORS = policy
	}
	r.RequestHeadersAdd = headerOps(m.AddRequestHeaders)
	r.ResponseHeadersAdd = headerOps(m.AddResponseHeaders)
	r.RequestHeadersRemove = canonical(m.RemoveRequestHeaders)
	r.ResponseHeadersRemove = canonical(m.RemoveResponseHeaders)
	for _, cb := range m.CircuitBreakers {
		if cmp.Or(cb.Priority, "default") != cmp.Or(m.Priority, "default") {
			continue
		}
		// Envoy's defaults for what the entry leaves unset.
		r.Caps = Caps{
			Requests: min(valueOr(cb.MaxRequests, 1024), valueOr(cb.MaxConnections, 1024)),
			Pending:  valueOr(cb.MaxPendingRequests, 1024),
			Retries:  valueOr(cb.MaxRetries, 3),
		}
	}
	if m.Redirects() {
		r.Redirect = redirect(m)
		return r, "", nil
	}
	ref, err := annotations.ParseServiceRef(m.Service, svc.Namespace)
	if err != nil {
		return nil, "service", err
	}
	r.Target = ref
	switch {
	case !ref.InCluster():
		r.External = true
	case strings.Count(ref.Host, ".") == 1 && !known(ref.Namespace) && opts.allowsExternal(ref.Host):
		// "httpbin.org" names Service httpbin in namespace org when that
		// namespace exists (as cluster DNS would resolve it), and the
		// external host otherwise.
		r.External = true
	}
	if r.External && !opts.allowsExternal(ref.Host) {
		return nil, "service", fmt.Errorf("service %q is a host outside the cluster, which %s", m.Service, opts.externalFlag())
	}
	if ref.Scheme == "https" {
		// Every TLS upstream is verified, by name: the gateway dials an
		// endpoint's address, which is not the name its certificate is for.
		if r.TLS == nil {
			r.TLS = &UpstreamTLS{Namespace: svc.Namespace}
		}
		if r.TLS.ServerName == "" {
			r.TLS.ServerName = ref.Host
			if !r.External {
				r.TLS.ServerName = ref.Name + "." + ref.Namespace + ".svc"
			}
		}
	}
	return r, "", nil
}

// retryPolicy compiles a retry_policy the parser accepted.
func retryPolicy(rp *annotations.RetryPolicy) *RetryPolicy {
	out := &RetryPolicy{Retries: 1}
	if rp.NumRetries != nil {
		out.Retries = *rp.NumRetries
	}
	if d, err := time.ParseDuration(rp.PerTryTimeout); err == nil && d > 0 {
		out.PerTry = d
	}
	// Envoy's meanings, which Emissary passes through: "5xx" and
	// "gateway-error" include getting no answer at all (connect failures,
	// resets); "reset" is no answer, "connect-failure" only the connect.
	switch rp.RetryOn {
	case "5xx":
		out.On = Retry5xx | RetryReset | RetryConnectFailure
	case "gateway-error":
		out.On = RetryGatewayError | RetryReset | RetryConnectFailure
	case "connect-failure":
		out.On = RetryConnectFailure
	case "reset":
		out.On = RetryReset | RetryConnectFailure
	case "retriable-4xx":
		out.On = Retry409
	case "refused-stream":
		out.On = RetryRefusedStream
	case "":
		// Emissary's default when retry_policy is written without retry_on
		// is Envoy's, which retries nothing; so does this.
	}
	if out.On == 0 || out.Retries == 0 {
		return nil
	}
	return out
}

// hashOn compiles what a ring_hash or maglev policy hashes.
func hashOn(lb *annotations.LoadBalancer) HashOn {
	if lb.Policy != "ring_hash" && lb.Policy != "maglev" {
		return HashOn{}
	}
	var h HashOn
	switch {
	case lb.Cookie != nil:
		c := &HashCookie{Name: lb.Cookie.Name, Path: lb.Cookie.Path}
		if d, err := time.ParseDuration(lb.Cookie.TTL); err == nil {
			c.Set, c.TTL = true, max(d, 0)
		}
		h.Cookie = c
	case lb.Header != "":
		h.Header = http.CanonicalHeaderKey(lb.Header)
	case lb.SourceIP != nil && *lb.SourceIP:
		h.SourceIP = true
	}
	return h
}

// balancePolicy maps load_balancer.policy, which the parser checked, to
// upstream's picker.
func balancePolicy(policy string) upstream.Policy {
	switch policy {
	case "least_request":
		return upstream.LeastRequest
	case "ring_hash":
		return upstream.RingHash
	case "maglev":
		return upstream.Maglev
	}
	return upstream.RoundRobin
}

func isTrue(b *bool) bool { return b != nil && *b }
