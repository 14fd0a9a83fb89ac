package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Namespaces of the webhook test. The webhook configuration selects only
// these, so nothing else in the cluster depends on the test's gateway.
const (
	whShop    = "wh-shop"    // the incumbent of shop.example.com/cart/
	whRival   = "wh-rival"   // tries to take it; granted by wh-finance
	whFinance = "wh-finance" // grants wh-rival routes to its Services
)

// TestWebhook registers the gateway's admission webhook by URL with a real
// API server and drives it with kubectl, as a team would: malformed
// annotations are denied with line and column, warnings are printed, a
// takeover of another namespace's host and path is denied, a granted
// cross-namespace route is admitted and served and stops when the grant is
// withdrawn (while other updates of that Service still pass), two replicas
// serve one bootstrapped certificate, and with the webhook down only
// annotated Services are refused.
func TestWebhook(t *testing.T) {
	env := startKubeEnv(t)
	kubectl := requireTool(t, "kubectl")
	ctx := context.Background()
	podA := env.pods[0]
	adminKubeconfig := filepath.Join(env.dir, "kubeconfig")

	for _, ns := range []string{whShop, whRival, whFinance} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if ns == whFinance {
			obj.Annotations = map[string]string{"gatehouse.dev/allow-routes-from": whRival}
		}
		if _, err := env.admin.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	port := freePort(t)
	registerWebhook(t, env, fmt.Sprintf("https://127.0.0.1:%d/validate", port))
	webhookArgs := func(port int) []string {
		return []string{"serve", "--kubeconfig", env.gatehouseKubeconfig,
			"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false",
			"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", port), "--webhook-host", "127.0.0.1",
			"--webhook-namespace", "gatehouse-system", "--webhook-config", "gatehouse"}
	}
	g := startProcess(t, "", webhookArgs(port)...)

	// The gateway bootstraps its certificate and patches the caBundle; the
	// API server can call it only from then on.
	var caBundle []byte
	waitFor(t, "the gateway patches the webhook's caBundle", 30*time.Second, func() bool {
		vwc, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "gatehouse", metav1.GetOptions{})
		if err != nil || len(vwc.Webhooks) == 0 {
			return false
		}
		caBundle = vwc.Webhooks[0].ClientConfig.CABundle
		return len(caBundle) > 0
	})

	apply := func(manifest string, extra ...string) (string, error) {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", adminKubeconfig, "apply", "-f", "-"}, extra...)...)
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("malformed annotations are denied with line and column", func(t *testing.T) {
		for _, c := range []struct {
			name, annotation string
			want             []string
		}{
			{"tab", "kind: Mapping\nname: a\n\tprefix: /a/\nservice: a\n", []string{"line 3, column 1", "tab"}},
			{"unknown field", "kind: Mapping\nname: a\nprefx: /a/\nservice: a\n", []string{"line 3, column 1", `unknown field "prefx"`, `"prefix"`}},
			{"bad regex", "kind: Mapping\nname: a\nprefix: /a/(?=x)\nprefix_regex: true\nservice: a\n", []string{"line 3, column 9", "look-ahead"}},
			{"missing service", "kind: Mapping\nname: a\nprefix: /a/\n", []string{`Mapping "a"`, "service"}},
			{"two errors", "kind: Mapping\nname: a\nprefix: a/\nservice: a\ntimeout_ms: soon\n", []string{"2 problem(s)", "line 3, column 9", "line 5, column 13"}},
		} {
			out, err := apply(serviceManifest(whShop, "bad", c.annotation))
			if err == nil {
				t.Errorf("%s: admitted:\n%s", c.name, out)
				continue
			}
			if !strings.Contains(out, `admission webhook "services.gatehouse.dev" denied the request`) {
				t.Errorf("%s: kubectl did not print the webhook's denial:\n%s", c.name, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: kubectl output lacks %q:\n%s", c.name, w, out)
				}
			}
			t.Logf("%s: kubectl printed:\n%s", c.name, strings.TrimSpace(out))
		}
	})

	t.Run("valid annotation is admitted, warnings printed", func(t *testing.T) {
		out, err := apply(serviceManifest(whShop, "cart", "kind: Mapping\nname: cart\nhost: shop.example.com\nprefix: /cart/\nservice: cart\nretry_policy:\n  num_retries: 2\n"))
		if err != nil {
			t.Fatalf("denied: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Warning:") || !strings.Contains(out, "retry_policy") {
			t.Errorf("kubectl printed no warning about retry_policy:\n%s", out)
		}
		t.Logf("kubectl printed:\n%s", strings.TrimSpace(out))
		env.setEndpointsIn(t, whShop, "cart", podA)
		waitFor(t, "shop.example.com/cart/ is served", 20*time.Second, func() bool {
			return servedHost(g.base, "shop.example.com", "/cart/1", podA)
		})
	})

	t.Run("takeover from another namespace is denied", func(t *testing.T) {
		out, err := apply(serviceManifest(whRival, "steal", "kind: Mapping\nname: steal\nhost: shop.example.com\nprefix: /cart/\nservice: steal\n"))
		if err == nil {
			t.Fatalf("admitted:\n%s", out)
		}
		if !strings.Contains(out, `belongs to namespace "`+whShop+`"`) {
			t.Errorf("the denial does not name the owner:\n%s", out)
		}
		t.Logf("kubectl printed:\n%s", strings.TrimSpace(out))
		if !servedHost(g.base, "shop.example.com", "/cart/1", podA) {
			t.Errorf("the incumbent stopped serving")
		}
	})

	t.Run("granted cross-namespace route", func(t *testing.T) {
		if _, err := apply(serviceManifest(whFinance, "billing", "")); err != nil {
			t.Fatal(err)
		}
		env.setEndpointsIn(t, whFinance, "billing", podA)
		out, err := apply(serviceManifest(whRival, "pay", "kind: Mapping\nname: pay\nprefix: /pay/\nservice: billing."+whFinance+"\n"))
		if err != nil {
			t.Fatalf("a route granted by %s was denied: %v\n%s", whFinance, err, out)
		}
		waitFor(t, "/pay/ is served by wh-finance/billing", 20*time.Second, func() bool {
			return servedHost(g.base, "any.example.com", "/pay/1", podA)
		})
		out, err = apply(serviceManifest(whShop, "pay", "kind: Mapping\nname: pay2\nprefix: /pay2/\nservice: billing."+whFinance+"\n"))
		if err == nil || !strings.Contains(out, "does not allow routes from namespace") {
			t.Errorf("a route %s does not grant was not denied: %v\n%s", whFinance, err, out)
		}
	})

	t.Run("withdrawn grant: routes stop, other updates still pass", func(t *testing.T) {
		// wh-finance stops granting wh-rival. wh-rival/pay's annotation is
		// now one the webhook would deny, and the gateway stops its route.
		ns, err := env.admin.CoreV1().Namespaces().Get(ctx, whFinance, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(ns.Annotations, "gatehouse.dev/allow-routes-from")
		if _, err := env.admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "/pay/ stops being served", 20*time.Second, func() bool {
			r, err := fetchHost(g.base, "any.example.com", "/pay/1")
			return err == nil && r.status == 404
		})
		// Scaling, relabelling or fixing something else must not be held
		// hostage by an annotation that was already there.
		out, err := exec.Command(kubectl, "--kubeconfig", adminKubeconfig, "-n", whRival, "label", "service", "pay", "tier=payments").CombinedOutput()
		if err != nil {
			t.Errorf("a label change on a Service whose annotation became invalid was refused: %v\n%s", err, out)
		}
		// Changing the annotation is checked again, and denied.
		out2, err := apply(serviceManifest(whRival, "pay", "kind: Mapping\nname: pay\nprefix: /pay/v2/\nservice: billing."+whFinance+"\n"))
		if err == nil || !strings.Contains(out2, "does not allow routes from namespace") {
			t.Errorf("an annotation change still routing into %s was not denied: %v\n%s", whFinance, err, out2)
		}
	})

	t.Run("two replicas serve the bootstrapped certificate", func(t *testing.T) {
		port2 := freePort(t)
		startProcess(t, "", webhookArgs(port2)...)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			t.Fatalf("the caBundle holds no certificate")
		}
		first, second := servingCert(t, port, pool), servingCert(t, port2, pool)
		if !bytes.Equal(first.Raw, second.Raw) {
			t.Errorf("replicas serve different certificates: %s and %s", first.SerialNumber, second.SerialNumber)
		}
		if _, err := env.admin.CoreV1().Secrets("gatehouse-system").Get(ctx, "gatehouse-webhook-certs", metav1.GetOptions{}); err != nil {
			t.Errorf("the certificate Secret: %v", err)
		}
	})

	t.Run("webhook down: only annotated Services are refused", func(t *testing.T) {
		g.stop()
		// The second replica stopped with its subtest; now nothing answers.
		waitFor(t, "the webhook port is closed", 20*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		if out, err := apply(serviceManifest(whShop, "plain", "")); err != nil {
			t.Errorf("a Service without the annotation was refused with the webhook down: %v\n%s", err, out)
		}
		out, err := apply(serviceManifest(whShop, "annotated", "kind: Mapping\nname: x\nprefix: /x/\nservice: x\n"))
		if err == nil {
			t.Errorf("an annotated Service was admitted with the webhook down:\n%s", out)
		} else if !strings.Contains(out, "failed calling webhook") {
			t.Errorf("refused, but not for the webhook being down:\n%s", out)
		}
		// Deleting is never the webhook's business.
		if err := env.admin.CoreV1().Services(whShop).Delete(ctx, "cart", metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting an annotated Service with the webhook down: %v", err)
		}
	})
}

// registerWebhook creates the ValidatingWebhookConfiguration "gatehouse"
// the way manifests/gatehouse.yaml does, but calling url and selecting only
// the test's namespaces (by default TestWebhook's). Its caBundle starts
// empty: the gateway fills it.
func registerWebhook(t *testing.T, env *kubeEnv, url string, namespaces ...string) {
	t.Helper()
	if len(namespaces) == 0 {
		namespaces = []string{whShop, whRival, whFinance}
	}
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gatehouse"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "services.gatehouse.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: namespaces,
			}}},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "has-gatehouse-annotation",
				Expression: `has(object.metadata.annotations) && 'gatehouse.dev/config' in object.metadata.annotations`,
			}},
		}},
	}
	_, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), vwc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("registering the webhook: %v", err)
	}
}

// serviceManifest is a Service in ns with one port (http, 80 → 8080) and
// annotation as its gatehouse.dev/config ("" for none), as YAML for kubectl.
func serviceManifest(ns, name, annotation string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns)
	if annotation != "" {
		b.WriteString("  annotations:\n    gatehouse.dev/config: |\n")
		for _, line := range strings.Split(strings.TrimSuffix(annotation, "\n"), "\n") {
			b.WriteString("      " + line + "\n")
		}
	}
	b.WriteString("spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n")
	return b.String()
}

// servedHost reports whether GET path with Host host reaches pod p.
func servedHost(base, host, path string, p pod) bool {
	r, err := fetchHost(base, host, path)
	return err == nil && r.status == 200 && r.echo.Service == p.name
}

// servingCert returns the leaf certificate the webhook on port serves,
// verified against pool for the IP the webhook is registered at.
func servingCert(t *testing.T, port int, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	waitFor(t, fmt.Sprintf("the webhook on port %d serves a certificate the caBundle verifies", port), 30*time.Second, func() bool {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			return false
		}
		defer conn.Close()
		leaf = conn.ConnectionState().PeerCertificates[0]
		return true
	})
	return leaf
}

// freePort returns a loopback TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
