package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFormatting(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.6: "1,000", 51012.3: "51,012", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{0: "—", 812 * time.Microsecond: "812 µs", 3200 * time.Microsecond: "3.20 ms", 1130 * time.Millisecond: "1.13 s"} {
		if got := latency(in); got != want {
			t.Errorf("latency(%v) = %q, want %q", in, got, want)
		}
	}
	if got := ratio(3, 0); got != "—" {
		t.Errorf("ratio(3, 0) = %q", got)
	}
}

// TestReport checks the ratios against nginx's row of the same connection
// count, the baseline column, and the notes on disturbed and load-bound
// rows; without feature rows there is no line about them.
func TestReport(t *testing.T) {
	nginx, _ := configByName("nginx")
	gh, _ := configByName("gatehouse")
	rows := []row{
		{config: nginx, conns: 64, proxy: true, wrk: wrkResult{Requests: 100000, RPS: 10000, P50: time.Millisecond, P99: 2 * time.Millisecond},
			cpu: 2 * time.Second, wall: 10 * time.Second, busy: [2]float64{0.21, 0.97}, rss: 16 << 20, anon: 2 << 20},
		{config: gh, conns: 64, proxy: true, wrk: wrkResult{Requests: 50000, RPS: 5000, P50: 3 * time.Millisecond, P99: 5 * time.Millisecond, Non2xx: 1},
			cpu: 10 * time.Second, wall: 10 * time.Second, busy: [2]float64{1, 0.4}, rss: 40 << 20, anon: 10 << 20},
		{config: gh, conns: 256, proxy: true, wrk: wrkResult{Requests: 40000, RPS: 4000, P50: 3 * time.Millisecond, P99: 9 * time.Millisecond},
			cpu: 5 * time.Second, wall: 10 * time.Second, busy: [2]float64{0.9, 0.4}, rss: 40 << 20, anon: 10 << 20},
	}
	var b bytes.Buffer
	printReport(&b, options{threads: 2, warmup: 2 * time.Second, duration: 10 * time.Second}, facts{}, rows)
	out := b.String()
	for _, want := range []string{
		"| nginx | 64 | 10,000 | 1.00 ms | 2.00 ms | 20.0 | 16.0 (2.0) | nginx | 1.00× | 1.00× | 1.00× | 20% | 21% / 97% | 0 |",
		"| Gatehouse | 64 | 5,000 | 3.00 ms | 5.00 ms | 200.0 | 40.0 (10.0) | nginx | 0.50× | 10.00× | 2.50× | 100% | 100% / 40% | 1 |",
		"| Gatehouse | 256 | 4,000 | 3.00 ms | 9.00 ms | 125.0 | 40.0 (10.0) | nginx (not run) | — | — | — | 50% | 90% / 40% | 0 |",
		"- nginx at 64 connections: CPU 1 (wrk and the backend) was 97% busy",
		"- Gatehouse at 256 connections: other processes used about 40% of CPU 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n- ") != 2 || strings.Contains(out, "Gatehouse feature rows,") {
		t.Errorf("want exactly two notes and no line about feature rows:\n%s", out)
	}
}

