package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Namespaces of the tenancy test.
const (
	tnShop = "tn-shop" // owns shop.example.com
	tnEvil = "tn-evil" // tries every way to take it
	tnBlog = "tn-blog" // an innocent bystander that breaks its own annotation
)

// takeovers are the forms of issue 10: each would win requests for
// shop.example.com/orders/ from another namespace if ownership were only
// the exact host, kind and prefix.
var takeovers = []struct{ name, annotation string }{
	{"hostless-precedence", "kind: Mapping\nname: grab\nprefix: /\nservice: grab\nprecedence: 1000000\n"},
	{"host-regex", "kind: Mapping\nname: grab\nhost: \"shop\\\\.example\\\\.com\"\nhost_regex: true\nprefix: /orders/\nservice: grab\n"},
	{"longer-prefix", "kind: Mapping\nname: grab\nhost: shop.example.com\nprefix: /orders/vip/\nservice: grab\n"},
	{"prefix-exact", "kind: Mapping\nname: grab\nhost: shop.example.com\nprefix: /orders/1\nprefix_exact: true\nservice: grab\n"},
	{"wildcard", "kind: Mapping\nname: grab\nhost: \"*.example.com\"\nprefix: /\nservice: grab\n"},
}

// TestTenancy drives a gateway and its webhook on a real API server as
// three teams would: every takeover form is denied by kubectl with the
// owner named; with the webhook unregistered the gateway enforces the same
// (the incumbent keeps answering from its own pod, each newcomer gets a
// Warning Event); a Service whose annotation stops compiling keeps its last
// good routes with a Warning Event while other teams' edits are served; and
// a freshly started gateway serves everyone else and reports ready.
func TestTenancy(t *testing.T) {
	env := startKubeEnv(t)
	kubectl := requireTool(t, "kubectl")
	ctx := context.Background()
	podA, podB := env.pods[0], env.pods[1]
	adminKubeconfig := filepath.Join(env.dir, "kubeconfig")
	for _, ns := range []string{tnShop, tnEvil, tnBlog} {
		if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	g := startAdmittingGateway(t, env, []string{tnShop, tnEvil, tnBlog}, "--access-log=false")
	apply, mustApply := kubectlApply(t, kubectl, adminKubeconfig)
	// onlyShop checks that requests for shop.example.com reach the
	// incumbent's pod and nothing else.
	onlyShop := func() {
		t.Helper()
		for _, path := range []string{"/orders/1", "/orders/vip/1"} {
			r, err := fetchHost(g.base, "shop.example.com", path)
			if err != nil || r.status != 200 || r.echo.Service != podA.name {
				t.Errorf("shop.example.com%s: %d from %q (%v); want 200 from the incumbent's %s", path, r.status, r.echo.Service, err, podA.name)
			}
		}
		if r, err := fetchHost(g.base, "shop.example.com", "/orders/1"); err == nil && r.echo.Service == podB.name {
			t.Errorf("a newcomer answered for shop.example.com")
		}
	}

	mustApply(serviceManifest(tnShop, "orders", "kind: Mapping\nname: orders\nhost: shop.example.com\nprefix: /orders/\nservice: orders\n"))
	env.setEndpointsIn(t, tnShop, "orders", podA)
	waitFor(t, "shop.example.com/orders/ is served", 20*time.Second, func() bool {
		return servedHost(g.base, "shop.example.com", "/orders/1", podA)
	})

	t.Run("every takeover form is denied with the owner named", func(t *testing.T) {
		for _, c := range takeovers {
			out, err := apply(serviceManifest(tnEvil, c.name, c.annotation))
			if err == nil {
				t.Errorf("%s: admitted:\n%s", c.name, out)
				continue
			}
			if !strings.Contains(out, `namespace "`+tnShop+`"`) {
				t.Errorf("%s: the denial does not name the owner:\n%s", c.name, out)
			}
			t.Logf("%s: kubectl printed:\n%s", c.name, strings.TrimSpace(out))
		}
		onlyShop()
	})

	t.Run("Namespace annotations: allowed hosts and delegation", func(t *testing.T) {
		annotate := func(ns, key, value string) {
			t.Helper()
			n, err := env.admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			if value == "" {
				delete(n.Annotations, key)
			} else {
				n.Annotations[key] = value
			}
			if _, err := env.admin.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		remove := func(ns, name string) {
			t.Helper()
			if err := env.admin.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !strings.Contains(err.Error(), "not found") {
				t.Fatal(err)
			}
		}
		// A value that does not parse allows nothing, and the Namespace gets
		// a Warning Event saying why.
		annotate(tnEvil, "gatehouse.dev/allowed-hosts", "evil.example.com, https://evil.example.com")
		waitFor(t, "an InvalidAnnotation Event on Namespace tn-evil", 20*time.Second, func() bool {
			list, err := env.admin.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
				FieldSelector: "involvedObject.kind=Namespace,involvedObject.name=" + tnEvil + ",reason=InvalidAnnotation"})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range list.Items {
				if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, `"https://evil.example.com" is not a host or *.domain`) && e.InvolvedObject.UID != "" {
					return true
				}
			}
			return false
		})
		// A platform team limits tn-evil to its own host: claiming another
		// (one nobody owns yet) is denied, naming the annotation. Each try
		// changes the annotation, so that kubectl sends it for review.
		annotate(tnEvil, "gatehouse.dev/allowed-hosts", "evil.example.com")
		try := 0
		var denial string
		waitFor(t, "a host outside tn-evil's list is denied", 20*time.Second, func() bool {
			try++
			out, err := apply(serviceManifest(tnEvil, "squat", fmt.Sprintf("kind: Mapping\nname: squat\nhost: login.example.com\nprefix: /t%d/\nservice: squat\n", try)))
			denial = out
			return err != nil && strings.Contains(out, "gatehouse.dev/allowed-hosts")
		})
		t.Logf("kubectl printed:\n%s", strings.TrimSpace(denial))
		if _, err := apply(serviceManifest(tnEvil, "own", "kind: Mapping\nname: own\nhost: evil.example.com\nprefix: /\nservice: own\n")); err != nil {
			t.Errorf("a host on tn-evil's list was denied: %v", err)
		}
		remove(tnEvil, "squat")
		remove(tnEvil, "own")
		annotate(tnEvil, "gatehouse.dev/allowed-hosts", "")

		// tn-shop delegates its host to tn-blog: read from the Namespace in
		// cluster mode, a Mapping of tn-blog for shop.example.com is
		// admitted and served.
		annotate(tnShop, "gatehouse.dev/delegate-hosts-to", tnBlog)
		try = 0
		waitFor(t, "tn-blog may serve shop.example.com once delegated", 20*time.Second, func() bool {
			try++
			_, err := apply(serviceManifest(tnBlog, "shopblog", fmt.Sprintf("kind: Mapping\nname: shopblog\nhost: shop.example.com\nprefix: /blog/\nservice: shopblog\nadd_request_headers:\n  x-try: \"%d\"\n", try)))
			return err == nil
		})
		env.setEndpointsIn(t, tnBlog, "shopblog", podB)
		waitFor(t, "shop.example.com/blog/ is served by tn-blog", 20*time.Second, func() bool {
			return servedHost(g.base, "shop.example.com", "/blog/1", podB)
		})
		onlyShop()
		remove(tnBlog, "shopblog")
		annotate(tnShop, "gatehouse.dev/delegate-hosts-to", "")
	})

	t.Run("webhook bypassed: the gateway enforces the same", func(t *testing.T) {
		if err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "gatehouse", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Ownership after a restart follows creation order, and creation
		// times have whole seconds: Services created in the same second
		// are ordered by namespace/name (docs/security.md), and "tn-evil"
		// sorts before "tn-shop". The takeovers come a second later than
		// the owner, as they would in any real cluster.
		owner, err := env.admin.CoreV1().Services(tnShop).Get(ctx, "orders", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a second after the owner's creation", 5*time.Second, func() bool {
			return time.Now().After(owner.CreationTimestamp.Add(time.Second))
		})
		for _, c := range takeovers {
			waitFor(t, c.name+" is admitted without the webhook", 20*time.Second, func() bool {
				_, err := apply(serviceManifest(tnEvil, c.name, c.annotation))
				return err == nil
			})
			env.setEndpointsIn(t, tnEvil, c.name, podB)
		}
		for _, c := range takeovers {
			waitFor(t, c.name+" gets a Warning Event", 20*time.Second, func() bool {
				for _, e := range eventsIn(t, env, tnEvil, c.name, "InvalidConfig") {
					if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, `namespace "`+tnShop+`"`) {
						return true
					}
				}
				return false
			})
		}
		onlyShop()
	})

	t.Run("a Service that stops compiling keeps its last good routes", func(t *testing.T) {
		mustApply(serviceManifest(tnBlog, "posts", "kind: Mapping\nname: posts\nprefix: /posts/\nservice: posts\n"))
		env.setEndpointsIn(t, tnBlog, "posts", podB)
		waitFor(t, "/posts/ is served", 20*time.Second, func() bool { return servedHost(g.base, "blog.example.com", "/posts/1", podB) })
		// Past a budget (33 conditions; 32 allowed): parses, cannot compile.
		var conds strings.Builder
		for i := range 33 {
			fmt.Fprintf(&conds, "  x-h%d: \"1\"\n", i)
		}
		mustApply(serviceManifest(tnBlog, "posts", "kind: Mapping\nname: posts\nprefix: /posts/v2/\nservice: posts\nheaders:\n"+conds.String()))
		waitFor(t, "the broken Service gets a Warning Event", 20*time.Second, func() bool {
			for _, e := range eventsIn(t, env, tnBlog, "posts", "InvalidConfig") {
				if strings.Contains(e.Message, "--max-conditions-per-route") {
					return true
				}
			}
			return false
		})
		if !servedHost(g.base, "blog.example.com", "/posts/1", podB) {
			t.Errorf("the last good route of the broken Service stopped")
		}
		// Another team's edit is served as usual.
		start := time.Now()
		mustApply(serviceManifest(tnShop, "cart", "kind: Mapping\nname: cart\nhost: shop.example.com\nprefix: /cart/\nservice: orders\n"))
		waitFor(t, "shop's new route is served", 20*time.Second, func() bool { return servedHost(g.base, "shop.example.com", "/cart/1", podA) })
		t.Logf("another team's edit served %v after kubectl apply returned", time.Since(start).Round(time.Millisecond))
		onlyShop()
	})

	t.Run("a fresh gateway serves everyone else and reports ready", func(t *testing.T) {
		fresh := startProcess(t, "", "serve", "--kubeconfig", env.gatehouseKubeconfig,
			"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
		resp, err := http.Get(fresh.admin + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("readyz: %v %v", resp, err)
		}
		resp.Body.Close()
		for host, path := range map[string]string{"shop.example.com": "/orders/1", "shop.example.com.": "/cart/1"} {
			if !servedHost(fresh.base, host, path, podA) {
				t.Errorf("fresh gateway: %s%s not served by the owner", host, path)
			}
		}
		// The broken Service has no last good configuration in a fresh
		// process: it is not served, and nothing else suffers.
		if r, err := fetchHost(fresh.base, "blog.example.com", "/posts/1"); err != nil || r.status != 404 {
			t.Errorf("fresh gateway: the broken Service answered %d (%v)", r.status, err)
		}
		// The newcomers' routes that were admitted before nothing: the
		// owner still decides who serves its host after a restart.
		if r, err := fetchHost(fresh.base, "shop.example.com", "/orders/vip/1"); err != nil || r.echo.Service != podA.name {
			t.Errorf("fresh gateway: shop.example.com/orders/vip/1 answered by %q (%v)", r.echo.Service, err)
		}
	})
}

