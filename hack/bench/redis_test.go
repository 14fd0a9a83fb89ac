package main

import (
	"net"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP gatehouse_ratelimit_redis_checks_total Rate-limit decisions asked of Redis, answered or not.
# TYPE gatehouse_ratelimit_redis_checks_total counter
gatehouse_ratelimit_redis_checks_total 1.234567e+06
gatehouse_ratelimit_redis_checks_total_other 9
gatehouse_ratelimit_redis_fallbacks_total 3
gatehouse_requests_total{code="200"} 5
`
	got, err := parseMetrics(strings.NewReader(text), metricRedisChecks, metricRedisFallbacks)
	if err != nil || got[metricRedisChecks] != 1234567 || got[metricRedisFallbacks] != 3 {
		t.Errorf("parseMetrics = %v, %v; want 1234567 checks, 3 fallbacks", got, err)
	}
	// A gateway run without --ratelimit-redis has no such counters.
	if _, err := parseMetrics(strings.NewReader("go_goroutines 7\n"), metricRedisChecks); err == nil {
		t.Error("a missing counter was not an error")
	}
	if _, err := parseMetrics(strings.NewReader(metricRedisChecks+" NaN\n"), metricRedisChecks); err == nil {
		t.Error("NaN was read as a count")
	}
}

// TestPing checks the readiness probe against a stand-in that answers as
// Redis does, and one that answers something else.
func TestPing(t *testing.T) {
	serve := func(answer string) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				if string(buf[:n]) == "PING\r\n" {
					c.Write([]byte(answer))
				}
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	if err := ping(serve("+PONG\r\n")); err != nil {
		t.Errorf("ping of a Redis: %v", err)
	}
	if err := ping(serve("-NOAUTH Authentication required.\r\n")); err == nil {
		t.Error("ping accepted a refusal")
	}
}
