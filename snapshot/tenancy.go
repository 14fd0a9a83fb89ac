package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/router"
)

// DelegateKey is the Namespace annotation through which the namespace that
// owns hosts lets other namespaces serve them too: "team-a, team-b", or
// "*" for any namespace (which gives up the protection of ownership).
// Its grammar is that of annotations.GrantKey; a value that does not parse
// delegates to nobody.
const DelegateKey = "gatehouse.dev/delegate-hosts-to"

// HostsKey is the Namespace annotation through which a platform team
// limits the hosts a namespace may claim: "shop.example.com,
// *.shop.example.com". A namespace with it may route and attach
// certificates only to the hosts it lists (exactly, or under a wildcard
// it lists), and no Mapping of it may answer any host (no host, a host
// regex, hostname "*"), so claiming first is no longer enough to take a
// host. "*" lists every host (as no annotation does); a value that does
// not parse lists none, failing closed.
const HostsKey = "gatehouse.dev/allowed-hosts"

// NamespaceKeys are the Namespace annotations Build reads (Input's
// Namespaces): sources keep these of each Namespace and nothing else.
func NamespaceKeys() []string {
	return []string{annotations.GrantKey, DelegateKey, HostsKey}
}

// CheckNamespaceAnnotation reports what is wrong with the value of one of
// NamespaceKeys: the builder reads a value that does not parse as
// granting, delegating or allowing nothing, so tools (validate) say why.
func CheckNamespaceAnnotation(key, value string) error {
	switch key {
	case annotations.GrantKey, DelegateKey:
		if _, err := annotations.ParseGrant(value); err != nil {
			// ParseGrant names the grant key; the grammar is shared.
			msg := strings.Replace(err.Error(), annotations.GrantKey, key, 1)
			return fmt.Errorf("%s; a value that does not parse grants nothing", msg)
		}
	case HostsKey:
		if a := parseHostAllow(value); a != nil && a.err != nil {
			return fmt.Errorf("%s: %w; a value that does not parse allows no host", HostsKey, a.err)
		}
	}
	return nil
}

// NamespaceSettings are a Namespace's tenancy annotations as written, for
// the diagnostics page: "" for one it does not have.
type NamespaceSettings struct {
	Namespace    string `json:"namespace"`
	Grant        string `json:"allow_routes_from,omitempty"` // annotations.GrantKey
	Delegate     string `json:"delegate_hosts_to,omitempty"` // DelegateKey
	AllowedHosts string `json:"allowed_hosts,omitempty"`     // HostsKey
	// Problems say which values do not parse (each read as nothing).
	Problems []string `json:"problems,omitempty"`
}

// ReadNamespaceSettings is what of ns the builder reads, with the values
// that do not parse in Problems; nil when ns has none of NamespaceKeys.
func ReadNamespaceSettings(ns *corev1.Namespace) *NamespaceSettings {
	out := NamespaceSettings{Namespace: ns.Name}
	found := false
	for _, k := range NamespaceKeys() {
		v, ok := ns.Annotations[k]
		if !ok {
			continue
		}
		found = true
		switch k {
		case annotations.GrantKey:
			out.Grant = v
		case DelegateKey:
			out.Delegate = v
		case HostsKey:
			out.AllowedHosts = v
		}
		if err := CheckNamespaceAnnotation(k, v); err != nil {
			out.Problems = append(out.Problems, err.Error())
		}
	}
	if !found {
		return nil
	}
	return &out
}

// HostOwner is who answers an exact host: the namespace whose claim owns
// it and the namespaces it delegates to.
type HostOwner struct {
	Host      string   `json:"host"`
	Namespace string   `json:"namespace"`
	Service   string   `json:"service"`             // namespace/name of the Service whose claim owns it
	Delegates []string `json:"delegates,omitempty"` // namespaces the owner delegates its hosts to
	// DelegatesAll: the owner delegates to every namespace, so the host is
	// not protected.
	DelegatesAll bool `json:"delegates_all,omitempty"`
	// Others are the other namespaces that name the host (their routes
	// for it are not served unless they are delegates).
	Others []string `json:"others,omitempty"`
}

