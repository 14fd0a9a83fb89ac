package snapshot

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// targetSvc is a Service with one port 80 → 8080 named "http"; selector
// nil makes it one whose endpoints tenants manage.
func targetSvc(ns, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

// epSlice is an EndpointSlice of Service ns/svc with port "http" 8080;
// managed says whether it carries the EndpointSlice controller's label.
func epSlice(ns, name, svc string, managed bool, t discoveryv1.AddressType, addrs ...string) *discoveryv1.EndpointSlice {
	port, pname := int32(8080), "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{serviceNameLabel: svc}},
		AddressType: t,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port}},
	}
	if managed {
		s.Labels[managedByLabel] = sliceController
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return s
}

// resolveRound runs one resolveTargets round of b for target ns/name:80
// over all, returning its endpoints and the dropped report.
func resolveRound(b *Builder, ns, name string, services []*corev1.Service, all []*discoveryv1.EndpointSlice) ([]string, []DroppedEndpoint) {
	byKey := map[string]*corev1.Service{}
	for _, s := range services {
		byKey[s.Namespace+"/"+s.Name] = s
	}
	id := ns + "/" + name + ":80"
	dropped := b.resolveTargets(map[string]annotations.ServiceRef{id: {Namespace: ns, Name: name, Port: 80}}, byKey, all)
	return b.upstreams.Get(id).Endpoints(), dropped
}

func endpointsBuilder(guard *upstream.DialGuard) *Builder {
	return NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{Guard: guard}), Options{})
}

// droppedString prints a report one drop a line, as "slice address: reason".
func droppedString(ds []DroppedEndpoint) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s %s %s: %s\n", d.Service, d.Slice, d.Address, d.Reason)
	}
	return b.String()
}

func TestSelectorServiceTrustsControllerSlicesOnly(t *testing.T) {
	web := targetSvc("shop", "web", map[string]string{"app": "web"})
	all := []*discoveryv1.EndpointSlice{
		epSlice("shop", "web-abcde", "web", true, discoveryv1.AddressTypeIPv4, "10.0.0.1", "10.0.0.2"),
		// A tenant adds its own slice to a Service the controller manages.
		epSlice("shop", "web-extra", "web", false, discoveryv1.AddressTypeIPv4, "10.9.0.66"),
	}
	eps, dropped := resolveRound(endpointsBuilder(nil), "shop", "web", []*corev1.Service{web}, all)
	if want := []string{"10.0.0.1:8080", "10.0.0.2:8080"}; !slices.Equal(eps, want) {
		t.Errorf("endpoints %q, want %q", eps, want)
	}
	if len(dropped) != 1 || dropped[0].Slice != "web-extra" || dropped[0].Address != "" || dropped[0].Reason != reasonUnmanaged {
		t.Errorf("dropped:\n%s", droppedString(dropped))
	}
	// The controller's slices still pass the address rules.
	all = []*discoveryv1.EndpointSlice{epSlice("shop", "web-abcde", "web", true, discoveryv1.AddressTypeIPv4, "10.0.0.1", "169.254.169.254")}
	if eps, _ := resolveRound(endpointsBuilder(nil), "shop", "web", []*corev1.Service{web}, all); !slices.Equal(eps, []string{"10.0.0.1:8080"}) {
		t.Errorf("endpoints %q", eps)
	}
}

