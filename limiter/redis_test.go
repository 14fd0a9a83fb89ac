package limiter

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// --- a throwaway redis-server --------------------------------------------------

// inCI reports whether the tests run in CI, where a missing tool is a failure.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// requireRedisServer returns the path of redis-server. Without one the test
// skips on a developer's machine and fails in CI, whose hack/test installs it.
func requireRedisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const why = "needs redis-server on PATH (hack/redis ensure installs it)"
		if inCI() {
			t.Fatalf("%s %s (CI is set: failing rather than skipping)", t.Name(), why)
		}
		t.Skipf("%s %s", t.Name(), why)
	}
	return bin
}

// redisServer is a redis-server child process on a free loopback port, with
// no persistence, stopped when the test ends.
type redisServer struct {
	t     testing.TB
	bin   string
	extra []string
	dir   string
	addr  string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *syncBuffer
}

func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	s := &redisServer{t: t, bin: requireRedisServer(t), extra: extra, dir: t.TempDir()}
	t.Cleanup(s.stop)
	var err error
	// Another process can take the free port before redis-server binds it.
	for range 3 {
		s.addr = freeAddr(t)
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", err)
	return nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs redis-server on s.addr and returns once it answers PING.
func (s *redisServer) start() error {
	host, port, _ := net.SplitHostPort(s.addr)
	args := append([]string{"--port", port, "--bind", host, "--save", "", "--appendonly", "no", "--dir", s.dir}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.out = cmd, done, out
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if pingRedis(s.addr, time.Second) == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited before answering PING:\n%s", out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server did not answer PING within 10s:\n%s", out)
		}
	}
}

// stop kills redis-server (as a crash would) and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// restart starts redis-server again on the same address, empty.
func (s *redisServer) restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server on %s: %v", s.addr, err)
	}
}

