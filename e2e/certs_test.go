package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/gatehouse-dev/gatehouse/webhook/certs"
)

const (
	certsNamespace = "gatehouse-system"
	certsSecret    = "gatehouse-certs-e2e"
	certsWebhooks  = "gatehouse-certs-e2e"
	// certsLabel selects the objects the test's webhooks see: only the
	// ConfigMaps this test submits (as dry runs) carry it, so the webhooks
	// never touch anything else in the shared cluster.
	certsLabel = "gatehouse.dev/certs-e2e"
)

// TestCerts runs two replicas of the certificate manager, each behind its
// own TLS listener registered as a webhook with the real API server, as the
// gatehouse ServiceAccount limited to one Secret and one webhook
// configuration by name. It checks that both serve the same certificate,
// that the API server trusts it through the caBundle they set, and that
// this holds through serving certificate and CA rotations.
func TestCerts(t *testing.T) {
	env := startKubeEnv(t)
	ctx := context.Background()
	grantCertRights(t, env)
	reps := []*certReplica{startCertReplica(t, 0), startCertReplica(t, 1)}
	createCertWebhooks(t, env, reps)

	base := certs.Options{
		Client:        env.gatehouseAPI,
		Namespace:     certsNamespace,
		SecretName:    certsSecret,
		WebhookConfig: certsWebhooks,
		DNSNames:      []string{"gatehouse-webhook.gatehouse-system.svc"},
		IPs:           []net.IP{net.IPv4(127, 0, 0, 1)},
		Resync:        200 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
	}

	var first certView
	t.Run("replicas agree", func(t *testing.T) {
		stop := runCertManagers(t, reps, base)
		defer stop()
		first = waitCerts(t, env, reps, "both replicas serve the Secret's certificate, trusted by the caBundle", func(v certView) error {
			if len(v.bundle) != 1 || !v.bundle[0].Equal(v.ca) {
				return fmt.Errorf("caBundle holds %d CAs, want the Secret's CA alone", len(v.bundle))
			}
			return v.servesSecret()
		})
		for _, r := range reps {
			r.calledByAPIServer(t, env)
		}
	})

	t.Run("wiped caBundle restored", func(t *testing.T) {
		stop := runCertManagers(t, reps, base)
		defer stop()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			vwcs := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()
			vwc, err := vwcs.Get(ctx, certsWebhooks, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for i := range vwc.Webhooks {
				vwc.Webhooks[i].ClientConfig.CABundle = nil
			}
			_, err = vwcs.Update(ctx, vwc, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("wiping the caBundle: %v", err)
		}
		waitCerts(t, env, reps, "the caBundle is set again", func(v certView) error {
			if len(v.bundle) != 1 || !v.bundle[0].Equal(first.ca) {
				return fmt.Errorf("caBundle holds %d CAs, want the unchanged CA alone", len(v.bundle))
			}
			return v.servesSecret()
		})
	})

	t.Run("serving certificate rotation", func(t *testing.T) {
		o := base
		// Certificate times have a resolution of a second, and a replica
		// under -race on two cores can take a second to see a rotation:
		// shorter lifetimes leave no moment when both replicas agree.
		o.CertValidity, o.CertRenewBefore = 6*time.Second, 2*time.Second
		stop := runCertManagers(t, reps, o)
		defer stop()
		// The first certificate is replaced because it is valid for longer
		// than now configured, the second because it expires.
		prev := first
		for i := range 2 {
			v := waitCerts(t, env, reps, fmt.Sprintf("rotation %d: a new certificate from the same CA", i+1), func(v certView) error {
				if len(v.bundle) != 1 || !v.bundle[0].Equal(first.ca) {
					return fmt.Errorf("caBundle holds %d CAs, want the unchanged CA alone", len(v.bundle))
				}
				if v.leaves[0].Equal(prev.leaves[0]) {
					return errors.New("still serving the previous certificate")
				}
				return v.servesSecret()
			})
			if d := v.leaves[0].NotAfter.Sub(v.leaves[0].NotBefore); d > 6*time.Minute {
				t.Errorf("rotated certificate valid for %v, want 6s plus the backdating for clock skew", d)
			}
			prev = v
		}
		for _, r := range reps {
			r.calledByAPIServer(t, env)
		}
	})

	t.Run("CA rotation", func(t *testing.T) {
		o := base
		o.CAValidity, o.CARenewBefore = 16*time.Second, 8*time.Second
		o.CertValidity, o.CertRenewBefore = 6*time.Second, 2*time.Second
		stop := runCertManagers(t, reps, o)
		defer stop()
		// Rotated twice: first because the old CA outlives the new
		// validity, then because the new one expires. Each time the
		// outgoing CA stays in the bundle beside its successor.
		prevCA := first.ca
		for i := range 2 {
			v := waitCerts(t, env, reps, fmt.Sprintf("CA rotation %d: a certificate from a new CA, old and new CA trusted", i+1), func(v certView) error {
				if v.ca.Equal(prevCA) {
					return errors.New("CA not rotated yet")
				}
				if v.previous == nil || !v.previous.Equal(prevCA) {
					return errors.New("the Secret's previous CA is not the one rotated out")
				}
				if len(v.bundle) != 2 || !slices.ContainsFunc(v.bundle, v.ca.Equal) || !slices.ContainsFunc(v.bundle, prevCA.Equal) {
					return fmt.Errorf("caBundle holds %d CAs, want the new and the previous one", len(v.bundle))
				}
				if err := v.leaves[0].CheckSignatureFrom(v.ca); err != nil {
					return fmt.Errorf("serving certificate not from the new CA yet: %w", err)
				}
				return v.servesSecret()
			})
			for _, r := range reps {
				r.calledByAPIServer(t, env)
			}
			prevCA = v.ca
		}
	})

	t.Run("Secret created when missing", func(t *testing.T) {
		// The manifest ships the Secret because the gateway cannot be
		// allowed to create it: create cannot be scoped by name.
		const name = "gatehouse-certs-e2e-created"
		_, err := env.gatehouse.CoreV1().Secrets(certsNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("creating a Secret as the gatehouse ServiceAccount: %v, want Forbidden", err)
		}
		// With the right to create, the manager makes its own.
		t.Cleanup(func() {
			env.admin.CoreV1().Secrets(certsNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
		})
		o := base
		o.Client, o.SecretName, o.WebhookConfig = env.adminAPI, name, ""
		m, err := certs.NewManager(o)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		done := make(chan error)
		go func() { done <- m.Run(runCtx) }()
		err = m.WaitReady(runCtx)
		cancel()
		<-done
		if err != nil {
			t.Fatal(err)
		}
		sec, err := env.admin.CoreV1().Secrets(certsNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading the Secret the manager created: %v", err)
		}
		leaf, err := m.GetCertificate(nil)
		if err != nil || len(certs.ParseCertificates(sec.Data["tls.crt"])) == 0 || !certs.ParseCertificates(sec.Data["tls.crt"])[0].Equal(leaf.Leaf) {
			t.Errorf("the created Secret does not hold the certificate served (%v)", err)
		}
	})
}

// grantCertRights gives the gatehouse ServiceAccount what the certificate
// manager needs, scoped as the install manifest scopes it: get, update and
// patch of one Secret in its namespace and of one webhook configuration, by
// name, and no create (it cannot be scoped by name). The Secret is created
// empty, as the manifest ships it.
func grantCertRights(t *testing.T, env *kubeEnv) {
	t.Helper()
	ctx := context.Background()
	sa := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "gatehouse", Namespace: certsNamespace}}
	verbs := []string{"get", "update", "patch"}
	rbac := env.admin.RbacV1()
	steps := []struct {
		what    string
		create  func() error
		cleanup func() error
	}{
		{"Role", func() error {
			_, err := rbac.Roles(certsNamespace).Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: certsSecret},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{certsSecret}, Verbs: verbs}},
			}, metav1.CreateOptions{})
			return err
		}, func() error { return rbac.Roles(certsNamespace).Delete(ctx, certsSecret, metav1.DeleteOptions{}) }},
		{"RoleBinding", func() error {
			_, err := rbac.RoleBindings(certsNamespace).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: certsSecret},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: certsSecret},
				Subjects:   sa,
			}, metav1.CreateOptions{})
			return err
		}, func() error {
			return rbac.RoleBindings(certsNamespace).Delete(ctx, certsSecret, metav1.DeleteOptions{})
		}},
		{"ClusterRole", func() error {
			_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: certsWebhooks},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"},
					ResourceNames: []string{certsWebhooks}, Verbs: verbs}},
			}, metav1.CreateOptions{})
			return err
		}, func() error { return rbac.ClusterRoles().Delete(ctx, certsWebhooks, metav1.DeleteOptions{}) }},
		{"ClusterRoleBinding", func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: certsWebhooks},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: certsWebhooks},
				Subjects:   sa,
			}, metav1.CreateOptions{})
			return err
		}, func() error { return rbac.ClusterRoleBindings().Delete(ctx, certsWebhooks, metav1.DeleteOptions{}) }},
		{"empty Secret", func() error {
			_, err := env.admin.CoreV1().Secrets(certsNamespace).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: certsSecret},
				Type:       corev1.SecretTypeOpaque,
			}, metav1.CreateOptions{})
			return err
		}, func() error {
			return env.admin.CoreV1().Secrets(certsNamespace).Delete(ctx, certsSecret, metav1.DeleteOptions{})
		}},
	}
	for _, s := range steps {
		if err := s.create(); err != nil {
			t.Fatalf("creating the %s: %v", s.what, err)
		}
		t.Cleanup(func() {
			if err := s.cleanup(); err != nil {
				t.Errorf("deleting the %s: %v", s.what, err)
			}
		})
	}
	// The authorizer learns of new bindings through its own watch.
	waitFor(t, "the gatehouse ServiceAccount can read its Secret", 20*time.Second, func() bool {
		_, err := env.gatehouse.CoreV1().Secrets(certsNamespace).Get(ctx, certsSecret, metav1.GetOptions{})
		return err == nil
	})
	_, err := env.gatehouse.CoreV1().Secrets(certsNamespace).Get(ctx, "gatehouse-other", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("reading another Secret as the gatehouse ServiceAccount: %v, want Forbidden", err)
	}
}