func TestSelectorlessServiceChecksEveryAddress(t *testing.T) {
	ext := targetSvc("shop", "legacy", nil)
	services := []*corev1.Service{
		ext,
		targetSvc("shop", "web", map[string]string{"app": "web"}),
		targetSvc("bank", "ledger", map[string]string{"app": "ledger"}),
	}
	services[2].Spec.ClusterIP, services[2].Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10", "fd00:96::10"}
	all := []*discoveryv1.EndpointSlice{
		epSlice("shop", "web-abcde", "web", true, discoveryv1.AddressTypeIPv4, "10.2.0.7"),
		epSlice("bank", "ledger-abcde", "ledger", true, discoveryv1.AddressTypeIPv4, "10.1.0.5"),
		epSlice("shop", "legacy-v4", "legacy", false, discoveryv1.AddressTypeIPv4,
			"192.168.5.5",     // a VM outside the cluster: the point of a selector-less Service
			"10.2.0.7",        // a Pod of this namespace
			"127.0.0.1",       // the gateway's own machine
			"169.254.169.254", // cloud metadata
			"0.0.0.0",
			"224.0.0.1",
			"10.1.0.5",        // a Pod of namespace bank
			"10.96.0.10",      // bank's Service, past its grant
			"fd00::1",         // not IPv4
			"::ffff:10.0.0.9", // IPv4 in disguise
			"db.example.com",  // not an IP literal
			"010.0.0.1",       // not canonical
		),
		epSlice("shop", "legacy-v6", "legacy", false, discoveryv1.AddressTypeIPv6,
			"fd00::1", "10.0.0.1", "fe80::1%eth0", "fd00:ec2::254", "fd00:96::10", "::1"),
	}
	// One slice a round: each has more bad addresses than a report holds.
	eps, dropped := resolveRound(endpointsBuilder(nil), "shop", "legacy", services, all[:3])
	if want := []string{"10.2.0.7:8080", "192.168.5.5:8080"}; !slices.Equal(eps, want) {
		t.Errorf("endpoints %q, want %q", eps, want)
	}
	eps, dropped6 := resolveRound(endpointsBuilder(nil), "shop", "legacy", services, append(all[:2:2], all[3]))
	if want := []string{"[fd00::1]:8080"}; !slices.Equal(eps, want) {
		t.Errorf("endpoints %q, want %q", eps, want)
	}
	dropped = append(dropped, dropped6...)
	reasons := map[string]string{}
	for _, d := range dropped {
		if d.Service != "shop/legacy" {
			t.Errorf("drop reported against %q", d.Service)
		}
		reasons[d.Slice+" "+d.Address] = d.Reason
	}
	for _, c := range [][2]string{
		{"legacy-v4 127.0.0.1", "loopback"},
		{"legacy-v4 169.254.169.254", "link-local"},
		{"legacy-v4 0.0.0.0", "unspecified"},
		{"legacy-v4 224.0.0.1", "multicast"},
		{"legacy-v4 10.1.0.5", "another namespace"},
		{"legacy-v4 10.96.0.10", "another namespace"},
		{"legacy-v4 fd00::1", "not an IPv4 address"},
		{"legacy-v4 ::ffff:10.0.0.9", "IPv4-mapped"},
		{"legacy-v4 db.example.com", "not an IP address"},
		{"legacy-v4 010.0.0.1", "not an IP address"},
		{"legacy-v6 10.0.0.1", "not an IPv6 address"},
		{"legacy-v6 fe80::1%eth0", "not an IP address"},
		{"legacy-v6 fd00:ec2::254", "metadata"},
		{"legacy-v6 fd00:96::10", "another namespace"},
		{"legacy-v6 ::1", "loopback"},
	} {
		if r, ok := reasons[c[0]]; !ok || !strings.Contains(r, c[1]) {
			t.Errorf("%s: reason %q, want one mentioning %q", c[0], r, c[1])
		}
		delete(reasons, c[0])
	}
	if len(reasons) > 0 {
		t.Errorf("unexpected drops: %v", reasons)
	}
	for _, d := range dropped {
		if strings.Contains(d.String(), "bank") {
			t.Errorf("a report names the namespace an address belongs to: %s", d)
		}
	}
}

func TestFQDNSlicesAreNeverUsed(t *testing.T) {
	for _, selector := range []map[string]string{nil, {"app": "web"}} {
		svc := targetSvc("shop", "web", selector)
		all := []*discoveryv1.EndpointSlice{
			epSlice("shop", "web-fqdn", "web", selector != nil, discoveryv1.AddressTypeFQDN, "localhost", "api.example.com"),
		}
		eps, dropped := resolveRound(endpointsBuilder(nil), "shop", "web", []*corev1.Service{svc}, all)
		if len(eps) != 0 {
			t.Errorf("selector %v: endpoints %q from an FQDN slice", selector, eps)
		}
		if len(dropped) != 1 || dropped[0].Slice != "web-fqdn" || dropped[0].Reason != reasonFQDN {
			t.Errorf("selector %v: dropped:\n%s", selector, droppedString(dropped))
		}
	}
}

func TestForgedControllerLabelClaimsNothing(t *testing.T) {
	victim := targetSvc("victim", "vm", nil)
	// A selector-less Service's slice with the controller's label is not the
	// controller's: it must not make the victim's hand-managed address
	// "another namespace's".
	forger := targetSvc("evil", "claim", nil)
	all := []*discoveryv1.EndpointSlice{
		epSlice("victim", "vm-1", "vm", false, discoveryv1.AddressTypeIPv4, "192.168.5.5"),
		epSlice("evil", "claim-1", "claim", true, discoveryv1.AddressTypeIPv4, "192.168.5.5", "127.0.0.1"),
		epSlice("evil", "orphan-1", "no-such-service", true, discoveryv1.AddressTypeIPv4, "192.168.5.5"),
	}
	services := []*corev1.Service{victim, forger}
	if eps, dropped := resolveRound(endpointsBuilder(nil), "victim", "vm", services, all); !slices.Equal(eps, []string{"192.168.5.5:8080"}) {
		t.Errorf("victim lost its endpoint to a forged label: %q\n%s", eps, droppedString(dropped))
	}
	// And the forger's own label buys it nothing: its addresses are checked.
	if eps, _ := resolveRound(endpointsBuilder(nil), "evil", "claim", services, all); !slices.Equal(eps, []string{"192.168.5.5:8080"}) {
		t.Errorf("forger endpoints %q", eps)
	}
}

