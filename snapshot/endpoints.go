package snapshot

// This file resolves a route's target Service to the "ip:port" endpoints the
// proxy dials, from EndpointSlices, and decides which slices and addresses
// to trust. EndpointSlices are written by the EndpointSlice controller for
// Services with a selector, and by anyone who may write them in a namespace
// (tenants) for Services without one. A tenant's slice can name any address
// at all, so without rules it would let a route reach the gateway's own
// admin port, the cloud's metadata service, or another namespace's Pods
// without that namespace's grant:
//
//   - A Service with a selector takes endpoints only from slices the
//     controller manages. The controller also deletes slices that carry its
//     label without being its own, so a forged label does not last.
//   - A Service without a selector takes tenant slices, but each address must
//     be an IP literal of the slice's addressType, pass the DialGuard (no
//     loopback, link-local, metadata, unspecified or multicast addresses, and
//     never the gateway's own listeners), and must not belong to another
//     namespace: a Pod IP in a controller-managed slice of another namespace's
//     Service, or another namespace's cluster IP.
//   - FQDN slices are never used: a name can be made to resolve anywhere, at
//     any time, and the text of a name says nothing about where. Hosts
//     outside the cluster go through ExternalName Services and the platform's
//     external-upstream policy instead (externalNameTarget).
//
// What fails a rule is left out, never fatal, and reported (DroppedEndpoint)
// so the owner can be told in a Warning Event.

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// serviceNameLabel links an EndpointSlice to its Service.
const serviceNameLabel = "kubernetes.io/service-name"

// managedByLabel and sliceController mark the slices the EndpointSlice
// controller writes: the only ones a Service with a selector trusts.
const (
	managedByLabel  = "endpointslice.kubernetes.io/managed-by"
	sliceController = "endpointslice-controller.k8s.io"
)

// maxDropped bounds what one target reports: a slice of a thousand bad
// addresses is one problem, and its report must not cost like a thousand.
const maxDropped = 10

// DroppedEndpoint is an address of an EndpointSlice, or a whole slice, that
// resolving a route's target left out, and why. Reasons never name another
// namespace: they are meant for the Warning Events the target's owner reads.
type DroppedEndpoint struct {
	Service string // the target Service, "namespace/name"
	Slice   string // the EndpointSlice's name; "" for a summary of further drops
	Address string // the address as written; "" when the whole slice was left out
	Reason  string
}

func (d DroppedEndpoint) String() string {
	switch {
	case d.Slice == "":
		return d.Reason
	case d.Address == "":
		return fmt.Sprintf("EndpointSlice %q left out: %s", d.Slice, d.Reason)
	}
	return fmt.Sprintf("EndpointSlice %q: address %q left out: %s", d.Slice, d.Address, d.Reason)
}

// Reasons for leaving a slice or an address out.
const (
	reasonUnmanaged = "the Service has a selector, so its endpoints come from the EndpointSlice controller only, and this slice is not labelled " +
		managedByLabel + ": " + sliceController
	reasonFQDN = "FQDN endpoints are never used: a name can resolve anywhere, the gateway's own network included; " +
		"point an ExternalName Service at a host the platform's external-upstream policy allows instead"
	reasonForeign = "the address belongs to another namespace; a route reaches another namespace only through that namespace's Service, with its " +
		annotations.GrantKey + " grant"
)

// slicesByService groups EndpointSlices by the "namespace/name" of the
// Service they belong to, so resolving one target reads its own slices
// instead of scanning every slice in the cluster (which made a rebuild
// quadratic in the number of Services: 4 s at 10,000).
func slicesByService(slices []*discoveryv1.EndpointSlice) map[serviceName][]*discoveryv1.EndpointSlice {
	out := make(map[serviceName][]*discoveryv1.EndpointSlice, len(slices))
	for _, s := range slices {
		name := s.Labels[serviceNameLabel]
		if name == "" {
			continue
		}
		key := serviceName{s.Namespace, name}
		out[key] = append(out[key], s)
	}
	return out
}

