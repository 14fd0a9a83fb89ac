package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests     int64         // completed, whatever their status
	Elapsed      time.Duration // wrk's own measure of the run
	RPS          float64       // Requests/sec as wrk prints it
	P50, P99     time.Duration // zero when run without --latency
	SocketErrors int64         // connect + read + write + timeout
	Non2xx       int64         // responses that were not 2xx or 3xx
}

// errors returns the failed requests of every kind.
func (r wrkResult) errors() int64 { return r.SocketErrors + r.Non2xx }

// runWrk loads url with wrk pinned to cpu and returns its parsed report.
// wrk counts whole seconds, so d is rounded to them. headers ("Name:
// value") go with every request.
func runWrk(ctx context.Context, cpu int, url string, threads, conns int, d time.Duration, latency bool, headers []string) (wrkResult, error) {
	secs := int64(d.Round(time.Second) / time.Second)
	args := wrkArgs(cpu, url, threads, conns, secs, latency, headers)
	// wrk stops by itself after d; the margin covers start-up and a stuck
	// exit, so a hung wrk cannot hold the whole benchmark.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", args...)
	// Should this program be killed outright, wrk stops too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if parent.Err() != nil {
			return wrkResult{}, fmt.Errorf("wrk interrupted: %w", parent.Err())
		}
		return wrkResult{}, fmt.Errorf("running wrk%s: %w: %s", commandArgs(args[3:]), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	r, err := parseWrk(stdout.String())
	if err != nil {
		return r, fmt.Errorf("reading wrk's report: %w\n%s", err, stdout.String())
	}
	if latency && r.P99 == 0 {
		return r, fmt.Errorf("reading wrk's report: no latency distribution\n%s", stdout.String())
	}
	return r, nil
}

// wrkArgs is taskset's command line for wrk: pinned to cpu, loading url
// for secs seconds with one -H per header, which wrk sends with every
// request.
func wrkArgs(cpu int, url string, threads, conns int, secs int64, latency bool, headers []string) []string {
	args := []string{"-c", strconv.Itoa(cpu), "wrk",
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.FormatInt(secs, 10) + "s",
		// A request stuck past this counts as a timeout error instead of
		// holding the run open.
		"--timeout", "5s"}
	if latency {
		args = append(args, "--latency")
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	return append(args, url)
}

// parseWrk reads wrk's text report (wrk 4, with or without --latency):
//
//	  510000 requests in 10.00s, 100.00MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 3
//	  Non-2xx or 3xx responses: 12
//	Requests/sec:  51000.00
//
// and, under "Latency Distribution", lines such as "99%    3.20ms". Times
// carry wrk's units (us, ms, s, m, h); the rate may carry its k, M and G
// suffixes (wrk prints it plain today); tallies are plain integers. The
// request count and rate are required; the rest is optional.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveCount, haveRate bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err := parseTally(f[0])
			if err != nil {
				return r, fmt.Errorf("request count: %w", err)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("run duration: %w", err)
			}
			r.Requests, r.Elapsed, haveCount = n, d, true
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := parseCount(f[1])
			if err != nil {
				return r, fmt.Errorf("requests/sec: %w", err)
			}
			r.RPS, haveRate = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency %s: %w", f[0], err)
			}
			if f[0] == "50%" {
				r.P50 = d
			} else {
				r.P99 = d
			}
		case len(f) == 10 && f[0] == "Socket" && f[1] == "errors:":
			// connect N, read N, write N, timeout N
			for i := 3; i < len(f); i += 2 {
				n, err := parseTally(strings.TrimSuffix(f[i], ","))
				if err != nil {
					return r, fmt.Errorf("socket errors: %w", err)
				}
				r.SocketErrors += n
			}
		case len(f) == 5 && strings.Join(f[:4], " ") == "Non-2xx or 3xx responses:":
			n, err := parseTally(f[4])
			if err != nil {
				return r, fmt.Errorf("non-2xx responses: %w", err)
			}
			r.Non2xx = n
		}
	}
	switch {
	case !haveCount:
		return r, errors.New(`no "N requests in T" line`)
	case !haveRate:
		return r, errors.New(`no "Requests/sec:" line`)
	}
	return r, nil
}

// parseTally reads one of the plain integers wrk prints for requests and
// errors. The bound keeps a sum of four from overflowing.
func parseTally(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/8 {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return n, nil
}

// parseCount reads a non-negative number with an optional k, M or G suffix
// (powers of 1000, as wrk's format_metric prints them).
func parseCount(s string) (float64, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return v * mult, nil
}

// wrkTimeUnits are the units of wrk's format_time, longest suffix first
// so that "ms" is not read as "s".
var wrkTimeUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"us", time.Microsecond},
	{"µs", time.Microsecond},
	{"ms", time.Millisecond},
	{"s", time.Second},
	{"m", time.Minute},
	{"h", time.Hour},
}

// parseWrkDuration reads a time as wrk prints it: "412.00us", "1.23ms",
// "10.00s", "1.00m". A bare number is not accepted: wrk always prints a unit.
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range wrkTimeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		// The bound keeps the conversion below from overflowing.
		if err != nil || v < 0 || math.IsNaN(v) || v*float64(u.unit) > float64(math.MaxInt64/2) {
			break
		}
		return time.Duration(math.Round(v * float64(u.unit))), nil
	}
	return 0, fmt.Errorf("%q is not a time in wrk's units (us, ms, s, m, h)", s)
}
