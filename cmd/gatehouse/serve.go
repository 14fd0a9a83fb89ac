package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

type serveFlags struct {
	dialect        pipelineFlags
	dir            string
	listen, admin  string
	accessLog      bool
	breakerFails   uint
	breakerOpen    time.Duration
	reloadInterval time.Duration
	drain          time.Duration
	pprof          bool
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address for traffic")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8877", "address for /healthz, /readyz and /metrics")
	fs.BoolVar(&f.accessLog, "access-log", true, "log one JSON line per request")
	fs.UintVar(&f.breakerFails, "breaker-failures", 5, "consecutive upstream failures that open an upstream's circuit breaker")
	fs.DurationVar(&f.breakerOpen, "breaker-open-timeout", 10*time.Second, "how long a breaker stays open before letting a probe through")
	fs.DurationVar(&f.reloadInterval, "reload-interval", 250*time.Millisecond, "how often --from-dir is checked for changes")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "how long in-flight requests may finish on shutdown")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the admin address")
	f.dialect.register(fs)
}

// serverConfig is the gateway's configuration from the flags, whatever the
// source of Services.
func (f *serveFlags) serverConfig(opts snapshot.Options, logger *slog.Logger) server.Config {
	cfg := server.Config{
		Build:     opts,
		Listen:    f.listen,
		Admin:     f.admin,
		Logger:    logger,
		AccessLog: f.accessLog,
		Drain:     f.drain,
		Pprof:     f.pprof,
		Breaker: upstream.BreakerSettings{
			ConsecutiveFailures: uint32(f.breakerFails),
			OpenTimeout:         f.breakerOpen,
		},
	}
	// Addresses the platform listed literally may be dialled even in
	// ranges denied by default.
	if p, ok := opts.External.(upstream.ExternalPolicy); ok {
		cfg.AllowUpstreams = p.Literals()
	}
	return cfg
}

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
func serveDir(ctx context.Context, f serveFlags, stderr io.Writer, onListen func(proxyAddr, adminAddr string)) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	opts, err := f.dialect.options()
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 2
	}
	cfg := f.serverConfig(opts, logger)
	// File mode serves demos and tests whose upstreams are on loopback;
	// the gateway's own listeners stay refused.
	cfg.AllowLoopback = true
	srv := server.New(cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		dir := files.Dir{Path: f.dir, Interval: f.reloadInterval, Options: files.Options{Emissary: opts.Emissary}}
		dir.Watch(ctx, func(m *files.Manifests, problems []files.Problem) {
			reports := srv.Apply(snapshot.Input{Services: m.ServiceObjects(), Slices: m.Slices, Namespaces: m.Namespaces})
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
		logger.Info("listening", "proxy", p, "admin", a, "from_dir", f.dir)
		if onListen != nil {
			onListen(p, a)
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
