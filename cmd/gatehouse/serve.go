package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/tracing"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

type serveFlags struct {
	dialect        pipelineFlags
	dir            string
	listen, admin  string
	accessLog      bool
	breakerFails   uint
	breakerOpen    time.Duration
	outlierFails   uint
	outlierEject   time.Duration
	outlierShare   float64
	breakerRatio   float64
	breakerMin     uint
	breakerWindow  time.Duration
	trustedProxies prefixList
	ipv6Prefix     int
	reloadInterval time.Duration
	drain          time.Duration
	pprof          bool
	engine         string

	// Edge TLS.
	listenTLS, tlsCert, tlsKey string
	httpsPort                  int

	// Rate limits across replicas.
	replicasFrom, redisAddr, redisFailure string
	redisTimeout                          time.Duration

	// Tracing (tracing.Options).
	otlpEndpoint  string
	traceSampling float64
	traceMaxSpans float64

	// Limits on slow and greedy clients (server.Limits).
	readHeaderTimeout, bodyIdleTimeout, idleTimeout, sendTimeout time.Duration
	bodyMinRate, maxRequestBody                                  int64
	maxConnections, maxHeaderBytes                               int
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address for traffic")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8877", "address for /healthz, /readyz and /metrics")
	fs.StringVar(&f.listenTLS, "listen-tls", "", "address for HTTPS (HTTP/2 and HTTP/1.1 by ALPN); certificates come from Host documents by server name (none: no TLS listener)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "PEM certificate (chain) served to clients whose server name no Host has a certificate for, and to those that send none; reloaded when the file changes (none: such handshakes are refused)")
	fs.StringVar(&f.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.IntVar(&f.httpsPort, "https-redirect-port", 0, "port in the https:// URLs plain-HTTP requests are redirected to, when a load balancer's port differs from --listen-tls's (0: --listen-tls's port; 443 is left out of URLs)")
	fs.StringVar(&f.replicasFrom, "replicas-from", "", "the gateway's own Service as namespace/name: each replica enforces 1/N of every rate limit, N being the ready endpoints of that Service's EndpointSlices (none: whole policies per replica)")
	fs.StringVar(&f.redisAddr, "ratelimit-redis", "", "host:port of a Redis that keeps rate-limit counters for all replicas, so a policy holds exactly across them (none: local buckets)")
	fs.DurationVar(&f.redisTimeout, "ratelimit-redis-timeout", 10*time.Millisecond, "how long one rate-limit check may wait for Redis before --ratelimit-redis-failure applies")
	fs.StringVar(&f.redisFailure, "ratelimit-redis-failure", "local", "when Redis is slow or down: local (each replica enforces its share, as with --replicas-from) or deny (429)")
	fs.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "http(s)://host:port of an OTLP/HTTP trace receiver (an OpenTelemetry Collector's, usually port 4318; path /v1/traces unless the URL names one) that gets a span per sampled request (none: traceparent is propagated, nothing exported)")
	fs.Float64Var(&f.traceSampling, "trace-sampling", 0.01, "share of the traces the gateway starts that are sampled, 0 to 1; a client's traceparent's sampled flag is honoured whatever this says")
	fs.Float64Var(&f.traceMaxSpans, "trace-max-spans-per-second", 1000, "spans made at most, a second's worth at once; past it sampled requests are propagated but get no span (a client can mark every request sampled); 0: no bound")
	fs.BoolVar(&f.accessLog, "access-log", true, "log one JSON line per request")
	fs.UintVar(&f.breakerFails, "breaker-failures", 5, "consecutive upstream failures that open an upstream's circuit breaker")
	fs.DurationVar(&f.breakerOpen, "breaker-open-timeout", 10*time.Second, "how long a breaker stays open before letting a probe through")
	fs.UintVar(&f.outlierFails, "outlier-failures", 5, "consecutive connect failures or 5xx answers that eject an endpoint")
	fs.DurationVar(&f.outlierEject, "outlier-ejection-time", 30*time.Second, "how long an endpoint is ejected the first time; each further ejection lasts that much longer, up to 10 times it")
	fs.Float64Var(&f.outlierShare, "outlier-max-ejected", 0.5, "share of an upstream's endpoints that may be ejected at once (at least one of two or more, never all)")
	fs.Float64Var(&f.breakerRatio, "breaker-failure-ratio", 0.5, "share of upstream failures, over --breaker-min-requests or more outcomes in --breaker-interval, that opens a breaker (above 1: never by ratio)")
	fs.UintVar(&f.breakerMin, "breaker-min-requests", 20, "outcomes in --breaker-interval before --breaker-failure-ratio applies")
	fs.DurationVar(&f.breakerWindow, "breaker-interval", 10*time.Second, "the rolling window breakers count outcomes in")
	fs.Var(&f.trustedProxies, "trusted-proxies", "CIDRs of load balancers in front whose X-Forwarded-For, X-Real-IP and Forwarded are believed (comma-separated, repeatable; default none)")
	fs.IntVar(&f.ipv6Prefix, "ratelimit-ipv6-prefix", 64, "IPv6 clients in one prefix of this length share a client_ip rate-limit bucket")
	fs.DurationVar(&f.reloadInterval, "reload-interval", 250*time.Millisecond, "how often --from-dir is checked for changes")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "how long in-flight requests may finish on shutdown")
	fs.StringVar(&f.engine, "engine", server.EngineFast, "what serves --listen: "+server.EngineFast+" (plain HTTP/1.1 requests on Gatehouse's own parser and upstream pool, everything else on net/http) or "+server.EngineNetHTTP+" (net/http for everything)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the admin address")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "how long a client may take to send a request's line and headers (0: no limit)")
	fs.DurationVar(&f.bodyIdleTimeout, "body-idle-timeout", server.DefaultBodyIdleTimeout, "how long a request body may send nothing before the request is abandoned and its connection closed (0: no limit)")
	fs.Int64Var(&f.bodyMinRate, "body-min-rate", server.DefaultBodyMinRate, "bytes per second a request body must average, after an allowance of --body-idle-timeout; only time spent waiting for the client counts (0: no minimum)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "how long a keep-alive connection may wait for its next request (0: no limit)")
	fs.DurationVar(&f.sendTimeout, "send-timeout", server.DefaultSendTimeout, "how long a client may read nothing of its answer before its connection is closed (engine fast; 0: no limit)")
	fs.IntVar(&f.maxConnections, "max-connections", server.DefaultMaxConnections, "connections open at once on --listen; more are reset on arrival (0: no cap)")
	fs.IntVar(&f.maxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "largest request line plus headers, in bytes, beyond which a request gets 431 (0: the default)")
	fs.Int64Var(&f.maxRequestBody, "max-request-body-bytes", 0, "largest request body, in bytes, for Mappings without max_request_body_bytes; bigger ones get 413 (0: no limit)")
	f.dialect.register(fs)
}

