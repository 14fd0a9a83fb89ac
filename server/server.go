// Package server assembles a running gateway: the proxy handler, the snapshot
// builder that feeds it, and the admin endpoints (/healthz, /readyz,
// /metrics). Sources of configuration (manifest files, the Kubernetes API)
// hand it cluster state through Apply; it owns everything else.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/tracing"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Config is how a Server is set up. Zero values mean defaults.
type Config struct {
	Listen string // proxy address; "" means 127.0.0.1:8080
	Admin  string // admin address; "" means 127.0.0.1:8877

	// Logger receives operational logs; AccessLog adds a line per request,
	// written to LogOutput (a *proxy.LogWriter buffers them; nil means
	// os.Stderr).
	Logger    *slog.Logger
	AccessLog bool
	LogOutput io.Writer

	Breaker upstream.BreakerSettings
	// Outlier configures outlier detection (ejecting failing endpoints).
	Outlier upstream.OutlierSettings

	// TrustedProxies are the load balancers in front whose forwarding
	// headers name the client; IPv6Prefix is how many leading bits of an
	// IPv6 client share one client_ip rate-limit bucket (0 means 64).
	TrustedProxies []netip.Prefix
	IPv6Prefix     int

	// MaxRequestBody bounds request bodies for routes that set no bound
	// (413 past it); 0 means none.
	MaxRequestBody int64

	// Build says which annotations are read (Emissary compatibility).
	Build snapshot.Options

	// Drain bounds graceful shutdown; zero means 10s.
	Drain time.Duration

	// Ready, when set, is a further condition for /readyz beyond a served
	// snapshot (the webhook's certificate, say); a non-nil error is the
	// reason the process is not ready.
	Ready func() error

	// AllowLoopback lets upstreams be on loopback addresses (file mode's
	// demos and tests); AllowUpstreams are addresses the platform listed
	// literally (--external-upstreams), allowed even in denied ranges.
	// Self lists further listeners of this process (the webhook's) that no
	// upstream may be; the proxy and admin listeners always are.
	AllowLoopback  bool
	AllowUpstreams []netip.Prefix
	Self           []string

	// Pprof serves Go's profiles under /debug/pprof/ on the admin
	// listener. Off by default: profiles expose internals and cost CPU,
	// and the admin address is often reachable from the whole cluster.
	Pprof bool

	// Engine is what serves the proxy listener: EngineFast (the default,
	// "") or EngineNetHTTP. See engine.go.
	Engine string

	// Limits bound slow and greedy clients on the proxy listener. The
	// admin listener is not capped, so probes and scrapes still reach a
	// gateway whose proxy listener is full.
	Limits Limits

	// ListenTLS is the HTTPS address; "" serves no TLS. The proxy and TLS
	// listeners share Limits, the connection cap included.
	ListenTLS string
	// DefaultCert answers handshakes for names no Host has a certificate
	// for, and clients that send no server name; nil refuses them.
	// (CertFiles.Certificate, say).
	DefaultCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// RateLimitRedis, when set, keeps rate-limit counters in Redis for all
	// replicas (limiter.Registry.SetGlobal); nil keeps them local.
	RateLimitRedis *limiter.RedisOptions

	// ReplicasFrom is the gateway's own Service ("namespace/name"): the
	// ready endpoints of its EndpointSlices are the replicas that share
	// each rate limit, so each enforces its share (limiter.Registry.
	// SetShare). "" means this replica enforces whole policies.
	ReplicasFrom string

	// HTTPSPort is the port plain-HTTP requests are redirected to for
	// Hosts that redirect (a load balancer's 443 in front of ListenTLS,
	// say); 0 means ListenTLS's port.
	HTTPSPort int

	// Tracing is the sampling ratio of the traces the gateway starts and
	// the OTLP endpoint that spans of sampled requests go to (none: no
	// export); trace context is propagated whatever it says. Its Logger
	// defaults to Logger. Run's end flushes what is queued.
	Tracing tracing.Options
}

