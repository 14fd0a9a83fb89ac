package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	tls       bool   // clients speak HTTPS: needs the run's certificate
	// baseline names the row the ratios are taken against, at the same
	// connection count: nginx over the same protocol, so that an HTTPS
	// row is not charged for TLS. The -full rows are compared with plain
	// nginx, so that their ratios include what the log and limit cost.
	baseline string
	start    func(ctx context.Context, e *env, c *cleanups) (*target, error)
}

// target is a started config.
type target struct {
	url   string
	proc  *process // the proxy; nil when wrk loads the backend directly
	admin string   // Gatehouse's admin address, for profiles; "" otherwise
	log   string   // the access log, when the config writes one
}

var configs = []config{
	{name: "backend", label: "backend alone (no proxy)", baseline: "nginx", start: startDirect},
	{name: "nginx", label: "nginx", nginx: true, baseline: "nginx", start: startNginx(plain)},
	{name: "nginx-full", label: "nginx, access log + limit_req", nginx: true, baseline: "nginx", start: startNginx(logAndLimit)},
	{name: "go-reverseproxy", label: "net/http ReverseProxy alone", baseline: "nginx", start: startGoProxy},
	{name: "gatehouse", label: "Gatehouse", gatehouse: true, baseline: "nginx", start: startGatehouse(plain)},
	{name: "gatehouse-full", label: "Gatehouse, access log + rate limit", gatehouse: true, baseline: "nginx", start: startGatehouse(logAndLimit)},
	{name: "nginx-tls", label: "nginx, HTTPS", nginx: true, tls: true, baseline: "nginx-tls", start: startNginx(overTLS)},
	{name: "gatehouse-tls", label: "Gatehouse, HTTPS", gatehouse: true, tls: true, baseline: "nginx-tls", start: startGatehouse(overTLS)},
}

// defaultConfigs fit the default run in a little over two minutes (five
// configs, two connection counts, 12 s each, and the starts and stops).
var defaultConfigs = []string{"nginx", "gatehouse", "gatehouse-full", "nginx-tls", "gatehouse-tls"}

// variant is what a proxy's row adds to its plain setup; its suffix ends
// the row's name.
type variant int

const (
	plain       variant = iota
	logAndLimit         // an access log line per request and a rate limit that never rejects
	overTLS             // clients speak HTTP/1.1 over TLS to the proxy
)

func (v variant) suffix() string {
	switch v {
	case logAndLimit:
		return "-full"
	case overTLS:
		return "-tls"
	}
	return ""
}

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
	tmp       string    // removed at exit
	backend   string    // host:port of the backend
	gatehouse string    // binary
	cert      certFiles // for the HTTPS rows; zero when none runs
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
	return waitReady(ctx, p, "http://"+e.backend+"/", nil)
}

func startDirect(ctx context.Context, e *env, c *cleanups) (*target, error) {
	return &target{url: "http://" + e.backend + "/"}, nil
}

// startNginx runs nginx as the equivalent of Gatehouse's proxy: one worker,
// upstream keep-alive, the same headers to the backend (client Host,
// X-Forwarded-*, X-Request-Id, also returned to the client) and the same
// 3 s bounds. logAndLimit adds what gatehouse-full adds: an access log
// line per request and a rate limit that never rejects. overTLS serves
// HTTPS with the run's certificate, as gatehouse-tls does.
func startNginx(v variant) func(context.Context, *env, *cleanups) (*target, error) {
	return func(ctx context.Context, e *env, c *cleanups) (*target, error) {
		name := "nginx" + v.suffix()
		dir := filepath.Join(e.tmp, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := nginxConf(dir, port, e.backend, e.o.keepalive, v, e.cert)
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
		url, roots := proxyURL(v, port, e.cert)
		if err := waitReady(ctx, p, url, roots); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, readFile(filepath.Join(dir, "error.log")))
		}
		t := &target{url: url, proc: p}
		if v == logAndLimit {
			t.log = filepath.Join(dir, "access.log")
		}
		return t, nil
	}
}

// nginxConf is nginx's configuration for variant v; cert is used by
// overTLS only.
func nginxConf(dir string, port int, backend string, keepalive int, v variant, cert certFiles) string {
	full := v == logAndLimit
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
`, backend, keepalive)
	if v == overTLS {
		fmt.Fprintf(&b, `        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        # The suite Go's server picks for wrk's OpenSSL on hardware with
        # AES (TLS_AES_128_GCM_SHA256): by default nginx takes the client's
        # first choice, OpenSSL's TLS_AES_256_GCM_SHA384, and would
        # encrypt every answer at a different cost from Gatehouse.
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
`, port, cert.cert, cert.key)
	} else {
		fmt.Fprintf(&b, "        listen 127.0.0.1:%d;\n", port)
	}
	b.WriteString("        location / {\n")
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
// manifest directory. logAndLimit turns the access log on and adds a
// RateLimit of 10^9 a second, which never rejects, so the limiter runs on
// every request. overTLS adds the HTTPS listener with the run's
// certificate as the default one (no Host document), and wrk loads that
// listener instead of the plain one.
func startGatehouse(v variant) func(context.Context, *env, *cleanups) (*target, error) {
	return func(ctx context.Context, e *env, c *cleanups) (*target, error) {
		name := "gatehouse" + v.suffix()
		full := v == logAndLimit
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
		loaded := listen // the listener wrk loads
		if v == overTLS {
			// serve always has its plain listener; this row leaves it idle.
			if loaded, err = freePort(); err != nil {
				return nil, err
			}
			args = append(args, "--listen-tls", "127.0.0.1:"+strconv.Itoa(loaded),
				"--tls-cert-file", e.cert.cert, "--tls-key-file", e.cert.key)
		}
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
		url, roots := proxyURL(v, loaded, e.cert)
		if err := waitReady(ctx, p, url, roots); err != nil {
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

// proxyURL is the URL wrk loads a proxy's row at, and for HTTPS the CA
// that the readiness probe trusts (nil for plain HTTP).
func proxyURL(v variant, port int, cert certFiles) (string, *x509.CertPool) {
	if v == overTLS {
		return "https://127.0.0.1:" + strconv.Itoa(port) + "/", cert.roots
	}
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/", nil
}

// probeClient is the readiness probe's client: HTTP/1.1 only, trusting
// roots alone for HTTPS (the system's roots when nil), on a transport of
// its own so that its connections go with it.
func probeClient(roots *x509.CertPool) *http.Client {
	var h1 http.Protocols
	h1.SetHTTP1(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: &h1}
	return &http.Client{Timeout: time.Second, Transport: tr}
}

// waitReady polls url until it answers 200 with the backend's body, which
// for a proxy also proves the route to the backend works. An https url
// must present a certificate for its host that roots signed, so the probe
// also proves the proxy serves the run's certificate; the probe speaks
// HTTP/1.1 there, as wrk does. It gives up after 15 s or as soon as p
// exits.
func waitReady(ctx context.Context, p *process, url string, roots *x509.CertPool) error {
	client := probeClient(roots)
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(b) == bodySize {
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
