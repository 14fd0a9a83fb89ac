package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	testNS     = "gatehouse-system"
	testSecret = "gatehouse-webhook-certs"
	testVWC    = "gatehouse"
)

// clock is a settable fake clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }

// newFakeClient returns a clientset holding objs whose Secrets and webhook
// configurations get a resourceVersion on every write and refuse a write
// based on an older one, as the API server does; the fake's own tracker
// accepts any.
func newFakeClient(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	var mu sync.Mutex
	var rv int64 = 100
	for _, res := range []string{"secrets", "validatingwebhookconfigurations"} {
		c.PrependReactor("*", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			var obj runtime.Object
			switch a := a.(type) {
			case k8stesting.CreateAction:
				obj = a.GetObject()
			case k8stesting.UpdateAction:
				obj = a.GetObject()
			default:
				return false, nil, nil
			}
			mu.Lock()
			defer mu.Unlock()
			m, _ := meta.Accessor(obj)
			gvr := a.GetResource()
			ns := a.GetNamespace()
			cur, err := c.Tracker().Get(gvr, ns, m.GetName())
			obj = obj.DeepCopyObject()
			m, _ = meta.Accessor(obj)
			rv++
			if a.GetVerb() == "create" {
				if err == nil {
					return true, nil, apierrors.NewAlreadyExists(gvr.GroupResource(), m.GetName())
				}
				m.SetResourceVersion(strconv.FormatInt(rv, 10))
				return true, obj, c.Tracker().Create(gvr, obj, ns)
			}
			if err != nil {
				return true, nil, err
			}
			cm, _ := meta.Accessor(cur)
			if m.GetResourceVersion() != cm.GetResourceVersion() {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(), errors.New("the object has been modified"))
			}
			m.SetResourceVersion(strconv.FormatInt(rv, 10))
			return true, obj, c.Tracker().Update(gvr, obj, ns)
		})
	}
	return c
}

// fakeAPI is a Client over the fake clientset, so the tests keep its
// reactors and its record of actions.
type fakeAPI struct{ c *fake.Clientset }

var _ Client = fakeAPI{}

func (f fakeAPI) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return f.c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (f fakeAPI) CreateSecret(ctx context.Context, ns string, s *corev1.Secret) (*corev1.Secret, error) {
	return f.c.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
}

func (f fakeAPI) UpdateSecret(ctx context.Context, ns string, s *corev1.Secret) (*corev1.Secret, error) {
	return f.c.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
}

func (f fakeAPI) GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	return f.c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
}

func (f fakeAPI) UpdateValidatingWebhookConfiguration(ctx context.Context, vwc *admissionregistrationv1.ValidatingWebhookConfiguration) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	return f.c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{})
}

func emptySecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: testSecret, Namespace: testNS, ResourceVersion: "1"}}
}

func webhookConfig() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testVWC, ResourceVersion: "1"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "services.gatehouse.dev"},
			{Name: "emissary.gatehouse.dev"},
		},
	}
}

func newTestManager(t testing.TB, c *fake.Clientset, clk *clock) *Manager {
	t.Helper()
	m, err := NewManager(Options{
		Client:          fakeAPI{c},
		Namespace:       testNS,
		SecretName:      testSecret,
		WebhookConfig:   testVWC,
		DNSNames:        []string{"gatehouse-webhook.gatehouse-system.svc"},
		IPs:             []net.IP{net.ParseIP("127.0.0.1")},
		CAValidity:      10 * time.Hour,
		CARenewBefore:   3 * time.Hour,
		CertValidity:    time.Hour,
		CertRenewBefore: 20 * time.Minute,
		Now:             clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustSync(t *testing.T, m *Manager) *state {
	t.Helper()
	s, err := m.sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return s
}

func servedLeaf(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return c.Leaf
}

func storedSecret(t *testing.T, c *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := c.CoreV1().Secrets(testNS).Get(context.Background(), testSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bundles(t *testing.T, c *fake.Clientset) [][]*x509.Certificate {
	t.Helper()
	vwc, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), testVWC, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]*x509.Certificate
	for _, w := range vwc.Webhooks {
		out = append(out, ParseCertificates(w.ClientConfig.CABundle))
	}
	return out
}

// sameCerts reports whether a and b hold the same certificates in any order.
func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		if !containsCert(b, c) {
			return false
		}
	}
	return true
}

func countWrites(c *fake.Clientset, resource string) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetResource().Resource == resource && (a.GetVerb() == "update" || a.GetVerb() == "create" || a.GetVerb() == "patch") {
			n++
		}
	}
	return n
}