// Server is one gateway process's data plane and admin endpoints.
type Server struct {
	cfg       Config
	log       *slog.Logger
	registry  *prometheus.Registry
	metrics   *metrics.Set
	consumers *metrics.Consumers
	handler   *proxy.Handler
	tracer    *tracing.Tracer

	limits Limits // with defaults filled
	// conns caps the proxy listener's connections; Run gives it the
	// listener. bodyTimeouts counts bodies cut by Limits.
	conns        *connLimiter
	bodyTimeouts prometheus.Counter
	// inFlight counts the requests the proxy handler is serving.
	inFlight atomic.Int64

	mu       sync.Mutex // serialises Apply: one builder, one writer
	builder  *snapshot.Builder
	limiters *limiter.Registry
	redis    *limiter.Redis // nil without RateLimitRedis
	// bg lives as long as the Server: background work that builds start
	// (JWKS fetchers) ends with it.
	bg       context.Context
	stopBG   context.CancelFunc
	replicas atomic.Int64    // the share limits are divided by, from ReplicasFrom
	rejected map[string]bool // Services whose gatehouse_config_rejected is 1; guarded by mu
	diag     diagState       // what the diagnostics page knows beyond the snapshot (diag.go)

	ready atomic.Bool
	// guard decides which addresses may be dialled; rebuilt once Run knows
	// the ports its listeners were bound to.
	guard atomic.Pointer[upstream.DialGuard]

	proxyAddr, adminAddr, tlsAddr atomic.Pointer[string]

	// tlsConfig starts every handshake on the TLS listener; defaultTLS
	// serves names without a Host of their own (nil: refused).
	tlsConfig       *tls.Config
	defaultTLS      *tls.Config
	handshakeErrors *prometheus.CounterVec
}

// New builds a Server that serves nothing until the first Apply.
func New(cfg Config) *Server {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:8877"
	}
	if cfg.Drain == 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	s := &Server{cfg: cfg, log: cfg.Logger, registry: reg, metrics: m, limits: cfg.Limits.withDefaults()}
	s.registerLimitMetrics(reg)
	s.handshakeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_tls_handshake_errors_total",
		Help: "TLS handshakes on --listen-tls that failed, by reason: unknown_name (no certificate for the server name and no default), client_certificate (a Host's client certificate check), client_alert (the client gave up, often on our certificate), timeout, other.",
	}, []string{"reason"})
	reg.MustRegister(s.handshakeErrors)
	s.tlsConfig = s.tlsBase()
	if cfg.DefaultCert != nil {
		s.defaultTLS = s.tlsConfig.Clone()
		s.defaultTLS.GetConfigForClient = nil
		s.defaultTLS.GetCertificate = cfg.DefaultCert
	}
	var access io.Writer
	if cfg.AccessLog {
		access = cfg.LogOutput
		if access == nil {
			access = os.Stderr
		}
	}
	guard, err := s.newGuard(cfg.Listen, cfg.Admin, cfg.ListenTLS)
	if err != nil {
		// Only a wildcard listener on a machine whose addresses cannot be
		// listed gets here; refusing every upstream is the safe answer.
		s.log.Error("building the dial guard; no upstream will be reachable", "error", err)
		guard, _ = upstream.NewDialGuard(upstream.GuardOptions{Allow: nil})
	}
	s.guard.Store(guard)
	s.consumers = metrics.NewConsumers(reg)
	popts := proxy.Options{Consumers: s.consumers, AccessLog: access, Metrics: m, Transport: proxy.NewGuardedTransport(s.guard.Load), HTTP2Transport: proxy.NewHTTP2Transport(s.guard.Load), Guards: s.guard.Load, TrustedProxies: cfg.TrustedProxies, MaxRequestBody: cfg.MaxRequestBody}
	if cfg.Engine != EngineNetHTTP {
		popts.Pool = proxy.NewPool(s.guard.Load)
	}
	if cfg.Tracing.Logger == nil {
		cfg.Tracing.Logger = s.log
	}
	if s.tracer, err = tracing.New(cfg.Tracing); err != nil {
		// An endpoint the flags did not check (serve checks it): propagate
		// and sample, export nothing.
		s.log.Error("trace spans will not be exported", "error", err)
		s.tracer, _ = tracing.New(tracing.Options{Sampling: cfg.Tracing.Sampling})
	}
	popts.Tracer = s.tracer
	if s.tracer.Exporting() {
		registerTraceMetrics(reg, s.tracer)
	}
	s.handler = proxy.New(popts)
	ups := upstream.NewRegistry(upstream.RegistryOptions{
		Guard:   guard,
		Breaker: cfg.Breaker,
		Outlier: cfg.Outlier,
		OnStateChange: func(id string, from, to upstream.State) {
			m.BreakerState(id, int(to))
			s.log.Warn("circuit breaker state changed", "upstream", id, "from", from.String(), "to", to.String())
		},
		OnEject: func(e upstream.Ejection) {
			if e.Capped {
				s.log.Warn("endpoint failing but not ejected: the upstream has as many ejected as allowed", "upstream", e.Upstream, "endpoint", e.Addr)
				return
			}
			m.Ejected(e.Upstream)
			s.log.Warn("endpoint ejected", "upstream", e.Upstream, "endpoint", e.Addr, "for", e.For.String(), "ejections", e.Count)
		},
	})
	s.rejected = map[string]bool{}
	s.limiters = limiter.NewRegistry(limiter.Options{IPv6Prefix: cfg.IPv6Prefix})
	s.replicas.Store(1)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_ratelimit_replicas",
		Help: "Gateway replicas each rate limit is shared among (--replicas-from): this replica enforces 1/N of every policy.",
	}, func() float64 { return float64(s.replicas.Load()) }))
	s.bg, s.stopBG = context.WithCancel(context.Background())
	if cfg.Build.JWKS == nil {
		cfg.Build.JWKS = newJWKSRegistry(s.bg, s.guard.Load, s.log)
	}
	if cfg.RateLimitRedis != nil {
		o := *cfg.RateLimitRedis
		o.Logger = s.log
		if g, err := limiter.NewRedis(o); err != nil {
			// Only an address that does not parse gets here: connecting
			// happens per check, and a Redis that is down is the
			// documented fallback, not a reason to stop.
			s.log.Error("rate limits stay local: Redis cannot be used", "error", err)
		} else {
			s.redis = g
			s.limiters.SetGlobal(g)
			s.registerRedisMetrics(reg, g)
		}
	}
	s.builder = snapshot.NewBuilder(s.limiters, ups, cfg.Build)
	return s
}