// serverConfig is the gateway's configuration from the flags, whatever the
// source of Services.
func (f *serveFlags) serverConfig(opts snapshot.Options, logger *slog.Logger) server.Config {
	// A flag's 0 means no limit; server.Limits says that with a negative
	// value, its 0 meaning the default.
	noLimit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	duration := func(d time.Duration) time.Duration { return time.Duration(noLimit(int64(d))) }
	cfg := server.Config{
		Build:        opts,
		Listen:       f.listen,
		ListenTLS:    f.listenTLS,
		HTTPSPort:    f.httpsPort,
		ReplicasFrom: f.replicasFrom,
		Admin:        f.admin,
		Logger:       logger,
		AccessLog:    f.accessLog,
		Drain:        f.drain,
		Pprof:        f.pprof,
		Engine:       f.engine,
		Breaker: upstream.BreakerSettings{
			ConsecutiveFailures: uint32(f.breakerFails),
			OpenTimeout:         f.breakerOpen,
			FailureRatio:        f.breakerRatio,
			MinRequests:         uint32(f.breakerMin),
			Interval:            f.breakerWindow,
		},
		Outlier: upstream.OutlierSettings{
			ConsecutiveFailures: uint32(f.outlierFails),
			BaseEjectionTime:    f.outlierEject,
			MaxEjectionTime:     10 * f.outlierEject,
			MaxEjectedShare:     f.outlierShare,
		},
		TrustedProxies: f.trustedProxies,
		IPv6Prefix:     f.ipv6Prefix,
		MaxRequestBody: f.maxRequestBody,
		Tracing:        f.tracingOptions(),
		Limits: server.Limits{
			ReadHeaderTimeout: duration(f.readHeaderTimeout),
			BodyIdleTimeout:   duration(f.bodyIdleTimeout),
			BodyMinRate:       noLimit(f.bodyMinRate),
			IdleTimeout:       duration(f.idleTimeout),
			SendTimeout:       duration(f.sendTimeout),
			MaxConnections:    int(noLimit(int64(f.maxConnections))),
			MaxHeaderBytes:    f.maxHeaderBytes,
		},
	}
	if f.redisAddr != "" {
		cfg.RateLimitRedis = &limiter.RedisOptions{Addr: f.redisAddr, Timeout: f.redisTimeout, FailOpen: f.redisFailure == "local"}
	}
	// Addresses the platform listed literally may be dialled even in
	// ranges denied by default.
	if p, ok := opts.External.(upstream.ExternalPolicy); ok {
		cfg.AllowUpstreams = p.Literals()
	}
	return cfg
}

