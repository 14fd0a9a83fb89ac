package snapshot

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Emissary's defaults for a Mapping that sets no timeouts.
const (
	DefaultTimeout        = 3000 * time.Millisecond
	DefaultConnectTimeout = 3000 * time.Millisecond
)

func valueOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// compiledService is one Service's good configuration made into routes,
// kept across builds: a round in which one Service of thousands changed
// compiles that one and reuses the rest, so a rebuild costs little more than
// the router itself. The Routes are shared with the snapshots that serve
// them and never written after compile; a group weight that changes gets a
// copy (see compile).
type compiledService struct {
	from     []sourced // the good configuration these routes came from
	routes   []router.Route[*Route]
	explicit []*int   // each route's weight as written
	groups   []string // each route's canary group key
	limiters []string // limiter policy IDs the routes use
	gates    []string // IDs of the circuit_breakers gates its routes use
	shadows  []groupShadow
	hosts    []unitHost // Host documents: edge certificates (resolveEdgeTLS)
	auths    []*AuthSpec
}

// groupShadow is a shadow Mapping bound to its upstream, with the canary
// group whose traffic it mirrors.
type groupShadow struct {
	group  string
	shadow Shadow
}

// compile turns every Service's good configuration into a router table.
// It always succeeds: every Service's routes made a table on their own, so
// a table of all of them fails only through an interaction no check
// foresaw (or a bug), and then the Services whose routes the router names
// are taken out, rejected, and the rest is built again. It returns reports
// for the Services it took out.
func (b *Builder) compile(keys []string, services map[string]*corev1.Service, slices []*discoveryv1.EndpointSlice, t *tenancy) (*Snapshot, []Report) {
	var reports []Report
	opts := router.Options{Owners: t.owners(), MaxRegexInput: b.opts.Budgets.withDefaults().MaxRegexInput, Cache: b.regexes}
	for attempt := 0; ; attempt++ {
		routes, groups, cached, explicit, owner := b.gather(keys, services, t)
		b.weigh(routes, groups, cached, explicit)
		b.attachShadows(keys, services, t, routes, groups, cached)
		table, err := router.NewTable(routes, opts)
		if err == nil {
			b.regexes.Sweep()
			dropped := b.retain(keys, routes, services, slices)
			b.generation++
			return &Snapshot{Generation: b.generation, Table: table, Dropped: dropped}, reports
		}
		// Take out every Service the error names; if it names none (which
		// would be a router bug), every Service, so that the loop ends.
		named := map[string]bool{}
		for i := range routes {
			if msg := routeErrorFor(err, routes[i].ID); msg != "" {
				named[owner[i]] = true
			}
		}
		if len(named) == 0 || attempt >= 3 {
			for _, key := range keys {
				named[key] = true
			}
		}
		for _, key := range sortedSet(named) {
			st := b.services[key]
			if st == nil || st.good == nil {
				continue
			}
			msg := routeErrorsOf(err, routes, owner, key)
			t.release(services[key].Namespace, key, st.claims)
			st.good, st.claims, st.weights, st.compiled, st.since = nil, claims{}, nil, nil, 0
			reports = append(reports, Report{
				Service:    key,
				Annotation: b.keys[0],
				Problems:   annotations.Problems{{Message: "taken out of the route table: " + msg}},
				Rejected:   true,
			})
		}
		opts.Owners = t.owners()
	}
}

// authSpecs lists the Auth documents of the Services serving, in Build's
// order, and notes each namespace's Emissary AuthService (the first one,
// in that order) in snap.
func (b *Builder) authSpecs(keys []string, snap *Snapshot) []*AuthSpec {
	var out []*AuthSpec
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		for _, a := range st.compiled.auths {
			out = append(out, a)
			if a.Namespaced {
				if snap.namespaceAuth == nil {
					snap.namespaceAuth = map[string]*AuthSpec{}
				}
				if _, taken := snap.namespaceAuth[a.Namespace]; !taken {
					snap.namespaceAuth[a.Namespace] = a
				}
			}
		}
	}
	return out
}

// authTargets are the routes to the auth services of specs.
func authTargets(specs []*AuthSpec) []*Route {
	var out []*Route
	for _, a := range specs {
		if a.Target != nil {
			out = append(out, a.Target)
		}
	}
	return out
}