// registerTraceMetrics exports what became of sampled requests' spans:
// made minus exported minus failed is what the batch processor's queue
// dropped or still holds.
func registerTraceMetrics(reg prometheus.Registerer, t *tracing.Tracer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_trace_spans_total",
			Help: "Spans made for sampled requests and handed to the exporter's queue (--otlp-endpoint).",
		}, func() float64 { return float64(t.Stats().Made) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_trace_spans_limited_total",
			Help: "Sampled requests given no span: over --trace-max-spans-per-second (their trace is still propagated).",
		}, func() float64 { return float64(t.Stats().Limited) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_trace_spans_exported_total",
			Help: "Spans the OTLP endpoint accepted.",
		}, func() float64 { return float64(t.Stats().Exported) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_trace_spans_failed_total",
			Help: "Spans in exports that failed after their retries.",
		}, func() float64 { return float64(t.Stats().Failed) }),
	)
}

// registerRedisMetrics exports how global rate limiting is going.
func (s *Server) registerRedisMetrics(reg prometheus.Registerer, g *limiter.Redis) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_ratelimit_redis_up",
			Help: "1 while rate-limit decisions go to Redis (--ratelimit-redis), 0 while they fall back (--ratelimit-redis-failure).",
		}, func() float64 {
			if g.Stats().Up {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_redis_checks_total",
			Help: "Rate-limit decisions asked of Redis, answered or not.",
		}, func() float64 { return float64(g.Stats().Checks) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_redis_fallbacks_total",
			Help: "Rate-limit decisions made without Redis's answer (Redis slow, down, or backed off from): by the local share, or refused.",
		}, func() float64 { return float64(g.Stats().Fallbacks) }),
	)
}

// registerLimitMetrics exports what Limits do: the connections open and
// refused on the proxy listener, and the bodies cut for being too slow.
func (s *Server) registerLimitMetrics(reg prometheus.Registerer) {
	s.conns = &connLimiter{
		max:  int64(s.limits.MaxConnections),
		open: new(atomic.Int64),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_connections_rejected_total",
			Help: "Connections to the proxy listener closed on arrival because --max-connections were open.",
		}),
	}
	s.bodyTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_request_body_timeouts_total",
		Help: "Requests whose body stopped arriving (--body-idle-timeout, --body-min-rate); their connections were closed.",
	})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_requests_in_flight",
		Help: "Requests on the proxy listener being served now, from their head read to their answer sent.",
	}, func() float64 { return float64(s.inFlight.Load()) })
	reg.MustRegister(inFlight)
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_connections_open",
		Help: "Connections open on the proxy listener, idle keep-alive ones included.",
	}, func() float64 { return float64(s.conns.open.Load()) })
	reg.MustRegister(s.conns.rejected, s.bodyTimeouts, open)
}