// Replicas starting together, against an empty Secret or none, all end up
// serving the certificate of whichever wrote first.
func TestReplicasAgree(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []runtime.Object
	}{
		{"pre-created empty Secret", []runtime.Object{emptySecret(), webhookConfig()}},
		{"no Secret", []runtime.Object{webhookConfig()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClient(tc.objs...)
			clk := newClock(t0)
			ms := make([]*Manager, 4)
			var wg sync.WaitGroup
			for i := range ms {
				ms[i] = newTestManager(t, c, clk)
				wg.Go(func() { mustSync(t, ms[i]) })
			}
			wg.Wait()
			sec := storedSecret(t, c)
			stored, err := parseCert(sec.Data[keyCert])
			if err != nil {
				t.Fatalf("stored tls.crt: %v", err)
			}
			for i, m := range ms {
				if !servedLeaf(t, m).Equal(stored) {
					t.Errorf("replica %d serves a certificate other than the Secret's", i)
				}
			}
			if n := countWrites(c, "secrets"); n > len(ms) {
				t.Errorf("%d Secret writes by %d replicas", n, len(ms))
			}
		})
	}
}

// A replica that loses the write re-reads and serves the winner's
// certificate instead of its own.
func TestLostWriteTakesWinner(t *testing.T) {
	for _, verb := range []string{"update", "create"} {
		t.Run(verb, func(t *testing.T) {
			objs := []runtime.Object{webhookConfig()}
			if verb == "update" {
				objs = append(objs, emptySecret())
			}
			c := newFakeClient(objs...)
			clk := newClock(t0)
			winner := newTestManager(t, newFakeClient(webhookConfig()), clk)
			want := mustSync(t, winner)
			raced := false
			c.PrependReactor(verb, "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
				if raced {
					return false, nil, nil
				}
				raced = true
				// Another replica's write lands between our read and ours.
				sec := emptySecret()
				sec.ResourceVersion = "50"
				sec.Data = want.data
				gvr := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
				if verb == "update" {
					if err := c.Tracker().Update(gvr, sec, testNS); err != nil {
						return true, nil, err
					}
					return true, nil, apierrors.NewConflict(gvr.GroupResource(), testSecret, errors.New("modified"))
				}
				if err := c.Tracker().Create(gvr, sec, testNS); err != nil {
					return true, nil, err
				}
				return true, nil, apierrors.NewAlreadyExists(gvr.GroupResource(), testSecret)
			})
			m := newTestManager(t, c, clk)
			mustSync(t, m)
			if !raced {
				t.Fatal("the manager never wrote")
			}
			if !servedLeaf(t, m).Equal(want.cert.Leaf) {
				t.Error("the loser serves its own certificate, not the winner's")
			}
		})
	}
}

func TestCreateForbidden(t *testing.T) {
	c := newFakeClient(webhookConfig())
	c.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New("RBAC"))
	})
	m := newTestManager(t, c, newClock(t0))
	_, err := m.sync(context.Background())
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "install manifest creates it") {
		t.Errorf("sync: %v, want Forbidden saying the manifest creates the Secret", err)
	}
	if m.Ready() {
		t.Error("ready without a stored certificate")
	}
}

func TestCABundle(t *testing.T) {
	c := newFakeClient(emptySecret(), webhookConfig())
	clk := newClock(t0)
	m := newTestManager(t, c, clk)
	s := mustSync(t, m)
	check := func(when string, want ...*x509.Certificate) {
		t.Helper()
		for i, b := range bundles(t, c) {
			if !sameCerts(b, want) {
				t.Errorf("%s: webhook %d trusts %d CAs, not the %d wanted", when, i, len(b), len(want))
			}
		}
	}
	check("first sync", s.ca)

	writes := countWrites(c, "validatingwebhookconfigurations")
	clk.set(t0.Add(time.Minute))
	mustSync(t, m)
	if n := countWrites(c, "validatingwebhookconfigurations"); n != writes {
		t.Errorf("%d writes of an unchanged bundle", n-writes)
	}

	// A re-applied manifest wipes the bundle.
	vwc := webhookConfig()
	vwc.ResourceVersion = ""
	if err := c.Tracker().Update(admissionregistrationv1.SchemeGroupVersion.WithResource("validatingwebhookconfigurations"), vwc, ""); err != nil {
		t.Fatal(err)
	}
	mustSync(t, m)
	check("after a wipe", s.ca)

	// CA rotation: the old CA stays trusted beside the new one.
	clk.set(t0.Add(7 * time.Hour))
	rotated := mustSync(t, m)
	if rotated.ca.Equal(s.ca) {
		t.Fatal("CA not rotated")
	}
	check("after CA rotation", rotated.ca, s.ca)
}