// serviceName keys a map by namespace and name without building a string.
type serviceName struct{ namespace, name string }

// resolvedFrom is what a target's endpoints were last resolved from. The
// informers' caches replace an object on every change and never modify one,
// so the same pointers mean the same endpoints and resolving can be skipped:
// a round in which one of thousands of Services changed then costs a map
// lookup per target instead of formatting every address again.
//
// For a Service without a selector, which addresses belong to other
// namespaces changes with other Services and slices, so that one rule is
// applied every round to the cached resolution; excluded is what it left
// out last time, so an unchanged verdict costs no SetEndpoints.
type resolvedFrom struct {
	svc      *corev1.Service
	slices   []*discoveryv1.EndpointSlice
	res      resolution
	applied  bool  // the upstream has res's endpoints (less excluded)
	excluded []int // indexes into res.candidates another namespace holds
}

func (r resolvedFrom) same(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) bool {
	if r.svc != svc || len(r.slices) != len(slices) {
		return false
	}
	for i := range slices {
		if r.slices[i] != slices[i] {
			return false
		}
	}
	return true
}

// resolveTargets sets the endpoints of every target's upstream (targets maps
// upstream IDs to targets) and forgets what it knew of other upstreams. It
// returns what the resolution of current targets left out, sorted by
// Service, slice and address, each drop once, for Warning Events.
func (b *Builder) resolveTargets(targets map[string]annotations.ServiceRef, services map[string]*corev1.Service, all []*discoveryv1.EndpointSlice) []DroppedEndpoint {
	bySvc := slicesByService(all)
	guard := b.upstreams.Guard()
	var dropped []DroppedEndpoint
	tenants := 0
	for id, ref := range targets {
		svc, own := services[ref.Namespace+"/"+ref.Name], bySvc[serviceName{ref.Namespace, ref.Name}]
		if host, ok := externalNameTarget(svc); ok {
			// An ExternalName Service is a host outside the cluster by
			// another name: the same policy decides. It is judged every
			// round, since its type can change without the annotation.
			var eps []string
			if b.opts.allowsExternal(host) {
				eps = []string{net.JoinHostPort(host, strconv.Itoa(ref.Port))}
			} else {
				dropped = append(dropped, DroppedEndpoint{Service: ref.Namespace + "/" + ref.Name, Reason: fmt.Sprintf("ExternalName %q is a host outside the cluster, which %s", host, b.opts.externalFlag())})
			}
			b.upstreams.Get(id).SetEndpoints(eps)
			delete(b.resolved, id)
			continue
		}
		from, ok := b.resolved[id]
		if !ok || svc == nil || !from.same(svc, own) {
			from = resolvedFrom{svc: svc, slices: own, res: resolve(guard, svc, ref.Port, own)}
			b.resolved[id] = from
		}
		if from.res.tenant {
			tenants++ // judged below, once every candidate is known
			continue
		}
		if !from.applied {
			b.upstreams.Get(id).SetEndpoints(from.res.endpoints)
			from.applied = true
			b.resolved[id] = from
		}
		dropped = append(dropped, from.res.report(nil)...)
	}
	if tenants > 0 {
		// Only the candidates' owners matter: indexing every Pod IP of the
		// cluster each round would cost far more than these few lookups.
		// Without claims at all (file mode) there is nothing to look up.
		var idx foreignIndex
		if anyClaims(services, all) {
			want := map[netip.Addr]bool{}
			for id := range targets {
				if res := b.resolved[id].res; res.tenant {
					for _, c := range res.candidates {
						want[c.ap.Addr()] = true
					}
				}
			}
			idx = buildForeignIndex(services, all, want)
		}
		for id := range targets {
			from := b.resolved[id]
			if !from.res.tenant {
				continue
			}
			ns := from.svc.Namespace
			var excluded []int
			var foreign []DroppedEndpoint
			for i, c := range from.res.candidates {
				if idx.foreign(c.ap.Addr(), ns) {
					excluded = append(excluded, i)
					foreign = append(foreign, from.res.dropEntry(c.slice, c.raw, reasonForeign))
				}
			}
			if !from.applied || !slices.Equal(excluded, from.excluded) {
				b.upstreams.Get(id).SetEndpoints(from.res.endpointsWithout(excluded))
				from.excluded, from.applied = excluded, true
				b.resolved[id] = from
			}
			dropped = append(dropped, from.res.report(foreign)...)
		}
	}
	for id := range b.resolved {
		if _, ok := targets[id]; !ok {
			delete(b.resolved, id)
		}
	}
	// Several upstreams (ports) of one Service see the same bad slices.
	slices.SortFunc(dropped, func(a, b DroppedEndpoint) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Slice, b.Slice),
			strings.Compare(a.Address, b.Address), strings.Compare(a.Reason, b.Reason))
	})
	return slices.Compact(dropped)
}