// keyHasher gives opts the process's API key hasher (a secret made now,
// never stored) and returns its Sum, for the Secrets read from files or
// the cluster: the keys they hold and the keys clients send must hash
// alike, and only under this process's secret.
func keyHasher(opts *snapshot.Options) func([]byte) [32]byte {
	if opts.KeyHasher == nil {
		// NewKeyHasher fails only when the system's random source does;
		// the zero KeyHasher makes its secret on first use instead.
		h, err := auth.NewKeyHasher()
		if err != nil {
			h = new(auth.KeyHasher)
		}
		opts.KeyHasher = h
	}
	return opts.KeyHasher.Sum
}

// checkTLS checks the TLS flags go together.
func (f *serveFlags) checkTLS() error {
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return fmt.Errorf("--tls-cert-file and --tls-key-file go together")
	case f.tlsCert != "" && f.listenTLS == "":
		return fmt.Errorf("--tls-cert-file needs --listen-tls")
	case f.httpsPort < 0 || f.httpsPort > 65535:
		return fmt.Errorf("--https-redirect-port must be a port number")
	}
	return nil
}

func (f *serveFlags) tracingOptions() tracing.Options {
	return tracing.Options{Endpoint: f.otlpEndpoint, Sampling: f.traceSampling, MaxSpansPerSecond: f.traceMaxSpans}
}

// checkTracing checks the tracing flags and the OTEL_EXPORTER_OTLP_*
// variables, so that a mistake stops the gateway at start rather than
// leaving it running without the traces it was asked for.
func (f *serveFlags) checkTracing() error {
	if f.traceSampling < 0 || f.traceSampling > 1 || f.traceSampling != f.traceSampling {
		return fmt.Errorf("--trace-sampling must be between 0 and 1")
	}
	if f.traceMaxSpans < 0 || f.traceMaxSpans != f.traceMaxSpans {
		return fmt.Errorf("--trace-max-spans-per-second must be 0 (no bound) or more")
	}
	if err := tracing.Check(f.tracingOptions()); err != nil {
		return fmt.Errorf("--otlp-endpoint: %w", err)
	}
	return nil
}

// defaultCert loads the default certificate into cfg, when one is set.
func (f *serveFlags) defaultCert(cfg *server.Config, logger *slog.Logger) error {
	if f.tlsCert == "" {
		return nil
	}
	c, err := server.LoadCertFiles(f.tlsCert, f.tlsKey, logger)
	if err != nil {
		return err
	}
	cfg.DefaultCert = c.Certificate
	return nil
}