// pingRedis sends PING on a new connection and waits up to timeout for PONG.
func pingRedis(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newTestRedis is NewRedis, closed at the end of the test, logging into log.
func newTestRedis(t testing.TB, o RedisOptions, log io.Writer) *Redis {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	o.Logger = slog.New(slog.NewTextHandler(log, nil))
	g, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// globalLimiter is p's limiter in a fresh Registry deciding through g, with
// its local buckets at a share of replicas.
func globalLimiter(g *Redis, replicas int, p Policy) *Limiter {
	r := NewRegistry(Options{})
	r.SetShare(replicas)
	r.SetGlobal(g)
	return r.Get(p)
}

// --- tests without a server ------------------------------------------------------

func TestNewRedis(t *testing.T) {
	g, err := NewRedis(RedisOptions{Addr: "127.0.0.1:6379"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.timeout != 10*time.Millisecond || g.prefix != "gatehouse:rl:" || g.failOpen || g.log == nil || g.backoff != time.Second {
		t.Errorf("defaults: timeout %v, prefix %q, failOpen %v, backoff %v", g.timeout, g.prefix, g.failOpen, g.backoff)
	}
	if st := g.Stats(); st != (RedisStats{Up: true}) {
		t.Errorf("Stats before any check = %+v, want up and zero", st)
	}
	u, err := NewRedis(RedisOptions{Addr: "redis://user:secret@127.0.0.1:6390/3", Timeout: time.Second, Prefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if o := u.client.Options(); o.Addr != "127.0.0.1:6390" || o.DB != 3 || o.Password != "secret" || o.ReadTimeout != time.Second || u.prefix != "p:" {
		t.Errorf("from a URL: addr %q, db %d, read timeout %v, prefix %q", o.Addr, o.DB, o.ReadTimeout, u.prefix)
	}
	for _, o := range []RedisOptions{
		{},
		{Addr: "127.0.0.1:6379", Timeout: -time.Second},
		{Addr: "redis://127.0.0.1:6379/notadb"},
	} {
		if g, err := NewRedis(o); err == nil {
			g.Close()
			t.Errorf("NewRedis(%+v) succeeded", o)
		} else if !strings.HasPrefix(err.Error(), "redis rate limits: ") {
			t.Errorf("NewRedis(%+v): error %q does not say what failed", o, err)
		}
	}
}

func TestRedisKey(t *testing.T) {
	g := &Redis{prefix: "gatehouse:rl:"}
	if got := g.redisKey("ns/svc/rl", "alice"); got != "gatehouse:rl:ns/svc/rl\x00alice" {
		t.Errorf("short key = %q", got)
	}
	if got := g.redisKey("ns/svc/rl", "\xc0\x00\x02\x01"); got != "gatehouse:rl:ns/svc/rl\x00\xc0\x00\x02\x01" {
		t.Errorf("binary key = %q", got)
	}
	fits := strings.Repeat("k", maxRedisKey-len("gatehouse:rl:ns/rl\x00"))
	if got := g.redisKey("ns/rl", fits); len(got) != maxRedisKey || !strings.HasSuffix(got, fits) {
		t.Errorf("a key of exactly %d bytes was changed to %q", maxRedisKey, got)
	}
	seen := map[string]string{}
	for _, k := range []string{fits + "a", fits + "b", strings.Repeat("x", 8192)} {
		got := g.redisKey("ns/rl", k)
		if len(got) > maxRedisKey || !strings.HasPrefix(got, "gatehouse:rl:#") || strings.Contains(got, "\x00") {
			t.Errorf("long key %.10q... became %q", k, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("keys %.10q and %.10q share %q", k, other, got)
		}
		seen[got] = k
		if again := g.redisKey("ns/rl", k); again != got {
			t.Errorf("hashing is not stable: %q, then %q", got, again)
		}
	}
	// The policy ID is part of the hash: one bucket key, two policies.
	if g.redisKey("a", fits+"x") == g.redisKey("b", fits+"x") {
		t.Error("two policies share a hashed key")
	}
}

// refusedAddr is an address where nothing listens: connecting fails at once.
func refusedAddr(t *testing.T) string { return freeAddr(t) }

// TestRedisUnreachable needs no server: each mode's fallback, the circuit
// skipping Redis after the failure, one log line for it, and policies that
// never go to Redis.
func TestRedisUnreachable(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("FailOpen=%v", failOpen), func(t *testing.T) {
			var log syncBuffer
			g := newTestRedis(t, RedisOptions{Addr: refusedAddr(t), Timeout: time.Second, FailOpen: failOpen}, &log)
			g.backoff = time.Hour // one check, then skipped for the rest of the test
			l := globalLimiter(g, 3, Policy{ID: "ns/rl", Limit: 1, Burst: 10, Key: KeyConsumer})
			for i := range 5 {
				d := l.Decide(t0, nil, netip.Addr{}, "alice")
				var want Decision
				if failOpen { // the local bucket at a third: 4 at once
					want = Decision{Allowed: i < 4, Limit: 4, Remaining: max(0, 3-i), Reset: time.Duration(min(i+1, 4)) * 3 * time.Second, Window: 12 * time.Second}
					if i >= 4 {
						want.RetryAfter = 3 * time.Second
					}
				} else {
					want = Decision{RetryAfter: time.Second, Limit: 10, Reset: time.Second, Window: 10 * time.Second}
				}
				if d != want {
					t.Fatalf("request %d: %+v, want %+v", i+1, d, want)
				}
			}
			if st := g.Stats(); st != (RedisStats{Checks: 1, Fallbacks: 5, Errors: 1}) {
				t.Errorf("Stats = %+v, want 1 check, failed, and 5 fallbacks", st)
			}
			if n := strings.Count(log.String(), "rate limit store unavailable"); n != 1 {
				t.Errorf("logged the outage %d times, want once:\n%s", n, log.String())
			}
			if !failOpen {
				policy, ratelimit := l.Decide(t0, nil, netip.Addr{}, "alice").Headers("ns/rl")
				if policy != `"ns/rl";q=10;w=10` || ratelimit != `"ns/rl";r=0;t=1` {
					t.Errorf("fail-closed headers: %s, %s", policy, ratelimit)
				}
			}
		})
	}
	t.Run("rate Inf", func(t *testing.T) {
		g := newTestRedis(t, RedisOptions{Addr: refusedAddr(t)}, nil)
		l := globalLimiter(g, 1, Policy{ID: "inf", Limit: rate.Inf, Burst: 1})
		if d := l.Decide(t0, nil, netip.Addr{}, ""); !d.Allowed {
			t.Errorf("rate Inf refused: %+v", d)
		}
		if st := g.Stats(); st.Checks != 0 || st.Fallbacks != 0 {
			t.Errorf("rate Inf went to Redis: %+v", st)
		}
	})
}

// TestRedisLatencyBudget: a server that accepts connections and never
// answers costs one request about Timeout, and the following requests
// nothing, while the circuit skips Redis.
func TestRedisLatencyBudget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { io.Copy(io.Discard, c); c.Close() })
		}
	}()
	const timeout = 50 * time.Millisecond
	g := newTestRedis(t, RedisOptions{Addr: ln.Addr().String(), Timeout: timeout, FailOpen: true}, nil)
	t.Cleanup(func() { g.Close() }) // before the listener, so the reads end
	l := globalLimiter(g, 1, Policy{ID: "ns/rl", Limit: 1, Burst: 10, Key: KeyClientIP})
	client := netip.MustParseAddr("192.0.2.1")

	start := time.Now()
	d := l.Decide(t0, nil, client, "")
	took := time.Since(start)
	if !d.Allowed || d.Remaining != 9 {
		t.Errorf("fail open: %+v, want the local bucket's answer", d)
	}
	// Generous above: the race detector on two shared cores.
	if took < timeout-5*time.Millisecond || took > timeout+250*time.Millisecond {
		t.Errorf("the check of a silent server took %v, want about the %v timeout", took, timeout)
	}
	start = time.Now()
	for range 10 {
		l.Decide(t0, nil, client, "")
	}
	if took := time.Since(start); took > timeout {
		t.Errorf("10 requests while the circuit is open took %v, want far less than one timeout", took)
	}
	if st := g.Stats(); st != (RedisStats{Checks: 1, Fallbacks: 11, Errors: 1}) {
		t.Errorf("Stats = %+v, want 1 failed check and 11 fallbacks", st)
	}
}

// --- tests against redis-server ---------------------------------------------------

// TestRedisMatchesLocal: on the same request times, Redis's GCRA and the
// local x/time/rate bucket make the same decisions with the same figures.
// The script is given the test's clock instead of Redis's own.
func TestRedisMatchesLocal(t *testing.T) {
	srv := startRedis(t)
	for _, p := range []Policy{
		{ID: "60/min burst 10", Limit: 1, Burst: 10, Key: KeyConsumer},
		{ID: "100/min burst 5", Limit: 100.0 / 60, Burst: 5, Key: KeyConsumer},
		{ID: "7/min burst 1", Limit: 7.0 / 60, Burst: 1, Key: KeyHeader, Header: "X-Api-Key"},
		{ID: "3/hour burst 3", Limit: 3.0 / 3600, Burst: 3},
		{ID: "20/s burst 4", Limit: 20, Burst: 4, Key: KeyClientIP},
		{ID: "3/s burst 2", Limit: 3, Burst: 2, Key: KeyConsumer}, // intervals that are not whole µs
		{ID: "13/min burst 7", Limit: 13.0 / 60, Burst: 7, Key: KeyClientIP},
		{ID: "rate 0 burst 4", Limit: 0, Burst: 4, Key: KeyConsumer},
	} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed=%d", p.ID, seed), func(t *testing.T) {
				matchLocal(t, srv, p, seed)
			})
		}
	}
}