// gather lists the routes of every good configuration in Build's order,
// with their canary groups, the compiled routes they came from, their
// weights as written and the Service each belongs to.
func (b *Builder) gather(keys []string, services map[string]*corev1.Service, t *tenancy) ([]router.Route[*Route], map[string][]int, []*router.Route[*Route], []*int, []string) {
	n := 0
	for _, key := range keys {
		if st := b.services[key]; st != nil && st.good != nil {
			n += len(st.compiled.routes)
		}
	}
	routes := make([]router.Route[*Route], 0, n)
	cached := make([]*router.Route[*Route], 0, n) // where each of routes came from
	explicit := make([]*int, 0, n)
	owner := make([]string, 0, n)
	groups := map[string][]int{} // canary group → indexes into routes
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		cs := st.compiled
		ns := services[key].Namespace
		for i := range cs.routes {
			// A grant checked when the route was admitted may since have
			// been withdrawn; the route stops with it.
			if v := cs.routes[i].Value; v.Redirect == nil && !v.External && !t.grantAllows(v.Target.Namespace, ns) {
				continue
			}
			groups[cs.groups[i]] = append(groups[cs.groups[i]], len(routes))
			routes = append(routes, cs.routes[i])
			cached = append(cached, &cs.routes[i])
			explicit = append(explicit, cs.explicit[i])
			owner = append(owner, key)
		}
	}
	return routes, groups, cached, explicit, owner
}

// weigh gives each member of a canary group its share. A canary group is
// every Mapping of a namespace with identical match criteria; a lone
// Mapping takes all its traffic whatever its weight.
func (b *Builder) weigh(routes []router.Route[*Route], groups map[string][]int, cached []*router.Route[*Route], explicit []*int) {
	for g, members := range groups {
		if len(members) < 2 {
			setWeight(&routes[members[0]], cached[members[0]], "", 100)
			continue
		}
		sort.Slice(members, func(i, j int) bool { return routes[members[i]].ID < routes[members[j]].ID })
		written := make([]*int, len(members))
		for i, idx := range members {
			written[i] = explicit[idx]
		}
		shares := splitWeights(written)
		for i, idx := range members {
			setWeight(&routes[idx], cached[idx], g, shares[i])
		}
	}
}

// retain keeps the limiter buckets, upstreams and in-flight counters the
// table uses and forgets the rest, and resolves the upstreams' endpoints,
// returning the endpoints it refused.
func (b *Builder) retain(keys []string, routes []router.Route[*Route], services map[string]*corev1.Service, slices []*discoveryv1.EndpointSlice) []DroppedEndpoint {
	keepLimiters := map[string]bool{}
	keepGates := map[string]bool{}
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		for _, id := range st.compiled.limiters {
			keepLimiters[id] = true
		}
		for _, id := range st.compiled.gates {
			keepGates[id] = true
		}
	}
	targets := make(map[string]annotations.ServiceRef, len(b.targets))
	keepUpstreams := map[string]bool{}
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		for _, a := range st.compiled.auths {
			if t := a.Target; t != nil {
				keepUpstreams[t.Upstream.ID()] = true
				if t.External {
					t.Upstream.SetEndpoints([]string{t.Target.HostPort()})
				} else {
					targets[t.Upstream.ID()] = t.Target
				}
			}
		}
	}
	for _, r := range routes {
		for _, s := range r.Value.Shadows {
			keepUpstreams[s.Route.Upstream.ID()] = true
			if s.Route.External {
				s.Route.Upstream.SetEndpoints([]string{s.Route.Target.HostPort()})
			} else {
				targets[s.Route.Upstream.ID()] = s.Route.Target
			}
		}
		u := r.Value.Upstream
		if u == nil {
			continue
		}
		keepUpstreams[u.ID()] = true
		if r.Value.External {
			// The host itself is the endpoint; the dialer checks what
			// it resolves to on every connection.
			u.SetEndpoints([]string{r.Value.Target.HostPort()})
			continue
		}
		targets[u.ID()] = r.Value.Target
	}
	// The same round may have moved endpoints too.
	dropped := b.resolveTargets(targets, services, slices)
	b.limiters.Retain(keepLimiters)
	b.upstreams.Retain(keepUpstreams)
	b.targets = targets
	for id := range b.gates {
		if !keepGates[id] {
			delete(b.gates, id)
		}
	}
	return dropped
}

