package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"

	admissionv1 "k8s.io/api/admission/v1"
)

// reviewFixture is a snapshot with 5,000 routes (100 Services × 50 Mappings,
// in 10 namespaces) and the body of a review of a Service with 50 more.
func reviewFixture(b *testing.B) (*snapshot.Snapshot, []byte) {
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
	snap, _ := builder.Build(snapshot.Input{Services: services})
	if snap.Table.Len() != 5000 {
		b.Fatalf("setup: %d routes", snap.Table.Len())
	}
	return snap, reviewBody(b, admissionv1.Create, "Service", serviceJSON(b, mappings("users", 50)), nil)
}

// BenchmarkReview is one admission review of a Service with 50 Mappings
// while 5,000 routes exist in the snapshot it is checked against: the work
// `kubectl apply` waits for, without the network.
func BenchmarkReview(b *testing.B) {
	snap, body := reviewFixture(b)
	h := New(Options{Reviewer: func() Reviewer { return snap }})
	b.ReportAllocs()
	for b.Loop() {
		w, resp := post(h, body, "application/json")
		if w.Code != 200 || resp == nil || !resp.Allowed {
			b.Fatalf("review: %d %+v", w.Code, resp)
		}
	}
}

// BenchmarkReviewTLS is the same review as the API server makes it: POSTed
// over a kept-alive TLS connection to Serve on loopback. It reports the
// median and the 99th percentile of the individual reviews (p50-ms,
// p99-ms), since a webhook's tail is what `kubectl apply` feels.
func BenchmarkReviewTLS(b *testing.B) {
	snap, body := reviewFixture(b)
	cert, pool := selfSigned(b)
	h := New(Options{Reviewer: func() Reviewer { return snap }})
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, h, ServeOptions{
			Addr:           "127.0.0.1:0",
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
			OnListen:       func(a string) { addr <- a },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	url := "https://" + <-addr + Path
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	var took []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var out admissionv1.AdmissionReview
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		took = append(took, time.Since(start))
		if err != nil || out.Response == nil || !out.Response.Allowed {
			b.Fatalf("review: %v %+v", err, out.Response)
		}
	}
	slices.Sort(took)
	at := func(q float64) float64 {
		return float64(took[min(len(took)-1, int(q*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(b *testing.B) (*tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