// newGuard is the dial guard for listeners at these addresses: the
// configured policy, and none of this process's own listeners (a port of 0,
// not bound yet, is left out until Run knows it).
func (s *Server) newGuard(addrs ...string) (*upstream.DialGuard, error) {
	var self []netip.AddrPort
	for _, a := range append(addrs, s.cfg.Self...) {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			continue
		}
		ip := netip.IPv4Unspecified()
		if host != "" {
			if ip, err = netip.ParseAddr(host); err != nil {
				// A name: guard every address of the machine on that port.
				ip = netip.IPv4Unspecified()
			}
		}
		self = append(self, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return upstream.NewDialGuard(upstream.GuardOptions{AllowLoopback: s.cfg.AllowLoopback, Allow: s.cfg.AllowUpstreams, Self: self})
}

// Handler is the proxy handler, for tests and benchmarks that serve it
// themselves; it lacks the Limits that Run adds.
func (s *Server) Handler() http.Handler { return s.handler }

// Current returns the snapshot being served, nil before the first.
func (s *Server) Current() *snapshot.Snapshot { return s.handler.Current() }

// Apply builds a snapshot from in and publishes it. Services whose
// annotations are rejected keep their last good routes; the reports say
// which. A build cannot fail as a whole.
func (s *Server) Apply(in snapshot.Input) []snapshot.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	s.updateShare(in.Slices)
	snap, reports := s.builder.Build(in)
	for _, r := range reports {
		if r.Certificates || r.AuthSecrets {
			// About a Secret, not whether the Service's configuration
			// was accepted.
			continue
		}
		s.metrics.ConfigRejected(r.Service, r.Rejected)
		if r.Rejected {
			s.rejected[r.Service] = true
		} else {
			delete(s.rejected, r.Service)
		}
	}
	if len(s.rejected) > 0 {
		// A Service deleted, or stripped of its annotations, while rejected
		// gets no more reports; its gauge must not say so forever.
		present := make(map[string]bool, len(in.Services))
		keys := s.cfg.Build.Keys()
		for _, svc := range in.Services {
			for _, k := range keys {
				if _, ok := svc.Annotations[k]; ok {
					present[svc.Namespace+"/"+svc.Name] = true
				}
			}
		}
		for key := range s.rejected {
			if !present[key] {
				s.metrics.ConfigRejected(key, false)
				delete(s.rejected, key)
			}
		}
	}
	s.logDropped(snap.Dropped)
	s.recordBuild(in, snap, reports, start) // for the diagnostics page (diag.go)
	s.handler.Publish(snap)
	s.ready.Store(true)
	s.log.Info("snapshot published", "generation", snap.Generation, "routes", snap.Table.Len(), "build_ms", float64(time.Since(start).Microseconds())/1000)
	return reports
}

// UpdateEndpoints applies endpoint changes to the upstreams of the snapshot
// being served, without rebuilding it: for sources that know only
// EndpointSlices changed.
func (s *Server) UpdateEndpoints(in snapshot.Input) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateShare(in.Slices)
	s.logDropped(s.builder.UpdateEndpoints(in))
}

// updateShare counts the ready endpoints of the gateway's own Service and,
// when the count changed, gives every rate limit to that many replicas.
// Scaling shows in the EndpointSlices within seconds; until then each
// replica keeps the share it had. Called with mu held.
func (s *Server) updateShare(slices []*discoveryv1.EndpointSlice) {
	if s.cfg.ReplicasFrom == "" {
		return
	}
	ns, name, _ := strings.Cut(s.cfg.ReplicasFrom, "/")
	n := int64(countReady(slices, ns, name))
	if n < 1 {
		// Not listed yet (starting, or not ready): at least this one.
		n = 1
	}
	if s.replicas.Swap(n) != n {
		s.limiters.SetShare(int(n))
		s.log.Info("rate limits shared among replicas", "replicas", n, "service", s.cfg.ReplicasFrom)
	}
}

// countReady is how many distinct ready addresses the EndpointSlices of
// Service ns/name list.
func countReady(slices []*discoveryv1.EndpointSlice, ns, name string) int {
	seen := map[string]bool{}
	for _, es := range slices {
		if es.Namespace != ns || es.Labels[discoveryv1.LabelServiceName] != name {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				seen[a] = true
			}
		}
	}
	return len(seen)
}

