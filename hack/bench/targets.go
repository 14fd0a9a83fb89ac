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
	// serveFlag is a flag of gatehouse serve the row needs, which a
	// -gatehouse binary of an older commit may lack; "" for none.
	serveFlag string
	// setup says how a Gatehouse feature row is set up, for the report;
	// "" for the other rows, which the report's setup line covers.
	setup       string
	authBackend bool // needs the external auth service (a second backend)
	redis       bool // needs the throwaway Redis
	// baseline names the row the ratios are taken against, at the same
	// connection count. For the plain proxies: nginx over the same
	// protocol, so that an HTTPS row is not charged for TLS; the -full rows
	// are compared with plain nginx, so that their ratios include what the
	// log and limit cost. For a Gatehouse feature row: the Gatehouse row it
	// adds the feature to, so that its ratios are what the feature costs.
	baseline string
	start    func(ctx context.Context, e *env, c *cleanups) (*target, error)
}

// target is a started config.
type target struct {
	url   string
	proc  *process // the proxy; nil when wrk loads the backend directly
	admin string   // Gatehouse's admin address, for profiles and metrics; "" otherwise
	log   string   // the access log, when the config writes one
	// headers go with every request, wrk's and the readiness probe's, as
	// "Name: value" lines.
	headers []string
	// redis says the row's rate limit is decided in Redis, which the
	// gateway's metrics must confirm for the measured run.
	redis bool
}

var configs = []config{
	{name: "backend", label: "backend alone (no proxy)", baseline: "nginx", start: startDirect},
	{name: "nginx", label: "nginx", nginx: true, baseline: "nginx", start: startNginx(plain)},
	{name: "nginx-full", label: "nginx, access log + limit_req", nginx: true, baseline: "nginx", start: startNginx(logAndLimit)},
	{name: "go-reverseproxy", label: "net/http ReverseProxy alone", baseline: "nginx", start: startGoProxy},
	{name: "gatehouse", label: "Gatehouse", gatehouse: true, baseline: "nginx", start: startGatehouse(plain)},
	{name: "gatehouse-full", label: "Gatehouse, access log + rate limit", gatehouse: true, baseline: "nginx", start: startGatehouse(logAndLimit)},
	{name: "nginx-tls", label: "nginx, HTTPS", nginx: true, tls: true, baseline: "nginx-tls", start: startNginx(overTLS)},
	{name: "gatehouse-tls", label: "Gatehouse, HTTPS", gatehouse: true, tls: true, serveFlag: "-listen-tls", baseline: "nginx-tls", start: startGatehouse(overTLS)},
	{name: "gatehouse-jwt", label: "Gatehouse, JWT (ES256)", gatehouse: true, baseline: "gatehouse", start: startGatehouse(withJWT),
		setup: "the Mapping requires a JWT (an Auth with jwt, its key set in a gatehouse.dev/jwks Secret); wrk sends one ES256 token made for the run"},
	{name: "gatehouse-apikey", label: "Gatehouse, API key", gatehouse: true, baseline: "gatehouse", start: startGatehouse(withAPIKey),
		setup: "the Mapping requires an API key (an Auth with api_key, from a gatehouse.dev/api-keys Secret); wrk sends a random 64-hex-digit key"},
	{name: "gatehouse-extauth", label: "Gatehouse, external auth", gatehouse: true, authBackend: true, baseline: "gatehouse", start: startGatehouse(withExtAuth),
		setup: "the Mapping asks an external auth service about each request (an Auth with external): a second instance of the backend on CPU 1, which lets every request through"},
	{name: "gatehouse-redis", label: "Gatehouse, access log + rate limit in Redis", gatehouse: true, redis: true, serveFlag: "-ratelimit-redis",
		baseline: "gatehouse-full", start: startGatehouse(logLimitRedis),
		setup: "gatehouse-full with the rate limit decided in a throwaway redis-server on CPU 1 (--ratelimit-redis, --ratelimit-redis-timeout 1s): one round trip per request"},
	{name: "gatehouse-tracing", label: "Gatehouse, access log + rate limit, spans of 1 %", gatehouse: true, serveFlag: "-otlp-endpoint",
		baseline: "gatehouse-full", start: startGatehouse(logLimitTrace),
		setup: "gatehouse-full exporting a span for 1 % of requests (--otlp-endpoint at the backend, which takes the OTLP/HTTP posts like any request; --trace-sampling 0.01)"},
	{name: "gatehouse-tracing-all", label: "Gatehouse, access log + rate limit, spans of all", gatehouse: true, serveFlag: "-otlp-endpoint",
		baseline: "gatehouse-full", start: startGatehouse(logLimitTraceAll),
		setup: "gatehouse-tracing with every request's span exported (--trace-sampling 1, --trace-max-spans-per-second 0); spans the exporter cannot keep up with are dropped"},
}

// defaultConfigs fit the default run in a little over two minutes (five
// configs, two connection counts, 12 s each, and the starts and stops).
// The other rows are opt-in: the context rows (backend, nginx-full,
// go-reverseproxy) and the Gatehouse feature rows (auth kinds, Redis).
var defaultConfigs = []string{"nginx", "gatehouse", "gatehouse-full", "nginx-tls", "gatehouse-tls"}

