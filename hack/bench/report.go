package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// printReport writes the run's facts and its Markdown table.
func printReport(w io.Writer, o options, f facts, rows []row) {
	fmt.Fprintf(w, "Command: `go run ./hack/bench%s`  \n", commandArgs(os.Args[1:]))
	fmt.Fprintf(w, "Date: %s  \n", f.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), Linux %s; load average %s before the run, %s after  \n",
		f.cpus, f.cpuModel, f.kernel, f.load, f.after)
	tools := []string{f.wrk, f.goVersion}
	if f.nginx != "" {
		tools = append([]string{f.nginx}, tools...)
	}
	if f.redis != "" {
		tools = append(tools, f.redis)
	}
	fmt.Fprintf(w, "Tools: %s  \n", strings.Join(tools, "; "))
	fmt.Fprintf(w, "Setup: the proxy under test alone on CPU %d (`taskset -c %d`); wrk (%d threads) and the backend on CPU %d. "+
		"Gatehouse runs with GOMAXPROCS=1, the counterpart of nginx's `worker_processes 1`. "+
		"Each row: %v warm-up, then %v measured with keep-alive connections; the backend answers every GET with %d bytes.\n\n",
		proxyCPU, proxyCPU, o.threads, loadCPU, o.warmup, o.duration, bodySize)
	for _, r := range rows {
		if r.config.tls {
			fmt.Fprint(w, "HTTPS rows: wrk speaks HTTP/1.1 over TLS to the proxy; nginx and Gatehouse serve the same ECDSA P-256 certificate and forward plain HTTP to the backend. "+
				"Their ratios are to nginx's HTTPS row.\n\n")
			break
		}
	}
	if s := setups(rows); len(s) > 0 {
		fmt.Fprint(w, "Gatehouse feature rows, compared with the Gatehouse row they add the feature to (the baseline column), so that their ratios are what the feature costs: "+
			strings.Join(s, "; ")+". The CPU figures are the gateway's own, without the auth service's or Redis's.\n\n")
	}

	fmt.Fprintln(w, "| proxy | conns | req/s | p50 | p99 | CPU µs/req | RSS MiB (anon) | baseline | req/s vs baseline | CPU/req vs baseline | p99 vs baseline | proxy CPU | CPU 0 / 1 busy | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
	base := baselines(rows)
	for i, r := range rows {
		cpu, rss, proxyCPU := "—", "—", "—"
		if r.proxy {
			cpu = fmt.Sprintf("%.1f", float64(r.cpuPerRequest())/float64(time.Microsecond))
			rss = fmt.Sprintf("%.1f (%.1f)", float64(r.rss)/(1<<20), float64(r.anon)/(1<<20))
			if r.wall > 0 {
				proxyCPU = fmt.Sprintf("%.0f%%", 100*r.cpu.Seconds()/r.wall.Seconds())
			}
		}
		baseline := r.config.baseline + " (not run)"
		rpsRatio, cpuRatio, p99Ratio := "—", "—", "—"
		if n, ok := base[i]; ok {
			baseline = r.config.baseline
			rpsRatio = ratio(r.wrk.RPS, n.wrk.RPS)
			if r.proxy {
				cpuRatio = ratio(float64(r.cpuPerRequest()), float64(n.cpuPerRequest()))
			}
			p99Ratio = ratio(float64(r.wrk.P99), float64(n.wrk.P99))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% / %.0f%% | %d |\n",
			r.config.label, r.conns, thousands(r.wrk.RPS), latency(r.wrk.P50), latency(r.wrk.P99),
			cpu, rss, baseline, rpsRatio, cpuRatio, p99Ratio, proxyCPU, 100*r.busy[0], 100*r.busy[1], r.wrk.errors())
	}
	fmt.Fprintln(w)
	for _, n := range notes(rows) {
		fmt.Fprintln(w, "- "+n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU µs/req: the proxy's process tree (utime+stime from /proc/PID/stat) over the measured run, per completed request. "+
		"RSS: VmRSS after the run (nginx: master + worker), and in brackets its anonymous part (RssAnon: heap and stacks; the rest is pages of the executable and libraries). proxy CPU: that CPU time over the run's wall time (100% = one core). "+
		"CPU 0 / 1 busy: each core over the run from /proc/stat, whatever ran there. errors: socket errors plus responses not 2xx/3xx. "+
		"baseline: the row (as named in -configs) whose figures at the same connection count the ratios divide by: "+
		"nginx over the same protocol for the proxies, the Gatehouse row without the feature for Gatehouse's feature rows.")
}

// baselines pairs each row, by index, with the row its ratios are taken
// against: its config's baseline at the same connection count, when the
// run measured it.
func baselines(rows []row) map[int]row {
	type key struct {
		config string
		conns  int
	}
	measured := map[key]row{}
	for _, r := range rows {
		measured[key{r.config.name, r.conns}] = r
	}
	out := map[int]row{}
	for i, r := range rows {
		if b, ok := measured[key{r.config.baseline, r.conns}]; ok {
			out[i] = b
		}
	}
	return out
}

// setups say how each Gatehouse feature row among rows is set up, once a
// config, in run order.
func setups(rows []row) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if r.config.setup != "" && !seen[r.config.name] {
			seen[r.config.name] = true
			out = append(out, r.config.name+": "+r.config.setup)
		}
	}
	return out
}

// Thresholds for notes under the table. A busy figure within a few points
// of the proxy's own is measurement noise (ticks, the orchestrator); past
// them the row shares its core or is held back by the load side.
const (
	otherLoadNote = 0.10 // CPU 0 busy beyond the proxy's own use
	saturatedNote = 0.95 // CPU 1 busy
)

// notes says which rows were disturbed by other work on the proxy's core,
// and which may be limited by wrk and the backend rather than the proxy,
// so that nobody reads a ratio without knowing.
func notes(rows []row) []string {
	var out []string
	for _, r := range rows {
		what := fmt.Sprintf("%s at %d connections", r.config.label, r.conns)
		own := 0.0
		if r.proxy && r.wall > 0 {
			own = r.cpu.Seconds() / r.wall.Seconds()
		}
		if other := r.busy[0] - own; other > otherLoadNote {
			out = append(out, fmt.Sprintf("%s: other processes used about %.0f%% of CPU %d, the proxy's core; the row is disturbed.", what, 100*other, proxyCPU))
		}
		if r.config.redis {
			out = append(out, fmt.Sprintf("%s: %d rate-limit decisions asked of Redis for %d requests, %d made without its answer.", what, r.redis.checks, r.wrk.Requests, r.redis.fallbacks))
		}
		if r.proxy && r.busy[1] >= saturatedNote {
			out = append(out, fmt.Sprintf("%s: CPU %d (wrk and the backend) was %.0f%% busy, so the load side may be what limits the rate; CPU µs/req still holds.", what, loadCPU, 100*r.busy[1]))
		}
	}
	return out
}

// commandArgs quotes the flags as given, for a command line to paste.
func commandArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func latency(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// thousands formats a rate as a whole number with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
