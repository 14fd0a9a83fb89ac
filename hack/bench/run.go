package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one measured run: a config at one connection count.
type row struct {
	config config
	conns  int
	wrk    wrkResult
	proxy  bool          // false for the backend alone: no proxy figures
	cpu    time.Duration // the proxy's process tree, during the measured run
	wall   time.Duration // of the measured run, as this program saw it
	busy   [2]float64    // fraction of CPU 0 and CPU 1 busy meanwhile, any process
	rss    int64         // the proxy's, bytes, right after the run
	anon   int64         // the anonymous part of rss
	// redis is how many of the measured run's rate-limit decisions Gatehouse
	// asked of Redis, and how many it made without an answer; zero for the
	// rows without Redis.
	redis redisCounts
}

// cpuPerRequest is the proxy's CPU time per completed request.
func (r row) cpuPerRequest() time.Duration {
	if !r.proxy || r.wrk.Requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.wrk.Requests)
}

// run sets everything up, measures each config at each connection count,
// and prints the report on stdout.
func run(ctx context.Context, o options, c *cleanups) error {
	if n := runtime.NumCPU(); n < 2 {
		return fmt.Errorf("needs two CPUs (one for the proxy, one for wrk and the backend); this process may use %d", n)
	}
	var cfgs []config
	needNginx, needGatehouse, needTLS, needAuth, needRedis := false, false, false, false, false
	for _, name := range o.configs {
		cfg, _ := configByName(name)
		cfgs = append(cfgs, cfg)
		needNginx = needNginx || cfg.nginx
		needGatehouse = needGatehouse || cfg.gatehouse
		needTLS = needTLS || cfg.tls
		needAuth = needAuth || cfg.authBackend
		needRedis = needRedis || cfg.redis
	}
	tools := []tool{toolTaskset, toolWrk}
	if needNginx {
		tools = append(tools, toolNginx)
	}
	if err := ensureTools(ctx, tools); err != nil {
		return err
	}
	var redisBin string
	if needRedis {
		var err error
		if redisBin, err = findRedis(ctx, o.repo); err != nil {
			return err
		}
	}
	f := gatherFacts(ctx, needNginx, redisBin)
	for _, cfg := range cfgs {
		if !slices.Contains(o.configs, cfg.baseline) {
			logf("%s's baseline %s is not in -configs: its row will have no ratios", cfg.name, cfg.baseline)
		}
	}

	tmp, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return fmt.Errorf("making a temporary directory: %w", err)
	}
	c.add(func() { os.RemoveAll(tmp) })
	// Run as root, nginx's worker drops to nobody and must still reach its
	// temporary paths in here.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	e := &env{o: o, tmp: tmp}
	if needGatehouse {
		if e.gatehouse, err = buildGatehouse(ctx, o); err != nil {
			return err
		}
		if err := checkServeFlags(ctx, e.gatehouse, o.configs); err != nil {
			return err
		}
		if e.creds, err = newCredentials(time.Now()); err != nil {
			return err
		}
	}
	if needTLS {
		if e.cert, err = writeCert(filepath.Join(tmp, "tls"), time.Now()); err != nil {
			return fmt.Errorf("making the HTTPS rows' certificate: %w", err)
		}
	}
	if o.cpuprofile != "" {
		if err := os.MkdirAll(o.cpuprofile, 0o755); err != nil {
			return fmt.Errorf("making the profile directory: %w", err)
		}
	}
	if e.backend, err = startBackend(ctx, e, c, "backend"); err != nil {
		return err
	}
	logf("backend on %s (CPU %d)", e.backend, loadCPU)
	// The auth service and Redis idle on CPU 1 through the other rows.
	if needAuth {
		if e.authBackend, err = startBackend(ctx, e, c, "auth-backend"); err != nil {
			return err
		}
		logf("external auth service (a second backend) on %s (CPU %d)", e.authBackend, loadCPU)
	}
	if needRedis {
		if e.redis, err = startRedis(ctx, e, c, redisBin); err != nil {
			return err
		}
		logf("redis-server on %s (CPU %d)", e.redis, loadCPU)
	}

	var rows []row
	// Rows already measured are printed even when a later one fails.
	partial := func(err error) error {
		if len(rows) > 0 {
			f.after = loadAvg()
			printReport(os.Stdout, o, f, rows)
		}
		return err
	}
	for _, cfg := range cfgs {
		t, err := cfg.start(ctx, e, c)
		if err != nil {
			return partial(fmt.Errorf("starting %s: %w", cfg.name, err))
		}
		for _, n := range o.connections {
			r, err := measure(ctx, e, cfg, t, n)
			if err != nil {
				return partial(fmt.Errorf("%s at %d connections: %w", cfg.name, n, err))
			}
			rows = append(rows, r)
		}
		// One proxy at a time on CPU 0: an idle one still wakes up
		// (Gatehouse polls its directory), and the next row must not pay.
		if t.proc != nil {
			t.proc.stop()
		}
	}
	f.after = loadAvg()
	printReport(os.Stdout, o, f, rows)
	return checkErrors(rows)
}

