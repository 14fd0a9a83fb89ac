package snapshot

import (
	"fmt"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchInput is n annotated Services, one Mapping each, with one endpoint
// apiece, as the latency tool creates them.
func benchInput(n int) Input {
	var in Input
	ready := true
	port := int32(8080)
	name := "http"
	for i := range n {
		svc := service("default", fmt.Sprintf("svc-%d", i), mapping(fmt.Sprintf("svc-%d", i), fmt.Sprintf("/svc-%d/", i), fmt.Sprintf("svc-%d", i)))
		in.Services = append(in.Services, svc)
		in.Slices = append(in.Slices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc.Name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		})
	}
	return in
}

// BenchmarkRebuildOneChange is the work of one apply-to-serve round: n
// Services are known and one of them changed its annotation.
func BenchmarkRebuildOneChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			bl := newBuilder()
			in := benchInput(n)
			bl.Build(in)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				svc := in.Services[i%n].DeepCopy()
				svc.Annotations = map[string]string{"gatehouse.dev/config": mapping(svc.Name, fmt.Sprintf("/%s-v%d/", svc.Name, i), svc.Name)}
				in.Services[i%n] = svc
				bl.Build(in)
			}
		})
	}
}

// BenchmarkBuildFresh is the baseline for BenchmarkRebuildOneChange: the
// same n Services built by a new Builder, so every annotation is parsed and
// every route compiled, as a gateway does at start-up.
func BenchmarkBuildFresh(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			in := benchInput(n)
			b.ReportAllocs()
			for b.Loop() {
				newBuilder().Build(in)
			}
		})
	}
}
