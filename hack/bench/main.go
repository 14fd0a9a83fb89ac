// Command bench measures Gatehouse's data plane end to end against nginx on
// this machine: the same backend behind each proxy, the same pinning, the
// same load from wrk, and for every row the request rate, the median and
// 99th-percentile latency, the proxy's CPU time per request and its memory.
// It prints a Markdown table with each row's ratios to its baseline row,
// which the table names; it has no thresholds, so a slow figure is
// reported, never failed. The HTTPS rows (nginx-tls, gatehouse-tls) are
// the plain nginx and Gatehouse rows with wrk speaking HTTP/1.1 over TLS
// to the proxy, both proxies serving one certificate made for the run;
// Gatehouse's is compared with nginx's over HTTPS. Optional rows put the
// figures in context: the backend alone (the load side's ceiling), nginx
// with an access log and limit_req, and net/http's ReverseProxy alone
// (what the standard-library pieces Gatehouse is built on cost by
// themselves).
//
// Optional Gatehouse feature rows measure what a feature costs a request,
// each compared with the Gatehouse row it adds the feature to:
// gatehouse-jwt (the Mapping requires a JWT; wrk sends an ES256 token
// signed by a key made for the run, whose key set is in a Secret),
// gatehouse-apikey (an API key from a Secret) and gatehouse-extauth (an
// external auth service: a second instance of the backend on CPU 1),
// against gatehouse; gatehouse-redis (gatehouse-full's rate limit decided
// in a throwaway redis-server on CPU 1, which hack/redis ensure provides),
// and gatehouse-tracing and gatehouse-tracing-all (a span exported over
// OTLP/HTTP for 1 % of requests, or for all, to the backend), against
// gatehouse-full. Name the baseline row in -configs too, or the
// feature row has no ratios.
// docs/benchmarks.md ("End to end against nginx", "Authentication and
// global limits") records runs.
//
// Usage (from the repository root; as root when nginx, wrk or redis-server
// must be installed from Debian):
//
//	go run ./hack/bench [-duration 10s] [-warmup 2s] [-connections 64,256]
//	    [-configs nginx,gatehouse,gatehouse-full,nginx-tls,gatehouse-tls]
//	    [-gatehouse BIN] [-cpuprofile DIR]
//
// and for the feature rows, for example:
//
//	go run ./hack/bench -connections 64 -configs gatehouse,gatehouse-jwt,gatehouse-apikey,gatehouse-extauth,gatehouse-full,gatehouse-redis
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration    time.Duration // measured part of each row
	warmup      time.Duration // unmeasured load before each row
	connections []int
	threads     int
	configs     []string // names from the configs table, in run order
	repo        string
	gatehouse   string // prebuilt binary; empty builds ./cmd/gatehouse
	keepalive   int    // idle upstream connections nginx keeps
	cpuprofile  string // directory for Gatehouse CPU profiles; empty takes none
}

func main() {
	// The backend (and the bare Go proxy) run as children of this same
	// program so that each can be pinned to its CPU without pinning the
	// orchestrator.
	if len(os.Args) == 2 && os.Args[1] == backendArg {
		if err := serveBackendFD(); err != nil {
			fmt.Fprintln(os.Stderr, "bench backend:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == goProxyArg {
		if err := serveGoProxyFD(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench go-reverseproxy:", err)
			os.Exit(1)
		}
		return
	}

	var o options
	var conns, configs string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each row, in whole seconds (wrk's unit)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before each measured row, not counted, in whole seconds (0 skips it)")
	flag.StringVar(&conns, "connections", "64,256", "comma-separated wrk connection counts; one row per count and proxy")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.StringVar(&configs, "configs", strings.Join(defaultConfigs, ","), "comma-separated rows to run, from: "+strings.Join(configNames(), ", ")+
		"; the rows not run by default are opt-in, and a Gatehouse feature row (-jwt, -apikey, -extauth: baseline gatehouse; -redis: baseline gatehouse-full) has ratios only when its baseline runs too")
	flag.StringVar(&o.repo, "repo", ".", "repository root (to build ./cmd/gatehouse and put it under _output/bench/)")
	flag.StringVar(&o.gatehouse, "gatehouse", "", "gatehouse binary to measure (default: build ./cmd/gatehouse into REPO/_output/bench/)")
	flag.IntVar(&o.keepalive, "nginx-keepalive", 128, "idle upstream connections nginx keeps (Gatehouse's transport keeps 128 per host)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "save a CPU profile of each Gatehouse row into this directory (runs Gatehouse with --pprof; profiling costs a little CPU)")
	flag.Parse()

	var err error
	if o.connections, err = parseInts(conns); err != nil {
		usage(fmt.Errorf("-connections: %w", err))
	}
	if o.configs, err = parseConfigs(configs); err != nil {
		usage(fmt.Errorf("-configs: %w", err))
	}
	// wrk counts whole seconds; a fraction would be rounded behind the
	// reader's back.
	if o.duration < time.Second || o.warmup < 0 || o.duration%time.Second != 0 || o.warmup%time.Second != 0 {
		usage(fmt.Errorf("-duration must be whole seconds, at least 1s; -warmup whole seconds, 0 or more"))
	}
	if o.threads < 1 || o.keepalive < 1 {
		usage(fmt.Errorf("-threads and -nginx-keepalive must be positive"))
	}
	for _, c := range o.connections {
		if c < o.threads {
			usage(fmt.Errorf("-connections: %d is fewer than -threads %d (wrk needs one per thread)", c, o.threads))
		}
	}

	// An interrupt cancels the run; the cleanups below still stop every
	// process and remove the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var c cleanups
	err = run(ctx, o, &c)
	stop()
	c.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	flag.Usage()
	os.Exit(2)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// cleanups undoes setup steps in reverse order, whether the run succeeded
// or not.
type cleanups struct{ fns []func() }

func (c *cleanups) add(f func()) { c.fns = append(c.fns, f) }

func (c *cleanups) run() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
