package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"

	"github.com/gatehouse-dev/gatehouse/kube/api"
)

// kubeEnv is a real Kubernetes API server (etcd + kube-apiserver from
// hack/test-cluster) with the identity and RBAC of manifests/gatehouse.yaml applied, and upstream echo
// servers in network namespaces standing in for pods. One serves every
// Kubernetes test of a test binary: starting it costs seconds, the tests
// milliseconds.
type kubeEnv struct {
	dir   string // hack/test-cluster's state: pid files, logs, kubeconfigs
	admin kubernetes.Interface
	// gatehouse acts as the ServiceAccount the RBAC manifest binds, through
	// gatehouseKubeconfig, which the gateway process is given too.
	gatehouse           kubernetes.Interface
	gatehouseKubeconfig string
	// adminAPI and gatehouseAPI are the same identities through kube/api,
	// the client the gateway itself uses, for tests that drive its
	// packages directly.
	adminAPI, gatehouseAPI *api.Client
	pods                   []pod
}

// pod is an echo server inside its own network namespace, reachable from
// the host at ip:port like a pod IP.
type pod struct {
	name string // also what the echo answers as its service name
	ip   string
	port int32
}

func (p pod) addr() string { return fmt.Sprintf("%s:%d", p.ip, p.port) }

// kubeNamespace is where the tests' Services live.
const kubeNamespace = "default"

// startKubeEnv starts the environment, or skips the test when the machine
// cannot host it: network namespaces need root and iproute2. Everything
// started is stopped when t ends.
func startKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	// In CI a missing prerequisite fails the test: a skipped end-to-end
	// suite would look green while testing nothing.
	if os.Geteuid() != 0 {
		skipOrFail(t, "Kubernetes e2e tests need root to create network namespaces for upstreams (EndpointSlices reject loopback addresses); running as uid %d", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "Kubernetes e2e tests need the ip command (iproute2) to create network namespaces for upstreams")
	}
	ctx := context.Background()
	env := &kubeEnv{dir: t.TempDir()}

	start := time.Now()
	run(t, "../hack/test-cluster", "up", env.dir)
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() { run(t, "../hack/test-cluster", "down", env.dir) })
	t.Logf("API server up in %v", time.Since(start).Round(time.Millisecond))

	env.admin = clientFor(t, filepath.Join(env.dir, "kubeconfig"))
	env.adminAPI = apiFor(t, filepath.Join(env.dir, "kubeconfig"))
	// The identity, RBAC and certificate Secret of the install manifest,
	// so the tests run the gateway with exactly the rights we ship.
	env.applyManifest(t, "../manifests/gatehouse.yaml")

	// The manifest's subject is the ServiceAccount, so the gateway runs as
	// that account with a token the API server issues for it; the test
	// cluster's static "gatehouse" user would test a binding we do not ship.
	expiry := int64(3600)
	tr, err := env.admin.CoreV1().ServiceAccounts("gatehouse-system").CreateToken(ctx, "gatehouse",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a token for the gatehouse ServiceAccount: %v", err)
	}
	env.gatehouseKubeconfig = filepath.Join(env.dir, "gatehouse-sa.kubeconfig")
	writeKubeconfig(t, filepath.Join(env.dir, "kubeconfig"), env.gatehouseKubeconfig, "system:serviceaccount:gatehouse-system:gatehouse", tr.Status.Token)
	env.gatehouse = clientFor(t, env.gatehouseKubeconfig)
	env.gatehouseAPI = apiFor(t, env.gatehouseKubeconfig)

	echoBin := filepath.Join(env.dir, "echo")
	run(t, "go", "build", "-o", echoBin, "./testdata/echo")
	env.pods = startPods(t, echoBin, "pod-a", "pod-b")
	return env
}

// run runs a command and fails the test, with its output, if it fails.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(restConfig(t, kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiFor(t *testing.T, kubeconfig string) *api.Client {
	t.Helper()
	c, err := api.New(restConfig(t, kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func restConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// client-go throttles to 5 requests a second by default; a test that
	// makes 1,000 changes would measure that limiter, not the gateway.
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg
}

// writeKubeconfig copies the kubeconfig at from to to, with user and token
// as its only credentials.
func writeKubeconfig(t *testing.T, from, to, user, token string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		t.Fatal(err)
	}
	ctxName := cfg.CurrentContext
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{user: {Token: token}}
	cfg.Contexts[ctxName].AuthInfo = user
	if err := clientcmd.WriteToFile(*cfg, to); err != nil {
		t.Fatal(err)
	}
}

// applyManifest creates the identity, RBAC and Secret objects of a YAML
// manifest with the admin client, as `kubectl apply` would on an empty
// cluster; other kinds are skipped.
func (e *kubeEnv) applyManifest(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	for _, doc := range readManifest(t, path) {
		var err error
		switch o := doc.obj.(type) {
		case *corev1.Namespace:
			_, err = e.admin.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = e.admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = e.admin.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = e.admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = e.admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = e.admin.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = e.admin.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			// The gateway runs as a process here, not as a pod: its
			// Deployment, Services, PodDisruptionBudget and webhook
			// registration are the webhook and manifest tests' business.
			continue
		}
		if err != nil {
			t.Fatalf("applying %s: %v", path, err)
		}
	}
}

