package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	admissionregistrationv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/client-go/util/retry"

	"github.com/gatehouse-dev/gatehouse/webhook"
	"github.com/gatehouse-dev/gatehouse/webhook/certs"
)

// The admission policy of the install manifest and the message it denies
// with.
const (
	caBundlePolicyName = "gatehouse-webhook-cabundle-only"
	caBundleOnlyDenial = "the gatehouse ServiceAccount may change only webhooks[*].clientConfig.caBundle"
	gatewayUser        = "system:serviceaccount:" + installNamespace + ":gatehouse"
	// monitoringLabel opens the admin port to a namespace.
	monitoringLabel = "gatehouse.dev/monitoring"
)

// inCI reports whether the tests run in CI ($CI is true, as GitHub Actions
// and most CI systems set it), where a missing tool is a broken runner that
// must fail the build, not a reason to skip.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// skipOrFail skips the test on a developer's machine and fails it in CI.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format+" (CI is set: failing rather than skipping)", args...)
	}
	t.Skipf(format, args...)
}

// requireTool returns the path of a command the test needs.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s needs %s on PATH", t.Name(), name)
	}
	return path
}

// requireKubeEnv checks up front what startKubeEnv needs and would skip
// without, so that in CI its absence fails the test.
func requireKubeEnv(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "%s needs root for startKubeEnv's network namespaces; running as uid %d", t.Name(), os.Geteuid())
	}
	requireTool(t, "ip")
}

// jsonFields lists the JSON names of a struct type's fields.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// webhookFields is every field of a ValidatingWebhook but caBundle, as
// "name" or "clientConfig.url": what the gateway must not change.
func webhookFields() []string {
	var out []string
	for _, f := range jsonFields(reflect.TypeFor[admissionregistrationv1.ValidatingWebhook]()) {
		if f != "clientConfig" {
			out = append(out, f)
			continue
		}
		for _, cf := range jsonFields(reflect.TypeFor[admissionregistrationv1.WebhookClientConfig]()) {
			if cf != "caBundle" {
				out = append(out, "clientConfig."+cf)
			}
		}
	}
	return out
}

// TestManifestsAdmissionPolicy checks, without a cluster, that the install
// manifest's ValidatingAdmissionPolicy is bound, fails closed, matches the
// ServiceAccount the RBAC binds, and compares every field of a webhook the
// Go API types have, so a field added by a Kubernetes upgrade fails here
// until the policy compares it.
func TestManifestsAdmissionPolicy(t *testing.T) {
	docs := readManifest(t, installManifest)
	vap := objectNamed[*admissionregistrationv1.ValidatingAdmissionPolicy](t, docs, caBundlePolicyName)
	bindings := objectsOf[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](docs)
	if len(bindings) != 1 {
		t.Fatalf("%d ValidatingAdmissionPolicyBindings, want 1", len(bindings))
	}
	b := bindings[0].Spec
	if b.PolicyName != vap.Name || !slices.Equal(b.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) ||
		b.ParamRef != nil || b.MatchResources != nil {
		t.Errorf("binding %+v: want policy %s, actions [Deny], no params and no narrower match", b, vap.Name)
	}
	if p := vap.Spec.FailurePolicy; p == nil || *p != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy = %s, want Fail: a policy that cannot be evaluated must not let the gateway through", optional(p))
	}
	covered := false
	for _, r := range vap.Spec.MatchConstraints.ResourceRules {
		if slices.Contains(r.APIGroups, "admissionregistration.k8s.io") && slices.Contains(r.Resources, "validatingwebhookconfigurations") &&
			slices.Contains(r.Operations, admissionregistrationv1.Update) && len(r.ResourceNames) == 0 {
			covered = true
		}
	}
	if !covered {
		t.Errorf("matchConstraints %+v do not cover UPDATE of every ValidatingWebhookConfiguration", vap.Spec.MatchConstraints)
	}
	// The user the policy matches is the subject the RBAC binds.
	crb := objectNamed[*rbacv1.ClusterRoleBinding](t, docs, "gatehouse")
	if len(crb.Subjects) != 1 {
		t.Fatalf("ClusterRoleBinding subjects %+v, want the one ServiceAccount", crb.Subjects)
	}
	user := "system:serviceaccount:" + crb.Subjects[0].Namespace + ":" + crb.Subjects[0].Name
	wantCondition := "request.userInfo.username == '" + user + "'"
	if len(vap.Spec.MatchConditions) != 1 || vap.Spec.MatchConditions[0].Expression != wantCondition {
		t.Errorf("matchConditions %+v, want the one expression %q: the policy must bind the gateway and no one else", vap.Spec.MatchConditions, wantCondition)
	}
	if user != gatewayUser {
		t.Errorf("the RBAC binds %s, the tests assume %s", user, gatewayUser)
	}

	var variables strings.Builder
	for _, v := range vap.Spec.Variables {
		variables.WriteString(v.Expression + "\n")
	}
	exprs := variables.String()
	for _, f := range webhookFields() {
		// Each step of the path read as w.field or w.?field (optional).
		reads := []string{"w"}
		for part := range strings.SplitSeq(f, ".") {
			var next []string
			for _, r := range reads {
				next = append(next, r+"."+part, r+".?"+part)
			}
			reads = next
		}
		if !slices.ContainsFunc(reads, func(r string) bool { return regexp.MustCompile(regexp.QuoteMeta(r) + `\b`).MatchString(exprs) }) {
			t.Errorf("the policy's variables do not compare webhooks[*].%s; an update could change it unseen", f)
		}
	}
	if strings.Contains(exprs, "caBundle") {
		t.Error("the policy's variables read caBundle, the one field the gateway must be able to change")
	}
}