// variant is what a proxy's row adds to its plain setup; its suffix ends
// the row's name. nginx has the first three only.
type variant int

const (
	plain            variant = iota
	logAndLimit              // an access log line per request and a rate limit that never rejects
	overTLS                  // clients speak HTTP/1.1 over TLS to the proxy
	withJWT                  // the Mapping requires a JWT, verified against a JWKS Secret
	withAPIKey               // the Mapping requires an API key from a Secret
	withExtAuth              // the Mapping asks an external auth service about each request
	logLimitRedis            // logAndLimit with the limit decided in Redis (--ratelimit-redis)
	logLimitTrace            // logAndLimit exporting 1 % of requests' spans (--otlp-endpoint)
	logLimitTraceAll         // logAndLimit exporting every request's span
)

func (v variant) suffix() string {
	switch v {
	case logAndLimit:
		return "-full"
	case overTLS:
		return "-tls"
	case withJWT:
		return "-jwt"
	case withAPIKey:
		return "-apikey"
	case withExtAuth:
		return "-extauth"
	case logLimitRedis:
		return "-redis"
	case logLimitTrace:
		return "-tracing"
	case logLimitTraceAll:
		return "-tracing-all"
	}
	return ""
}

// full reports whether v has the access log and the rate limit.
func (v variant) full() bool {
	return v == logAndLimit || v == logLimitRedis || v == logLimitTrace || v == logLimitTraceAll
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
	o           options
	tmp         string      // removed at exit
	backend     string      // host:port of the backend
	authBackend string      // host:port of the external auth service; "" when no row needs it
	redis       string      // host:port of the throwaway Redis; "" when no row needs it
	gatehouse   string      // binary
	cert        certFiles   // for the HTTPS rows; zero when none runs
	creds       credentials // for the authenticated rows
}

