package proxy

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// TestAPIKeyRoute is an API key Auth and a per-consumer RateLimit through
// the handler: who gets through, what the upstream is told, what it is
// not, and the RateLimit fields.
func TestAPIKeyRoute(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Write([]byte(r.URL.RawQuery))
	}))
	defer up.Close()
	cfg := `kind: Mapping
name: app
prefix: /
service: app
auth: keys
rate_limits: [per-consumer]
---
kind: Auth
name: keys
api_key:
  secrets: [partners]
---
kind: RateLimit
name: per-consumer
rate: 2
unit: minute
key: consumer
`
	snap := compileKeys(t, cfg, up.Listener.Addr().String(), map[string]string{"alice": "key-alice", "bob": "key-bob"})
	consumers := metrics.NewConsumers(nil)
	h := New(Options{Guard: loopbackGuard(t), Consumers: consumers})
	h.Publish(snap)

	if w := serve(h, "GET", "/x"); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no key: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := serve(h, "GET", "/x", "X-Api-Key", "key-mallory"); w.Code != 401 {
		t.Errorf("unknown key: %d", w.Code)
	}
	got = nil
	w := serve(h, "GET", "/x", "X-Api-Key", "key-alice", "X-Gatehouse-Consumer", "bob")
	if w.Code != 200 || got.Get("X-Gatehouse-Consumer") != "alice" || got.Get("X-Api-Key") != "" {
		t.Errorf("alice: %d, upstream consumer %q, key forwarded %q", w.Code, got.Get("X-Gatehouse-Consumer"), got.Get("X-Api-Key"))
	}
	if w.Header().Get("RateLimit-Policy") != `"t/per-consumer";q=2;w=60` || w.Header().Get("RateLimit") != `"t/per-consumer";r=1;t=30` {
		t.Errorf("RateLimit fields: %q %q", w.Header().Get("RateLimit-Policy"), w.Header().Get("RateLimit"))
	}
	serve(h, "GET", "/x", "X-Api-Key", "key-alice")
	if w := serve(h, "GET", "/x", "X-Api-Key", "key-alice"); w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Errorf("alice's third: %d", w.Code)
	}
	if w := serve(h, "GET", "/x", "X-Api-Key", "key-bob"); w.Code != 200 {
		t.Errorf("bob, after alice ran out: %d", w.Code)
	}
	// Without auth, a client's consumer header never reaches an upstream.
	got = nil
	plain := compile(t, "kind: Mapping\nname: open\nprefix: /\nservice: app\n", up.Listener.Addr().String())
	h2 := New(Options{Guard: loopbackGuard(t)})
	h2.Publish(plain)
	if w := serve(h2, "GET", "/x", "X-Gatehouse-Consumer", "root"); w.Code != 200 || got.Get("X-Gatehouse-Consumer") != "" {
		t.Errorf("an unauthenticated route passed a client's consumer header: %q", got.Get("X-Gatehouse-Consumer"))
	}
	usage, _ := json.Marshal(consumers.Usage())
	if want := `[{"namespace":"t","consumer":"alice","requests":3,"status_classes":{"2xx":2,"4xx":1},"response_bytes":20},{"namespace":"t","consumer":"bob","requests":1,"status_classes":{"2xx":1},"response_bytes":0}]`; string(usage) != want {
		t.Errorf("usage: %s\nwant   %s", usage, want)
	}
}

// compileKeys is compile with an api-keys Secret "partners" holding keys
// (consumer → key).
func compileKeys(t *testing.T, config, endpoint string, keys map[string]string) *snapshot.Snapshot {
	t.Helper()
	hasher, err := auth.NewKeyHasher()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{}
	for consumer, key := range keys {
		data[consumer] = []byte(key)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app", Annotations: map[string]string{annotations.Key: config}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	host, port, _ := net.SplitHostPort(endpoint)
	p, _ := strconv.Atoi(port)
	p32, name := int32(p), "http"
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app-0", Labels: map[string]string{"kubernetes.io/service-name": "app"}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p32}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}}}}
	secret := snapshot.TrimSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "partners"}, Type: snapshot.SecretTypeAPIKeys, Data: data}, hasher.Sum)
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{Guard: loopbackGuard(t)}), snapshot.Options{KeyHasher: hasher})
	snap, reports := b.Build(snapshot.Input{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{slice}, Secrets: []*corev1.Secret{secret}})
	for _, r := range reports {
		if r.Rejected || r.AuthSecrets {
			t.Fatalf("report: %+v", r)
		}
	}
	return snap
}
