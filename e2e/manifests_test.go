package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// The shipped manifests, relative to this package.
const (
	installManifest = "../manifests/gatehouse.yaml"
	examplesGlob    = "../manifests/examples/*.yaml"
)

// The install manifest's names, which the gateway's flags, the RBAC
// resourceNames and the webhook's clientConfig must all agree on.
const (
	installNamespace  = "gatehouse-system"
	webhookSecretName = "gatehouse-webhook-certs"
	webhookConfigName = "gatehouse"
	webhookSvcName    = "gatehouse-webhook"
	// webhookCondition sends the webhook only Services that carry the
	// annotation, so an outage of the gateway cannot block the others.
	webhookCondition = "has(object.metadata.annotations) && '" + annotations.Key + "' in object.metadata.annotations"
)

// manifestDoc is one document of a manifest file: its text, for kubectl,
// and its decoded object.
type manifestDoc struct {
	raw []byte
	obj runtime.Object
}

// readManifest decodes every document of a manifest with client-go's
// scheme, strictly: an unknown or misspelt field (readOnlyRootFileSystem)
// would otherwise be dropped silently and the property it names lost.
func readManifest(t *testing.T, path string) []manifestDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []manifestDoc
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		obj, _, err := dec.Decode(raw, nil, nil)
		if err != nil {
			t.Fatalf("decoding document %d of %s: %v", len(docs)+1, path, err)
		}
		docs = append(docs, manifestDoc{raw: raw, obj: obj})
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no objects", path)
	}
	return docs
}

// stripComments drops whole-line comments, so a document of nothing but
// comments counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}

// kubeObject is what every decoded Kubernetes object is.
type kubeObject interface {
	runtime.Object
	metav1.Object
}