// startBackend runs this program again as a backend on loadCPU, on a
// listener bound here (see serveBackendFD), and returns its address. name
// tells the backends apart in logs: the one every proxy forwards to, and
// the external auth row's auth service.
func startBackend(ctx context.Context, e *env, c *cleanups, name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("binding the %s's port: %w", name, err)
	}
	defer ln.Close() // the child holds its own copy
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return "", fmt.Errorf("passing the %s's listener: %w", name, err)
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding this program to run the %s: %w", name, err)
	}
	// The pin already gives the Go runtime one P; the variable says so.
	p, err := startProcess(name, filepath.Join(e.tmp, name+".log"), loadCPU,
		[]string{"GOMAXPROCS=1"}, []*os.File{f}, self, backendArg)
	if err != nil {
		return "", err
	}
	c.add(p.stop)
	addr := ln.Addr().String()
	return addr, waitReady(ctx, p, "http://"+addr+"/", nil, nil)
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
		if err := waitReady(ctx, p, url, roots, nil); err != nil {
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
// manifest directory (gatehouseManifests). logAndLimit turns the access
// log on and adds a RateLimit of 10^9 a second, which never rejects, so
// the limiter runs on every request; logLimitRedis has the limit decided
// in the run's Redis. overTLS adds the HTTPS listener with the run's
// certificate as the default one (no Host document), and wrk loads that
// listener instead of the plain one. withJWT and withAPIKey require a
// credential, which wrk sends; withExtAuth asks the auth service.
func startGatehouse(v variant) func(context.Context, *env, *cleanups) (*target, error) {
	return func(ctx context.Context, e *env, c *cleanups) (*target, error) {
		name := "gatehouse" + v.suffix()
		full := v.full()
		dir := filepath.Join(e.tmp, name)
		manifests := filepath.Join(dir, "manifests")
		if err := os.MkdirAll(manifests, 0o755); err != nil {
			return nil, err
		}
		docs, err := gatehouseManifests(v, e.backend, e.authBackend, e.creds)
		if err != nil {
			return nil, err
		}
		for _, m := range docs {
			// 0600: a Secret's credential is for the gateway alone.
			if err := os.WriteFile(filepath.Join(manifests, m.name), []byte(m.text), 0o600); err != nil {
				return nil, err
			}
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
		if v == logLimitRedis {
			// Redis shares CPU 1 with wrk and the backend, which keep it
			// busy: a check can wait a few milliseconds for its turn, and
			// past the 10 ms default the gateway decides locally for a
			// second, which would measure the fallback instead of Redis.
			// measure checks from the gateway's metrics that no check fell
			// back.
			args = append(args, "--ratelimit-redis", e.redis, "--ratelimit-redis-timeout", "1s")
		}
		if v == logLimitTrace || v == logLimitTraceAll {
			// The backend answers the exporter's posts as it answers wrk
			// (a 200 the exporter does not parse): a collector that takes
			// spans as fast as they come, on CPU 1.
			sampling := "0.01"
			if v == logLimitTraceAll {
				// Every span made: the row measures a span's whole cost,
				// not the default bound of 1,000 a second.
				sampling = "1"
				args = append(args, "--trace-max-spans-per-second", "0")
			}
			args = append(args, "--otlp-endpoint", "http://"+e.backend, "--trace-sampling", sampling)
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
		t := &target{proc: p, admin: adminAddr, headers: e.creds.headers(v), redis: v == logLimitRedis}
		var roots *x509.CertPool
		t.url, roots = proxyURL(v, loaded, e.cert)
		if err := waitReady(ctx, p, t.url, roots, t.headers); err != nil {
			return nil, err
		}
		if full {
			t.log = p.log
		}
		return t, nil
	}
}

// benchNamespace is the namespace of every object in the manifests.
const benchNamespace = "default"

// manifest is one file of a Gatehouse row's manifest directory.
type manifest struct{ name, text string }

// gatehouseManifests are the files of variant v's manifest directory: the
// backend Service with the Mapping and whatever v adds in its annotation
// (a RateLimit, an Auth), and an EndpointSlice naming the backend on
// loopback, which file mode allows; for withJWT and withAPIKey the Secret
// the Auth reads, and for withExtAuth the auth service's Service and
// EndpointSlice. backend and authBackend are host:port.
func gatehouseManifests(v variant, backend, authBackend string, cr credentials) ([]manifest, error) {
	mapping := "kind: Mapping\nname: all\nprefix: /\nservice: backend\n"
	var more []string // documents after the Mapping
	if v.full() {
		mapping += "rate_limits: [never]\n"
		more = append(more, "kind: RateLimit\nname: never\nrate: 1000000000\nunit: second\nkey: client_ip\n")
	}
	var secret string
	switch v {
	case withJWT:
		mapping += "auth: login\n"
		more = append(more, "kind: Auth\nname: login\njwt:\n  issuer: "+benchIssuer+"\n  audiences: ["+benchAudience+"]\n  jwks_secret: bench-jwks\n")
		// JSON is a single line with no YAML specials at its start in a
		// literal block: it is kept as written.
		secret = secretManifest("bench-jwks", "gatehouse.dev/jwks", "jwks.json: |\n  "+string(cr.jwks)+"\n")
	case withAPIKey:
		mapping += "auth: partners\n"
		more = append(more, "kind: Auth\nname: partners\napi_key:\n  secrets: [bench-keys]\n")
		// Quoted: 64 hex digits may read as a number.
		secret = secretManifest("bench-keys", "gatehouse.dev/api-keys", benchConsumer+": "+strconv.Quote(cr.apiKey)+"\n")
	case withExtAuth:
		mapping += "auth: checker\n"
		more = append(more, "kind: Auth\nname: checker\nexternal:\n  service: bench-auth\n  timeout_ms: 1000\n")
	}
	_, port, err := net.SplitHostPort(backend)
	if err != nil {
		return nil, fmt.Errorf("the backend's address: %w", err)
	}
	out := []manifest{{"backend.yaml", serviceManifest("backend", strings.Join(append([]string{mapping}, more...), "---\n"), port)}}
	if secret != "" {
		out = append(out, manifest{"secret.yaml", secret})
	}
	if v == withExtAuth {
		_, port, err := net.SplitHostPort(authBackend)
		if err != nil {
			return nil, fmt.Errorf("the auth service's address: %w", err)
		}
		out = append(out, manifest{"auth.yaml", serviceManifest("bench-auth", "", port)})
	}
	return out, nil
}

// serviceManifest is a Service with annotation (none when "") in
// gatehouse.dev/config and an EndpointSlice of one ready endpoint,
// 127.0.0.1:port.
func serviceManifest(name, annotation, port string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n", name, benchNamespace)
	if annotation != "" {
		b.WriteString("  annotations:\n    gatehouse.dev/config: |\n")
		for _, l := range strings.Split(strings.TrimRight(annotation, "\n"), "\n") {
			b.WriteString("      " + l + "\n")
		}
	}
	b.WriteString("spec:\n  ports:\n  - name: http\n    port: 80\n")
	fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-0
  namespace: %[2]s
  labels:
    kubernetes.io/service-name: %[1]s
addressType: IPv4
ports:
- name: http
  port: %[3]s
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
`, name, benchNamespace, port)
	return b.String()
}

// secretManifest is a Secret of type typ in the bench namespace whose
// stringData is data: YAML lines, each indented here by two spaces.
func secretManifest(name, typ, data string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: %s\nstringData:\n", name, benchNamespace, typ)
	for _, l := range strings.Split(strings.TrimRight(data, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
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
// HTTP/1.1 there, as wrk does. headers ("Name: value", as wrk takes them)
// go with every probe, so a row that requires a credential is ready only
// once it accepts the one wrk will send. It gives up after 15 s or as
// soon as p exits.
func waitReady(ctx context.Context, p *process, url string, roots *x509.CertPool, headers []string) error {
	client := probeClient(roots)
	defer client.CloseIdleConnections()
	return p.poll(ctx, "serve "+url, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ":")
			req.Header.Add(name, strings.TrimSpace(value))
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) != bodySize {
			return fmt.Errorf("status %d, %d-byte body", resp.StatusCode, len(b))
		}
		return nil
	})
}