// routeErrorsOf is what err says about the routes of Service key.
func routeErrorsOf(err error, routes []router.Route[*Route], owner []string, key string) string {
	var msgs []string
	for i := range routes {
		if owner[i] == key {
			if msg := routeErrorFor(err, routes[i].ID); msg != "" {
				msgs = append(msgs, routes[i].ID+": "+msg)
			}
		}
	}
	if len(msgs) == 0 {
		return err.Error()
	}
	return strings.Join(msgs, "; ")
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// setWeight puts r in canary group g with the given share, and records the
// same in cached, the compiled route r was copied from, so that later builds
// start from it. The Route behind r.Value may be served by the current
// snapshot, so a changed weight goes into a copy rather than into the shared
// Route.
// attachShadows gives each route the shadow Mappings of its canary group:
// the same namespace (a team mirrors its own traffic, never another's) and
// the same match criteria, as Emissary pairs a shadow with its primary.
func (b *Builder) attachShadows(keys []string, services map[string]*corev1.Service, t *tenancy, routes []router.Route[*Route], groups map[string][]int, cached []*router.Route[*Route]) {
	byGroup := map[string][]Shadow{}
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		ns := services[key].Namespace
		for _, gs := range st.compiled.shadows {
			if v := gs.shadow.Route; !v.External && !t.grantAllows(v.Target.Namespace, ns) {
				continue
			}
			byGroup[gs.group] = append(byGroup[gs.group], gs.shadow)
		}
	}
	for g, members := range groups {
		shadows := byGroup[g]
		for _, idx := range members {
			r := &routes[idx]
			if len(shadows) == 0 && len(r.Value.Shadows) == 0 || slices.Equal(shadows, r.Value.Shadows) {
				continue
			}
			v := *r.Value
			v.Shadows = shadows
			r.Value = &v
			*cached[idx] = *r
		}
	}
}

func setWeight(r, cached *router.Route[*Route], g string, share int) {
	r.Group, r.Weight = g, share
	if r.Value.Weight != share {
		v := *r.Value
		v.Weight = share
		r.Value = &v
	}
	*cached = *r
}

// bind gives a Service's newly accepted unit its share of the gateway's
// state: rate-limit buckets, upstreams and in-flight counters, kept across
// rebuilds by ID so a Service that changes keeps what did not.
func (b *Builder) bind(key string, from []sourced, u *unit) *compiledService {
	cs := &compiledService{from: from, hosts: u.hosts, auths: u.auths}
	for _, a := range u.auths {
		if t := a.Target; t != nil {
			t.Upstream = b.upstreams.Get(upstreamID(t))
		}
	}
	for _, ur := range u.routes {
		rr := ur.route
		r := rr.Value // the unit's own: not served by any snapshot yet
		if r.Caps != (Caps{}) {
			// Kept while the thresholds stay: a changed one starts a new
			// gate (requests in flight finish on the old one).
			id := fmt.Sprintf("%s\x00%d/%d/%d", rr.ID, r.Caps.Requests, r.Caps.Pending, r.Caps.Retries)
			g := b.gates[id]
			if g == nil {
				g = upstream.NewGate(r.Caps.Requests, r.Caps.Pending, r.Caps.Retries)
				b.gates[id] = g
			}
			r.Gate = g
			cs.gates = append(cs.gates, id)
		}
		for _, p := range ur.limits {
			cs.limiters = append(cs.limiters, p.ID)
			r.Limiters = append(r.Limiters, b.limiters.Get(p))
		}
		if r.Redirect == nil {
			r.Upstream = b.upstreams.Get(upstreamID(r))
		}
		// Most Mappings are alone in their group and take all of its
		// traffic; starting there spares them a copy in setWeight.
		r.Weight = 100
		cs.groups = append(cs.groups, ur.group)
		cs.routes = append(cs.routes, rr)
		cs.explicit = append(cs.explicit, ur.m.Weight)
	}
	for _, us := range u.shadows {
		r := us.route.Value
		r.Upstream = b.upstreams.Get(upstreamID(r))
		percent := 100
		if us.m.Weight != nil {
			percent = *us.m.Weight
		}
		cs.shadows = append(cs.shadows, groupShadow{group: us.group, shadow: Shadow{Route: r, Percent: percent}})
	}
	return cs
}

// upstreamID names the upstream of a route: a Service port, or an external
// host, whose scheme is part of the name since it changes how it is spoken to.
func upstreamID(r *Route) string {
	if r.External {
		return "external/" + r.Target.String()
	}
	return fmt.Sprintf("%s/%s:%d", r.Target.Namespace, r.Target.Name, r.Target.Port)
}

