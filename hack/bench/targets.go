package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The proxy under test has CPU 0 to itself; wrk and the backend share CPU
// 1, so what a proxy costs never slows its own load generator.
const (
	proxyCPU = 0
	loadCPU  = 1
)

// config is one kind of row: what answers wrk's requests.
type config struct {
	name      string // as given to -configs
	label     string // in the table
	nginx     bool   // needs nginx installed
	gatehouse bool   // needs the gatehouse binary
	start     func(ctx context.Context, e *env, c *cleanups) (*target, error)
}

// target is a started config.
type target struct {
	url   string
	proc  *process // the proxy; nil when wrk loads the backend directly
	admin string   // Gatehouse's admin address, for profiles; "" otherwise
	log   string   // the access log, when the config writes one
}

var configs = []config{
	{"backend", "backend alone (no proxy)", false, false, startDirect},
	{"nginx", "nginx", true, false, startNginx(false)},
	{"nginx-full", "nginx, access log + limit_req", true, false, startNginx(true)},
	{"go-reverseproxy", "net/http ReverseProxy alone", false, false, startGoProxy},
	{"gatehouse", "Gatehouse", false, true, startGatehouse(false)},
	{"gatehouse-full", "Gatehouse, access log + rate limit", false, true, startGatehouse(true)},
}

// defaultConfigs fit the default run in about two minutes.
var defaultConfigs = []string{"nginx", "gatehouse", "gatehouse-full"}

func configNames() []string {
	var out []string
	for _, c := range configs {
		out = append(out, c.name)
	}
	return out
}

func parseConfigs(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(f)
		if _, ok := configByName(name); !ok {
			return nil, fmt.Errorf("unknown row %q (want one of %s)", name, strings.Join(configNames(), ", "))
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, nil
}

func configByName(name string) (config, bool) {
	for _, c := range configs {
		if c.name == name {
			return c, true
		}
	}
	return config{}, false
}

// env is what every config starts from.
type env struct {
	o         options
	tmp       string // removed at exit
	backend   string // host:port of the backend
	gatehouse string // binary
}

// startBackend runs this program again as the backend on loadCPU, on a
// listener bound here (see serveBackendFD).
func startBackend(ctx context.Context, e *env, c *cleanups) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("binding the backend's port: %w", err)
	}
	defer ln.Close() // the child holds its own copy
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return fmt.Errorf("passing the backend's listener: %w", err)
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to run the backend: %w", err)
	}
	// The pin already gives the Go runtime one P; the variable says so.
	p, err := startProcess("backend", filepath.Join(e.tmp, "backend.log"), loadCPU,
		[]string{"GOMAXPROCS=1"}, []*os.File{f}, self, backendArg)
	if err != nil {
		return err
	}
	c.add(p.stop)
	e.backend = ln.Addr().String()
	return waitReady(ctx, p, "http://"+e.backend+"/")
}

func startDirect(ctx context.Context, e *env, c *cleanups) (*target, error) {
	return &target{url: "http://" + e.backend + "/"}, nil
}

// startNginx runs nginx as the equivalent of Gatehouse's proxy: one worker,
// upstream keep-alive, the same headers to the backend (client Host,
// X-Forwarded-*, X-Request-Id, also returned to the client) and the same
// 3 s bounds. full adds what gatehouse-full adds: an access log line per
// request and a rate limit that never rejects.
func startNginx(full bool) func(context.Context, *env, *cleanups) (*target, error) {
	return func(ctx context.Context, e *env, c *cleanups) (*target, error) {
		name := "nginx"
		if full {
			name = "nginx-full"
		}
		dir := filepath.Join(e.tmp, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := nginxConf(dir, port, e.backend, e.o.keepalive, full)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		// -e: the error log before the configuration is read, which would
		// otherwise go to the packaged /var/log/nginx/error.log.
		p, err := startProcess(name, filepath.Join(dir, "stderr.log"), proxyCPU, nil, nil,
			"nginx", "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
		if err != nil {
			return nil, err
		}
		c.add(p.stop)
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
		if err := waitReady(ctx, p, url); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, readFile(filepath.Join(dir, "error.log")))
		}
		t := &target{url: url, proc: p}
		if full {
			t.log = filepath.Join(dir, "access.log")
		}
		return t, nil
	}
}