// peer is a source of traffic to a gateway pod, for checking the
// NetworkPolicies.
type peer struct {
	what      string
	namespace map[string]string // its Namespace's labels; nil for an address outside the pod network
	pod       map[string]string // its labels
	ip        string
}

// npAllows reports whether the NetworkPolicies in docs let from reach port
// (a container port's name or number) of a pod labelled podLabels in the
// install namespace, as the NetworkPolicy API defines it: a pod no policy
// selects for ingress is open; otherwise a connection needs a rule of a
// selecting policy that matches both its port and its source.
func npAllows(t *testing.T, docs []manifestDoc, c corev1.Container, podLabels map[string]string, from peer, port string) bool {
	t.Helper()
	isolated := false
	for _, np := range objectsOf[*networkingv1.NetworkPolicy](docs) {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatalf("NetworkPolicy %s: %v", np.Name, err)
		}
		if np.Namespace != installNamespace || !sel.Matches(labels.Set(podLabels)) ||
			!slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Ingress {
			if npPortMatches(c, rule.Ports, port) && npPeerMatches(t, np.Namespace, rule.From, from) {
				return true
			}
		}
	}
	return !isolated
}

func npPortMatches(c corev1.Container, ports []networkingv1.NetworkPolicyPort, port string) bool {
	if len(ports) == 0 {
		return true
	}
	number, err := strconv.Atoi(port)
	for _, cp := range c.Ports {
		if cp.Name == port {
			number, err = int(cp.ContainerPort), nil
		}
	}
	for _, p := range ports {
		switch {
		case p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP:
		case p.Port == nil:
			return true
		case p.Port.StrVal != "" && p.Port.StrVal == port:
			return true
		case p.Port.StrVal == "" && err == nil && int(p.Port.IntVal) == number:
			return true
		case p.Port.StrVal == "" && err == nil && p.EndPort != nil && number >= int(p.Port.IntVal) && number <= int(*p.EndPort):
			return true
		}
	}
	return false
}

