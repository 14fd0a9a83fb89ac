// Package e2e holds end-to-end tests that run the gatehouse binary as a
// separate process against real sockets.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/demo"
)

// binary is built once per test run by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/gatehouse")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gatehouse:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// upstreamServer is a real HTTP server on a loopback port.
type upstreamServer struct {
	addr string
	port int
	hits atomic.Int64
}

func startUpstream(t *testing.T, h func(u *upstreamServer) http.Handler) *upstreamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	inner := h(u)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		inner.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

func echo(service string) func(u *upstreamServer) http.Handler {
	return func(u *upstreamServer) http.Handler { return demo.EchoHandler(service, u.addr) }
}

// gateway is a running `gatehouse serve --from-dir` process.
type gateway struct {
	t      *testing.T
	base   string
	admin  string
	tls    string // the TLS listener's address, "" without --listen-tls
	mu     sync.Mutex
	stderr strings.Builder
	stdout strings.Builder
	stop   func() // interrupts the process and waits for it; idempotent
}

func startGateway(t *testing.T, dir string, extra ...string) *gateway {
	t.Helper()
	return startProcess(t, "", append([]string{"serve", "--from-dir", dir, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--reload-interval", "50ms"}, extra...)...)
}

// startProcess runs the gatehouse binary in workDir ("" for the test's own)
// and waits until it serves a snapshot.
func startProcess(t *testing.T, workDir string, args ...string) *gateway {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = workDir
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t}
	cmd.Stdout = lockedWriter{&g.mu, &g.stdout}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [3]string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.stderr.WriteString(line + "\n")
			g.mu.Unlock()
			var rec struct{ Msg, Proxy, Admin, TLS string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrs <- [3]string{rec.Proxy, rec.Admin, rec.TLS}
			}
		}
	}()
	g.stop = sync.OnceFunc(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", g.log())
		}
	})
	select {
	case a := <-addrs:
		g.base, g.admin, g.tls = "http://"+a[0], "http://"+a[1], a[2]
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not start; stderr:\n%s", g.log())
	}
	g.eventually("the gateway is ready", func() bool {
		resp, err := http.Get(g.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

// lockedWriter appends to a builder under the gateway's lock.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// output is what the process printed on stdout so far.
func (g *gateway) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stdout.String()
}

func (g *gateway) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// eventually polls cond until it holds or a generous deadline passes.
func (g *gateway) eventually(what string, cond func() bool) {
	g.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			g.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reply struct {
	status int
	header http.Header
	echo   demo.Echo
	body   string
}

func (g *gateway) do(method, host, path string, headers ...string) reply {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	return readReply(resp)
}

func readReply(resp *http.Response) reply {
	body, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
	_ = json.Unmarshal(body, &r.echo)
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, so the gateway never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serviceYAML renders a Service with an annotation and an EndpointSlice
// pointing at the given upstreams.
func serviceYAML(name, annotation string, ups ...*upstreamServer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: default\n", name)
	if annotation != "" {
		b.WriteString("  annotations:\n    gatehouse.dev/config: |\n")
		for _, l := range strings.Split(strings.TrimRight(annotation, "\n"), "\n") {
			b.WriteString("      " + l + "\n")
		}
	}
	b.WriteString("spec:\n  ports:\n  - name: http\n    port: 80\n")
	for i, u := range ups {
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-%d\n  namespace: default\n  labels:\n    kubernetes.io/service-name: %s\naddressType: IPv4\nports:\n- name: http\n  port: %d\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {ready: true}\n", name, i, name, u.port)
	}
	return b.String()
}

func TestServeFromDir(t *testing.T) {
	alpha := startUpstream(t, echo("alpha"))
	beta := startUpstream(t, echo("beta"))
	rr1 := startUpstream(t, echo("rr"))
	rr2 := startUpstream(t, echo("rr"))
	var failing atomic.Bool
	flaky := startUpstream(t, func(u *upstreamServer) http.Handler {
		ok := demo.EchoHandler("flaky", u.addr)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			ok.ServeHTTP(w, r)
		})
	})
	slow := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})
	})
	// A port nothing listens on: bind one, then close it.
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := &upstreamServer{addr: deadLn.Addr().String(), port: deadLn.Addr().(*net.TCPAddr).Port}
	deadLn.Close()

	dir := t.TempDir()
	alphaConfig := `kind: Mapping
name: by-host
host: a.example.com
prefix: /h/
service: alpha
---
kind: Mapping
name: prefix
prefix: /p/
service: alpha
---
kind: Mapping
name: keep-path
prefix: /keep/
rewrite: ""
service: alpha
---
kind: Mapping
name: rewrite-v1
prefix: /old/
rewrite: /v1/
service: alpha
---
kind: Mapping
name: header-default
prefix: /hdr/
service: alpha
---
kind: Mapping
name: precedence-high
prefix: /prec/
precedence: 10
service: alpha
---
kind: Mapping
name: limited
prefix: /limited/
service: alpha
rate_limits: [three-per-minute]
---
kind: RateLimit
name: three-per-minute
rate: 3
unit: minute
`
	betaConfig := `kind: Mapping
name: exact
prefix: /exact
prefix_exact: true
service: beta
---
kind: Mapping
name: regex
prefix: ^/items/[0-9]+$
prefix_regex: true
service: beta
---
kind: Mapping
name: post-only
prefix: /m/
method: POST
service: beta
---
kind: Mapping
name: header-blue
prefix: /hdr/
headers:
  x-team: blue
service: beta
---
kind: Mapping
name: precedence-long
prefix: /prec/long/
service: beta
`
	writeFile(t, filepath.Join(dir, "alpha.yaml"), serviceYAML("alpha", alphaConfig, alpha))
	writeFile(t, filepath.Join(dir, "beta.yaml"), serviceYAML("beta", betaConfig, beta))
	writeFile(t, filepath.Join(dir, "rr.yaml"), serviceYAML("rr", "kind: Mapping\nname: rr\nprefix: /rr/\nservice: rr\n", rr1, rr2))
	writeFile(t, filepath.Join(dir, "flaky.yaml"), serviceYAML("flaky", "kind: Mapping\nname: flaky\nprefix: /flaky/\nservice: flaky\n", flaky))
	writeFile(t, filepath.Join(dir, "slow.yaml"), serviceYAML("slow", "kind: Mapping\nname: slow\nprefix: /slow/\nservice: slow\ntimeout_ms: 200\n", slow))
	writeFile(t, filepath.Join(dir, "dead.yaml"), serviceYAML("dead", "kind: Mapping\nname: dead\nprefix: /dead/\nservice: dead\n", dead))

	g := startGateway(t, dir, "--breaker-failures", "3", "--breaker-open-timeout", "300ms")

	t.Run("routing", func(t *testing.T) {
		cases := []struct {
			method, host, path string
			headers            []string
			status             int
			service, upPath    string
		}{
			{"GET", "a.example.com", "/h/x", nil, 200, "alpha", "/x"},
			{"GET", "A.Example.COM:8080", "/h/x", nil, 200, "alpha", "/x"}, // port and case ignored
			{"GET", "b.example.com", "/h/x", nil, 404, "", ""},
			{"GET", "", "/p/users/7", nil, 200, "alpha", "/users/7"},
			{"GET", "", "/p", nil, 404, "", ""},
			{"GET", "", "/keep/a/b", nil, 200, "alpha", "/keep/a/b"},
			{"GET", "", "/old/thing", nil, 200, "alpha", "/v1/thing"},
			{"GET", "", "/exact", nil, 200, "beta", "/"},
			{"GET", "", "/exact/more", nil, 404, "", ""},
			{"GET", "", "/items/42", nil, 200, "beta", "/"},
			{"GET", "", "/items/abc", nil, 404, "", ""},
			{"POST", "", "/m/x", nil, 200, "beta", "/x"},
			{"GET", "", "/m/x", nil, 404, "", ""},
			{"GET", "", "/hdr/x", []string{"X-Team", "blue"}, 200, "beta", "/x"},
			{"GET", "", "/hdr/x", []string{"X-Team", "red"}, 200, "alpha", "/x"},
			{"GET", "", "/hdr/x", nil, 200, "alpha", "/x"},
			{"GET", "", "/prec/long/x", nil, 200, "alpha", "/long/x"}, // precedence beats the longer prefix
			{"GET", "", "/nothing", nil, 404, "", ""},
		}
		for _, c := range cases {
			r := g.do(c.method, c.host, c.path, c.headers...)
			if r.status != c.status || r.echo.Service != c.service || r.echo.Path != c.upPath {
				t.Errorf("%s %s%s %v: got %d from %q with path %q, want %d from %q with path %q",
					c.method, c.host, c.path, c.headers, r.status, r.echo.Service, r.echo.Path, c.status, c.service, c.upPath)
			}
		}
	})

	t.Run("forwarded headers and request id", func(t *testing.T) {
		r := g.do("GET", "a.example.com", "/h/x", "X-Request-Id", "abc-123")
		if r.echo.XForwardedHost != "a.example.com" || r.echo.XForwardedProto != "http" || r.echo.XForwardedFor != "127.0.0.1" {
			t.Errorf("forwarded headers: %+v", r.echo)
		}
		if r.echo.XRequestID != "abc-123" || r.header.Get("X-Request-Id") != "abc-123" {
			t.Errorf("request id not kept: upstream %q, response %q", r.echo.XRequestID, r.header.Get("X-Request-Id"))
		}
		r = g.do("GET", "", "/p/x")
		if len(r.echo.XRequestID) != 32 || r.header.Get("X-Request-Id") != r.echo.XRequestID {
			t.Errorf("generated request id: upstream %q, response %q", r.echo.XRequestID, r.header.Get("X-Request-Id"))
		}
	})

	t.Run("round robin", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			r := g.do("GET", "", "/rr/x")
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			seen[r.echo.Endpoint]++
		}
		if seen[rr1.addr] != 10 || seen[rr2.addr] != 10 {
			t.Errorf("round robin over two endpoints: %v", seen)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if r := g.do("GET", "", "/limited/x"); r.status != 200 {
				t.Fatalf("request %d within burst: status %d", i+1, r.status)
			}
		}
		r := g.do("GET", "", "/limited/x")
		if r.status != 429 {
			t.Fatalf("after burst: status %d, want 429", r.status)
		}
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 20 {
			t.Errorf("Retry-After %q, want about 20 (one token per 20 s)", r.header.Get("Retry-After"))
		}
	})

	t.Run("upstream errors", func(t *testing.T) {
		if r := g.do("GET", "", "/slow/x"); r.status != 504 {
			t.Errorf("slow upstream past timeout_ms: status %d, want 504", r.status)
		}
		if r := g.do("GET", "", "/dead/x"); r.status != 502 {
			t.Errorf("refused connection: status %d, want 502", r.status)
		}
	})

	t.Run("circuit breaker", func(t *testing.T) {
		failing.Store(true)
		for i := 0; i < 3; i++ {
			if r := g.do("GET", "", "/flaky/x"); r.status != 500 {
				t.Fatalf("failure %d: status %d, want the upstream's 500", i+1, r.status)
			}
		}
		before := flaky.hits.Load()
		r := g.do("GET", "", "/flaky/x")
		if r.status != 503 {
			t.Fatalf("breaker should be open: status %d, want 503", r.status)
		}
		if flaky.hits.Load() != before {
			t.Errorf("an open breaker let a request through to the upstream")
		}
		failing.Store(false)
		g.eventually("the breaker recovers through half-open", func() bool {
			return g.do("GET", "", "/flaky/x").status == 200
		})
		for i := 0; i < 5; i++ {
			if r := g.do("GET", "", "/flaky/x"); r.status != 200 {
				t.Fatalf("after recovery: status %d", r.status)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(g.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`gatehouse_requests_total{route="default/prefix",status="200"}`,
			`gatehouse_requests_total{route="",status="404"}`,
			`gatehouse_ratelimit_rejections_total{policy="default/three-per-minute"} 1`,
			`gatehouse_breaker_state{upstream="default/flaky:80"} 0`,
			`gatehouse_upstream_latency_seconds_count{upstream="default/alpha:80"}`,
			`gatehouse_snapshot_generation 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("hot reload", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "rr.yaml"), serviceYAML("rr",
			"kind: Mapping\nname: rr\nprefix: /rr/\nservice: rr\n---\nkind: Mapping\nname: fresh\nprefix: /fresh/\nrewrite: /new/\nservice: rr\n", rr1, rr2))
		g.eventually("the new route serves", func() bool {
			r := g.do("GET", "", "/fresh/x")
			return r.status == 200 && r.echo.Path == "/new/x"
		})
	})

	t.Run("invalid edit keeps previous routes", func(t *testing.T) {
		// The annotation's first line is line 8 of the file (serviceYAML puts
		// seven lines before it), so its fourth line is file line 11.
		bad := "kind: Mapping\nname: rr\nprefix: /rr/\nprefx: /typo/\nservice: rr\n"
		writeFile(t, filepath.Join(dir, "rr.yaml"), serviceYAML("rr", bad, rr1, rr2))
		want := filepath.Join(dir, "rr.yaml") + ":11:7: "
		g.eventually("the problem is reported with its file position", func() bool {
			return strings.Contains(g.log(), want)
		})
		for _, path := range []string{"/rr/x", "/fresh/x", "/p/x"} {
			if r := g.do("GET", "", path); r.status != 200 {
				t.Errorf("%s after an invalid edit: status %d, want 200 (last good config)", path, r.status)
			}
		}
		if !strings.Contains(g.log(), `unknown field \"prefx\"`) && !strings.Contains(g.log(), `unknown field "prefx"`) {
			t.Errorf("stderr lacks the unknown-field message")
		}
	})
}
