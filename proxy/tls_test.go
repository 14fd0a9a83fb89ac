package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// testCA is a CA that signs the certificates a test needs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf for dnsName (a server) or, with client, a client
// certificate; it returns the PEM certificate and key.
func (ca *testCA) issue(t *testing.T, dnsName string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: dnsName},
		DNSNames: []string{dnsName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func tlsSecret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name}, Type: corev1.SecretTypeTLS, Data: data}
}

// TestUpstreamTLS: an https:// upstream is verified by the name the
// Mapping gives (here the Service's DNS name, app.t.svc) against its CA
// Secret, fails closed with the wrong CA or a missing Secret, and gets the
// client certificate of client_secret when it asks for one.
func TestUpstreamTLS(t *testing.T) {
	serverCA, clientCA, otherCA := newCA(t), newCA(t), newCA(t)
	certPEM, keyPEM := serverCA.issue(t, "app.t.svc", false)
	serverCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.cert)
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
	clientCert, clientKey := clientCA.issue(t, "gateway", true)
	secrets := []*corev1.Secret{
		tlsSecret("ca", map[string][]byte{"ca.crt": serverCA.pem}),
		tlsSecret("wrong-ca", map[string][]byte{"ca.crt": otherCA.pem}),
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