func matchLocal(t *testing.T, srv *redisServer, p Policy, seed uint64) {
	g := newTestRedis(t, RedisOptions{Addr: srv.addr, Timeout: 5 * time.Second, Prefix: fmt.Sprintf("match%d:", seed)}, nil)
	g.callerClock = true
	local := NewRegistry(Options{}).Get(p)
	global := globalLimiter(g, 1, p)

	interval := time.Minute
	if p.Limit > 0 {
		interval = time.Duration(float64(time.Second) / float64(p.Limit))
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(p.ID))))
	now := t0
	allowed := 0
	const n = 400
	for i := range n {
		// Mostly faster than the rate, now and then idle long enough to refill.
		if rng.IntN(40) == 0 {
			now = now.Add(time.Duration(rng.Int64N(int64(interval) * int64(p.Burst))))
		} else {
			now = now.Add(time.Duration(rng.Int64N(int64(interval) / 4)))
		}
		consumer := []string{"alice", "bob", ""}[rng.IntN(3)]
		req := &http.Request{Header: http.Header{"X-Api-Key": {consumer}}}
		client := netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(3))})
		want := local.Decide(now, req, client, consumer)
		got := global.Decide(now, req, client, consumer)
		if !sameDecision(got, want) {
			t.Fatalf("request %d at +%v (%q, %v): Redis decided %+v, local %+v", i+1, now.Sub(t0), consumer, client, got, want)
		}
		if got.Allowed {
			allowed++
		}
	}
	least := n / 10
	if p.Limit == 0 {
		least = 3 * p.Burst // three buckets that never refill
	}
	if allowed < least || allowed > n*9/10 {
		t.Errorf("%d of %d allowed: the schedule does not exercise the limit", allowed, n)
	}
	if st := g.Stats(); st.Checks != n || st.Fallbacks != 0 {
		t.Errorf("Stats = %+v, want %d checks and no fallback", st, n)
	}
}