func TestSharedAddressBelongsToNoTenant(t *testing.T) {
	// hostNetwork Pods of two namespaces share their node's IP; a third
	// namespace, or either of the two, cannot claim it by hand.
	services := []*corev1.Service{
		targetSvc("mon", "exporter", map[string]string{"app": "x"}),
		targetSvc("net", "agent", map[string]string{"app": "y"}),
		targetSvc("mon", "byhand", nil),
	}
	all := []*discoveryv1.EndpointSlice{
		epSlice("mon", "exporter-1", "exporter", true, discoveryv1.AddressTypeIPv4, "10.0.0.100"),
		epSlice("net", "agent-1", "agent", true, discoveryv1.AddressTypeIPv4, "10.0.0.100"),
		epSlice("mon", "byhand-1", "byhand", false, discoveryv1.AddressTypeIPv4, "10.0.0.100"),
	}
	if eps, _ := resolveRound(endpointsBuilder(nil), "mon", "byhand", services, all); len(eps) != 0 {
		t.Errorf("endpoints %q", eps)
	}
	// The controller's own slices are not second-guessed.
	if eps, _ := resolveRound(endpointsBuilder(nil), "mon", "exporter", services, all); !slices.Equal(eps, []string{"10.0.0.100:8080"}) {
		t.Errorf("endpoints %q", eps)
	}
}

func TestResolveTargetsNoticesAddressesChangingNamespace(t *testing.T) {
	b := endpointsBuilder(nil)
	legacy, ledger := targetSvc("shop", "legacy", nil), targetSvc("bank", "ledger", map[string]string{"app": "ledger"})
	mine := epSlice("shop", "legacy-1", "legacy", false, discoveryv1.AddressTypeIPv4, "10.1.0.5")
	services := []*corev1.Service{legacy, ledger}

	eps, _ := resolveRound(b, "shop", "legacy", services, []*discoveryv1.EndpointSlice{mine})
	if !slices.Equal(eps, []string{"10.1.0.5:8080"}) {
		t.Fatalf("round 1: %q", eps)
	}
	// Same Service, same slice pointers; the address now belongs to a Pod
	// of bank. Skipping the unchanged target would keep the route to it.
	theirs := epSlice("bank", "ledger-1", "ledger", true, discoveryv1.AddressTypeIPv4, "10.1.0.5")
	eps, dropped := resolveRound(b, "shop", "legacy", services, []*discoveryv1.EndpointSlice{mine, theirs})
	if len(eps) != 0 || len(dropped) != 1 || dropped[0].Reason != reasonForeign {
		t.Fatalf("round 2: endpoints %q, dropped:\n%s", eps, droppedString(dropped))
	}
	// Unchanged again: the report stands while the drop does.
	if _, dropped = resolveRound(b, "shop", "legacy", services, []*discoveryv1.EndpointSlice{mine, theirs}); len(dropped) != 1 {
		t.Errorf("round 3 forgot the drop:\n%s", droppedString(dropped))
	}
	eps, dropped = resolveRound(b, "shop", "legacy", services, []*discoveryv1.EndpointSlice{mine})
	if !slices.Equal(eps, []string{"10.1.0.5:8080"}) || len(dropped) != 0 {
		t.Errorf("round 4: endpoints %q, dropped:\n%s", eps, droppedString(dropped))
	}
}

func TestResolveTargetsReportsEachDropOnce(t *testing.T) {
	svc := targetSvc("shop", "web", nil)
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "alt", Port: 81})
	bad := epSlice("shop", "web-1", "web", false, discoveryv1.AddressTypeFQDN, "x.example.com")
	alt, altName := int32(8081), "alt"
	bad.Ports = append(bad.Ports, discoveryv1.EndpointPort{Name: &altName, Port: &alt})
	b := endpointsBuilder(nil)
	targets := map[string]annotations.ServiceRef{
		"shop/web:80": {Namespace: "shop", Name: "web", Port: 80},
		"shop/web:81": {Namespace: "shop", Name: "web", Port: 81},
	}
	dropped := b.resolveTargets(targets, map[string]*corev1.Service{"shop/web": svc}, []*discoveryv1.EndpointSlice{bad})
	if len(dropped) != 1 {
		t.Errorf("dropped:\n%s", droppedString(dropped))
	}
}