func nginxConf(dir string, port int, backend string, keepalive int, full bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by hack/bench: nginx as the equivalent of Gatehouse's proxy.
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    # nginx closes a client connection after 1000 requests by default;
    # Go's server (Gatehouse) never does, and the reconnects would cost
    # nginx accepts that Gatehouse does not pay.
    keepalive_requests 1000000000;
`, dir)
	if full {
		fmt.Fprintf(&b, `    access_log %s/access.log combined;
    # A limit so high that it never rejects, so the limiter runs on every
    # request, as gatehouse-full's RateLimit does.
    limit_req_zone $binary_remote_addr zone=never:1m rate=1000000000r/s;
`, dir)
	} else {
		b.WriteString("    access_log off;\n")
	}
	fmt.Fprintf(&b, `    upstream backend {
        server %s;
        keepalive %d;
        keepalive_requests 1000000000;
    }
    server {
        listen 127.0.0.1:%d;
        location / {
`, backend, keepalive, port)
	if full {
		// nginx counts in milliseconds: without a burst, two requests in
		// the same millisecond would be over the limit whatever the rate.
		b.WriteString("            limit_req zone=never burst=1000000000 nodelay;\n")
	}
	b.WriteString(`            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-Id $request_id;
            add_header X-Request-Id $request_id always;
            proxy_connect_timeout 3s;
            proxy_send_timeout 3s;
            proxy_read_timeout 3s;
        }
    }
}
`)
	return b.String()
}

// startGatehouse serves one Mapping, prefix /, to the backend from a
// manifest directory. full turns the access log on and adds a RateLimit of
// 10^9 a second, which never rejects, so the limiter runs on every request.
func startGatehouse(full bool) func(context.Context, *env, *cleanups) (*target, error) {
	return func(ctx context.Context, e *env, c *cleanups) (*target, error) {
		name := "gatehouse"
		if full {
			name = "gatehouse-full"
		}
		dir := filepath.Join(e.tmp, name)
		manifests := filepath.Join(dir, "manifests")
		if err := os.MkdirAll(manifests, 0o755); err != nil {
			return nil, err
		}
		_, port, err := net.SplitHostPort(e.backend)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(manifests, "backend.yaml"), []byte(gatehouseManifest(port, full)), 0o644); err != nil {
			return nil, err
		}
		listen, err := freePort()
		if err != nil {
			return nil, err
		}
		admin, err := freePort()
		if err != nil {
			return nil, err
		}
		adminAddr := "127.0.0.1:" + strconv.Itoa(admin)
		args := []string{e.gatehouse, "serve", "--from-dir", manifests,
			"--listen", "127.0.0.1:" + strconv.Itoa(listen), "--admin", adminAddr,
			"--access-log=" + strconv.FormatBool(full),
			// Nothing is in flight when the benchmark stops it.
			"--drain", "1s"}
		if e.o.cpuprofile != "" {
			args = append(args, "--pprof")
		}
		// Access log lines go to stderr, here a file in the temporary
		// directory, as nginx-full's go to its access.log.
		// GOMAXPROCS=1: one P, the counterpart of nginx's single worker
		// (the pin to one CPU already implies it; the variable says so).
		p, err := startProcess(name, filepath.Join(dir, "stderr.log"), proxyCPU, []string{"GOMAXPROCS=1"}, nil, args...)
		if err != nil {
			return nil, err
		}
		c.add(p.stop)
		url := "http://127.0.0.1:" + strconv.Itoa(listen) + "/"
		if err := waitReady(ctx, p, url); err != nil {
			return nil, err
		}
		t := &target{url: url, proc: p, admin: adminAddr}
		if full {
			t.log = p.log
		}
		return t, nil
	}
}

// gatehouseManifest is a Service with the Mapping (and RateLimit) in its
// annotation and an EndpointSlice naming the backend on loopback, which
// file mode allows.
func gatehouseManifest(port string, full bool) string {
	annotation := "kind: Mapping\nname: all\nprefix: /\nservice: backend\n"
	if full {
		annotation += "rate_limits: [never]\n---\nkind: RateLimit\nname: never\nrate: 1000000000\nunit: second\nkey: client_ip\n"
	}
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata:\n  name: backend\n  namespace: default\n")
	b.WriteString("  annotations:\n    gatehouse.dev/config: |\n")
	for _, l := range strings.Split(strings.TrimRight(annotation, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	b.WriteString("spec:\n  ports:\n  - name: http\n    port: 80\n")
	fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-0
  namespace: default
  labels:
    kubernetes.io/service-name: backend
addressType: IPv4
ports:
- name: http
  port: %s
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
`, port)
	return b.String()
}

// freePort asks the kernel for a free loopback port. It is released before
// the proxy binds it; on loopback nothing else races for it in practice,
// and a lost race shows as a failed start, not a wrong figure.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until it answers 200 with the backend's body, which
// for a proxy also proves the route to the backend works. It gives up
// after 15 s or as soon as p exits.
func waitReady(ctx context.Context, p *process, url string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(b) == bodySize {
				client.CloseIdleConnections()
				return nil
			}
			last = fmt.Sprintf("status %d, %d-byte body", resp.StatusCode, len(b))
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before serving (%v):\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve %s within 15s (last: %s):\n%s", p.name, url, last, p.logTail())
		}
	}
}