// logFlushInterval is how long an access log line may wait in the buffer
// (proxy.LogWriter): short enough that a person tailing the log sees a
// request as it happens.
const logFlushInterval = 100 * time.Millisecond

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	fs.StringVar(&f.dir, "from-dir", "", "serve the Services and EndpointSlices in the manifests of this directory (reloaded on change)")
	var kubeconfig string
	var namespaces namespaceList
	fs.StringVar(&kubeconfig, "kubeconfig", "", "serve the cluster this kubeconfig points at (without --from-dir and --kubeconfig: the in-cluster configuration)")
	fs.Var(&namespaces, "namespace", "watch only this namespace (repeatable, or comma-separated; default: all)")
	var wh webhookFlags
	wh.register(fs)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := f.dialect.options(); err != nil {
		fmt.Fprintln(stderr, "gatehouse serve:", err)
		return 2
	}
	if f.engine != server.EngineFast && f.engine != server.EngineNetHTTP {
		fmt.Fprintf(stderr, "gatehouse serve: --engine must be %s or %s\n", server.EngineFast, server.EngineNetHTTP)
		return 2
	}
	if f.redisFailure != "local" && f.redisFailure != "deny" {
		fmt.Fprintln(stderr, "gatehouse serve: --ratelimit-redis-failure must be local or deny")
		return 2
	}
	if err := f.checkTLS(); err != nil {
		fmt.Fprintln(stderr, "gatehouse serve:", err)
		return 2
	}
	if err := f.checkTracing(); err != nil {
		fmt.Fprintln(stderr, "gatehouse serve:", err)
		return 2
	}
	if f.dir != "" && (kubeconfig != "" || len(namespaces) > 0) {
		fmt.Fprintln(stderr, "gatehouse serve: --from-dir cannot be combined with --kubeconfig or --namespace")
		return 2
	}
	if f.dir != "" && wh.listen != "" {
		fmt.Fprintln(stderr, "gatehouse serve: --webhook-listen needs the Kubernetes API; it cannot be combined with --from-dir")
		return 2
	}
	if f.dir == "" {
		return serveKube(ctx, f, wh, kubeconfig, namespaces, stderr, nil)
	}
	return serveDir(ctx, f, stderr, nil)
}

// serveDir runs the gateway on a manifest directory until ctx ends. Logs go
// to stderr as JSON; problems in manifests are printed as FILE:LINE:COL lines
// too, since people read them. onListen, when set, is told the bound
// addresses.
func serveDir(ctx context.Context, f serveFlags, stderr io.Writer, onListen func(proxyAddr, adminAddr, tlsAddr string)) int {
	logs := proxy.NewLogWriter(stderr, logFlushInterval)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	opts, err := f.dialect.options()
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 2
	}
	hash := keyHasher(&opts)
	cfg := f.serverConfig(opts, logger)
	cfg.LogOutput = logs
	if err := f.defaultCert(&cfg, logger); err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 1
	}
	// File mode serves demos and tests whose upstreams are on loopback;
	// the gateway's own listeners stay refused.
	cfg.AllowLoopback = true
	srv := server.New(cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		dir := files.Dir{Path: f.dir, Interval: f.reloadInterval, Options: files.Options{Emissary: opts.Emissary, HashKey: hash}}
		dir.Watch(ctx, func(m *files.Manifests, problems []files.Problem) {
			reports := srv.Apply(manifestInput(m))
			findings := files.FileFindings(problems)
			for _, r := range reports {
				findings = append(findings, m.Locate(r.Service, r.Annotation, r.Problems)...)
				switch {
				case r.ServingLastGood:
					logger.Warn("annotation rejected; serving the last good routes", "service", r.Service)
				case r.Rejected:
					logger.Warn("annotation rejected; the Service has no routes", "service", r.Service)
				}
			}
			files.SortFindings(findings)
			for _, fd := range findings {
				fmt.Fprintln(stderr, fd.String())
			}
		}, func(err error) {
			logger.Error("reading manifests; the previous snapshot keeps serving", "error", err)
		})
	}()

	err = srv.Run(ctx, func(p, a string) {
		logger.Info("listening", "proxy", p, "admin", a, "tls", srv.TLSAddr(), "from_dir", f.dir)
		if onListen != nil {
			onListen(p, a, srv.TLSAddr())
		}
	})
	cancel()
	<-watchDone
	if err != nil {
		logger.Error("gateway stopped", "error", err)
		return 1
	}
	return 0
}

// prefixList is a repeatable, comma-separated list of CIDRs (a bare address
// is a single-address prefix).
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR nor an address", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		*l = append(*l, p.Masked())
	}
	return nil
}
