package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

func tlsSecret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name}, Type: corev1.SecretTypeTLS, Data: data}
}

// TestUpstreamTLS: an https:// upstream is verified by the name the
// Mapping gives (here the Service's DNS name, app.t.svc) against its CA
// Secret, fails closed with the wrong CA or a missing Secret, and gets the
// client certificate of client_secret when it asks for one.
func TestUpstreamTLS(t *testing.T) {
	serverCA, clientCA, otherCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA"), testpki.NewCA(t, "other CA")
	certPEM, keyPEM := serverCA.Server(t, "app.t.svc")
	serverCert := testpki.KeyPair(t, certPEM, keyPEM)
	clientPool := testpki.Pool(clientCA)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over TLS")
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool}
	up.StartTLS()
	defer up.Close()
	mtls := httptest.NewUnstartedServer(up.Config.Handler)
	mtls.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	mtls.StartTLS()
	defer mtls.Close()
	clientCert, clientKey := clientCA.Client(t, "gateway")
	secrets := []*corev1.Secret{
		tlsSecret("ca", map[string][]byte{"ca.crt": serverCA.PEM}),
		tlsSecret("wrong-ca", map[string][]byte{"ca.crt": otherCA.PEM}),
		tlsSecret("client", map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey}),
	}
	for _, tc := range []struct {
		name, tls string
		mtls      bool
		want      int
	}{
		{"the right CA", "upstream_tls: {ca_secret: ca}\n", false, 200},
		{"the wrong CA", "upstream_tls: {ca_secret: wrong-ca}\n", false, 502},
		{"a missing Secret", "upstream_tls: {ca_secret: nowhere}\n", false, 502},
		{"the system roots", "", false, 502},
		{"the wrong name", "upstream_tls: {ca_secret: ca, sni: other.example}\n", false, 502},
		{"mTLS with the client certificate", "upstream_tls: {ca_secret: ca, client_secret: client}\n", true, 200},
		{"mTLS without one", "upstream_tls: {ca_secret: ca}\n", true, 502},
	} {
		target := up
		if tc.mtls {
			target = mtls
		}
		h := New(Options{Guard: loopbackGuard(t)})
		h.Publish(buildWithSecrets(t, "kind: Mapping\nname: m\nprefix: /\nservice: https://app\n"+tc.tls, target.Listener.Addr().String(), secrets))
		if w := serve(h, "GET", "/x"); w.Code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, w.Code, w.Body.String(), tc.want)
		}
	}
}

// buildWithSecrets is compile with Secrets in the Input.
func buildWithSecrets(t *testing.T, config, endpoint string, secrets []*corev1.Secret) *snapshot.Snapshot {
	t.Helper()
	host, port, _ := net.SplitHostPort(endpoint)
	p, _ := strconv.Atoi(port)
	p32, name := int32(p), "https"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app", Annotations: map[string]string{annotations.Key: config}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app-0", Labels: map[string]string{"kubernetes.io/service-name": "app"}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p32}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}}}}
	ups := upstream.NewRegistry(upstream.RegistryOptions{Guard: loopbackGuard(t)})
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), ups, snapshot.Options{})
	s, reports := b.Build(snapshot.Input{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{slice}, Secrets: secrets})
	for _, r := range reports {
		if r.Rejected {
			t.Fatalf("config rejected: %v", r.Problems)
		}
	}
	return s
}