// eventsIn lists the Events on Service name in namespace ns with reason.
// startAdmittingGateway runs the gateway in cluster mode with its
// admission webhook registered for namespaces, and waits until the API
// server can call it (the gateway has put its CA in the caBundle).
func startAdmittingGateway(t *testing.T, env *kubeEnv, namespaces []string, extra ...string) *gateway {
	t.Helper()
	port := freePort(t)
	registerWebhook(t, env, fmt.Sprintf("https://127.0.0.1:%d/validate", port), namespaces...)
	g := startProcess(t, "", append([]string{"serve", "--kubeconfig", env.gatehouseKubeconfig,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", port), "--webhook-host", "127.0.0.1",
		"--webhook-namespace", "gatehouse-system", "--webhook-config", "gatehouse"}, extra...)...)
	waitFor(t, "the gateway patches the webhook's caBundle", 30*time.Second, func() bool {
		vwc, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), "gatehouse", metav1.GetOptions{})
		return err == nil && len(vwc.Webhooks) > 0 && len(vwc.Webhooks[0].ClientConfig.CABundle) > 0
	})
	return g
}

// kubectlApply returns apply, which runs kubectl apply on a manifest and
// returns what it printed, and mustApply, which fails the test when it
// fails.
func kubectlApply(t *testing.T, kubectl, kubeconfig string) (func(string) (string, error), func(string)) {
	apply := func(manifest string) (string, error) {
		cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustApply := func(manifest string) {
		t.Helper()
		if out, err := apply(manifest); err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
	}
	return apply, mustApply
}

func eventsIn(t *testing.T, env *kubeEnv, ns, name, reason string) []corev1.Event {
	t.Helper()
	list, err := env.admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + name + ",reason=" + reason,
	})
	if err != nil {
		t.Fatalf("listing events of %s/%s: %v", ns, name, err)
	}
	return list.Items
}