// checkErrors fails the run when a row's figures describe failures rather
// than proxying. A few timeouts under load are a result to report; more
// than 1% means something did not run as intended.
func checkErrors(rows []row) error {
	var errs []error
	for _, r := range rows {
		if r.wrk.Requests == 0 || float64(r.wrk.errors()) > 0.01*float64(r.wrk.Requests) {
			errs = append(errs, fmt.Errorf("%s at %d connections: %d of %d requests failed (%d socket errors, %d not 2xx/3xx)",
				r.config.name, r.conns, r.wrk.errors(), r.wrk.Requests, r.wrk.SocketErrors, r.wrk.Non2xx))
		}
	}
	return errors.Join(errs...)
}

// buildGatehouse builds ./cmd/gatehouse into REPO/_output/bench/ (ignored
// by git), or checks the binary given with -gatehouse.
func buildGatehouse(ctx context.Context, o options) (string, error) {
	if o.gatehouse != "" {
		bin, err := filepath.Abs(o.gatehouse)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("-gatehouse: %w", err)
		}
		return bin, nil
	}
	if _, err := os.Stat(filepath.Join(o.repo, "cmd", "gatehouse")); err != nil {
		return "", fmt.Errorf("no cmd/gatehouse under %s: run from the repository root or pass -repo", o.repo)
	}
	bin, err := filepath.Abs(filepath.Join(o.repo, "_output", "bench", "gatehouse"))
	if err != nil {
		return "", err
	}
	logf("building %s", bin)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// Built as .ko.yaml builds the image, so the figures are the shipped
	// binary's: static (no libc mapped: 1.4 MiB of RSS with cgo), -trimpath,
	// no symbol table.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/gatehouse")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = o.repo
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building ./cmd/gatehouse: %w", err)
	}
	return bin, nil
}

