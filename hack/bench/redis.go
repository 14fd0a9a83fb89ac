package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// findRedis returns the path of redis-server from hack/redis ensure, which
// installs the Debian package when it is missing and this runs as root,
// keeping the package's own service from starting (it would hold port
// 6379 after the run), and says what to do otherwise.
func findRedis(ctx context.Context, repo string) (string, error) {
	script := filepath.Join(repo, "hack", "redis")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("no hack/redis under %s to find redis-server with: run from the repository root or pass -repo", repo)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // an install can wait on a slow mirror
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "ensure")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/redis ensure: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	if bin == "" {
		return "", errors.New("hack/redis ensure printed no path")
	}
	return bin, nil
}

// startRedis runs a throwaway redis-server on loadCPU, like the backend,
// on a free loopback port: no snapshots, no append-only file, so it writes
// nothing and costs the gateway's check nothing but the round trip. It is
// stopped with the run.
func startRedis(ctx context.Context, e *env, c *cleanups, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(e.tmp, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p, err := startProcess("redis", filepath.Join(dir, "redis.log"), loadCPU, nil, nil,
		bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return "", err
	}
	c.add(p.stop)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return addr, waitRedis(ctx, p, addr)
}

// waitRedis polls addr with PING until Redis answers PONG. It gives up
// after 15 s or as soon as p exits.
func waitRedis(ctx context.Context, p *process, addr string) error {
	return p.poll(ctx, "answer PING on "+addr, func() error { return ping(addr) })
}

// ping sends Redis an inline PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Gatehouse's counters of rate-limit decisions asked of Redis and of those
// made without its answer (see limiter.RedisStats).
const (
	metricRedisChecks    = "gatehouse_ratelimit_redis_checks_total"
	metricRedisFallbacks = "gatehouse_ratelimit_redis_fallbacks_total"
)

// redisCounts are Gatehouse's Redis counters at one moment.
type redisCounts struct{ checks, fallbacks int64 }

// readRedisCounts scrapes the counters from Gatehouse's admin listener.
func readRedisCounts(ctx context.Context, admin string) (redisCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return redisCounts{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return redisCounts{}, fmt.Errorf("reading the gateway's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return redisCounts{}, fmt.Errorf("reading the gateway's metrics: status %d", resp.StatusCode)
	}
	m, err := parseMetrics(resp.Body, metricRedisChecks, metricRedisFallbacks)
	if err != nil {
		return redisCounts{}, fmt.Errorf("reading the gateway's metrics: %w", err)
	}
	return redisCounts{checks: m[metricRedisChecks], fallbacks: m[metricRedisFallbacks]}, nil
}

// parseMetrics reads the values of the unlabelled metrics names from a
// Prometheus text exposition ("name 123" or "name 1.23e+06" lines),
// failing when one is missing: a gateway without them is not deciding in
// Redis.
func parseMetrics(r io.Reader, names ...string) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		for _, n := range names {
			if f[0] == n {
				v, err := strconv.ParseFloat(f[1], 64)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					return nil, fmt.Errorf("%s: %q is not a count", n, f[1])
				}
				out[n] = int64(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no %s", n)
		}
	}
	return out, nil
}