// TestReportPairsProtocols checks that each row's ratios are to its own
// baseline at the same connection count: an HTTPS row to nginx's HTTPS
// row, never to the plain one, a feature row to the Gatehouse row without
// the feature, and a row whose baseline did not run gets none.
func TestReportPairsProtocols(t *testing.T) {
	cfg := func(name string) config {
		t.Helper()
		c, ok := configByName(name)
		if !ok {
			t.Fatalf("no config %q", name)
		}
		return c
	}
	at := func(name string, conns int, rps float64, cpu time.Duration, p99 time.Duration) row {
		return row{config: cfg(name), conns: conns, proxy: true, wall: 10 * time.Second,
			wrk: wrkResult{Requests: int64(rps) * 10, RPS: rps, P50: p99 / 2, P99: p99}, cpu: cpu}
	}
	rows := []row{
		at("nginx", 64, 10000, 1*time.Second, 2*time.Millisecond),
		at("gatehouse", 64, 8000, 1*time.Second, 4*time.Millisecond),
		at("nginx-tls", 64, 5000, 1*time.Second, 4*time.Millisecond),
		at("gatehouse-tls", 64, 4000, 2*time.Second, 2*time.Millisecond),
		at("gatehouse-tls", 256, 4000, 2*time.Second, 2*time.Millisecond),
		at("gatehouse-full", 64, 5000, 1*time.Second, 2*time.Millisecond),
		at("gatehouse-jwt", 64, 4000, 2*time.Second, 8*time.Millisecond),
		at("gatehouse-redis", 64, 2500, 1*time.Second, 4*time.Millisecond),
		at("gatehouse-apikey", 256, 4000, 2*time.Second, 8*time.Millisecond),
	}
	rows[7].redis = redisCounts{checks: 25064, fallbacks: 3}
	base := baselines(rows)
	for i, want := range []int{0, 0, 2, 2, -1, 0, 1, 5, -1} {
		got, ok := base[i]
		switch {
		case want < 0 && ok:
			t.Errorf("row %d (%s at %d): baseline %s at %d, want none", i, rows[i].config.name, rows[i].conns, got.config.name, got.conns)
		case want >= 0 && (!ok || got.config.name != rows[want].config.name || got.conns != rows[want].conns):
			t.Errorf("row %d (%s at %d): baseline %+v (found %v), want row %d", i, rows[i].config.name, rows[i].conns, got.config.name, ok, want)
		}
	}

	var b bytes.Buffer
	printReport(&b, options{threads: 2, warmup: 2 * time.Second, duration: 10 * time.Second}, facts{}, rows)
	out := b.String()
	for _, want := range []string{
		"| nginx | 64 | 10,000 | 1.00 ms | 2.00 ms | 10.0 | 0.0 (0.0) | nginx | 1.00× | 1.00× | 1.00× |",
		"| Gatehouse | 64 | 8,000 | 2.00 ms | 4.00 ms | 12.5 | 0.0 (0.0) | nginx | 0.80× | 1.25× | 2.00× |",
		"| nginx, HTTPS | 64 | 5,000 | 2.00 ms | 4.00 ms | 20.0 | 0.0 (0.0) | nginx-tls | 1.00× | 1.00× | 1.00× |",
		"| Gatehouse, HTTPS | 64 | 4,000 | 1.00 ms | 2.00 ms | 50.0 | 0.0 (0.0) | nginx-tls | 0.80× | 2.50× | 0.50× |",
		"| Gatehouse, HTTPS | 256 | 4,000 | 1.00 ms | 2.00 ms | 50.0 | 0.0 (0.0) | nginx-tls (not run) | — | — | — |",
		"| Gatehouse, access log + rate limit | 64 | 5,000 | 1.00 ms | 2.00 ms | 20.0 | 0.0 (0.0) | nginx | 0.50× | 2.00× | 1.00× |",
		"HTTPS rows: wrk speaks HTTP/1.1 over TLS",
		// A feature row's ratios are to the Gatehouse row without the feature.
		"| Gatehouse, JWT (ES256) | 64 | 4,000 | 4.00 ms | 8.00 ms | 50.0 | 0.0 (0.0) | gatehouse | 0.50× | 4.00× | 2.00× |",
		"| Gatehouse, access log + rate limit in Redis | 64 | 2,500 | 2.00 ms | 4.00 ms | 40.0 | 0.0 (0.0) | gatehouse-full | 0.50× | 2.00× | 2.00× |",
		"| Gatehouse, API key | 256 | 4,000 | 4.00 ms | 8.00 ms | 50.0 | 0.0 (0.0) | gatehouse (not run) | — | — | — |",
		"Gatehouse feature rows, compared with the Gatehouse row they add the feature to (the baseline column)",
		"gatehouse-jwt: the Mapping requires a JWT",
		"gatehouse-apikey: the Mapping requires an API key",
		"- Gatehouse, access log + rate limit in Redis at 64 connections: 25064 rate-limit decisions asked of Redis for 25000 requests, 3 made without its answer.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