// objectsOf returns the objects of type T among docs.
func objectsOf[T kubeObject](docs []manifestDoc) []T {
	var out []T
	for _, d := range docs {
		if o, ok := d.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// objectNamed returns the object of type T called name, failing when there is not
// exactly one.
func objectNamed[T kubeObject](t *testing.T, docs []manifestDoc, name string) T {
	t.Helper()
	var found []T
	for _, o := range objectsOf[T](docs) {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(examplesGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no examples match %s", examplesGlob)
	}
	return files
}

// TestManifestsInstall checks the properties docs/install.md promises of
// manifests/gatehouse.yaml, without a cluster, so a regression fails in a
// plain `go test`.
func TestManifestsInstall(t *testing.T) {
	docs := readManifest(t, installManifest)
	for _, d := range docs {
		o := d.obj.(kubeObject)
		_, clusterScoped := d.obj.(*corev1.Namespace)
		switch d.obj.(type) {
		case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *admissionregistrationv1.ValidatingWebhookConfiguration,
			*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			clusterScoped = true
		}
		if !clusterScoped && o.GetNamespace() != installNamespace {
			t.Errorf("%T %s is in namespace %q, want %q", d.obj, o.GetName(), o.GetNamespace(), installNamespace)
		}
	}

	ns := objectNamed[*corev1.Namespace](t, docs, installNamespace)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace enforces Pod Security %q, want restricted", got)
	}

	dep := objectNamed[*appsv1.Deployment](t, docs, "gatehouse")
	pod := dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas = %s, want 2", optional(dep.Spec.Replicas))
	}
	if pod.ServiceAccountName != "gatehouse" {
		t.Errorf("pods run as ServiceAccount %q, want gatehouse", pod.ServiceAccountName)
	}
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not true: the gateway needs its token to reach the API server")
	}
	if len(pod.TopologySpreadConstraints) == 0 && (pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil) {
		t.Error("replicas are not spread across nodes (no topologySpreadConstraints or podAntiAffinity)")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkRestricted(t, "gatehouse", pod)
	if u := effectiveUser(pod, c); u == nil || *u != 65532 {
		t.Errorf("runAsUser = %s, want 65532 (the distroless nonroot user)", optional(u))
	}

	args := flagValues(t, c.Args)
	wantArgs := map[string]string{
		"--listen":          ":8080",
		"--admin":           ":8877",
		"--webhook-listen":  ":8443",
		"--webhook-secret":  webhookSecretName,
		"--webhook-config":  webhookConfigName,
		"--webhook-service": webhookSvcName,
	}
	for flag, want := range wantArgs {
		if got := args[flag]; got != want {
			t.Errorf("arg %s = %q, want %q", flag, got, want)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Error("POD_NAMESPACE is not set from the downward API (metadata.namespace)")
	}
	for name, want := range map[string]int32{"http": 8080, "admin": 8877, "webhook": 8443} {
		if got := portNumber(c, intstr.FromString(name)); got != want {
			t.Errorf("container port %q = %d, want %d", name, got, want)
		}
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"startup", c.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || portNumber(c, p.probe.HTTPGet.Port) != 8877 {
			t.Errorf("%s probe GETs %s on port %v, want %s on the admin port 8877", p.what, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
	}

	// The pod must outlive preStop plus the drain, or in-flight requests
	// are cut when the kubelet sends SIGKILL.
	drain := 10 * time.Second
	if v, ok := args["--drain"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("--drain=%q: %v", v, err)
		}
		drain = d
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= preStop+drain {
		t.Errorf("terminationGracePeriodSeconds = %s, want more than preStop %v + drain %v", optional(g), preStop, drain)
	}

	pdb := objectNamed[*policyv1.PodDisruptionBudget](t, docs, "gatehouse")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable = %s, want 1", optional(pdb.Spec.MinAvailable))
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget selector %v does not select the gateway's pods (%v)", pdb.Spec.Selector, err)
	}

	lb := objectNamed[*corev1.Service](t, docs, "gatehouse")
	if lb.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("Service gatehouse type = %s, want LoadBalancer", lb.Spec.Type)
	}
	for _, key := range []string{annotations.Key, "getambassador.io/config"} {
		if _, ok := lb.Annotations[key]; ok {
			t.Errorf("the gateway's own Service carries %s; the gateway would route to itself", key)
		}
	}
	checkServicePort(t, lb, dep, 80, 8080)
	wh := objectNamed[*corev1.Service](t, docs, webhookSvcName)
	if wh.Spec.Type != "" && wh.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s type = %s, want ClusterIP", webhookSvcName, wh.Spec.Type)
	}
	checkServicePort(t, wh, dep, 443, 8443)

	checkRBAC(t, docs)

	secret := objectNamed[*corev1.Secret](t, docs, webhookSecretName)
	if secret.Type != corev1.SecretTypeOpaque || len(secret.Data) != 0 || len(secret.StringData) != 0 {
		t.Errorf("Secret %s: type %q with %d data keys; want Opaque and empty, so re-applying never wipes the certificates", webhookSecretName, secret.Type, len(secret.Data)+len(secret.StringData))
	}

	checkWebhookConfig(t, objectNamed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, docs, webhookConfigName))
	// caBundle: "" decodes like no caBundle, but client-side apply sends
	// it and wipes the bundle the gateway set; only the text tells.
	for _, d := range docs {
		if _, ok := d.obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); !ok {
			continue
		}
		var raw struct {
			Webhooks []struct {
				ClientConfig map[string]any `json:"clientConfig"`
			} `json:"webhooks"`
		}
		if err := sigsyaml.Unmarshal(d.raw, &raw); err != nil {
			t.Fatal(err)
		}
		for _, w := range raw.Webhooks {
			if _, ok := w.ClientConfig["caBundle"]; ok {
				t.Error("the webhook's clientConfig names caBundle; every kubectl apply would then overwrite the CA the gateway patched in")
			}
		}
	}
}

