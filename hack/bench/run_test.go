package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckServeFlags runs stand-ins for serve -h, from before the HTTPS
// listener and before Redis rate limits, and checks that a binary lacking
// a flag a row needs is refused with the rows that can still run.
func TestCheckServeFlags(t *testing.T) {
	fake := func(flags string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "gatehouse")
		script := "#!/bin/sh\nprintf 'Usage of serve:\\n" + flags + "' >&2\nexit 2\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return bin
	}
	check := func(bin string, names []string, want string) {
		t.Helper()
		err := checkServeFlags(t.Context(), bin, names)
		switch {
		case want == "" && err != nil:
			t.Errorf("%v: %v", names, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%v: err = %v, want one with %q", names, err, want)
		}
	}
	names := []string{"nginx", "gatehouse", "nginx-tls", "gatehouse-tls", "gatehouse-redis"}
	current := fake(`  -listen string\n  -listen-tls string\n  -ratelimit-redis string\n  -ratelimit-redis-timeout duration\n`)
	check(current, names, "")

	noTLS := fake(`  -listen string\n  -ratelimit-redis string\n`)
	check(noTLS, names, "has no --listen-tls, needed by gatehouse-tls: leave them out (-configs nginx,gatehouse,nginx-tls,gatehouse-redis)")
	// Only the rows that need the flag asked for: nothing to suggest.
	if err := checkServeFlags(t.Context(), noTLS, []string{"gatehouse-tls"}); err == nil || strings.Contains(err.Error(), "-configs") {
		t.Errorf("only HTTPS rows asked for: err = %v, want one naming no -configs", err)
	}

	// -ratelimit-redis-timeout alone is not -ratelimit-redis.
	noRedis := fake(`  -listen string\n  -listen-tls string\n  -ratelimit-redis-timeout duration\n`)
	check(noRedis, names, "has no --ratelimit-redis, needed by gatehouse-redis: leave them out (-configs nginx,gatehouse,nginx-tls,gatehouse-tls)")
	check(fake(`  -listen string\n`), names, "has no --listen-tls, --ratelimit-redis, needed by gatehouse-tls, gatehouse-redis")
	check(noRedis, []string{"gatehouse", "gatehouse-jwt"}, "")
}

func TestCheckRedis(t *testing.T) {
	for _, c := range []struct {
		got      redisCounts
		requests int64
		ok       bool
	}{
		{redisCounts{checks: 1000, fallbacks: 0}, 1000, true},
		{redisCounts{checks: 1064, fallbacks: 10}, 1000, true}, // in flight when wrk stopped; a few timeouts
		{redisCounts{checks: 1000, fallbacks: 11}, 1000, false},
		{redisCounts{checks: 500}, 1000, false}, // half the requests never asked Redis
		{redisCounts{}, 1000, false},
	} {
		if err := checkRedis(c.got, c.requests); (err == nil) != c.ok {
			t.Errorf("checkRedis(%+v, %d) = %v, want ok %v", c.got, c.requests, err, c.ok)
		}
	}
}