func npPeerMatches(t *testing.T, policyNS string, peers []networkingv1.NetworkPolicyPeer, from peer) bool {
	t.Helper()
	if len(peers) == 0 {
		return true
	}
	matches := func(s *metav1.LabelSelector, set map[string]string) bool {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatalf("selector %v: %v", s, err)
		}
		return sel.Matches(labels.Set(set))
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
			if err != nil {
				t.Fatalf("ipBlock %s: %v", p.IPBlock.CIDR, err)
			}
			ip := net.ParseIP(from.ip)
			if ip != nil && cidr.Contains(ip) && !slices.ContainsFunc(p.IPBlock.Except, func(e string) bool {
				_, ex, err := net.ParseCIDR(e)
				return err == nil && ex.Contains(ip)
			}) {
				return true
			}
			continue
		}
		if from.namespace == nil {
			continue // selectors name pods; this is not one
		}
		nsOK := from.namespace["kubernetes.io/metadata.name"] == policyNS
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, from.namespace)
		}
		podOK := p.PodSelector == nil || matches(p.PodSelector, from.pod)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// TestManifestsNetworkPolicies checks, without a cluster, who may reach
// which port of the gateway's pods under the install manifest's
// NetworkPolicies.
func TestManifestsNetworkPolicies(t *testing.T) {
	docs := readManifest(t, installManifest)
	dep := objectNamed[*appsv1.Deployment](t, docs, "gatehouse")
	c := dep.Spec.Template.Spec.Containers[0]
	gw := dep.Spec.Template.Labels
	ns := func(name string, extra ...string) map[string]string {
		l := map[string]string{"kubernetes.io/metadata.name": name}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	var (
		apiServer  = peer{what: "an API server outside the pod network", ip: "192.0.2.10"}
		internet   = peer{what: "a client on the internet", ip: "198.51.100.7"}
		tenant     = peer{what: "a tenant's pod", namespace: ns("shop"), pod: map[string]string{"app": "shop"}, ip: "10.244.1.5"}
		prometheus = peer{what: "Prometheus in a namespace labelled for monitoring", namespace: ns("monitoring", monitoringLabel, "true"), pod: map[string]string{"app": "prometheus"}, ip: "10.244.2.9"}
		neighbour  = peer{what: "another pod of gatehouse-system", namespace: ns(installNamespace), pod: map[string]string{"app": "other"}, ip: "10.244.3.3"}
	)
	for _, c2 := range []struct {
		from  peer
		port  string
		allow bool
	}{
		{internet, "http", true},
		{tenant, "http", true},
		{apiServer, "webhook", true},
		{tenant, "webhook", true}, // documented: the API server cannot be selected, so the port is open
		{prometheus, "admin", true},
		{tenant, "admin", false},
		{internet, "admin", false},
		{apiServer, "admin", false},
		{neighbour, "admin", false},
		{prometheus, "9999", false},
		{internet, "9999", false},
	} {
		if got := npAllows(t, docs, c, gw, c2.from, c2.port); got != c2.allow {
			t.Errorf("%s → gateway port %s: allowed = %v, want %v", c2.from.what, c2.port, got, c2.allow)
		}
	}
	// Anything else in the namespace is closed too.
	other := map[string]string{"app": "debug"}
	if npAllows(t, docs, corev1.Container{}, other, tenant, "8080") {
		t.Error("a pod in gatehouse-system other than the gateway accepts traffic: no default deny")
	}
}

// vwcChange is an update the gateway's identity tries on its webhook
// configuration; field names what it changes, for the coverage check.
type vwcChange struct {
	name   string
	field  string // "" when not about one webhook field
	change func(*admissionregistrationv1.ValidatingWebhookConfiguration)
}

// forbiddenChanges is every change but caBundle's, at least one per field
// of a ValidatingWebhook.
func forbiddenChanges() []vwcChange {
	first := func(f func(w *admissionregistrationv1.ValidatingWebhook)) func(*admissionregistrationv1.ValidatingWebhookConfiguration) {
		return func(c *admissionregistrationv1.ValidatingWebhookConfiguration) { f(&c.Webhooks[0]) }
	}
	return []vwcChange{
		{"rename the webhook", "name", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.Name = "other.gatehouse.dev" })},
		{"call a URL instead", "clientConfig.url", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ClientConfig.Service, w.ClientConfig.URL = nil, new("https://attacker.example.com/validate")
		})},
		{"call another Service", "clientConfig.service", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.ClientConfig.Service.Name = "elsewhere" })},
		{"call another path", "clientConfig.service", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.ClientConfig.Service.Path = new("/allow-all") })},
		{"change the rules", "rules", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.Rules[0].Resources = []string{"configmaps"} })},
		{"fail open", "failurePolicy", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.FailurePolicy = new(admissionregistrationv1.Ignore)
		})},
		{"match exactly", "matchPolicy", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.MatchPolicy = new(admissionregistrationv1.Exact)
		})},
		{"exclude a namespace", "namespaceSelector", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.NamespaceSelector.MatchExpressions[0].Values = append(w.NamespaceSelector.MatchExpressions[0].Values, "default")
		})},
		{"select objects", "objectSelector", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"checked": "yes"}}
		})},
		{"claim side effects", "sideEffects", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.SideEffects = new(admissionregistrationv1.SideEffectClassNoneOnDryRun)
		})},
		{"shorten the timeout", "timeoutSeconds", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.TimeoutSeconds = new(int32(1)) })},
		{"add a review version", "admissionReviewVersions", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.AdmissionReviewVersions = []string{"v1", "v1beta1"}
		})},
		{"match nothing", "matchConditions", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.MatchConditions[0].Expression = "false" })},
		{"drop the match conditions", "matchConditions", first(func(w *admissionregistrationv1.ValidatingWebhook) { w.MatchConditions = nil })},
		{"caBundle and failurePolicy together", "", first(func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ClientConfig.CABundle = []byte("-----BEGIN CERTIFICATE-----\nbundled\n-----END CERTIFICATE-----\n")
			w.FailurePolicy = new(admissionregistrationv1.Ignore)
		})},
		{"add a webhook", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			w := *c.Webhooks[0].DeepCopy()
			w.Name = "second.gatehouse.dev"
			c.Webhooks = append(c.Webhooks, w)
		}},
		{"remove the webhook", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) { c.Webhooks = nil }},
		{"label the configuration", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			c.Labels = map[string]string{"app.kubernetes.io/name": "other"}
		}},
		{"annotate the configuration", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			c.Annotations = map[string]string{"cert-manager.io/inject-ca-from": "gatehouse-system/attacker"}
		}},
		{"add a finalizer", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			c.Finalizers = append(c.Finalizers, "example.com/keep")
		}},
		{"add an owner", "", func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			c.OwnerReferences = append(c.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "Namespace", Name: "default", UID: types.UID("00000000-0000-0000-0000-000000000001")})
		}},
	}
}

