package kube

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

const ourKey = "gatehouse.dev/config"

func testSource() *Source { return New(Config{Keys: []string{ourKey}}) }

func service(rv string, annotations map[string]string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Name: "web", Namespace: "shop", ResourceVersion: rv, Annotations: annotations,
		UID: "uid-1", Labels: map[string]string{"app": "web"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "http", Port: p})
	}
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.ClusterIP = "10.96.0.10"
	return svc
}

func slice(rv, svcName string, addrs ...string) *discoveryv1.EndpointSlice {
	port := int32(8080)
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-abc", Namespace: "shop", ResourceVersion: rv,
			Labels:          map[string]string{serviceNameLabel: svcName, "endpointslice.kubernetes.io/managed-by": "x"},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "now"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
			OwnerReferences: []metav1.OwnerReference{{Name: svcName}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{a},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-1"},
		})
	}
	return es
}

func TestTrim(t *testing.T) {
	s := testSource()
	lastApplied := "kubectl.kubernetes.io/last-applied-configuration"

	// Annotated: identity, what resolving a target reads (ports, selector,
	// type, cluster IPs, externalName) and our annotations; nothing else.
	annotated := service("1", map[string]string{ourKey: "kind: Mapping", lastApplied: "{...}"}, 80)
	got, _ := s.trim(annotated)
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "uid-1", ResourceVersion: "1",
			Annotations: map[string]string{ourKey: "kind: Mapping"}},
		Spec: corev1.ServiceSpec{Ports: annotated.Spec.Ports, Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("annotated Service trimmed to\n%+v\nwant\n%+v", got, want)
	}
	if again, _ := s.trim(got); !reflect.DeepEqual(again, want) {
		t.Errorf("trim is not idempotent for annotated Services: %+v", again)
	}

	// Not annotated: a possible route target, so its ports and identity stay.
	plain := service("2", map[string]string{lastApplied: "{...}"}, 80, 443)
	plain.CreationTimestamp = metav1.Unix(1700000000, 0)
	got, _ = s.trim(plain)
	want = &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", ResourceVersion: "2", CreationTimestamp: metav1.Unix(1700000000, 0)},
		Spec:       corev1.ServiceSpec{Ports: plain.Spec.Ports, Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plain Service trimmed to\n%+v\nwant\n%+v", got, want)
	}
	again, _ := s.trim(got)
	if !reflect.DeepEqual(again, want) {
		t.Errorf("trim is not idempotent: %+v", again)
	}

	got, _ = s.trim(slice("3", "web", "10.0.0.1"))
	port := int32(8080)
	wantSlice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "shop", ResourceVersion: "3", Labels: map[string]string{serviceNameLabel: "web", "endpointslice.kubernetes.io/managed-by": "x"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
	}
	if !reflect.DeepEqual(got, wantSlice) {
		t.Errorf("slice trimmed to\n%+v\nwant\n%+v", got, wantSlice)
	}

	// Namespaces: name, resourceVersion and the grant, delegation and
	// allowed hosts, nothing else.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finance", ResourceVersion: "4", UID: "u",
		Labels: map[string]string{"team": "f"},
		Annotations: map[string]string{"gatehouse.dev/allow-routes-from": "shop", lastApplied: "{...}",
			"gatehouse.dev/delegate-hosts-to": "pay", "gatehouse.dev/allowed-hosts": "*.finance.example.com"}}}
	gotNS, _ := trimNamespace(ns)
	wantNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finance", UID: "u", ResourceVersion: "4",
		Annotations: map[string]string{"gatehouse.dev/allow-routes-from": "shop",
			"gatehouse.dev/delegate-hosts-to": "pay", "gatehouse.dev/allowed-hosts": "*.finance.example.com"}}}
	if !reflect.DeepEqual(gotNS, wantNS) {
		t.Errorf("namespace trimmed to %+v, want %+v", gotNS, wantNS)
	}
	if again, _ := trimNamespace(gotNS); !reflect.DeepEqual(again, wantNS) {
		t.Errorf("trimNamespace is not idempotent: %+v", again)
	}
	plainNS, _ := trimNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "b"}}})
	if got := plainNS.(*corev1.Namespace); got.Annotations != nil || got.Labels != nil || namespaceConfig(got) != "" {
		t.Errorf("namespace without a grant trimmed to %+v", got)
	}

	tomb := cache.DeletedFinalStateUnknown{Key: "shop/web"}
	if got, _ := s.trim(tomb); got != tomb {
		t.Errorf("tombstone changed: %+v", got)
	}
}

func TestServiceChanged(t *testing.T) {
	s := testSource()
	ann := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	labelled := service("2", ann(ourKey, "a"), 80)
	labelled.Labels["team"] = "blue"
	cases := []struct {
		name     string
		old, cur *corev1.Service
		want     bool
	}{
		{"same resourceVersion (resync, relist)", service("1", ann(ourKey, "a"), 80), service("1", ann(ourKey, "b"), 80), false},
		{"label only", service("1", ann(ourKey, "a"), 80), labelled, false},
		{"foreign annotation only", service("1", ann(ourKey, "a"), 80), service("2", ann(ourKey, "a", "x", "y"), 80), false},
		{"our annotation edited", service("1", ann(ourKey, "a"), 80), service("2", ann(ourKey, "b"), 80), true},
		{"our annotation added", service("1", nil, 80), service("2", ann(ourKey, "a"), 80), true},
		{"our annotation removed", service("1", ann(ourKey, "a"), 80), service("2", ann("x", "y"), 80), true},
		{"port added", service("1", nil, 80), service("2", nil, 80, 443), true},
		{"port changed", service("1", nil, 80), service("2", nil, 81), true},
	}
	for _, c := range cases {
		if got := s.serviceChanged(c.old, c.cur); got != c.want {
			t.Errorf("%s: changed = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSliceChanged(t *testing.T) {
	notReady := slice("2", "web", "10.0.0.1")
	f := false
	notReady.Endpoints[0].Conditions.Ready = &f
	relabelled := slice("2", "web", "10.0.0.1")
	relabelled.Labels["extra"] = "x"
	cases := []struct {
		name     string
		old, cur *discoveryv1.EndpointSlice
		want     bool
	}{
		{"same resourceVersion", slice("1", "web", "10.0.0.1"), slice("1", "web", "10.0.0.2"), false},
		{"other labels only", slice("1", "web", "10.0.0.1"), relabelled, false},
		{"endpoint added", slice("1", "web", "10.0.0.1"), slice("2", "web", "10.0.0.1", "10.0.0.2"), true},
		{"endpoint not ready", slice("1", "web", "10.0.0.1"), notReady, true},
		{"moved to another Service", slice("1", "web", "10.0.0.1"), slice("2", "api", "10.0.0.1"), true},
	}
	for _, c := range cases {
		if got := sliceChanged(c.old, c.cur); got != c.want {
			t.Errorf("%s: changed = %v, want %v", c.name, got, c.want)
		}
	}
}