// optional formats a pointer's value, or "unset".
func optional[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// checkServicePort fails unless svc selects dep's pods and sends port to
// containerPort.
func checkServicePort(t *testing.T, svc *corev1.Service, dep *appsv1.Deployment, port, containerPort int32) {
	t.Helper()
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service %s selector %v does not select Deployment %s's pods", svc.Name, svc.Spec.Selector, dep.Name)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port })
	if i < 0 {
		t.Errorf("Service %s has no port %d", svc.Name, port)
		return
	}
	if got := portNumber(dep.Spec.Template.Spec.Containers[0], svc.Spec.Ports[i].TargetPort); got != containerPort {
		t.Errorf("Service %s port %d reaches container port %d, want %d", svc.Name, port, got, containerPort)
	}
}

// checkRBAC compares every right granted with the reviewed list: a rule
// added, widened or removed fails here and needs its reason in the manifest.
func checkRBAC(t *testing.T, docs []manifestDoc) {
	t.Helper()
	grants := func(rules []rbacv1.PolicyRule) []string {
		var out []string
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					verbs := slices.Sorted(slices.Values(r.Verbs))
					out = append(out, fmt.Sprintf("%s/%s %v %v", g, res, verbs, r.ResourceNames))
				}
			}
		}
		slices.Sort(out)
		return out
	}
	cr := objectNamed[*rbacv1.ClusterRole](t, docs, "gatehouse")
	wantCluster := []string{
		"/events [create] []",
		"/namespaces [get list watch] []",
		// Listed and watched with type=kubernetes.io/tls, which RBAC
		// cannot require; no get.
		"/secrets [list watch] []",
		"/services [get list watch] []",
		"admissionregistration.k8s.io/validatingwebhookconfigurations [get patch update] [" + webhookConfigName + "]",
		"discovery.k8s.io/endpointslices [get list watch] []",
	}
	if got := grants(cr.Rules); !slices.Equal(got, wantCluster) {
		t.Errorf("ClusterRole grants\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(wantCluster, "\n  "))
	}
	role := objectNamed[*rbacv1.Role](t, docs, "gatehouse")
	// No create: it cannot be limited by resourceNames, which is why the
	// Secret is shipped in the manifest.
	wantRole := []string{"/secrets [get patch update] [" + webhookSecretName + "]"}
	if got := grants(role.Rules); !slices.Equal(got, wantRole) {
		t.Errorf("Role grants %v, want %v", got, wantRole)
	}

	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "gatehouse", Namespace: installNamespace}}
	objectNamed[*corev1.ServiceAccount](t, docs, "gatehouse")
	crb := objectNamed[*rbacv1.ClusterRoleBinding](t, docs, "gatehouse")
	if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}) || !slices.Equal(crb.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding binds %+v to %+v, want ClusterRole %s to %+v", crb.RoleRef, crb.Subjects, cr.Name, wantSubjects)
	}
	rb := objectNamed[*rbacv1.RoleBinding](t, docs, "gatehouse")
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) || !slices.Equal(rb.Subjects, wantSubjects) {
		t.Errorf("RoleBinding binds %+v to %+v, want Role %s to %+v", rb.RoleRef, rb.Subjects, role.Name, wantSubjects)
	}
}