// TestAdmissionPolicy installs the manifest's webhook configuration and
// ValidatingAdmissionPolicy on a real API server and tries, as the
// gateway's ServiceAccount (with a token the API server issued for it),
// every kind of change to the configuration: only caBundle passes, and the
// gateway itself keeps its caBundle current under the policy. An admin
// still changes anything. The NetworkPolicies pass a server-side dry run.
func TestAdmissionPolicy(t *testing.T) {
	kubectl := requireTool(t, "kubectl")
	requireKubeEnv(t)
	env := startKubeEnv(t)
	ctx := context.Background()
	adminKubeconfig := filepath.Join(env.dir, "kubeconfig")
	docs := readManifest(t, installManifest)

	kubectlRun := func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", adminKubeconfig}, args...)...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The webhook configuration, the policy and its binding, exactly as
	// shipped, applied the way users apply them.
	var shipped [][]byte
	for _, d := range docs {
		switch d.obj.(type) {
		case *admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.ValidatingAdmissionPolicy,
			*admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			shipped = append(shipped, d.raw)
		}
	}
	if len(shipped) != 3 {
		t.Fatalf("the manifest holds %d webhook configurations, policies and bindings, want 3", len(shipped))
	}
	if out, err := kubectlRun(bytes.Join(shipped, []byte("\n---\n")), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	vwcs := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	asGateway := env.gatehouse.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	original, err := vwcs.Get(ctx, webhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// update reads the configuration with read, changes it and updates it
	// as the client as; a dry run leaves nothing behind but is admitted
	// the same way.
	update := func(read func() (*admissionregistrationv1.ValidatingWebhookConfiguration, error), as admissionregistrationv1client.ValidatingWebhookConfigurationInterface,
		change func(*admissionregistrationv1.ValidatingWebhookConfiguration), dryRun bool) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := read()
			if err != nil {
				return err
			}
			change(cur)
			opts := metav1.UpdateOptions{}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			_, err = as.Update(ctx, cur, opts)
			return err
		})
	}
	get := func() (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
		return vwcs.Get(ctx, webhookConfigName, metav1.GetOptions{})
	}
	// The API server learns of the policy through its own watch. The probe
	// removes the webhooks (in a dry run), which the policy denies whatever
	// fields it compares, so a missing field fails its own case below.
	waitFor(t, "the policy denies the gateway a change", 30*time.Second, func() bool {
		err := update(get, asGateway, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) { c.Webhooks = nil }, true)
		return err != nil && strings.Contains(err.Error(), caBundleOnlyDenial)
	})
	// restore puts back what the manifest shipped, as an admin.
	restore := func(t *testing.T) {
		t.Helper()
		if err := update(get, vwcs, func(cur *admissionregistrationv1.ValidatingWebhookConfiguration) {
			cur.Webhooks = original.DeepCopy().Webhooks
			cur.Labels, cur.Annotations = original.Labels, original.Annotations
			cur.Finalizers, cur.OwnerReferences = original.Finalizers, original.OwnerReferences
		}, false); err != nil {
			t.Fatalf("restoring the configuration as an admin: %v", err)
		}
	}
	bundle := func(s string) []byte {
		return []byte("-----BEGIN CERTIFICATE-----\n" + s + "\n-----END CERTIFICATE-----\n")
	}

	t.Run("the gateway may change caBundle", func(t *testing.T) {
		if err := update(get, asGateway, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			for i := range c.Webhooks {
				c.Webhooks[i].ClientConfig.CABundle = bundle("by update")
			}
		}, false); err != nil {
			t.Fatalf("update of caBundle as the gateway: %v", err)
		}
		// caBundle is bytes, so base64 in JSON.
		patch := fmt.Appendf(nil, `[{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":%q}]`, base64.StdEncoding.EncodeToString(bundle("by patch")))
		got, err := asGateway.Patch(ctx, webhookConfigName, types.JSONPatchType, patch, metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("JSON patch of caBundle as the gateway: %v", err)
		}
		if !bytes.Equal(got.Webhooks[0].ClientConfig.CABundle, bundle("by patch")) {
			t.Errorf("caBundle = %q after the patch", got.Webhooks[0].ClientConfig.CABundle)
		}
		// What docs/install.md shows: an admin checking the policy with
		// kubectl's impersonation sees what the gateway would.
		out, err := kubectlRun(nil, "--as="+gatewayUser, "patch", "validatingwebhookconfiguration", webhookConfigName, "--type=json",
			"-p", fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":%q}]`, base64.StdEncoding.EncodeToString(bundle("by kubectl"))))
		if err != nil {
			t.Errorf("kubectl --as=%s patch of caBundle: %v\n%s", gatewayUser, err, out)
		}
	})

	t.Run("the gateway may change nothing else", func(t *testing.T) {
		changes := forbiddenChanges()
		for _, f := range webhookFields() {
			if !slices.ContainsFunc(changes, func(c vwcChange) bool { return c.field == f }) {
				t.Errorf("ValidatingWebhook field %s has no case here: compare it in the policy (manifests/gatehouse.yaml) and add one", f)
			}
		}
		for _, c := range changes {
			err := update(get, asGateway, c.change, false)
			switch {
			case err == nil:
				t.Errorf("%s: admitted", c.name)
				restore(t) // so later cases start from the original

			case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), caBundleOnlyDenial):
				t.Errorf("%s: %v, want Forbidden with the policy's message", c.name, err)
			}
		}
		out, err := kubectlRun(nil, "--as="+gatewayUser, "patch", "validatingwebhookconfiguration", webhookConfigName, "--type=json",
			"-p", `[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]`)
		if err == nil || !strings.Contains(out, caBundleOnlyDenial) || !strings.Contains(out, caBundlePolicyName) {
			t.Errorf("kubectl --as=%s patch of failurePolicy: %v, want the policy's denial:\n%s", gatewayUser, err, out)
			restore(t)
		}
		t.Logf("kubectl printed: %s", strings.TrimSpace(out))
	})

	t.Run("RBAC limits the gateway to its one configuration", func(t *testing.T) {
		other := original.DeepCopy()
		other.ObjectMeta = metav1.ObjectMeta{Name: "someone-else"}
		// Selecting no namespace, so it never calls anything.
		other.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"nothing": "matches"}}
		if _, err := vwcs.Create(ctx, other, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwcs.Delete(ctx, other.Name, metav1.DeleteOptions{})
		getOther := func() (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
			return vwcs.Get(ctx, other.Name, metav1.GetOptions{})
		}
		err := update(getOther, asGateway, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			c.Webhooks[0].ClientConfig.CABundle = bundle("not mine")
		}, false)
		if !apierrors.IsForbidden(err) || strings.Contains(err.Error(), caBundleOnlyDenial) {
			t.Errorf("caBundle of another configuration as the gateway: %v, want Forbidden by RBAC", err)
		}
		created := other.DeepCopy()
		created.Name = "made-by-the-gateway"
		if _, err := asGateway.Create(ctx, created, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("creating a configuration as the gateway: %v, want Forbidden", err)
		}
		if err := asGateway.Delete(ctx, webhookConfigName, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("deleting its configuration as the gateway: %v, want Forbidden", err)
		}
	})

	t.Run("an admin may change anything", func(t *testing.T) {
		for _, c := range forbiddenChanges() {
			if err := update(get, vwcs, c.change, true); err != nil {
				t.Errorf("%s as an admin: %v", c.name, err)
			}
		}
		// For real: a second webhook, which the gateway then keeps the
		// caBundle of, but may not reorder.
		changes := forbiddenChanges()
		add := changes[slices.IndexFunc(changes, func(c vwcChange) bool { return c.name == "add a webhook" })]
		if err := update(get, vwcs, add.change, false); err != nil {
			t.Fatalf("adding a webhook as an admin: %v", err)
		}
		if err := update(get, asGateway, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			for i := range c.Webhooks {
				c.Webhooks[i].ClientConfig.CABundle = bundle("both")
			}
		}, false); err != nil {
			t.Errorf("caBundle of both webhooks as the gateway: %v", err)
		}
		err := update(get, asGateway, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
			slices.Reverse(c.Webhooks)
		}, false)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), caBundleOnlyDenial) {
			t.Errorf("reordering the webhooks as the gateway: %v, want the policy's denial", err)
		}
		restore(t)
	})

	t.Run("the gateway keeps its caBundle current under the policy", func(t *testing.T) {
		// The real gateway, as the ServiceAccount, bootstrapping its CA
		// and writing it into the configuration the way it always does.
		port := freePort(t)
		g := startProcess(t, "", "serve", "--kubeconfig", env.gatehouseKubeconfig,
			"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false",
			"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", port), "--webhook-host", "127.0.0.1",
			"--webhook-namespace", installNamespace, "--webhook-config", webhookConfigName)
		defer g.stop()
		waitFor(t, "the gateway writes its CA into the caBundle", 30*time.Second, func() bool {
			cur, err := get()
			return err == nil && len(cur.Webhooks) == 1 && len(certs.ParseCertificates(cur.Webhooks[0].ClientConfig.CABundle)) > 0
		})
		if strings.Contains(g.log(), caBundleOnlyDenial) {
			t.Errorf("the policy denied the gateway something:\n%s", g.log())
		}
	})

	t.Run("the NetworkPolicies pass a server-side dry run", func(t *testing.T) {
		var nps [][]byte
		for _, d := range docs {
			if _, ok := d.obj.(*networkingv1.NetworkPolicy); ok {
				nps = append(nps, d.raw)
			}
		}
		if len(nps) == 0 {
			t.Fatal("the manifest holds no NetworkPolicy")
		}
		for _, mode := range [][]string{nil, {"--server-side"}} {
			out, err := kubectlRun(bytes.Join(nps, []byte("\n---\n")), slices.Concat([]string{"apply", "--dry-run=server", "-f", "-"}, mode)...)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server %v: %v\n%s", mode, err, out)
			}
			if got := strings.Count(out, "(server dry run)"); got != len(nps) {
				t.Errorf("kubectl apply --dry-run=server %v: %d objects checked, want %d:\n%s", mode, got, len(nps), out)
			}
		}
	})
}