// If the bundle cannot be set, a certificate from a new CA is not served
// while the old one is still valid: the API server would refuse it.
func TestNewCAWaitsForBundle(t *testing.T) {
	c := newFakeClient(emptySecret(), webhookConfig())
	clk := newClock(t0)
	m := newTestManager(t, c, clk)
	s0 := mustSync(t, m)

	var failing atomic.Bool
	failing.Store(true)
	c.PrependReactor("update", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd down")
		}
		return false, nil, nil
	})
	// A CA whose key was lost and no usable serving certificate: both are
	// replaced at once, so there is no old certificate to hand over with.
	sec := storedSecret(t, c)
	sec.Data[keyCAKey] = []byte("lost")
	sec.Data[keyCert] = []byte("lost")
	if _, err := c.CoreV1().Secrets(testNS).Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.sync(context.Background()); err == nil {
		t.Fatal("sync succeeded although the bundle could not be set")
	}
	if !servedLeaf(t, m).Equal(s0.cert.Leaf) {
		t.Error("serving the new CA's certificate before the bundle trusts it")
	}
	failing.Store(false)
	s := mustSync(t, m)
	if !servedLeaf(t, m).Equal(s.cert.Leaf) || s.cert.Leaf.Equal(s0.cert.Leaf) {
		t.Error("not serving the new certificate once the bundle is set")
	}
}

// A replica that read the Secret just before another rotated the CA must
// not take the new CA out of the bundle.
func TestMergeBundle(t *testing.T) {
	p := testPolicy()
	a, _ := mustReconcile(t, p, nil, t0)
	b, _ := mustReconcile(t, p, a.data, t0.Add(7*time.Hour)) // a's CA rotated
	foreign := foreignCA(t, t0.Add(8*time.Hour))
	now := t0.Add(7 * time.Hour)
	pem := func(cs ...*x509.Certificate) []byte {
		var out []byte
		for _, c := range cs {
			out = append(out, encodeCert(c)...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		have []byte
		want []*x509.Certificate
		out  []*x509.Certificate
		same bool
	}{
		{"empty", nil, []*x509.Certificate{a.ca}, []*x509.Certificate{a.ca}, false},
		{"equal", pem(a.ca), []*x509.Certificate{a.ca}, []*x509.Certificate{a.ca}, true},
		{"equal, other order", pem(a.ca, b.ca), []*x509.Certificate{b.ca, a.ca}, []*x509.Certificate{b.ca, a.ca}, true},
		{"duplicate hides a missing CA", pem(a.ca, a.ca), []*x509.Certificate{b.ca, a.ca}, []*x509.Certificate{b.ca, a.ca}, false},
		{"stale view keeps the newer CA", pem(b.ca, a.ca), []*x509.Certificate{a.ca}, []*x509.Certificate{a.ca, b.ca}, true},
		{"older CA dropped", pem(b.ca, a.ca), []*x509.Certificate{b.ca}, []*x509.Certificate{b.ca}, false},
		{"foreign CA dropped", pem(a.ca, foreign), []*x509.Certificate{a.ca}, []*x509.Certificate{a.ca}, false},
		{"garbage", []byte("junk"), []*x509.Certificate{a.ca}, []*x509.Certificate{a.ca}, false},
	} {
		got, same := mergeBundle(tc.have, tc.want, now)
		if same != tc.same || !sameCerts(ParseCertificates(got), tc.out) {
			t.Errorf("%s: same %v, %d CAs; want same %v, %d CAs", tc.name, same, len(ParseCertificates(got)), tc.same, len(tc.out))
		}
	}
}

// foreignCA returns a CA, valid from notBefore, that a Manager did not
// issue.
func foreignCA(t *testing.T, notBefore time.Time) *x509.Certificate {
	t.Helper()
	key, _, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "someone-else"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRunServesUntilCancelled(t *testing.T) {
	c := newFakeClient(emptySecret(), webhookConfig())
	m := newTestManager(t, c, newClock(time.Now()))
	if _, err := m.GetCertificate(nil); !errors.Is(err, ErrNotReady) {
		t.Errorf("GetCertificate before Run: %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !m.Ready() {
		t.Error("not ready after Run loaded a certificate")
	}
}

func TestNewManagerChecksOptions(t *testing.T) {
	ok := Options{Client: fakeAPI{fake.NewClientset()}, Namespace: "ns", SecretName: "s", DNSNames: []string{"x"}}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string // "" means valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"IP only", func(o *Options) { o.DNSNames, o.IPs = nil, []net.IP{net.IPv4(127, 0, 0, 1)} }, ""},
		{"no client", func(o *Options) { o.Client = nil }, "no Kubernetes client"},
		{"no secret", func(o *Options) { o.SecretName = "" }, "namespace and name"},
		{"no SAN", func(o *Options) { o.DNSNames = nil }, "at least one DNS name or IP"},
		{"margin too long", func(o *Options) { o.CertValidity, o.CertRenewBefore = time.Hour, time.Hour }, "renewal margin"},
		{"negative CA margin", func(o *Options) { o.CARenewBefore = -time.Second }, "CA renewal margin"},
	} {
		o := ok
		tc.mod(&o)
		_, err := NewManager(o)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// GetCertificate runs on every TLS handshake.
func BenchmarkGetCertificate(b *testing.B) {
	c := newFakeClient(emptySecret(), webhookConfig())
	m := newTestManager(b, c, newClock(t0))
	if _, err := m.sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "gatehouse-webhook.gatehouse-system.svc"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.GetCertificate(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
}