func checkWebhookConfig(t *testing.T, cfg *admissionregistrationv1.ValidatingWebhookConfiguration) {
	t.Helper()
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("ValidatingWebhookConfiguration has %d webhooks, want 1", len(cfg.Webhooks))
	}
	w := cfg.Webhooks[0]
	if w.Name != "services.gatehouse.dev" {
		t.Errorf("webhook name %q, want services.gatehouse.dev", w.Name)
	}
	wantSvc := admissionregistrationv1.ServiceReference{Namespace: installNamespace, Name: webhookSvcName, Path: new("/validate"), Port: new(int32(443))}
	if s := w.ClientConfig.Service; s == nil || s.Namespace != wantSvc.Namespace || s.Name != wantSvc.Name ||
		s.Path == nil || *s.Path != *wantSvc.Path || s.Port == nil || *s.Port != *wantSvc.Port {
		t.Errorf("clientConfig.service = %+v, want %s/%s port 443 path /validate", s, installNamespace, webhookSvcName)
	}
	if w.ClientConfig.URL != nil || len(w.ClientConfig.CABundle) != 0 {
		t.Error("clientConfig sets url or caBundle: the gateway patches caBundle in")
	}
	if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy = %s, want Fail", optional(w.FailurePolicy))
	}
	if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects = %s, want None", optional(w.SideEffects))
	}
	if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
		t.Errorf("admissionReviewVersions = %v, want [v1]", w.AdmissionReviewVersions)
	}
	if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 5 {
		t.Errorf("timeoutSeconds = %s, want 5", optional(w.TimeoutSeconds))
	}
	if len(w.MatchConditions) != 1 || w.MatchConditions[0].Expression != webhookCondition {
		t.Errorf("matchConditions = %+v, want the one expression %q", w.MatchConditions, webhookCondition)
	}
	// DELETE must stay out: object is null then, so the condition would
	// fail to evaluate and failurePolicy Fail would block the deletion.
	wantRule := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"},
			Scope: new(admissionregistrationv1.AllScopes),
		},
	}
	if len(w.Rules) != 1 || !ruleEqual(w.Rules[0], wantRule) {
		t.Errorf("rules = %+v, want CREATE and UPDATE of core v1 services only", w.Rules)
	}
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		t.Fatalf("namespaceSelector: %v", err)
	}
	if sel.Matches(labels.Set{"kubernetes.io/metadata.name": installNamespace}) || !sel.Matches(labels.Set{"kubernetes.io/metadata.name": "default"}) {
		t.Errorf("namespaceSelector %v must exclude %s (so the gateway can always be repaired) and nothing else", sel, installNamespace)
	}
}

func ruleEqual(a, b admissionregistrationv1.RuleWithOperations) bool {
	return slices.Equal(a.Operations, b.Operations) && slices.Equal(a.APIGroups, b.APIGroups) &&
		slices.Equal(a.APIVersions, b.APIVersions) && slices.Equal(a.Resources, b.Resources) &&
		a.Scope != nil && *a.Scope == *b.Scope
}

// checkRestricted fails unless every container of pod meets what the
// "restricted" Pod Security Standard asks, plus a read-only root
// filesystem, probes and a memory limit.
func checkRestricted(t *testing.T, where string, pod corev1.PodSpec) {
	t.Helper()
	for _, c := range pod.Containers {
		where := where + "/" + c.Name
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil && pod.SecurityContext != nil {
			nonRoot = pod.SecurityContext.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		if u := effectiveUser(pod, c); u != nil && *u == 0 {
			t.Errorf("%s: runs as uid 0", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s: capabilities = %+v, want drop [ALL] and nothing added", where, sc.Capabilities)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil && pod.SecurityContext != nil {
			seccomp = pod.SecurityContext.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile = %+v, want RuntimeDefault", where, seccomp)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: needs readiness and liveness probes", where)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", where)
		}
	}
}

func effectiveUser(pod corev1.PodSpec, c corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.SecurityContext != nil {
		return pod.SecurityContext.RunAsUser
	}
	return nil
}

// portNumber resolves a port by number or by the container's port name; 0
// when the name is unknown.
func portNumber(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// flagValues maps "--name=value" arguments after the subcommand to their
// values; the install manifest always writes flags in that one form.
func flagValues(t *testing.T, args []string) map[string]string {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("args %q do not start with the serve subcommand", args)
	}
	out := map[string]string{}
	for _, a := range args[1:] {
		name, value, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Fatalf("arg %q is not --name=value", a)
		}
		out[name] = value
	}
	return out
}