// resolveEndpoints returns the ready "ip:port" addresses behind port of svc
// that the default DialGuard allows; own are the Service's slices (see
// slicesByService). It knows no other namespace, so it cannot refuse their
// addresses: resolveTargets, which sees every slice, does.
func resolveEndpoints(svc *corev1.Service, port int, own []*discoveryv1.EndpointSlice) []string {
	return resolve(nil, svc, port, own).endpoints
}

// resolution is what one target's own Service and slices say, before the
// namespace rule: the endpoints that passed every other rule and what was
// left out.
type resolution struct {
	service    string      // "namespace/name", for reports
	candidates []candidate // sorted by address, each address once
	endpoints  []string    // candidates formatted, for SetEndpoints
	dropped    []DroppedEndpoint
	more       int // drops beyond maxDropped, not kept

	// tenant is true for a Service without a selector: its candidates must
	// also not belong to another namespace.
	tenant bool
}

// candidate is an endpoint that passed the rules of its own slice.
type candidate struct {
	ap         netip.AddrPort
	slice, raw string // where it came from, for reports
}

func (res *resolution) dropEntry(slice, addr, reason string) DroppedEndpoint {
	return DroppedEndpoint{Service: res.service, Slice: slice, Address: addr, Reason: reason}
}

func (res *resolution) drop(slice, addr, reason string) {
	if len(res.dropped) < maxDropped {
		res.dropped = append(res.dropped, res.dropEntry(slice, addr, reason))
		return
	}
	res.more++
}

// report is what the resolution left out, with extra drops (the namespace
// rule's) added, at most maxDropped of them and a count of the rest.
func (res *resolution) report(extra []DroppedEndpoint) []DroppedEndpoint {
	if len(extra) == 0 && res.more == 0 {
		return res.dropped
	}
	out := append(slices.Clip(res.dropped), extra...)
	more := res.more
	if len(out) > maxDropped {
		more += len(out) - maxDropped
		out = out[:maxDropped]
	}
	if more > 0 {
		out = append(out, DroppedEndpoint{Service: res.service, Reason: fmt.Sprintf("%d more endpoints left out", more)})
	}
	return out
}

// endpointsWithout returns the endpoints but those at the given indexes
// (ascending).
func (res *resolution) endpointsWithout(excluded []int) []string {
	if len(excluded) == 0 {
		return res.endpoints
	}
	out := make([]string, 0, len(res.endpoints)-len(excluded))
	for i, e := range res.endpoints {
		if len(excluded) > 0 && excluded[0] == i {
			excluded = excluded[1:]
			continue
		}
		out = append(out, e)
	}
	return out
}

