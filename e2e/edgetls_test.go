package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// Namespaces of TestEdgeTLS: two teams with their own hosts and Secrets.
const (
	etShop = "et-shop" // shop.example.com (redirects plain HTTP, HSTS) and api.example.com (mTLS)
	etBlog = "et-blog" // blog.example.com (serves plain HTTP too)
)

// tlsClient reaches the gateway's TLS listener at addr for host, trusting
// pool, over HTTP/2 or HTTP/1.1 only; cert, when set, is the client's.
func tlsClient(addr, host string, pool *x509.CertPool, h2 bool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{ServerName: host, RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// httpsReply is what one HTTPS request saw.
type httpsReply struct {
	reply
	proto int    // HTTP major version
	leaf  string // SHA-256 of the certificate the gateway presented
}

func httpsGet(c *http.Client, host, path string) (httpsReply, error) {
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		return httpsReply{}, err
	}
	defer resp.Body.Close()
	out := httpsReply{reply: readReply(resp), proto: resp.ProtoMajor}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		out.leaf = fingerprint(resp.TLS.PeerCertificates[0])
	}
	return out, nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func pemFingerprint(t *testing.T, certPEM, keyPEM []byte) string {
	t.Helper()
	kp := testpki.KeyPair(t, certPEM, keyPEM)
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return fingerprint(leaf)
}

// setTLSSecret creates or replaces Secret ns/name of type kubernetes.io/tls.
func (e *kubeEnv) setTLSSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS, Data: data}
	if _, ok := data[corev1.TLSCertKey]; !ok {
		data[corev1.TLSCertKey] = []byte{}
	}
	if _, ok := data[corev1.TLSPrivateKeyKey]; !ok {
		data[corev1.TLSPrivateKeyKey] = []byte{}
	}
	_, err := e.admin.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = e.admin.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("setting Secret %s/%s: %v", ns, name, err)
	}
}