// TestManifestsExamples checks that every onboarding example is one app in
// one namespace-less file whose routes the gateway accepts as they are.
func TestManifestsExamples(t *testing.T) {
	files := exampleFiles(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			docs := readManifest(t, file)
			for _, d := range docs {
				if ns := d.obj.(kubeObject).GetNamespace(); ns != "" {
					t.Errorf("%T %s names namespace %q; examples go into the namespace they are applied to", d.obj, d.obj.(kubeObject).GetName(), ns)
				}
			}
			deps := objectsOf[*appsv1.Deployment](docs)
			svcs := objectsOf[*corev1.Service](docs)
			if len(deps) == 0 || len(svcs) == 0 {
				t.Fatalf("want a Deployment and a Service, got %d and %d", len(deps), len(svcs))
			}
			for _, d := range deps {
				checkRestricted(t, d.Name, d.Spec.Template.Spec)
			}
			annotated := 0
			for _, svc := range svcs {
				// Exactly one Deployment behind each Service: a canary's
				// pods must not leak into the stable Service.
				var behind []*appsv1.Deployment
				for _, d := range deps {
					if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
						behind = append(behind, d)
					}
				}
				if len(svc.Spec.Selector) == 0 || len(behind) != 1 {
					t.Errorf("Service %s selects %d Deployments, want 1", svc.Name, len(behind))
					continue
				}
				for _, p := range svc.Spec.Ports {
					if portNumber(behind[0].Spec.Template.Spec.Containers[0], p.TargetPort) == 0 {
						t.Errorf("Service %s port %d targets %v, which Deployment %s does not expose", svc.Name, p.Port, p.TargetPort.String(), behind[0].Name)
					}
				}
				src, ok := svc.Annotations[annotations.Key]
				if !ok {
					continue
				}
				annotated++
				checkExampleAnnotation(t, svc, src, svcs)
			}
			if annotated == 0 {
				t.Errorf("no Service carries %s", annotations.Key)
			}

			out, err := exec.Command(binary, "validate", file).CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Errorf("gatehouse validate %s: %v\n%s", file, err, out)
			}
			out, err = exec.Command(binary, "routes", "-f", file).CombinedOutput()
			if err != nil {
				t.Errorf("gatehouse routes -f %s: %v\n%s", file, err, out)
			}
		})
	}

	t.Run("all in one namespace", func(t *testing.T) {
		// docs/install.md applies them side by side; their routes must not
		// collide.
		out, err := exec.Command(binary, append([]string{"validate"}, files...)...).CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("gatehouse validate %v: %v\n%s", files, err, out)
		}
	})

	t.Run("canary split", func(t *testing.T) {
		out, err := exec.Command(binary, "routes", "-f", "../manifests/examples/canary.yaml").Output()
		if err != nil {
			t.Fatalf("gatehouse routes: %v", err)
		}
		// The stable Mapping names no weight and takes what the canary's
		// weight: 10 leaves.
		want := map[string]string{"http://shop.default:80": "90%", "http://shop-canary.default:80": "10%"}
		for upstream, weight := range want {
			if !slices.ContainsFunc(strings.Split(string(out), "\n"), func(line string) bool {
				f := strings.Fields(line)
				return slices.Contains(f, upstream) && slices.Contains(f, weight)
			}) {
				t.Errorf("no route to %s with weight %s in\n%s", upstream, weight, out)
			}
		}
	})
}

// checkExampleAnnotation parses a Service's routes as the gateway and the
// webhook do: no errors, no warnings, and every Mapping targets a Service
// and port of the same file.
func checkExampleAnnotation(t *testing.T, svc *corev1.Service, src string, svcs []*corev1.Service) {
	t.Helper()
	const ns = "team" // any namespace: examples name none
	cfg, problems := annotations.Parse(src, annotations.Options{Namespace: ns})
	if len(problems) != 0 {
		t.Errorf("Service %s: %s:\n%v", svc.Name, annotations.Key, problems)
	}
	if cfg == nil {
		return
	}
	if len(cfg.Mappings) == 0 {
		t.Errorf("Service %s: no Mapping", svc.Name)
	}
	for _, m := range cfg.Mappings {
		ref, err := annotations.ParseServiceRef(m.Service, ns)
		if err != nil {
			t.Errorf("Mapping %s: %v", m.Name, err)
			continue
		}
		if ref.Namespace != ns || !slices.ContainsFunc(svcs, func(s *corev1.Service) bool {
			return s.Name == ref.Name && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == ref.Port })
		}) {
			t.Errorf("Mapping %s targets %s, which is no Service port of the same file", m.Name, ref)
		}
	}
}