// resolve returns the ready endpoints behind port of svc, checked against
// guard (nil: DialGuard's defaults) and every rule but the namespace one.
// The Service port maps to an endpoint port by name (Kubernetes names
// endpoint ports after Service ports), else by number: the numeric
// targetPort, or the port itself when targetPort is unset.
func resolve(guard *upstream.DialGuard, svc *corev1.Service, port int, own []*discoveryv1.EndpointSlice) resolution {
	var res resolution
	// An ExternalName Service has a name, not endpoints: externalNameTarget.
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return res
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
			break
		}
	}
	if sp == nil {
		return res
	}
	wantNumber := int32(sp.Port)
	if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
		wantNumber = sp.TargetPort.IntVal
	}
	res.service = svc.Namespace + "/" + svc.Name
	res.tenant = len(svc.Spec.Selector) == 0
	for _, s := range own {
		if !res.tenant && !controllerManaged(s) {
			res.drop(s.Name, "", reasonUnmanaged)
			continue
		}
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		case "":
			// The API server requires an addressType; manifest files (file
			// mode) often leave it out. The address must still be an IP.
		case discoveryv1.AddressTypeFQDN:
			res.drop(s.Name, "", reasonFQDN)
			continue
		default:
			res.drop(s.Name, "", fmt.Sprintf("unknown addressType %q", s.AddressType))
			continue
		}
		number, ok := slicePort(s, sp.Name, wantNumber)
		if !ok {
			continue
		}
		if number < 1 || number > 65535 {
			res.drop(s.Name, "", fmt.Sprintf("port %d is not a TCP port", number))
			continue
		}
		for _, ep := range s.Endpoints {
			// A nil Ready means unknown, which the API says to treat as ready.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// All addresses of one endpoint are the same backend; one is
			// enough, and it is the one kube-proxy uses.
			raw := ep.Addresses[0]
			a, err := endpointAddr(s.AddressType, raw)
			if err == nil {
				err = guard.Check(netip.AddrPortFrom(a, uint16(number)))
			}
			if err != nil {
				var fe *upstream.ForbiddenError
				if errors.As(err, &fe) {
					err = errors.New(fe.Reason) // the address is in the report already
				}
				res.drop(s.Name, raw, err.Error())
				continue
			}
			res.candidates = append(res.candidates, candidate{ap: netip.AddrPortFrom(a, uint16(number)), slice: s.Name, raw: raw})
		}
	}
	if len(res.candidates) == 0 {
		return res
	}
	// Sorted and unique by their text, as Upstream.SetEndpoints keeps them,
	// so candidates and endpoints share indexes.
	res.endpoints = make([]string, len(res.candidates))
	for i, c := range res.candidates {
		res.endpoints[i] = c.ap.String()
	}
	sort.Sort(byEndpoint{res.endpoints, res.candidates})
	n := 0
	for i := range res.endpoints {
		if i > 0 && res.endpoints[i] == res.endpoints[n-1] {
			continue
		}
		res.endpoints[n], res.candidates[n] = res.endpoints[i], res.candidates[i]
		n++
	}
	res.endpoints, res.candidates = res.endpoints[:n], res.candidates[:n]
	return res
}

// byEndpoint sorts candidates along with their formatted endpoints.
type byEndpoint struct {
	eps []string
	cs  []candidate
}

func (b byEndpoint) Len() int           { return len(b.eps) }
func (b byEndpoint) Less(i, j int) bool { return b.eps[i] < b.eps[j] }
func (b byEndpoint) Swap(i, j int) {
	b.eps[i], b.eps[j] = b.eps[j], b.eps[i]
	b.cs[i], b.cs[j] = b.cs[j], b.cs[i]
}

// endpointAddr parses an endpoint address of a slice with addressType t:
// an IP literal of that family, without a zone (a zone names an interface
// of one machine), and not IPv4-mapped (which would hide an IPv4 address in
// an IPv6 slice).
func endpointAddr(t discoveryv1.AddressType, raw string) (netip.Addr, error) {
	a, err := netip.ParseAddr(raw)
	switch {
	case err != nil || a.Zone() != "":
		return netip.Addr{}, errors.New("not an IP address")
	case a.Is4In6():
		return netip.Addr{}, errors.New("IPv4-mapped IPv6 addresses are not endpoints; write the IPv4 address in an IPv4 slice")
	case t == discoveryv1.AddressTypeIPv4 && !a.Is4():
		return netip.Addr{}, errors.New("not an IPv4 address, as the slice's addressType says it must be")
	case t == discoveryv1.AddressTypeIPv6 && !a.Is6():
		return netip.Addr{}, errors.New("not an IPv6 address, as the slice's addressType says it must be")
	}
	return a, nil
}