func TestResolveUsesTheRegistryGuard(t *testing.T) {
	guard, err := upstream.NewDialGuard(upstream.GuardOptions{
		AllowLoopback: true,
		Self:          []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8877")},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := targetSvc("demo", "app", nil)
	admin := epSlice("demo", "app-1", "app", false, "", "127.0.0.1", "127.0.0.2")
	*admin.Ports[0].Port = 8877
	local := epSlice("demo", "app-2", "app", false, "", "127.0.0.1")

	eps, dropped := resolveRound(endpointsBuilder(guard), "demo", "app", []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{admin, local})
	if !slices.Equal(eps, []string{"127.0.0.1:8080"}) {
		t.Errorf("endpoints %q, want the loopback upstream only", eps)
	}
	if len(dropped) != 2 || !strings.Contains(dropped[0].Reason, "own listeners") {
		t.Errorf("dropped:\n%s", droppedString(dropped))
	}
	// Without the guard (nil registry guard): defaults, no loopback at all.
	if eps, _ := resolveRound(endpointsBuilder(nil), "demo", "app", []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{local}); len(eps) != 0 {
		t.Errorf("default guard let %q through", eps)
	}
}

func TestDropReportIsBounded(t *testing.T) {
	var addrs []string
	for i := range 1000 {
		addrs = append(addrs, fmt.Sprintf("127.0.%d.%d", i/250, i%250+1))
	}
	svc := targetSvc("shop", "web", nil)
	_, dropped := resolveRound(endpointsBuilder(nil), "shop", "web", []*corev1.Service{svc},
		[]*discoveryv1.EndpointSlice{epSlice("shop", "web-1", "web", false, discoveryv1.AddressTypeIPv4, addrs...)})
	if len(dropped) != maxDropped+1 || dropped[0].String() != "990 more endpoints left out" {
		t.Errorf("%d drops reported; first %q", len(dropped), dropped[0])
	}
}

func TestSlicePortRange(t *testing.T) {
	svc := targetSvc("shop", "web", nil)
	s := epSlice("shop", "web-1", "web", false, discoveryv1.AddressTypeIPv4, "10.0.0.1")
	*s.Ports[0].Port = 70000
	eps, dropped := resolveRound(endpointsBuilder(nil), "shop", "web", []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{s})
	if len(eps) != 0 || len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "not a TCP port") {
		t.Errorf("endpoints %q, dropped:\n%s", eps, droppedString(dropped))
	}
}

func TestExternalNameTarget(t *testing.T) {
	ext := func(name string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: name}}
	}
	for _, c := range []struct {
		svc  *corev1.Service
		want string // "" means not ok
	}{
		{ext("API.Example.com."), "api.example.com"},
		{ext("localhost"), "localhost"}, // a host; whether it may be reached is the policy's call
		{ext("203.0.113.7"), "203.0.113.7"},
		{ext(""), ""},
		{ext("api.example.com:443"), ""},
		{ext("http://api.example.com"), ""},
		{ext("127.1"), ""},
		{targetSvc("a", "b", nil), ""},
		{nil, ""},
	} {
		host, ok := externalNameTarget(c.svc)
		if host != c.want || ok != (c.want != "") {
			t.Errorf("externalNameTarget(%v) = %q, %v; want %q", c.svc, host, ok, c.want)
		}
	}
	// An ExternalName Service has no endpoints of its own, whatever slices say.
	svc := ext("api.example.com")
	svc.Namespace, svc.Name, svc.Spec.Ports = "shop", "stripe", []corev1.ServicePort{{Name: "http", Port: 80}}
	s := epSlice("shop", "stripe-1", "stripe", false, discoveryv1.AddressTypeIPv4, "10.0.0.1")
	if eps, _ := resolveRound(endpointsBuilder(nil), "shop", "stripe", []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{s}); len(eps) != 0 {
		t.Errorf("ExternalName Service resolved to %q", eps)
	}
}

// BenchmarkResolveTargetsUnchanged is a round in which nothing about the
// targets changed: n selector-less targets, whose cached verdicts are
// rechecked against an index of n other namespaces' Pods.
func BenchmarkResolveTargetsUnchanged(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			services := map[string]*corev1.Service{}
			targets := map[string]annotations.ServiceRef{}
			var all []*discoveryv1.EndpointSlice
			for i := range n {
				name := fmt.Sprintf("svc-%d", i)
				services["t/"+name] = targetSvc("t", name, nil)
				targets["t/"+name+":80"] = annotations.ServiceRef{Namespace: "t", Name: name, Port: 80}
				all = append(all, epSlice("t", name+"-1", name, false, discoveryv1.AddressTypeIPv4, fmt.Sprintf("192.168.%d.%d", i/250, i%250+1)))
				other := targetSvc("o", name, map[string]string{"app": name})
				other.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
				services["o/"+name] = other
				all = append(all, epSlice("o", name+"-1", name, true, discoveryv1.AddressTypeIPv4, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)))
			}
			bl := endpointsBuilder(nil)
			bl.resolveTargets(targets, services, all)
			b.ReportAllocs()
			for b.Loop() {
				bl.resolveTargets(targets, services, all)
			}
		})
	}
}