// TestManifestsDryRun has a real API server check every shipped manifest
// with `kubectl apply --dry-run=server`: schema, defaulting, validation
// (the webhook's CEL matchCondition compiles) and Pod Security admission,
// without creating anything that could act (no webhook is registered).
func TestManifestsDryRun(t *testing.T) {
	kubectl := requireTool(t, "kubectl")
	env := startKubeEnv(t)
	kubeconfig := filepath.Join(env.dir, "kubeconfig")
	apply := func(t *testing.T, stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig, "apply"}, args...)...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl apply %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		// Pod Security admission answers a workload that would be refused
		// pods with a warning, not an error.
		if strings.Contains(stderr.String(), "would violate PodSecurity") {
			t.Errorf("kubectl apply %s:\n%s", strings.Join(args, " "), stderr.String())
		}
		return stdout.String()
	}
	// dryRun applies a file both ways kubectl can, and checks that the
	// server saw every object of it. Server-side apply forces conflicts:
	// startKubeEnv created some of the objects with another field manager,
	// as an install made by an older client-side apply would have.
	dryRun := func(t *testing.T, file string, args ...string) {
		t.Helper()
		n := len(readManifest(t, file))
		for _, mode := range [][]string{nil, {"--server-side", "--force-conflicts"}} {
			out := apply(t, nil, slices.Concat([]string{"--dry-run=server", "-f", file}, mode, args)...)
			if got := strings.Count(out, "(server dry run)"); got != n {
				t.Errorf("kubectl apply --dry-run=server %v -f %s: %d objects checked, want %d:\n%s", mode, file, got, n, out)
			}
		}
	}

	install := readManifest(t, installManifest)
	t.Run("install", func(t *testing.T) {
		// A dry run creates nothing, so the Namespace must exist for real
		// before the namespaced objects can be checked; applying just it is
		// harmless and gives it the manifest's Pod Security labels.
		apply(t, install[slices.IndexFunc(install, func(d manifestDoc) bool {
			_, ok := d.obj.(*corev1.Namespace)
			return ok
		})].raw, "-f", "-")
		dryRun(t, installManifest)
	})

	const appNS = "gatehouse-examples"
	_, err := env.admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   appNS,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", appNS, err)
	}
	for _, file := range exampleFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			dryRun(t, file, "-n", appNS)
		})
	}

	t.Run("re-apply keeps the webhook certificates", func(t *testing.T) {
		// The shipped Secret, for real, in the examples' namespace (not the
		// gateway's, which other tests may install into).
		secret := objectNamed[*corev1.Secret](t, install, webhookSecretName).DeepCopy()
		secret.Namespace = appNS
		secret.APIVersion, secret.Kind = "v1", "Secret"
		doc, err := sigsyaml.Marshal(secret)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, doc, "-f", "-")
		// What the gateway does once it has made its CA
		// (webhook/certs: Get, then Update with the new data).
		certs := map[string][]byte{"ca.crt": []byte("ca"), "ca.key": []byte("ca key"), "tls.crt": []byte("cert"), "tls.key": []byte("key")}
		ctx := context.Background()
		secrets := env.admin.CoreV1().Secrets(appNS)
		sec, err := secrets.Get(ctx, webhookSecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data = certs
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("filling in the Secret as the gateway would: %v", err)
		}
		for _, mode := range [][]string{nil, {"--server-side"}} {
			apply(t, doc, slices.Concat([]string{"-f", "-"}, mode)...)
			got, err := secrets.Get(ctx, webhookSecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range certs {
				if !bytes.Equal(got.Data[k], v) {
					t.Errorf("after kubectl apply %v: data[%s] = %q, want %q", mode, k, got.Data[k], v)
				}
			}
		}
	})
}
