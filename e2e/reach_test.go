package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayNeverDialsItself runs a file-mode gateway (loopback upstreams
// allowed, as for demos) whose admin port is known in advance, and routes
// to it three ways: an IPv4 slice naming the admin port on 127.0.0.1, an
// FQDN slice naming localhost at the admin port, and an FQDN slice naming
// localhost at an ordinary loopback listener. None is dialled: the admin
// listener's /metrics never comes back through the proxy and the ordinary
// listener counts no connection, while a plain IPv4 slice to it works.
func TestGatewayNeverDialsItself(t *testing.T) {
	decoy := startUpstream(t, echo("decoy"))
	adminPort := freePort(t)
	dir := t.TempDir()
	fqdn := func(name, host string, port int) string {
		return fmt.Sprintf("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-fqdn\n  namespace: default\n  labels:\n    kubernetes.io/service-name: %s\naddressType: FQDN\nports:\n- name: http\n  port: %d\nendpoints:\n- addresses: [%q]\n  conditions: {ready: true}\n", name, name, port, host)
	}
	self := &upstreamServer{port: adminPort}
	writeFile(t, filepath.Join(dir, "self.yaml"), serviceYAML("self", "kind: Mapping\nname: self\nprefix: /self/\nservice: self\nrewrite: /metrics\n", self))
	writeFile(t, filepath.Join(dir, "self-fqdn.yaml"), serviceYAML("selfname", "kind: Mapping\nname: selfname\nprefix: /selfname/\nservice: selfname\nrewrite: /metrics\n")+fqdn("selfname", "localhost", adminPort))
	writeFile(t, filepath.Join(dir, "decoy-fqdn.yaml"), serviceYAML("decoyname", "kind: Mapping\nname: decoyname\nprefix: /decoyname/\nservice: decoyname\n")+fqdn("decoyname", "localhost", decoy.port))
	writeFile(t, filepath.Join(dir, "decoy.yaml"), serviceYAML("decoy", "kind: Mapping\nname: decoy\nprefix: /decoy/\nservice: decoy\n", decoy))

	g := startProcess(t, "", "serve", "--from-dir", dir, "--listen", "127.0.0.1:0", "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--reload-interval", "50ms")
	if r := g.do("GET", "", "/decoy/x"); r.status != 200 || r.echo.Service != "decoy" {
		t.Fatalf("the plain loopback route: %d %q", r.status, r.body)
	}
	before := decoy.hits.Load()
	for _, path := range []string{"/self/", "/selfname/", "/decoyname/x"} {
		r := g.do("GET", "", path)
		if r.status == 200 || strings.Contains(r.body, "gatehouse_") || strings.Contains(r.body, "go_goroutines") {
			t.Errorf("%s: %d %.200q; want a refusal, never the gateway's own admin answers", path, r.status, r.body)
		}
	}
	if got := decoy.hits.Load() - before; got != 0 {
		t.Errorf("an FQDN slice was dialled: the decoy saw %d requests", got)
	}
	if !strings.Contains(g.log(), "own listener") && !strings.Contains(g.log(), "FQDN") {
		t.Logf("gateway log:\n%s", g.log())
	}
}

// TestExternalUpstreams: a Mapping to a host outside the cluster is refused
// by validate, explain and a live gateway without --external-upstreams, with
// a message naming the flag, and served when the flag lists it. The
// "outside" host is a loopback server, which only a literal listing allows.
func TestExternalUpstreams(t *testing.T) {
	up := startUpstream(t, echo("outside"))
	dir := t.TempDir()
	file := filepath.Join(dir, "ext.yaml")
	writeFile(t, file, serviceYAML("ext", fmt.Sprintf("kind: Mapping\nname: ext\nprefix: /ext/\nservice: 127.0.0.1:%d\n", up.port)))
	allow := "--external-upstreams=127.0.0.1"

	// validate
	out, err := exec.Command(binary, "validate", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "host outside the cluster") || !strings.Contains(string(out), "--external-upstreams") {
		t.Errorf("validate without the flag: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "validate", allow, file).CombinedOutput(); err != nil {
		t.Errorf("validate with %s: %v\n%s", allow, err, out)
	}
	// A wildcard does not reach loopback: only a literal listing does.
	if out, err := exec.Command(binary, "validate", "--external-upstreams=*", file).CombinedOutput(); err == nil {
		t.Errorf("validate with --external-upstreams=* admitted a loopback host:\n%s", out)
	}

	// explain shows the host as written.
	out, err = exec.Command(binary, "explain", allow, "-o", "json", "-f", file, "GET", "/ext/a").CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	var ex struct {
		Matched  bool
		Upstream string
	}
	if err := json.Unmarshal(out, &ex); err != nil || !ex.Matched || !strings.Contains(ex.Upstream, fmt.Sprintf("127.0.0.1:%d", up.port)) {
		t.Errorf("explain: %+v (%v)\n%s", ex, err, out)
	}

	// A live gateway: refused without the flag, served with it.
	g := startGateway(t, dir)
	if r := g.do("GET", "", "/ext/a"); r.status != 404 {
		t.Errorf("without the flag: %d %q; want 404 (the Service is rejected)", r.status, r.body)
	}
	if !strings.Contains(g.log(), "--external-upstreams") {
		t.Errorf("the gateway did not say why:\n%s", g.log())
	}
	g.stop()
	g = startGateway(t, dir, allow)
	if r := g.do("GET", "", "/ext/a"); r.status != 200 || r.echo.Service != "outside" || r.echo.Path != "/a" {
		t.Errorf("with %s: %d %q", allow, r.status, r.body)
	}
}