// checkServeFlags fails early, before any row is measured, when bin
// predates a serve flag that a row asked for needs (a -gatehouse binary
// of an older commit: --listen-tls for the HTTPS row, --ratelimit-redis
// for the Redis row), and says which of the rows asked for can still
// measure.
func checkServeFlags(ctx context.Context, bin string, names []string) error {
	var help string
	var missing, lacking, rest []string
	for _, n := range names {
		cfg, ok := configByName(n)
		if !ok {
			continue
		}
		if cfg.serveFlag != "" && help == "" {
			// serve -h prints the flags and exits 2; output keeps them
			// either way.
			help = output(ctx, bin, "serve", "-h")
		}
		switch {
		case cfg.serveFlag == "":
			rest = append(rest, n)
		case !hasFlag(help, cfg.serveFlag):
			if !slices.Contains(missing, "-"+cfg.serveFlag) {
				missing = append(missing, "-"+cfg.serveFlag)
			}
			lacking = append(lacking, n)
		default:
			rest = append(rest, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	err := fmt.Errorf("%s serve has no %s, needed by %s", bin, strings.Join(missing, ", "), strings.Join(lacking, ", "))
	if len(rest) > 0 {
		err = fmt.Errorf("%w: leave them out (-configs %s)", err, strings.Join(rest, ","))
	}
	return err
}

// hasFlag reports whether a flag package usage text lists flag ("-name"),
// which it prints first on a line of its own.
func hasFlag(help, flag string) bool {
	for _, line := range strings.Split(help, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == flag {
			return true
		}
	}
	return false
}

// measure warms t up, then loads it for the measured duration while
// sampling the proxy's CPU time and each core's busy time on either side.
func measure(ctx context.Context, e *env, cfg config, t *target, conns int) (row, error) {
	o := e.o
	r := row{config: cfg, conns: conns, proxy: t.proc != nil}
	if o.warmup > 0 {
		logf("%s, %d connections: warm-up %v", cfg.name, conns, o.warmup)
		if _, err := runWrk(ctx, loadCPU, t.url, o.threads, conns, o.warmup, false, t.headers); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
	}

	var profile chan error
	if o.cpuprofile != "" && t.admin != "" {
		profile = make(chan error, 1)
		path := filepath.Join(o.cpuprofile, fmt.Sprintf("%s-c%d.pprof", cfg.name, conns))
		go func() { profile <- saveProfile(ctx, t.admin, o.duration, path) }()
	}

	logf("%s, %d connections: measuring %v", cfg.name, conns, o.duration)
	// Scraped outside the window that the CPU figures cover.
	var redis0 redisCounts
	if t.redis {
		var err error
		if redis0, err = readRedisCounts(ctx, t.admin); err != nil {
			return r, err
		}
	}
	cores0, err := readCPUTimes()
	if err != nil {
		return r, err
	}
	var proc0 time.Duration
	if r.proxy {
		if proc0, err = treeCPU(t.proc.pid()); err != nil {
			return r, fmt.Errorf("reading the proxy's CPU time: %w", err)
		}
	}
	logSize0 := fileSize(t.log)
	start := time.Now()
	if r.wrk, err = runWrk(ctx, loadCPU, t.url, o.threads, conns, o.duration, true, t.headers); err != nil {
		return r, err
	}
	r.wall = time.Since(start)
	// The counters first, so that the window closes with wrk.
	cores1, err := readCPUTimes()
	if err != nil {
		return r, err
	}
	for i := range r.busy {
		if d := cores1[i].total - cores0[i].total; d > 0 {
			r.busy[i] = float64(cores1[i].busy-cores0[i].busy) / float64(d)
		}
	}
	if r.proxy {
		proc1, err := treeCPU(t.proc.pid())
		if err != nil {
			return r, fmt.Errorf("reading the proxy's CPU time: %w", err)
		}
		r.cpu = proc1 - proc0
		if r.rss, r.anon, err = treeRSS(t.proc.pid()); err != nil {
			return r, fmt.Errorf("reading the proxy's memory: %w", err)
		}
	}
	if t.redis {
		redis1, err := readRedisCounts(ctx, t.admin)
		if err != nil {
			return r, err
		}
		r.redis = redisCounts{checks: redis1.checks - redis0.checks, fallbacks: redis1.fallbacks - redis0.fallbacks}
		if err := checkRedis(r.redis, r.wrk.Requests); err != nil {
			return r, err
		}
	}
	// A row that claims an access log must have written one: a line a
	// request, and neither proxy's lines are under 40 bytes (nginx's
	// combined format is the shorter, about 75 here).
	if t.log != "" {
		if grew := fileSize(t.log) - logSize0; grew < 40*r.wrk.Requests {
			return r, fmt.Errorf("the access log %s grew %d bytes for %d requests: is it on?", t.log, grew, r.wrk.Requests)
		}
	}
	if profile != nil {
		if err := <-profile; err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkRedis fails a row whose rate limit was not decided in Redis: every
// request is one decision, and a decision made without Redis's answer (a
// timeout, or the second after one) costs no round trip, so more than 1 %
// of them would measure the fallback instead. The bound is the one
// checkErrors puts on failed requests.
func checkRedis(got redisCounts, requests int64) error {
	if float64(got.checks) < 0.99*float64(requests) || float64(got.fallbacks) > 0.01*float64(requests) {
		return fmt.Errorf("the rate limit was not decided in Redis: %d requests, %d checks asked of Redis, %d decided without its answer", requests, got.checks, got.fallbacks)
	}
	return nil
}

// fileSize is path's size, 0 when it is missing or path is "".
func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// saveProfile fetches a CPU profile covering the measured run from
// Gatehouse's --pprof endpoint.
func saveProfile(ctx context.Context, admin string, d time.Duration, path string) error {
	secs := int(d.Round(time.Second) / time.Second)
	client := &http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+admin+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching a CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching a CPU profile: status %d", resp.StatusCode)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("saving %s: %w", path, err)
	}
	logf("CPU profile saved to %s", path)
	return out.Close()
}