// TestEdgeTLS serves three hosts of two namespaces over HTTPS from their
// own Secrets on a real API server, and checks SNI, HTTP/2 and HTTP/1.1,
// plain-HTTP handling, ownership (admission and the gateway), a bad
// Secret, rotation under load and client certificates.
func TestEdgeTLS(t *testing.T) {
	env := startKubeEnv(t)
	kubectl := requireTool(t, "kubectl")
	curl := requireTool(t, "curl")
	ctx := context.Background()
	podA, podB := env.pods[0], env.pods[1]
	adminKubeconfig := filepath.Join(env.dir, "kubeconfig")
	for _, ns := range []string{etShop, etBlog} {
		if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ca := testpki.NewCA(t, "edge CA")
	clientCA := testpki.NewCA(t, "client CA")
	pool := testpki.Pool(ca)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, caFile, string(ca.PEM))

	shopCert, shopKey := ca.Server(t, "shop.example.com")
	apiCert, apiKey := ca.Server(t, "api.example.com")
	blogCert, blogKey := ca.Server(t, "blog.example.com")
	env.setTLSSecret(t, etShop, "shop-tls", map[string][]byte{"tls.crt": shopCert, "tls.key": shopKey})
	env.setTLSSecret(t, etShop, "api-tls", map[string][]byte{"tls.crt": apiCert, "tls.key": apiKey})
	env.setTLSSecret(t, etShop, "clients", map[string][]byte{"ca.crt": clientCA.PEM})
	env.setTLSSecret(t, etBlog, "blog-tls", map[string][]byte{"tls.crt": blogCert, "tls.key": blogKey})
	// A Secret of another type in the same namespace is never read.
	if _, err := env.admin.CoreV1().Secrets(etBlog).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, StringData: map[string]string{"tls.crt": string(blogCert)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	g := startAdmittingGateway(t, env, []string{etShop, etBlog}, "--listen-tls", "127.0.0.1:0")
	apply, mustApply := kubectlApply(t, kubectl, adminKubeconfig)
	mustApply(serviceManifest(etShop, "shop", `kind: Mapping
name: shop
host: shop.example.com
prefix: /orders/
service: shop
---
kind: Host
name: shop
hostname: shop.example.com
tls_secret: shop-tls
hsts:
  max_age: 31536000
  include_subdomains: true
`))
	mustApply(serviceManifest(etShop, "api", `kind: Mapping
name: api
host: api.example.com
prefix: /
service: api
---
kind: Host
name: api
hostname: api.example.com
tls_secret: api-tls
client_ca_secret: clients
`))
	mustApply(serviceManifest(etBlog, "blog", `kind: Mapping
name: blog
host: blog.example.com
prefix: /
service: blog
---
kind: Host
name: blog
hostname: blog.example.com
tls_secret: blog-tls
insecure: route
`))
	env.setEndpointsIn(t, etShop, "shop", podA)
	env.setEndpointsIn(t, etShop, "api", podA)
	env.setEndpointsIn(t, etBlog, "blog", podB)

	_, tlsPort, _ := net.SplitHostPort(g.tls)
	clientPair := func() *tls.Certificate {
		c, k := clientCA.Client(t, "spiffe-less.client.example")
		kp := testpki.KeyPair(t, c, k)
		return &kp
	}()
	hosts := []struct {
		host, path string
		pod        pod
		leaf       string
		client     *tls.Certificate
	}{
		{"shop.example.com", "/orders/1", podA, pemFingerprint(t, shopCert, shopKey), nil},
		{"api.example.com", "/v1/x", podA, pemFingerprint(t, apiCert, apiKey), clientPair},
		{"blog.example.com", "/post", podB, pemFingerprint(t, blogCert, blogKey), nil},
	}
	for _, h := range hosts {
		waitFor(t, h.host+" is served over HTTPS", 30*time.Second, func() bool {
			r, err := httpsGet(tlsClient(g.tls, h.host, pool, true, h.client), h.host, h.path)
			return err == nil && r.status == 200
		})
	}

	t.Run("SNI picks each host's certificate, over HTTP/2 and HTTP/1.1", func(t *testing.T) {
		for _, h := range hosts {
			for _, h2 := range []bool{true, false} {
				r, err := httpsGet(tlsClient(g.tls, h.host, pool, h2, h.client), h.host, h.path)
				want := map[bool]int{true: 2, false: 1}[h2]
				if err != nil || r.status != 200 || r.echo.Service != h.pod.name || r.proto != want || r.leaf != h.leaf {
					t.Errorf("%s (HTTP/%d): %d from %q over HTTP/%d, certificate %.12s (%v); want 200 from %s with %.12s", h.host, want, r.status, r.echo.Service, r.proto, r.leaf, err, h.pod.name, h.leaf)
				}
				if r.echo.XForwardedProto != "https" {
					t.Errorf("%s: X-Forwarded-Proto %q, want https", h.host, r.echo.XForwardedProto)
				}
			}
		}
		// curl, as people check a gateway.
		for _, h := range hosts {
			if h.client != nil {
				continue
			}
			for _, flag := range []string{"--http2", "--http1.1"} {
				out, err := exec.Command(curl, "-s", "--max-time", "10", flag, "--cacert", caFile,
					"--resolve", h.host+":"+tlsPort+":127.0.0.1", "-w", "\n%{http_code} %{http_version}",
					"https://"+h.host+":"+tlsPort+h.path).CombinedOutput()
				want := map[string]string{"--http2": "200 2", "--http1.1": "200 1.1"}[flag]
				if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), want) || !answeredBy(string(out), h.pod.name) {
					t.Errorf("curl %s https://%s%s: %v\n%s\nwant %q from %s", flag, h.host, h.path, err, out, want, h.pod.name)
				}
			}
		}
		// No Host for the name and no default certificate: no handshake.
		if _, err := tls.Dial("tcp", g.tls, &tls.Config{ServerName: "unknown.example.com", RootCAs: pool}); err == nil {
			t.Errorf("a handshake for a name without a certificate succeeded")
		}
	})

	t.Run("plain HTTP: redirected where configured, served where not", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", g.base+"/orders/1?x=1", nil)
		req.Host = "shop.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://shop.example.com:" + tlsPort + "/orders/1?x=1"; resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("plain GET shop.example.com: %d Location %q; want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if r, err := fetchHost(g.base, "blog.example.com", "/post"); err != nil || r.status != 200 || r.echo.Service != podB.name {
			t.Errorf("plain GET blog.example.com (insecure: route): %d %v", r.status, err)
		}
		r, err := httpsGet(tlsClient(g.tls, "shop.example.com", pool, true, nil), "shop.example.com", "/orders/1")
		if err != nil || r.header.Get("Strict-Transport-Security") != "max-age=31536000; includeSubDomains" {
			t.Errorf("HSTS over HTTPS: %q (%v)", r.header.Get("Strict-Transport-Security"), err)
		}
	})

	t.Run("mTLS: no certificate refused, a verified one served and logged", func(t *testing.T) {
		if _, err := httpsGet(tlsClient(g.tls, "api.example.com", pool, true, nil), "api.example.com", "/v1/x"); err == nil {
			t.Errorf("api.example.com without a client certificate was served")
		}
		other := testpki.NewCA(t, "someone else's CA")
		oc, ok := other.Client(t, "intruder")
		kp := testpki.KeyPair(t, oc, ok)
		if _, err := httpsGet(tlsClient(g.tls, "api.example.com", pool, true, &kp), "api.example.com", "/v1/x"); err == nil {
			t.Errorf("api.example.com with a certificate of another CA was served")
		}
		// A connection made for shop (no client certificate asked) cannot
		// carry a request for api.
		c := tlsClient(g.tls, "shop.example.com", pool, false, nil)
		req, _ := http.NewRequest("GET", "https://shop.example.com/v1/x", nil)
		req.Host = "api.example.com"
		if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("api.example.com on shop's connection: %v %v, want 421", resp, err)
		} else {
			resp.Body.Close()
		}
		r, err := httpsGet(tlsClient(g.tls, "api.example.com", pool, true, clientPair), "api.example.com", "/v1/x")
		if err != nil || r.status != 200 {
			t.Fatalf("api.example.com with a client certificate: %d %v", r.status, err)
		}
		g.eventually("the access log names the client certificate", func() bool {
			return strings.Contains(g.log(), `"client_cert":"spiffe-less.client.example"`)
		})
	})

	t.Run("another namespace cannot attach a certificate to an owned host", func(t *testing.T) {
		evilCert, evilKey := ca.Server(t, "shop.example.com")
		env.setTLSSecret(t, etBlog, "stolen", map[string][]byte{"tls.crt": evilCert, "tls.key": evilKey})
		takeover := `kind: Host
name: shop
hostname: shop.example.com
tls_secret: stolen
`
		out, err := apply(serviceManifest(etBlog, "takeover", takeover))
		if err == nil || !strings.Contains(out, `namespace "`+etShop+`"`) {
			t.Fatalf("kubectl apply of a Host for shop.example.com from %s: %v\n%s\nwant a denial naming %s", etBlog, err, out, etShop)
		}
		t.Logf("kubectl printed: %s", strings.TrimSpace(out))
		if err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "gatehouse", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the takeover is admitted without the webhook", 20*time.Second, func() bool {
			_, err := apply(serviceManifest(etBlog, "takeover", takeover))
			return err == nil
		})
		waitFor(t, "the gateway rejects the takeover (Warning Event)", 20*time.Second, func() bool {
			for _, e := range eventsIn(t, env, etBlog, "takeover", "InvalidConfig") {
				if strings.Contains(e.Message, `namespace "`+etShop+`"`) {
					return true
				}
			}
			return false
		})
		for range 20 {
			r, err := httpsGet(tlsClient(g.tls, "shop.example.com", pool, true, nil), "shop.example.com", "/orders/1")
			if err != nil || r.leaf != hosts[0].leaf || r.echo.Service != podA.name {
				t.Fatalf("shop.example.com after the takeover: certificate %.12s from %q (%v); want the owner's %.12s", r.leaf, r.echo.Service, err, hosts[0].leaf)
			}
		}
	})

	t.Run("a bad Secret keeps the last good certificate, other hosts unaffected", func(t *testing.T) {
		// A certificate with someone else's key.
		otherCert, _ := ca.Server(t, "shop.example.com")
		env.setTLSSecret(t, etShop, "shop-tls", map[string][]byte{"tls.crt": otherCert, "tls.key": shopKey})
		waitFor(t, "a CertificateNotServed Warning on et-shop/shop", 20*time.Second, func() bool {
			for _, e := range eventsIn(t, env, etShop, "shop", "CertificateNotServed") {
				if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "last good certificate") {
					t.Logf("Event: %s", e.Message)
					return true
				}
			}
			return false
		})
		for _, h := range hosts {
			r, err := httpsGet(tlsClient(g.tls, h.host, pool, true, h.client), h.host, h.path)
			if err != nil || r.status != 200 || r.leaf != h.leaf {
				t.Errorf("%s after shop's Secret broke: %d, certificate %.12s (%v); want 200 with %.12s", h.host, r.status, r.leaf, err, h.leaf)
			}
		}
		// Garbage that is not PEM at all.
		env.setTLSSecret(t, etShop, "shop-tls", map[string][]byte{"tls.crt": []byte("not a certificate"), "tls.key": []byte("nor a key")})
		waitFor(t, "a second Warning for the garbage", 20*time.Second, func() bool {
			return len(eventsIn(t, env, etShop, "shop", "CertificateNotServed")) >= 2
		})
		if r, err := httpsGet(tlsClient(g.tls, "shop.example.com", pool, true, nil), "shop.example.com", "/orders/1"); err != nil || r.leaf != hosts[0].leaf {
			t.Errorf("shop.example.com with a garbage Secret: certificate %.12s (%v), want the last good %.12s", r.leaf, err, hosts[0].leaf)
		}
	})

	t.Run("rotation under load: no failed handshake or request", func(t *testing.T) {
		env.setTLSSecret(t, etShop, "shop-tls", map[string][]byte{"tls.crt": shopCert, "tls.key": shopKey})
		old := hosts[0].leaf
		var ok, failed, renewed atomic.Int64
		var firstErr atomic.Pointer[error]
		stop := make(chan struct{})
		var newLeaf atomic.Pointer[string]
		var wg sync.WaitGroup
		// Half the clients open a connection per request (every request
		// is a handshake), half keep theirs.
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keep := i%2 == 0
				c := tlsClient(g.tls, "shop.example.com", pool, i%4 < 2, nil)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if !keep {
						c = tlsClient(g.tls, "shop.example.com", pool, i%4 < 2, nil)
					}
					r, err := httpsGet(c, "shop.example.com", "/orders/1")
					if err == nil && r.status != 200 {
						err = fmt.Errorf("status %d", r.status)
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					} else {
						ok.Add(1)
						if nl := newLeaf.Load(); nl != nil && r.leaf == *nl {
							renewed.Add(1)
						}
					}
					if !keep {
						c.CloseIdleConnections()
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		waitFor(t, "load is flowing with the original certificate", 20*time.Second, func() bool { return ok.Load() > 1000 })
		newCert, newKey := ca.Server(t, "shop.example.com")
		nl := pemFingerprint(t, newCert, newKey)
		newLeaf.Store(&nl)
		start := time.Now()
		env.setTLSSecret(t, etShop, "shop-tls", map[string][]byte{"tls.crt": newCert, "tls.key": newKey})
		var latency time.Duration
		waitFor(t, "new connections get the renewed certificate", 20*time.Second, func() bool {
			r, err := httpsGet(tlsClient(g.tls, "shop.example.com", pool, true, nil), "shop.example.com", "/orders/1")
			if err == nil && r.leaf == nl {
				latency = time.Since(start)
				return true
			}
			return false
		})
		before := ok.Load()
		waitFor(t, "load continues after the renewal", 20*time.Second, func() bool { return ok.Load() > before+1000 })
		close(stop)
		wg.Wait()
		t.Logf("rotation: %d requests, %d failed, %d with the renewed certificate; new connections saw it %v after the Secret update (old %.12s, new %.12s)",
			ok.Load()+failed.Load(), failed.Load(), renewed.Load(), latency.Round(time.Millisecond), old, nl)
		if failed.Load() > 0 {
			t.Errorf("%d requests failed during the rotation; first: %v", failed.Load(), *firstErr.Load())
		}
		if renewed.Load() == 0 {
			t.Errorf("no request of the load saw the renewed certificate")
		}
		hosts[0].leaf = nl
	})

	t.Run("the gateway can read TLS Secrets and nothing more", func(t *testing.T) {
		c := env.gatehouse
		if _, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "type=kubernetes.io/tls"}); err != nil {
			t.Errorf("listing TLS Secrets: %v", err)
		}
		w, err := c.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{FieldSelector: "type=kubernetes.io/tls"})
		if err != nil {
			t.Errorf("watching TLS Secrets: %v", err)
		} else {
			w.Stop()
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: etShop}, Type: corev1.SecretTypeTLS}
		denied := map[string]error{}
		_, denied["get"] = c.CoreV1().Secrets(etShop).Get(ctx, "shop-tls", metav1.GetOptions{})
		_, denied["create"] = c.CoreV1().Secrets(etShop).Create(ctx, s, metav1.CreateOptions{})
		_, denied["update"] = c.CoreV1().Secrets(etShop).Update(ctx, s, metav1.UpdateOptions{})
		denied["delete"] = c.CoreV1().Secrets(etShop).Delete(ctx, "shop-tls", metav1.DeleteOptions{})
		denied["deletecollection"] = c.CoreV1().Secrets(etShop).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		for verb, err := range denied {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s a Secret as the gatehouse ServiceAccount: %v, want Forbidden", verb, err)
			}
		}
	})
}