// splitWeights gives each group member its percentage: explicit weights as
// written, the rest split evenly among members without one. When every
// member has a weight and they add up to less than 100 they are scaled up
// proportionally (30/30 means half each), and all-zero weights mean an even
// split. Rounding uses the largest remainders, earlier members first on ties,
// so the shares always add up to exactly 100.
func splitWeights(written []*int) []int {
	explicit, unweighted := 0, 0
	raw := make([]float64, len(written))
	for i, w := range written {
		if w == nil {
			unweighted++
			continue
		}
		explicit += *w
		raw[i] = float64(*w)
	}
	switch {
	case unweighted > 0:
		each := float64(max(100-explicit, 0)) / float64(unweighted)
		for i, w := range written {
			if w == nil {
				raw[i] = each
			}
		}
	case explicit == 0:
		for i := range raw {
			raw[i] = 100 / float64(len(raw))
		}
	default:
		for i := range raw {
			raw[i] = raw[i] * 100 / float64(explicit)
		}
	}
	shares := make([]int, len(raw))
	left := 100
	for i, r := range raw {
		shares[i] = int(r)
		left -= shares[i]
	}
	order := make([]int, len(raw))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return raw[order[a]]-float64(shares[order[a]]) > raw[order[b]]-float64(shares[order[b]])
	})
	for i := 0; left > 0 && len(order) > 0; i = (i + 1) % len(order) {
		shares[order[i]]++
		left--
	}
	return shares
}

func redirect(m *annotations.Mapping) *Redirect {
	rd := &Redirect{Host: m.Service, Path: m.PathRedirect, Prefix: m.PrefixRedirect, Code: 301}
	for _, scheme := range []string{"http", "https"} {
		if rest, ok := strings.CutPrefix(rd.Host, scheme+"://"); ok {
			rd.Scheme, rd.Host = scheme, rest
		}
	}
	if m.RedirectResponseCode != nil {
		rd.Code = *m.RedirectResponseCode
	}
	return rd
}

func headerOps(h map[string]annotations.AddedHeader) []HeaderOp {
	ops := make([]HeaderOp, 0, len(h))
	for name, v := range h {
		ops = append(ops, HeaderOp{Name: http.CanonicalHeaderKey(name), Value: v.Value, Append: v.Append == nil || *v.Append})
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	return ops
}

func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}

// routerRoute is the router's view of a Mapping.
func routerRoute(m *annotations.Mapping, id string, r *Route) router.Route[*Route] {
	rr := router.Route[*Route]{
		ID:              id,
		Host:            m.RouteHost(),
		HostRegex:       m.RouteHostRegex(),
		Path:            m.Prefix,
		Kind:            r.Kind,
		CaseInsensitive: r.CaseInsensitive,
		Method:          m.Method,
		MethodRegex:     m.MethodRegex,
		Precedence:      m.Precedence,
		Value:           r,
	}
	for name, v := range m.Headers {
		rr.Headers = append(rr.Headers, router.HeaderMatch{Name: name, Value: v.Value, Present: v.Present})
	}
	for name, v := range m.RegexHeaders {
		rr.Headers = append(rr.Headers, router.HeaderMatch{Name: name, Value: v, Regex: true})
	}
	sort.Slice(rr.Headers, func(i, j int) bool { return rr.Headers[i].Name < rr.Headers[j].Name })
	for name, v := range m.QueryParameters {
		rr.Query = append(rr.Query, router.QueryMatch{Name: name, Value: v.Value, Present: v.Present})
	}
	for name, v := range m.RegexQueryParameters {
		rr.Query = append(rr.Query, router.QueryMatch{Name: name, Value: v, Regex: true})
	}
	sort.Slice(rr.Query, func(i, j int) bool { return rr.Query[i].Name < rr.Query[j].Name })
	return rr
}

// policy compiles a RateLimit. Its ID includes the declaring Service because
// RateLimit names are scoped to one annotation.
func policy(serviceKey string, rl annotations.RateLimit) limiter.Policy {
	per := map[string]time.Duration{
		annotations.UnitSecond: time.Second,
		annotations.UnitMinute: time.Minute,
		annotations.UnitHour:   time.Hour,
		annotations.UnitDay:    24 * time.Hour,
	}[rl.Unit]
	burst := rl.Burst
	if burst == 0 {
		burst = rl.Rate
	}
	p := limiter.Policy{
		ID:    serviceKey + "/" + rl.Name,
		Limit: rate.Limit(float64(rl.Rate) / per.Seconds()),
		Burst: burst,
	}
	switch rl.Key {
	case annotations.KeyClientIP:
		p.Key = limiter.KeyClientIP
	case annotations.KeyHeader:
		p.Key = limiter.KeyHeader
		p.Header = rl.Header
	case annotations.KeyConsumer:
		p.Key = limiter.KeyConsumer
	}
	return p
}