// sameDecision compares a Redis decision with a local one: Redis rounds its
// durations up to whole microseconds, the local bucket to nanoseconds.
func sameDecision(a, b Decision) bool {
	near := func(x, y time.Duration) bool { return x-y <= time.Microsecond && y-x <= time.Microsecond }
	return a.Allowed == b.Allowed && a.Limit == b.Limit && a.Remaining == b.Remaining &&
		a.Window == b.Window && near(a.RetryAfter, b.RetryAfter) && near(a.Reset, b.Reset)
}

// TestRedisBoundaries: the retry-after Redis gives is exact, as the local
// one is (see TestBurstRefuseRefill): refused 1µs before it, allowed at it.
func TestRedisBoundaries(t *testing.T) {
	srv := startRedis(t)
	g := newTestRedis(t, RedisOptions{Addr: srv.addr, Timeout: 5 * time.Second}, nil)
	g.callerClock = true
	for _, p := range []Policy{
		{ID: "1/s burst 2", Limit: 1, Burst: 2},
		{ID: "100/min burst 5", Limit: 100.0 / 60, Burst: 5},
		{ID: "3/hour burst 3", Limit: 3.0 / 3600, Burst: 3},
		{ID: "1000/s burst 10", Limit: 1000, Burst: 10},
	} {
		l := globalLimiter(g, 1, p)
		for i := range p.Burst {
			if d := l.Decide(t0, nil, netip.Addr{}, ""); !d.Allowed || d.Remaining != p.Burst-1-i {
				t.Fatalf("%s: request %d within the burst: %+v", p.ID, i+1, d)
			}
		}
		d := l.Decide(t0, nil, netip.Addr{}, "")
		if d.Allowed {
			t.Fatalf("%s: allowed beyond the burst", p.ID)
		}
		if d := l.Decide(t0.Add(d.RetryAfter-time.Microsecond), nil, netip.Addr{}, ""); d.Allowed {
			t.Fatalf("%s: allowed 1µs before retry-after", p.ID)
		}
		if d := l.Decide(t0.Add(d.RetryAfter), nil, netip.Addr{}, ""); !d.Allowed {
			t.Fatalf("%s: refused at retry-after %v: %+v", p.ID, d.RetryAfter, d)
		}
	}
}