// certReplica is one gateway replica's webhook listener. The manager behind
// it changes between subtests; the address the API server calls does not.
type certReplica struct {
	id   int
	addr string
	mgr  atomic.Pointer[certs.Manager]
}

func startCertReplica(t *testing.T, id int) *certReplica {
	t.Helper()
	r := &certReplica{id: id}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(r.review),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			m := r.mgr.Load()
			if m == nil {
				return nil, certs.ErrNotReady
			}
			return m.GetCertificate(h)
		}},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return r
}

// review denies every request, naming the replica, so a denial proves the
// API server completed a TLS handshake with it.
func (r *certReplica) review(w http.ResponseWriter, req *http.Request) {
	var rev admissionv1.AdmissionReview
	if err := json.NewDecoder(req.Body).Decode(&rev); err != nil || rev.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	rev.Response = &admissionv1.AdmissionResponse{
		UID:     rev.Request.UID,
		Allowed: false,
		Result:  &metav1.Status{Code: http.StatusForbidden, Message: fmt.Sprintf("denied by certs-e2e replica %d", r.id)},
	}
	rev.Request = nil
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&rev)
}

// calledByAPIServer waits until the API server calls the replica's webhook
// and gets its answer. A failed call is ignored (failurePolicy Ignore), so
// only the denial proves the API server trusted the replica's certificate.
func (r *certReplica) calledByAPIServer(t *testing.T, env *kubeEnv) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "certs-e2e-",
		Labels:       map[string]string{certsLabel: fmt.Sprint(r.id)},
	}}
	want := fmt.Sprintf("denied by certs-e2e replica %d", r.id)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A dry run: nothing is stored even when the call fails.
		_, err := env.admin.CoreV1().ConfigMaps(kubeNamespace).Create(context.Background(), cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until the API server calls replica %d over TLS; last answer: %v", r.id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createCertWebhooks registers one webhook per replica, by URL, without a
// caBundle: the managers set it.
func createCertWebhooks(t *testing.T, env *kubeEnv, reps []*certReplica) {
	t.Helper()
	ignore, none, timeout := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone, int32(5)
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: certsWebhooks}}
	for _, r := range reps {
		url := "https://" + r.addr + "/validate"
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:                    fmt.Sprintf("replica-%d.certs-e2e.gatehouse.dev", r.id),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{certsLabel: fmt.Sprint(r.id)}},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			FailurePolicy:           &ignore,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		})
	}
	vwcs := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := vwcs.Create(context.Background(), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the webhook configuration: %v", err)
	}
	t.Cleanup(func() {
		if err := vwcs.Delete(context.Background(), certsWebhooks, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting the webhook configuration: %v", err)
		}
	})
}