// HostOwners lists the exact hosts claimed in s, by name, with who owns
// them: the answer to "which team's route answers this host?".
func (s *Snapshot) HostOwners() []HostOwner {
	if s == nil || s.tenancy == nil {
		return nil
	}
	t := s.tenancy
	out := make([]HostOwner, 0, len(t.hosts))
	for h, claims := range t.hosts {
		c, ok := t.owner(h)
		if !ok {
			continue
		}
		d := t.delegates[c.namespace]
		o := HostOwner{Host: h, Namespace: c.namespace, Service: c.service, Delegates: d.Names, DelegatesAll: d.All}
		for _, x := range claims {
			if x.namespace != c.namespace && !slices.Contains(o.Others, x.namespace) {
				o.Others = append(o.Others, x.namespace)
			}
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b HostOwner) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// NamespaceSettings lists the Namespaces with tenancy annotations in s, by
// name.
func (s *Snapshot) NamespaceSettings() []NamespaceSettings {
	if s == nil || s.tenancy == nil {
		return nil
	}
	out := slices.Clone(s.tenancy.nsConfig)
	slices.SortFunc(out, func(a, b NamespaceSettings) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out
}

// hostAllow is a parsed HostsKey annotation.
type hostAllow struct {
	value string          // as written, for messages
	exact map[string]bool // lower case
	wild  []string        // the domains of "*.domain" entries, lower case
	err   error           // the value did not parse: nothing is allowed
}

// parseHostAllow parses a HostsKey value; nil for "*" (every host).
func parseHostAllow(v string) *hostAllow {
	a := &hostAllow{value: v, exact: map[string]bool{}}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		f = strings.ToLower(strings.TrimSuffix(f, "."))
		if f == "*" {
			return nil
		}
		name, wild := strings.CutPrefix(f, "*.")
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 || strings.Contains(name, "*") {
			a.err = fmt.Errorf("%q is not a host or *.domain", f)
			return a
		}
		if wild {
			a.wild = append(a.wild, name)
		} else {
			a.exact[name] = true
		}
	}
	return a
}

// allows reports whether host (exact, or "*.domain") is one a lists.
func (a *hostAllow) allows(host string) bool {
	if a == nil {
		return true
	}
	if a.err != nil {
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, wild := strings.CutPrefix(h, "*."); wild {
		for _, d := range a.wild {
			if rest == d || strings.HasSuffix(rest, "."+d) {
				return true
			}
		}
		return false
	}
	if a.exact[h] {
		return true
	}
	for _, d := range a.wild {
		if strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// refusal says why a namespace may not claim host under a.
func (a *hostAllow) refusal(ns, host string) string {
	if a.err != nil {
		return fmt.Sprintf("namespace %q may claim no host: its %s annotation does not parse (%v), which lists none", ns, HostsKey, a.err)
	}
	if host == "" {
		return fmt.Sprintf("namespace %q may only route the hosts its %s annotation lists (%q); a Mapping without an exact host or a listed wildcard would answer any host", ns, HostsKey, a.value)
	}
	return fmt.Sprintf("host %q is not among those namespace %q may claim (its %s annotation: %q); a platform team sets that list", host, ns, HostsKey, a.value)
}

// tenancy is the cross-namespace state Services are decided against: who
// owns each host, who holds each host-less or wildcard path, what canary
// groups weigh, and what Namespaces grant and delegate. Build makes one from
// the Services already serving, updates it as it accepts changes, and leaves
// it in the Snapshot, read-only, for admission reviews.
//
// Ownership: a host named exactly (host or hostname, not a wildcard or a
// regular expression) by a namespace's Mapping belongs to that namespace.
// When several namespaces name it, the first claim in Build's order wins:
// Services already serving, then older Services (creationTimestamp), then
// by namespace/name. Requests for an owned host are answered only by the
// owner's routes and its delegates', whatever other namespaces' host-less,
// wildcard or regex-host routes and their precedence say; the router
// enforces that at match time (router.Options.Owners).
type tenancy struct {
	hosts     map[string][]hostClaim       // exact host → claims, first one owning
	paths     map[claimKey][]hostClaim     // shared-space host and path → claims, first one holding
	weights   map[string]int               // canary group → explicit weights in force
	own       map[string]map[string]int    // Service key → its explicit group weights
	grants    map[string]annotations.Grant // annotations.GrantKey of each Namespace
	delegates map[string]annotations.Grant // DelegateKey of each Namespace
	hostAllow map[string]*hostAllow        // HostsKey of each Namespace that limits its hosts
	nsConfig  []NamespaceSettings          // the NamespaceKeys of each Namespace that has any, by name
	known     map[string]bool              // namespaces that exist
	routes    map[string][]reach           // Service key → its routes, for the rules of reach
}

// hostClaim is who claims a host or path: a namespace, through one of its
// Services. Several Services of one namespace may claim the same host; it
// stays the namespace's while any of them does.
type hostClaim struct {
	namespace, service string
}

// claimKey is a route's place in the shared space of hosts nobody owns
// (host-less, wildcard and regex hosts): two namespaces cannot route the
// same host and path.
type claimKey struct {
	host string
	kind router.PathKind
	path string
}

// claims are what one Service's good configuration holds.
type claims struct {
	hosts  []string
	paths  []claimKey
	routes []reach
}

func newTenancy(namespaces []*corev1.Namespace, services map[string]*corev1.Service) *tenancy {
	t := &tenancy{
		hosts:     map[string][]hostClaim{},
		paths:     map[claimKey][]hostClaim{},
		weights:   map[string]int{},
		own:       map[string]map[string]int{},
		grants:    map[string]annotations.Grant{},
		delegates: map[string]annotations.Grant{},
		hostAllow: map[string]*hostAllow{},
		known:     map[string]bool{},
		routes:    map[string][]reach{},
	}
	for _, ns := range namespaces {
		t.known[ns.Name] = true
		if ns := ReadNamespaceSettings(ns); ns != nil {
			t.nsConfig = append(t.nsConfig, *ns)
		}
		// A value that does not parse grants and delegates nothing: failing
		// closed keeps a typo from opening a namespace to everyone.
		if v, ok := ns.Annotations[annotations.GrantKey]; ok {
			if g, err := annotations.ParseGrant(v); err == nil {
				t.grants[ns.Name] = g
			}
		}
		if v, ok := ns.Annotations[DelegateKey]; ok {
			if g, err := annotations.ParseGrant(v); err == nil {
				t.delegates[ns.Name] = g
			}
		}
		if v, ok := ns.Annotations[HostsKey]; ok {
			if a := parseHostAllow(v); a != nil {
				t.hostAllow[ns.Name] = a
			}
		}
	}
	for _, svc := range services {
		t.known[svc.Namespace] = true
	}
	return t
}

// hold records what a Service's accepted configuration claims, after
// every claim made before it: a host or path somebody else holds already
// stays theirs.
func (t *tenancy) hold(ns, service string, c claims, groupWeights map[string]int) {
	me := hostClaim{ns, service}
	for _, h := range c.hosts {
		if !slices.Contains(t.hosts[h], me) {
			t.hosts[h] = append(t.hosts[h], me)
		}
	}
	for _, p := range c.paths {
		if !slices.Contains(t.paths[p], me) {
			t.paths[p] = append(t.paths[p], me)
		}
	}
	if c.routes != nil {
		t.routes[service] = c.routes
	}
	for g, w := range groupWeights {
		t.weights[g] += w
	}
	if groupWeights != nil {
		t.own[service] = groupWeights
	}
}

// release forgets what a Service held, before its new configuration is
// held instead.
func (t *tenancy) release(ns, service string, c claims) {
	me := hostClaim{ns, service}
	for _, h := range c.hosts {
		if rest := slices.DeleteFunc(t.hosts[h], func(x hostClaim) bool { return x == me }); len(rest) > 0 {
			t.hosts[h] = rest
		} else {
			delete(t.hosts, h)
		}
	}
	for _, p := range c.paths {
		if rest := slices.DeleteFunc(t.paths[p], func(x hostClaim) bool { return x == me }); len(rest) > 0 {
			t.paths[p] = rest
		} else {
			delete(t.paths, p)
		}
	}
	for g, w := range t.own[service] {
		t.weights[g] -= w
	}
	delete(t.own, service)
	delete(t.routes, service)
}

// mayServe reports whether namespace ns may route host h: nobody owns it,
// ns owns it, or the owner delegates to ns.
func (t *tenancy) mayServe(h, ns string) (hostClaim, bool) {
	owner, owned := t.owner(h)
	return owner, !owned || owner.namespace == ns || t.delegates[owner.namespace].Allows(ns)
}

// owner is the claim that owns host h: the first claim, in the order they
// were made, that is not a delegate of another claimant. A delegate's claim
// can come first (it may be the older Service, or be listed first after a
// restart); it must not turn the namespace that delegated to it into a
// guest on its own host.
func (t *tenancy) owner(h string) (hostClaim, bool) {
	cs := t.hosts[h]
	if len(cs) == 0 {
		return hostClaim{}, false
	}
	for _, c := range cs {
		delegate := false
		for _, d := range cs {
			if d.namespace != c.namespace && t.delegates[d.namespace].Allows(c.namespace) && !t.delegates[c.namespace].Allows(d.namespace) {
				delegate = true
				break
			}
		}
		if !delegate {
			return c, true
		}
	}
	return cs[0], true
}

// subOwner is a namespace owning a host under some domain, and the first
// such host by name.
type subOwner struct{ host, namespace string }

// subdomainOwners indexes the exact hosts claimed by every domain above
// them: for each, the first two namespaces (in host name order) owning a
// host under it, each with its first host. Two are enough to find one
// that is not a given namespace. Built once per build, and only when a
// Host asks for HSTS with includeSubDomains: a scan of every host per such
// Host would grow with the product of the two.
func (t *tenancy) subdomainOwners() map[string][]subOwner {
	hosts := make([]string, 0, len(t.hosts))
	for h := range t.hosts {
		if !strings.HasPrefix(h, "*.") {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	idx := map[string][]subOwner{}
	for _, h := range hosts {
		c, ok := t.owner(h)
		if !ok {
			continue
		}
		for p := h; ; {
			dot := strings.IndexByte(p, '.')
			if dot < 0 {
				break
			}
			p = p[dot+1:]
			list := idx[p]
			if len(list) < 2 && !slices.ContainsFunc(list, func(o subOwner) bool { return o.namespace == c.namespace }) {
				idx[p] = append(list, subOwner{host: h, namespace: c.namespace})
			}
		}
	}
	return idx
}

// foreignSubdomain returns the first (in name order) exact host under base
// (a hostname, or the domain of a wildcard) that a namespace other than
// ns owns, from idx (subdomainOwners); "" when there is none. HSTS with
// includeSubDomains on base would hold that host to HTTPS in browsers too.
func foreignSubdomain(idx map[string][]subOwner, base, ns string) (host, owner string) {
	for _, o := range idx[base] {
		if o.namespace != ns {
			return o.host, o.namespace
		}
	}
	return "", ""
}

// owners is the router's view of ownership: each owned host and the
// namespaces that may answer it. A host whose owner delegates to everyone
// is not restricted.
func (t *tenancy) owners() map[string][]string {
	out := make(map[string][]string, len(t.hosts))
	for h := range t.hosts {
		if strings.HasPrefix(h, "*.") {
			// A wildcard Host's claim: it decides who attaches a
			// certificate to the wildcard, not who routes its hosts.
			continue
		}
		c, _ := t.owner(h)
		d := t.delegates[c.namespace]
		if d.All {
			continue
		}
		out[h] = append([]string{c.namespace}, d.Names...)
	}
	return out
}

// grantAllows reports whether namespace from may route to Services in to.
func (t *tenancy) grantAllows(to, from string) bool {
	return to == from || t.grants[to].Allows(from)
}

// check applies the rules that need more than one Service to the compiled
// unit of svc: hosts another namespace owns, paths another namespace holds
// in the shared space, targets in other namespaces, and canary groups
// within 100%. It returns what the unit would claim and its group weights.
func (t *tenancy) check(svc *corev1.Service, u *unit, opts *Options) (claims, map[string]int, map[string]annotations.Problems) {
	ns, key := svc.Namespace, svc.Namespace+"/"+svc.Name
	problems := map[string]annotations.Problems{}
	var c claims
	var groupWeights map[string]int // most Services are in no canary group
	served := map[string]string{}   // route ID → canary group of what the Service serves now
	for _, x := range t.routes[key] {
		served[x.id] = x.group
	}
	for _, a := range u.auths {
		// The auth service is a target as a Mapping's service is: within
		// the namespace unless the target namespace grants it.
		if r := a.Target; r != nil && !r.External && !t.grantAllows(r.Target.Namespace, ns) {
			problems[a.annotation] = append(problems[a.annotation], annotations.Problem{Pos: a.pos("external.service"), Path: fmt.Sprintf("Auth %q.external.service", a.Name),
				Message: fmt.Sprintf("service %q is in namespace %q, which does not allow routes from namespace %q; an auth service is reached as a Mapping's service is (the %s annotation of the target Namespace)", r.Target.Host, r.Target.Namespace, ns, annotations.GrantKey)})
		}
	}
	for _, uh := range u.hosts {
		// A certificate is attached only by the namespace that owns the
		// host; a Host claims it as an exact Mapping does (a wildcard Host
		// claims the wildcard name itself).
		h := uh.h
		if a := t.hostAllow[ns]; !a.allows(h.Hostname) {
			problems[uh.src] = append(problems[uh.src], annotations.Problem{Pos: h.FieldPos("hostname"), Path: fmt.Sprintf("Host %q.hostname", h.Name), Message: a.refusal(ns, h.Hostname)})
		}
		if owner, ok := t.mayServe(h.Hostname, ns); !ok {
			problems[uh.src] = append(problems[uh.src], annotations.Problem{Pos: h.FieldPos("hostname"), Path: fmt.Sprintf("Host %q.hostname", h.Name), Message: fmt.Sprintf("host %q belongs to namespace %q (claimed first by Service %s); only it and the namespaces it delegates to (the %s annotation of Namespace %q) may attach a certificate to it", h.Hostname, owner.namespace, owner.service, DelegateKey, owner.namespace)})
		}
		if !slices.Contains(c.hosts, h.Hostname) {
			c.hosts = append(c.hosts, h.Hostname)
		}
	}
	for i := range u.routes {
		ur := &u.routes[i]
		m := ur.m
		add := func(field, msg string) {
			problems[ur.src] = append(problems[ur.src], annotations.Problem{Pos: m.FieldPos(field), Path: mappingPath(m.Name, field), Message: msg})
		}
		if r := ur.route.Value; r.Redirect == nil && !r.External {
			if to := r.Target.Namespace; !t.grantAllows(to, ns) {
				msg := fmt.Sprintf("service %q is in namespace %q, which does not allow routes from namespace %q; a Mapping routes within its own namespace unless the target Namespace lists it in its %s annotation", m.Service, to, ns, annotations.GrantKey)
				if !t.known[to] && strings.Count(r.Target.Host, ".") == 1 {
					msg += fmt.Sprintf(" (no namespace %q is known; if %q is a host outside the cluster, it %s)", to, r.Target.Host, opts.externalFlag())
				}
				add("service", msg)
			}
		}
		if a := t.hostAllow[ns]; a != nil {
			if h := m.RouteHost(); h == "" || m.RouteHostRegex() {
				add(hostField(m), a.refusal(ns, ""))
			} else if !a.allows(h) {
				add(hostField(m), a.refusal(ns, h))
			}
		}
		if h, exact := m.ExactHost(); exact {
			if owner, ok := t.mayServe(h, ns); !ok {
				add(hostField(m), fmt.Sprintf("host %q belongs to namespace %q (claimed first by Service %s); only its routes and those of namespaces it delegates to (the %s annotation of Namespace %q) may serve it", h, owner.namespace, owner.service, DelegateKey, owner.namespace))
			}
			c.hosts = append(c.hosts, h)
		} else {
			p := claimKey{host: m.RouteHost(), kind: ur.route.Kind, path: m.Prefix}
			if holders := t.paths[p]; len(holders) > 0 && holders[0].namespace != ns {
				add("prefix", fmt.Sprintf("host %q and %s %q are already routed by namespace %q", hostOrAny(p.host), p.kind, m.Prefix, holders[0].namespace))
			}
			c.paths = append(c.paths, p)
		}
		x := reachOf(&ur.route, ur.group)
		if g, ok := served[x.id]; !ok || g != x.group {
			for _, msg := range t.reachProblems(&x) {
				add(reachField(m, msg), msg)
			}
		}
		c.routes = append(c.routes, x)
		if m.Weight != nil {
			if groupWeights == nil {
				groupWeights = map[string]int{}
			}
			groupWeights[ur.group] += *m.Weight
			total := t.weights[ur.group] - t.own[key][ur.group] + groupWeights[ur.group]
			if total > 100 {
				add("weight", fmt.Sprintf("the weights of this canary group add up to %d%%; at most 100%% is possible", total))
			}
		}
	}
	return c, groupWeights, problems
}

// reachField is where a problem of reach belongs.
func reachField(m *annotations.Mapping, msg string) string {
	if strings.HasPrefix(msg, "precedence") {
		return "precedence"
	}
	return hostField(m)
}

// hostField is the field a Mapping's host came from.
func hostField(m *annotations.Mapping) string {
	if m.Hostname != "" {
		return "hostname"
	}
	return "host"
}

func hostOrAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// sortedHosts lists owned hosts in order, for tests and dumps.
func (t *tenancy) sortedHosts() []string { return slices.Sorted(maps.Keys(t.hosts)) }

// isKnown reports whether namespace ns exists, as far as the input says.
func (t *tenancy) isKnown(ns string) bool { return t.known[ns] }