// TestRedisExactAcrossReplicas: two Registries, each with its own connections
// to one Redis, as two gateway replicas would be, admit exactly the burst
// between them however their goroutines interleave.
func TestRedisExactAcrossReplicas(t *testing.T) {
	srv := startRedis(t)
	const burst = 100
	for _, p := range []Policy{
		{ID: "consumer", Limit: 1.0 / 3600, Burst: burst, Key: KeyConsumer},
		{ID: "client-ip", Limit: 1.0 / 3600, Burst: burst, Key: KeyClientIP},
		{ID: "policy", Limit: 1.0 / 3600, Burst: burst},
	} {
		t.Run(p.ID, func(t *testing.T) {
			var replicas [2]*Limiter
			var stores [2]*Redis
			for i := range replicas {
				// A long timeout: this test is about exactness, not latency,
				// and a fallback would decide locally.
				stores[i] = newTestRedis(t, RedisOptions{Addr: srv.addr, Timeout: 10 * time.Second}, nil)
				replicas[i] = globalLimiter(stores[i], 2, p)
			}
			var allowed atomic.Int64
			var wg sync.WaitGroup
			client := netip.MustParseAddr("2001:db8::1")
			for g := range 8 {
				wg.Go(func() {
					l := replicas[g%2]
					for range 40 {
						if l.Decide(time.Now(), nil, client, "alice").Allowed {
							allowed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if got := allowed.Load(); got != burst {
				t.Errorf("%d of 320 requests over two replicas allowed, want exactly the burst of %d", got, burst)
			}
			for i, g := range stores {
				if st := g.Stats(); st.Fallbacks != 0 || st.Checks != 160 {
					t.Errorf("replica %d: Stats = %+v, want 160 checks, no fallback", i, st)
				}
			}
		})
	}
}

// TestRedisDownAndBack stops Redis mid-run, checks each mode's fallback, and
// restarts it: decisions go back to Redis by themselves.
func TestRedisDownAndBack(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("FailOpen=%v", failOpen), func(t *testing.T) {
			srv := startRedis(t)
			var log syncBuffer
			g := newTestRedis(t, RedisOptions{Addr: srv.addr, Timeout: time.Second, FailOpen: failOpen}, &log)
			g.backoff = 200 * time.Millisecond
			l := globalLimiter(g, 2, Policy{ID: "ns/rl", Limit: 1.0 / 3600, Burst: 10, Key: KeyConsumer})
			decide := func() Decision { return l.Decide(time.Now(), nil, netip.Addr{}, "alice") }

			for i := range 3 {
				if d := decide(); !d.Allowed || d.Limit != 10 || d.Remaining != 9-i {
					t.Fatalf("request %d through Redis: %+v", i+1, d)
				}
			}
			srv.stop()
			d := decide()
			switch {
			case failOpen && (!d.Allowed || d.Limit != 5 || d.Remaining != 4):
				t.Errorf("Redis down, fail open: %+v, want the local bucket at half: limit 5, 4 left", d)
			case !failOpen && (d.Allowed || d.RetryAfter != time.Second):
				t.Errorf("Redis down, fail closed: %+v, want refused, retry after 1s", d)
			}
			for range 5 { // within the back-off: not even tried
				decide()
			}
			if st := g.Stats(); st != (RedisStats{Checks: 4, Fallbacks: 6, Errors: 1}) {
				t.Errorf("Stats while down = %+v, want 4 checks (1 failed), 6 fallbacks", st)
			}

			srv.restart()
			deadline := time.Now().Add(10 * time.Second)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for !g.Stats().Up {
				if time.Now().After(deadline) {
					t.Fatalf("Redis back for 10s and still not used: %+v", g.Stats())
				}
				decide()
				<-tick.C
			}
			before := g.Stats()
			// The restarted Redis is empty: the probe took the first token.
			if d := decide(); !d.Allowed || d.Limit != 10 || d.Remaining != 8 {
				t.Errorf("after recovery: %+v, want Redis's fresh bucket, 8 left", d)
			}
			if st := g.Stats(); st.Checks != before.Checks+1 || st.Fallbacks != before.Fallbacks {
				t.Errorf("after recovery: Stats %+v, then %+v: not through Redis", before, st)
			}
			for _, msg := range []string{"rate limit store unavailable", "rate limit store available again"} {
				if n := strings.Count(log.String(), msg); n != 1 {
					t.Errorf("logged %q %d times, want once:\n%s", msg, n, log.String())
				}
			}
		})
	}
}

// TestRedisSlow: a Redis blocked by DEBUG SLEEP on another connection costs
// a request about Timeout, then the fail-closed answer.
func TestRedisSlow(t *testing.T) {
	srv := startRedis(t, "--enable-debug-command", "local")
	const timeout = 50 * time.Millisecond
	g := newTestRedis(t, RedisOptions{Addr: srv.addr, Timeout: timeout}, nil)
	l := globalLimiter(g, 1, Policy{ID: "ns/rl", Limit: 1, Burst: 10})
	if d := l.Decide(t0, nil, netip.Addr{}, ""); !d.Allowed || d.Remaining != 9 {
		t.Fatalf("before: %+v", d)
	}

	slept := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			slept <- err
			return
		}
		defer c.Close()
		io.WriteString(c, "DEBUG SLEEP 0.5\r\n")
		_, err = bufio.NewReader(c).ReadString('\n')
		slept <- err
	}()
	// Redis is asleep once it stops answering PING.
	for pingRedis(srv.addr, 20*time.Millisecond) == nil {
	}

	start := time.Now()
	d := l.Decide(t0, nil, netip.Addr{}, "")
	took := time.Since(start)
	if d.Allowed || d.RetryAfter != time.Second {
		t.Errorf("while Redis sleeps: %+v, want refused for a second (fail closed)", d)
	}
	if took < timeout-5*time.Millisecond || took > timeout+250*time.Millisecond {
		t.Errorf("the check of a sleeping Redis took %v, want about the %v timeout", took, timeout)
	}
	if st := g.Stats(); st != (RedisStats{Checks: 2, Fallbacks: 1, Errors: 1}) {
		t.Errorf("Stats = %+v", st)
	}
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
}

// --- benchmarks ---------------------------------------------------------------------

// BenchmarkDecide measures the local path, the one without Redis.
func BenchmarkDecide(b *testing.B) {
	r := NewRegistry(Options{})
	req := &http.Request{Header: http.Header{"X-Api-Key": {"alice"}}}
	client := netip.MustParseAddr("2001:db8::1")
	for _, p := range []Policy{
		{ID: "policy", Limit: 1e9, Burst: 1},
		{ID: "client-ip", Key: KeyClientIP, Limit: 1e9, Burst: 1},
		{ID: "consumer", Key: KeyConsumer, Limit: 1e9, Burst: 1},
	} {
		l := r.Get(p)
		b.Run(p.ID, func(b *testing.B) {
			b.ReportAllocs()
			now := t0
			for b.Loop() {
				now = now.Add(time.Microsecond)
				l.Decide(now, req, client, "alice")
			}
		})
	}
}

// BenchmarkRedisDecide measures a decision through a local redis-server: a
// loopback round trip, the script, and go-redis's allocations.
func BenchmarkRedisDecide(b *testing.B) {
	srv := startRedis(b)
	g := newTestRedis(b, RedisOptions{Addr: srv.addr, Timeout: time.Second}, nil)
	l := globalLimiter(g, 1, Policy{ID: "ns/rl", Key: KeyConsumer, Limit: 1e6, Burst: 1000})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Decide(t0, nil, netip.Addr{}, "alice")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Decide(t0, nil, netip.Addr{}, "alice")
			}
		})
	})
	if st := g.Stats(); st.Fallbacks != 0 {
		b.Errorf("%d fallbacks: the benchmark did not measure Redis", st.Fallbacks)
	}
}