// runCertManagers starts one manager per replica, all at once, and
// switches each replica to its manager once it serves. stop ends them.
func runCertManagers(t *testing.T, reps []*certReplica, opts certs.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ms := make([]*certs.Manager, len(reps))
	for i := range reps {
		o := opts
		o.Logger = opts.Logger.With("replica", i)
		m, err := certs.NewManager(o)
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
		wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				t.Errorf("replica %d: Run: %v", i, err)
			}
		})
	}
	stop = func() {
		cancel()
		wg.Wait()
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, 30*time.Second)
	defer readyCancel()
	for i, m := range ms {
		if err := m.WaitReady(readyCtx); err != nil {
			stop()
			t.Fatalf("replica %d: %v", i, err)
		}
		reps[i].mgr.Store(m)
	}
	return stop
}

// certView is what the cluster and the replicas show at one moment.
type certView struct {
	ca, previous *x509.Certificate // from the Secret
	leaf         *x509.Certificate // the Secret's serving certificate
	bundle       []*x509.Certificate
	leaves       []*x509.Certificate // served by each replica
}

// observe reads the Secret and the caBundle (the same in every webhook)
// and the certificate each replica presents to a client that trusts only
// that bundle, as the API server does.
func observe(env *kubeEnv, reps []*certReplica) (certView, error) {
	ctx := context.Background()
	var v certView
	sec, err := env.admin.CoreV1().Secrets(certsNamespace).Get(ctx, certsSecret, metav1.GetOptions{})
	if err != nil {
		return v, err
	}
	parse := func(key string) *x509.Certificate {
		cs := certs.ParseCertificates(sec.Data[key])
		if len(cs) == 0 {
			return nil
		}
		return cs[0]
	}
	if v.ca, v.previous, v.leaf = parse("ca.crt"), parse("ca-previous.crt"), parse("tls.crt"); v.ca == nil || v.leaf == nil {
		return v, errors.New("the Secret holds no CA or no serving certificate")
	}
	vwc, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, certsWebhooks, metav1.GetOptions{})
	if err != nil {
		return v, err
	}
	bundle := vwc.Webhooks[0].ClientConfig.CABundle
	for _, w := range vwc.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			return v, fmt.Errorf("webhook %s has another caBundle than %s", w.Name, vwc.Webhooks[0].Name)
		}
	}
	v.bundle = certs.ParseCertificates(bundle)
	roots := x509.NewCertPool()
	for _, c := range v.bundle {
		roots.AddCert(c)
	}
	for _, r := range reps {
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", r.addr, &tls.Config{RootCAs: roots})
		if err != nil {
			return v, fmt.Errorf("replica %d with the caBundle: %w", r.id, err)
		}
		v.leaves = append(v.leaves, conn.ConnectionState().PeerCertificates[0])
		conn.Close()
	}
	return v, nil
}

// servesSecret checks that every replica serves the Secret's certificate.
func (v certView) servesSecret() error {
	for i, l := range v.leaves {
		if !l.Equal(v.leaf) {
			return fmt.Errorf("replica %d serves serial %x, the Secret holds %x", i, l.SerialNumber, v.leaf.SerialNumber)
		}
	}
	return nil
}

// waitCerts polls observe until cond accepts a view, and returns it.
func waitCerts(t *testing.T, env *kubeEnv, reps []*certReplica, what string, cond func(certView) error) certView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := observe(env, reps)
		if err == nil {
			if err = cond(v); err == nil {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