// startPods makes one network namespace per name, joined to the host by a
// veth pair in its own /30 of 10.200.0.0/16, and runs an echo server in
// each.
func startPods(t *testing.T, echoBin string, names ...string) []pod {
	t.Helper()
	third := freeSubnet(t)
	var pods []pod
	for i, name := range names {
		ns := fmt.Sprintf("gh-e2e-%d-%d-%d", os.Getpid(), third, i)
		host := fmt.Sprintf("10.200.%d.%d", third, 4*i+1)
		p := pod{name: name, ip: fmt.Sprintf("10.200.%d.%d", third, 4*i+2), port: 8080}
		run(t, "../hack/netns", "add", ns, host+"/30", p.ip+"/30")
		t.Cleanup(func() { run(t, "../hack/netns", "del", ns) })
		args := []string{"exec", ns, echoBin, "-listen", p.addr(), "-name", name}
		if strings.HasPrefix(name, "authz") {
			args = append(args, "-mode", "authz")
		}
		cmd := exec.Command("../hack/netns", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Before the namespace goes (cleanups run last-in first-out).
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		waitFor(t, "echo server "+p.addr()+" answers", 20*time.Second, func() bool {
			resp, err := http.Get("http://" + p.addr() + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true // an authz pod refuses "/", and that is an answer too
		})
		pods = append(pods, p)
	}
	return pods
}

// freeSubnet picks a 10.200.N.0/24 no interface uses, so test runs beside
// each other (or leftovers of a killed run) do not collide.
func freeSubnet(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	for i := range 256 {
		n := (os.Getpid() + i) % 256
		if !strings.Contains(string(out), fmt.Sprintf(" 10.200.%d.", n)) {
			return n
		}
	}
	t.Fatal("every 10.200.N.0/24 is in use")
	return 0
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setService creates or updates a Service in kubeNamespace with one port
// (http, 80 → 8080) and annotation as its gatehouse.dev/config ("" for
// none).
func (e *kubeEnv) setService(t *testing.T, name, annotation string) {
	t.Helper()
	ctx := context.Background()
	svcs := e.admin.CoreV1().Services(kubeNamespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			svc = &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeNamespace},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
				}},
			}
			setAnnotation(svc, annotation)
			_, err = svcs.Create(ctx, svc, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		setAnnotation(svc, annotation)
		_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting Service %s: %v", name, err)
	}
}

func setAnnotation(svc *corev1.Service, annotation string) {
	if annotation == "" {
		delete(svc.Annotations, "gatehouse.dev/config")
		return
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations["gatehouse.dev/config"] = annotation
}

// setEndpoints creates or updates the EndpointSlice of Service name so its
// ready endpoints are pods, as the EndpointSlice controller would.
func (e *kubeEnv) setEndpoints(t *testing.T, name string, pods ...pod) {
	t.Helper()
	e.setEndpointsIn(t, kubeNamespace, name, pods...)
}

// setEndpointsIn is setEndpoints for a Service in namespace ns.
func (e *kubeEnv) setEndpointsIn(t *testing.T, ns, name string, pods ...pod) {
	t.Helper()
	ctx := context.Background()
	slices := e.admin.DiscoveryV1().EndpointSlices(ns)
	portName, port, ready := "http", int32(8080), true
	want := func(es *discoveryv1.EndpointSlice) {
		es.Labels = map[string]string{"kubernetes.io/service-name": name}
		es.AddressType = discoveryv1.AddressTypeIPv4
		es.Ports = []discoveryv1.EndpointPort{{Name: &portName, Port: &port}}
		es.Endpoints = nil
		for _, p := range pods {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{p.ip},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		es, err := slices.Get(ctx, name+"-1", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			es = &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Namespace: ns}}
			want(es)
			_, err = slices.Create(ctx, es, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		want(es)
		_, err = slices.Update(ctx, es, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the endpoints of %s: %v", name, err)
	}
}

// events lists the Events on Service name with reason.
func (e *kubeEnv) events(t *testing.T, name, reason string) []corev1.Event {
	t.Helper()
	list, err := e.admin.CoreV1().Events(kubeNamespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + name + ",reason=" + reason,
	})
	if err != nil {
		t.Fatalf("listing events of %s: %v", name, err)
	}
	return list.Items
}

// fetch sends GET path to the gateway at base; err is a transport failure.
func fetch(base, path string) (reply, error) {
	return fetchHost(base, "", path)
}

// fetchHost is fetch with a Host header ("" for base's).
func fetchHost(base, host, path string) (reply, error) {
	c := http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return reply{}, err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	return readReply(resp), nil
}

// served reports whether GET path answers 200 from pod p with upstream
// path upPath.
func served(base, path string, p pod, upPath string) bool {
	r, err := fetch(base, path)
	return err == nil && r.status == 200 && r.echo.Service == p.name && r.echo.Endpoint == p.addr() && r.echo.Path == upPath
}