// logDropped says which endpoints a build refused and why; the builder
// reports each refusal once, not on every build.
func (s *Server) logDropped(dropped []snapshot.DroppedEndpoint) {
	for _, d := range dropped {
		s.log.Warn("endpoint not used", "service", d.Service, "reason", d.String())
	}
}

// TLSAddr is the address the TLS listener is bound to, once Run has bound
// it ("" before, and without ListenTLS).
func (s *Server) TLSAddr() string {
	if a := s.tlsAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Addrs returns the addresses the listeners are bound to, once Run has
// bound them ("" before).
func (s *Server) Addrs() (proxyAddr, adminAddr string) {
	if p := s.proxyAddr.Load(); p != nil {
		proxyAddr = *p
	}
	if a := s.adminAddr.Load(); a != nil {
		adminAddr = *a
	}
	return proxyAddr, adminAddr
}

func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "no snapshot served yet", http.StatusServiceUnavailable)
			return
		}
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /consumers", func(w http.ResponseWriter, _ *http.Request) {
		// Usage per authenticated consumer (metrics.Consumers): requests
		// by status class and response bytes, since the process started.
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Consumers []metrics.ConsumerUsage `json:"consumers"`
		}{s.consumers.Usage()})
	})
	s.registerAPI(mux)
	s.registerDiag(mux)
	if s.cfg.Pprof {
		// Registered by hand: importing net/http/pprof for its side effect
		// would put the profiles on http.DefaultServeMux.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Run binds both listeners, calls onListen with their addresses, and serves
// until ctx ends; then it stops accepting and lets in-flight requests finish
// for up to the drain period.
func (s *Server) Run(ctx context.Context, onListen func(proxyAddr, adminAddr string)) error {
	var lc net.ListenConfig
	defer s.stopBG()
	pl, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening for traffic: %w", err)
	}
	al, err := lc.Listen(ctx, "tcp", s.cfg.Admin)
	if err != nil {
		pl.Close()
		return fmt.Errorf("listening for admin: %w", err)
	}
	var tl net.Listener
	if s.cfg.ListenTLS != "" {
		if tl, err = lc.Listen(ctx, "tcp", s.cfg.ListenTLS); err != nil {
			pl.Close()
			al.Close()
			return fmt.Errorf("listening for TLS: %w", err)
		}
	}
	pa, aa := pl.Addr().String(), al.Addr().String()
	s.proxyAddr.Store(&pa)
	s.adminAddr.Store(&aa)
	bound := []string{pa, aa}
	if tl != nil {
		ta := tl.Addr().String()
		s.tlsAddr.Store(&ta)
		bound = append(bound, ta)
		port := s.cfg.HTTPSPort
		if port == 0 {
			port = tl.Addr().(*net.TCPAddr).Port
		}
		s.handler.SetHTTPSPort(port)
	} else if s.cfg.HTTPSPort != 0 {
		s.handler.SetHTTPSPort(s.cfg.HTTPSPort)
	}
	// Now the ports are known even where the configuration said :0.
	if g, err := s.newGuard(bound...); err == nil {
		s.guard.Store(g)
	}

	// Every wait for what a client sends is bounded (Limits): the head, the
	// body (bodyGuard), the next request on a kept connection; and so is
	// the number of connections. No ReadTimeout or WriteTimeout: they bound
	// whole requests and answers, cutting long uploads, downloads and
	// streams that are alive. (A client that stops reading its answer is
	// not bounded here yet.)
	s.conns.Listener = pl
	proxySrv := s.proxyServer()
	adminSrv := &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 5 * time.Second}

	errs := make(chan error, 3)
	go func() { errs <- proxySrv.Serve(s.conns) }()
	go func() { errs <- adminSrv.Serve(al) }()
	var tlsSrv *tlsEngine
	if tl != nil {
		tlsSrv = s.tlsServer()
		go func() { errs <- tlsSrv.Serve(s.conns.on(tl)) }()
	}
	if onListen != nil {
		onListen(pa, aa)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	s.ready.Store(false)
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.Drain)
	defer cancel()
	var tlsErr error
	if tlsSrv != nil {
		tlsErr = tlsSrv.Shutdown(drainCtx)
	}
	shutdownErr := errors.Join(proxySrv.Shutdown(drainCtx), adminSrv.Shutdown(drainCtx), tlsErr)
	// The spans of the last requests, within a bound of their own: the
	// drain may have used drainCtx up.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	if err := s.tracer.Shutdown(flushCtx); err != nil {
		s.log.Warn("trace spans lost at shutdown", "error", err)
	}
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return shutdownErr
}
