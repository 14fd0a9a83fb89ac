package webhook

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"

	admissionv1 "k8s.io/api/admission/v1"
)

// BenchmarkReview is one admission review of a Service with 50 Mappings
// while 5,000 routes (100 Services × 50) exist in the snapshot it is checked
// against: the work `kubectl apply` waits for.
func BenchmarkReview(b *testing.B) {
	mappings := func(svc string, n int) string {
		var sb strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&sb, "kind: Mapping\nname: m%d\nhost: %s.example.com\nprefix: /api/v%d/\nservice: %s\nheaders:\n  x-tenant: t%d\n---\n", i, svc, i, svc, i)
		}
		return sb.String()
	}
	var services []*corev1.Service
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("svc%d", i)
		services = append(services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", i%10), Name: name,
				Annotations: map[string]string{annotations.Key: mappings(name, 50)}},
		})
	}
	builder := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{}), snapshot.Options{})
	snap, _, err := builder.Build(snapshot.Input{Services: services})
	if err != nil || snap.Table.Len() != 5000 {
		b.Fatalf("setup: %v, %d routes", err, snap.Table.Len())
	}
	h := New(Options{Checker: func() Checker { return snap }})
	body := reviewBody(b, admissionv1.Create, "Service", serviceJSON(b, mappings("users", 50)), nil)
	b.ReportAllocs()
	for b.Loop() {
		w, resp := post(h, body, "application/json")
		if w.Code != 200 || resp == nil || !resp.Allowed {
			b.Fatalf("review: %d %+v", w.Code, resp)
		}
	}
}