// busyNamespace is where TestWebhookBusy creates Services; its webhook
// selects nothing else.
const busyNamespace = "wh-busy"

// TestWebhookBusy checks the trade docs/install.md describes for the
// webhook's concurrency bound against a real API server: a review beyond
// the bound is answered 429 with Retry-After, the API server retries it
// within the webhook's timeoutSeconds, and when the webhook stays busy
// past that, failurePolicy decides (Fail: the change is refused). The slot
// is held the way an attacker on the pod network would hold one: a request
// whose body never finishes.
func TestWebhookBusy(t *testing.T) {
	requireKubeEnv(t)
	env := startKubeEnv(t)
	ctx := context.Background()

	// Statuses of the API server's calls (the test's own carry X-Probe).
	var mu sync.Mutex
	var statuses []int
	seen := func(code int) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range statuses {
			if c == code {
				n++
			}
		}
		return n
	}
	h := webhook.New(webhook.Options{MaxConcurrent: 1, MaxWait: 100 * time.Millisecond}).HTTPHandler()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.Header.Get("X-Probe") == "" {
			mu.Lock()
			statuses = append(statuses, rec.code)
			mu.Unlock()
		}
	}))
	ts.StartTLS()
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: busyNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	url := ts.URL + webhook.Path
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "gatehouse-busy"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "services.gatehouse.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url,
				CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             new(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           new(admissionregistrationv1.Fail),
			TimeoutSeconds:          new(int32(5)), // as shipped
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": busyNamespace}},
			MatchConditions:   []admissionregistrationv1.MatchCondition{{Name: "has-gatehouse-config", Expression: webhookCondition}},
		}},
	}
	if _, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svcs := env.admin.CoreV1().Services(busyNamespace)
	create := func(name, annotation string) error {
		_, err := svcs.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"gatehouse.dev/config": annotation}},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		return err
	}
	// The probe is denied by the pre-parse document count, which needs no
	// view of the cluster, and names the figure and the limit.
	waitFor(t, "the API server calls the webhook", 30*time.Second, func() bool {
		err := create("probe", strings.Repeat("a: 1\n---\n", 1001))
		return err != nil && strings.Contains(err.Error(), "the annotation holds 1001 YAML documents; at most 1000 are allowed")
	})

	// hold takes the one slot with a review whose body never ends, and
	// returns once a probe is refused for it.
	hold := func(t *testing.T) (release func()) {
		t.Helper()
		conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: webhook\r\nX-Probe: hold\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", webhook.Path)
		client := ts.Client()
		waitFor(t, "the slot is taken", 10*time.Second, func() bool {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Probe", "probe")
			resp, err := client.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "1"
		})
		return func() { conn.Close() }
	}
	const valid = "kind: Mapping\nname: a\nprefix: /a/\nservice: a\n"

	t.Run("a 429 is retried by the API server", func(t *testing.T) {
		release := hold(t)
		before := seen(http.StatusTooManyRequests)
		done := make(chan error, 1)
		go func() { done <- create("retried", valid) }()
		waitFor(t, "the API server is told to retry", 10*time.Second, func() bool { return seen(http.StatusTooManyRequests) > before })
		release()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the Service was refused although the webhook freed up within the timeout: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the create did not return")
		}
	})

	t.Run("busy past timeoutSeconds: failurePolicy decides", func(t *testing.T) {
		release := hold(t)
		defer release()
		before := seen(http.StatusTooManyRequests)
		start := time.Now()
		err := create("refused", valid)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("with the webhook busy throughout: %v, want refused for failing to call the webhook (failurePolicy Fail)", err)
		}
		if n := seen(http.StatusTooManyRequests) - before; n < 2 {
			t.Errorf("the API server called %d time(s) in %v, want retries after each 429", n, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("refused after %v and %d attempts: %v", time.Since(start).Round(time.Millisecond), seen(http.StatusTooManyRequests)-before, err)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