func controllerManaged(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[managedByLabel] == sliceController
}

// foreignIndex says which namespace an address belongs to: the Pod IPs of
// controller-managed slices of Services with a selector, and the cluster IPs
// of Services. Slices that carry the controller's label for a Service without
// a selector, or for no Service, are not the controller's (it manages neither
// and leaves such forgeries alone), so they claim nothing: otherwise a tenant
// could claim another namespace's hand-managed addresses and take its routes
// down. Readiness does not matter: a Pod that is not ready is still another
// namespace's.
//
// It knows only what the gateway watches: Pods behind no Service, and
// namespaces outside --namespace, are unknown to it.
type foreignIndex map[netip.Addr]addrOwner

type addrOwner struct {
	namespace string
	shared    bool // more than one namespace (hostNetwork Pods share their node's IP)
}

// foreign reports whether a belongs to a namespace other than ns.
func (idx foreignIndex) foreign(a netip.Addr, ns string) bool {
	o, ok := idx[a]
	return ok && (o.shared || o.namespace != ns)
}

// anyClaims reports whether buildForeignIndex could find any owner at all.
func anyClaims(services map[string]*corev1.Service, all []*discoveryv1.EndpointSlice) bool {
	for _, s := range all {
		if controllerManaged(s) {
			return true
		}
	}
	for _, svc := range services {
		if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.ClusterIPs) > 0 {
			return true
		}
	}
	return false
}

// buildForeignIndex indexes the owners of the addresses in want, the only
// ones asked about.
func buildForeignIndex(services map[string]*corev1.Service, all []*discoveryv1.EndpointSlice, want map[netip.Addr]bool) foreignIndex {
	idx := foreignIndex{}
	add := func(raw, ns string) {
		if raw == "" || raw == corev1.ClusterIPNone {
			return // most Services: skip the error ParseAddr would allocate
		}
		a, err := netip.ParseAddr(raw)
		if err != nil {
			return // not an address: nothing to claim
		}
		a = a.Unmap().WithZone("")
		if !want[a] {
			return
		}
		if o, ok := idx[a]; ok {
			if o.namespace != ns {
				idx[a] = addrOwner{namespace: o.namespace, shared: true}
			}
			return
		}
		idx[a] = addrOwner{namespace: ns}
	}
	for _, svc := range services {
		add(svc.Spec.ClusterIP, svc.Namespace)
		for _, ip := range svc.Spec.ClusterIPs {
			add(ip, svc.Namespace)
		}
	}
	for _, s := range all {
		if !controllerManaged(s) || s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		if svc := services[s.Namespace+"/"+s.Labels[serviceNameLabel]]; svc == nil || len(svc.Spec.Selector) == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			for _, raw := range ep.Addresses {
				add(raw, s.Namespace)
			}
		}
	}
	return idx
}

// externalNameTarget returns the host an ExternalName Service points at, in
// upstream.CanonicalHost's form (lower case, no trailing dot; an address
// unmapped), and false when svc is not an ExternalName Service or its
// externalName is not a host. Whether the host may be reached is the
// platform's external-upstream policy's to say (upstream.ExternalPolicy),
// and the dial is checked again on the address it resolves to.
func externalNameTarget(svc *corev1.Service) (host string, ok bool) {
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeExternalName {
		return "", false
	}
	host, err := upstream.CanonicalHost(svc.Spec.ExternalName)
	if err != nil {
		return "", false
	}
	return host, true
}

func slicePort(s *discoveryv1.EndpointSlice, name string, number int32) (int32, bool) {
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		if p.Name != nil && *p.Name == name && name != "" {
			return *p.Port, true
		}
	}
	for _, p := range s.Ports {
		if p.Port != nil && *p.Port == number {
			return *p.Port, true
		}
	}
	// A single unnamed port is the common case for one-port Services.
	if len(s.Ports) == 1 && s.Ports[0].Port != nil && (s.Ports[0].Name == nil || *s.Ports[0].Name == "") && name == "" {
		return *s.Ports[0].Port, true
	}
	return 0, false
}
