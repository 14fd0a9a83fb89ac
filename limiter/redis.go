package limiter

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"golang.org/x/time/rate"
)

// RedisOptions configures NewRedis. The zero value of every field but Addr is
// a usable default.
type RedisOptions struct {
	// Addr is the Redis server: "host:port", or a redis:// or rediss:// URL,
	// which can also carry a user, a password, a database number and TLS.
	Addr string
	// Timeout bounds each check, from taking a connection (dialing one if need
	// be) to reading the answer; a check that takes longer is a failure and the
	// request is decided without Redis. 0 means 10ms: a check is one round trip
	// to a script that runs in microseconds, well under a millisecond on a
	// cluster network, so 10ms leaves room for a fresh connection, a GC pause
	// or a CPU-throttled pod on either side, while a Redis that hangs costs the
	// requests in flight at most 10ms before the circuit opens (see Stats).
	Timeout time.Duration
	// FailOpen says what happens while Redis cannot decide (down, slow, or
	// skipped for a second after a failure): true decides with the replica's
	// local bucket at its share (Registry.SetShare), so the limit holds
	// approximately and traffic flows; false refuses every request with a
	// Retry-After of 1 second, so the limit is never exceeded and nothing flows.
	FailOpen bool
	// Prefix starts every key; "" means "gatehouse:rl:". Give gateways sharing
	// one Redis for different purposes different prefixes.
	Prefix string
	// Logger receives one line when Redis becomes unavailable and one when it
	// is back; nil means slog.Default(). (go-redis also reports each failed
	// dial, about one a second during an outage, through its own process-wide
	// logger, which redis.SetLogger replaces.)
	Logger *slog.Logger
}

const (
	defaultRedisTimeout = 10 * time.Millisecond
	defaultRedisPrefix  = "gatehouse:rl:"
	// redisBackoff is how long checks skip Redis after a failure, before one
	// request probes it again: a dead Redis costs one Timeout a second instead
	// of one per request, and a returning one is used again within a second.
	redisBackoff = time.Second
	// maxRedisKey caps a key's length; longer ones are hashed (see redisKey).
	maxRedisKey = 200
	// neverInterval stands in for the infinite refill interval of a policy
	// whose rate is 0 (about 31 years, in µs), so the script's arithmetic stays
	// finite and such a bucket, once empty, stays empty for all practical ends.
	neverInterval = 1e15
)

// RedisStats counts what a Redis did, for metrics. The counters only grow.
type RedisStats struct {
	// Checks counts the decisions asked of Redis, answered or not.
	Checks uint64
	// Fallbacks counts the decisions made without Redis's answer: the checks
	// that failed and the requests that skipped Redis while it was backed off
	// from. They were decided by the local bucket (FailOpen) or refused.
	Fallbacks uint64
	// Errors counts the checks that failed: timeouts, refused connections,
	// errors from Redis.
	Errors uint64
	// Up reports whether decisions go to Redis: false from a failed check until
	// a probe succeeds.
	Up bool
}

// Redis decides for limiters across gateway replicas: every replica that uses
// one Redis server shares its buckets there (see Registry.SetGlobal). Safe for
// concurrent use; Close it when done.
//
// The algorithm is GCRA, the token bucket of golang.org/x/time/rate told in
// arrival times, in one Lua script per check (EVALSHA, or EVAL when Redis does
// not know the script yet, as after a restart), so a policy of N per minute with
// burst B admits B at once and then one every 60/N seconds across all replicas
// together, exactly: the script runs atomically, and it reads Redis's clock, so
// the replicas' clocks do not matter. A bucket's key expires when the bucket
// would be full again, which is when it carries no state.
//
// Keys are Prefix + policy ID + "\x00" + bucket key (for KeyClientIP the 4- or
// 16-byte address, see Limiter.Key); one longer than 200 bytes is replaced by
// Prefix + "#" + the hex SHA-256 of the rest. Unlike the local buckets, which
// start full when a policy's settings change, a Redis bucket outlives the
// change; a bucket deeper in debt than the new burst allows starts empty.
//
// After a failed check, requests skip Redis for a second (see FailOpen) and
// then one request probes it; Redis is used again as soon as a probe
// succeeds. Stats counts the checks and fallbacks.
type Redis struct {
	client   *redis.Client
	timeout  time.Duration
	failOpen bool
	prefix   string
	log      *slog.Logger

	// backoff is redisBackoff; tests shorten it.
	backoff time.Duration
	// callerClock makes the script use the time passed to Decide instead of
	// Redis's own clock, so tests can compare Redis with local buckets on a
	// fake clock. Never set outside tests.
	callerClock bool

	checks, fallbacks, errors atomic.Uint64
	// retryAt is 0 while Redis is up; after a failure it is when (in
	// nanoseconds since epoch, on the monotonic clock) the next probe may go.
	retryAt atomic.Int64
	epoch   time.Time
}

// NewRedis returns a Redis for the server at o.Addr. It does not connect: the
// first check does, so a gateway starts while Redis is away, deciding per
// o.FailOpen until it comes.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Addr == "" {
		return nil, errors.New("redis rate limits: no address")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("redis rate limits: timeout %v is negative", o.Timeout)
	}
	timeout := cmp.Or(o.Timeout, defaultRedisTimeout)
	opt := &redis.Options{Addr: o.Addr}
	if strings.Contains(o.Addr, "://") {
		var err error
		if opt, err = redis.ParseURL(o.Addr); err != nil {
			return nil, fmt.Errorf("redis rate limits: parsing address: %w", err)
		}
	}
	// Every wait is bounded by Timeout, and nothing is retried inside it: a
	// retry would only spend the budget the request is waiting on.
	opt.DialTimeout = timeout
	opt.ReadTimeout = timeout
	opt.WriteTimeout = timeout
	opt.PoolTimeout = timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	// A new connection costs one HELLO and nothing else: no RESP3 push
	// notifications, no CLIENT SETINFO, no maintenance-notification handshake.
	opt.Protocol = 2
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Redis{
		client:   redis.NewClient(opt),
		timeout:  timeout,
		failOpen: o.FailOpen,
		prefix:   cmp.Or(o.Prefix, defaultRedisPrefix),
		log:      log.With("redis", opt.Addr),
		backoff:  redisBackoff,
		epoch:    time.Now(),
	}, nil
}

// Close closes the connections to Redis. Limiters still set to decide through
// it fall back as if Redis were down.
func (g *Redis) Close() error { return g.client.Close() }

// Stats returns the counters so far.
func (g *Redis) Stats() RedisStats {
	return RedisStats{
		Checks:    g.checks.Load(),
		Fallbacks: g.fallbacks.Load(),
		Errors:    g.errors.Load(),
		Up:        g.retryAt.Load() == 0,
	}
}

// gcra is the check. KEYS[1] holds the bucket's theoretical arrival time (TAT)
// in microseconds: the bucket is full when TAT <= now, each allowed request
// moves TAT one interval on, and a request is allowed while that leaves TAT at
// most burst intervals ahead of now. This is x/time/rate's token bucket told in
// arrival times: tokens = burst - (TAT - now) / interval. ARGV: interval (µs
// per token), burst, and now as whole µs and a fraction of one (both empty:
// Redis's clock). It returns {allowed (0 or 1), remaining, reset (µs until
// full), retry (µs until a token, 0 if allowed)}, durations rounded up.
//
// Lua numbers are doubles, and µs since 1970 (~1.8e15) are only exact to
// 0.25µs: rounding TAT to that on every request would let it drift by a random
// walk of quarter-microseconds. So times are kept as whole µs (exact integers)
// plus a fraction, TAT is stored as "whole:fraction", and the arithmetic is
// done in debt = TAT - now, which is small and keeps the fractions exact to
// far below a nanosecond.
var gcra = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now, nowfrac = tonumber(ARGV[3]), tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now, nowfrac = tonumber(t[1]) * 1000000 + tonumber(t[2]), 0
end
local span = interval * burst
local cap = 9e15
-- us rounds a duration up to whole µs for the reply, ignoring float noise
-- below a nanosecond (the fraction of now is given in decimal ns).
local function us(d)
  return math.min(math.max(math.ceil(d - 0.001), 0), cap)
end
local debt = 0
local tat = redis.call('GET', KEYS[1])
if tat then
  local whole, frac = string.match(tat, '^(%d+):(.+)$')
  if whole then
    debt = (tonumber(whole) - now) + (tonumber(frac) - nowfrac)
  end
  -- More than span is left by a policy with a larger burst: at most empty.
  debt = math.min(math.max(debt, 0), span)
end
local after = debt + interval
-- x/time/rate allows a request whose wait truncates to 0ns: so does 0.001µs.
if after <= span + 0.001 then
  local ahead = nowfrac + after
  local whole = math.floor(ahead)
  local ttl = math.min(math.max(1, math.ceil(after / 1000)), cap)
  redis.call('SET', KEYS[1], string.format('%d:%.17g', now + whole, ahead - whole), 'PX', string.format('%d', ttl))
  return {1, math.floor((span - after) / interval + 1e-9), us(after), 0}
end
return {0, math.floor((span - debt) / interval + 1e-9), us(debt), us(after - span)}
`)

// decide asks Redis about key's bucket of p and fills in d. It returns false
// when Redis did not answer (skipped after a recent failure, or failed now),
// leaving d alone; the caller falls back.
func (g *Redis) decide(d *Decision, now time.Time, p Policy, key string) bool {
	if !g.available() {
		g.fallbacks.Add(1)
		return false
	}
	g.checks.Add(1)
	res, err := g.check(now, p, key)
	if err != nil {
		g.failed(err)
		g.fallbacks.Add(1)
		return false
	}
	g.succeeded()
	*d = res
	return true
}

func (g *Redis) check(now time.Time, p Policy, key string) (Decision, error) {
	interval := neverInterval
	if p.Limit > 0 {
		interval = min(1e6/float64(p.Limit), neverInterval)
	}
	var at, frac string
	if g.callerClock {
		at = strconv.FormatInt(now.UnixMicro(), 10)
		frac = strconv.FormatFloat(float64(now.Nanosecond()%1000)/1000, 'f', 3, 64)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	res, err := gcra.Run(ctx, g.client, []string{g.redisKey(p.ID, key)},
		strconv.FormatFloat(interval, 'g', -1, 64), p.Burst, at, frac).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("rate limit script returned %d values, want 4", len(res))
	}
	d := Decision{
		Allowed:   res[0] == 1,
		Limit:     p.Burst,
		Remaining: int(max(res[1], 0)),
		Reset:     microseconds(res[2]),
		Window:    rates{limit: p.Limit, burst: p.Burst}.window(),
	}
	if p.Limit <= 0 {
		if d.Reset > 0 {
			d.Reset = rate.InfDuration
		}
		if !d.Allowed {
			d.RetryAfter = rate.InfDuration
		}
	} else if !d.Allowed {
		d.RetryAfter = max(microseconds(res[3]), time.Nanosecond)
	}
	return d, nil
}

// microseconds converts the script's µs, saturating at rate.InfDuration.
func microseconds(us int64) time.Duration {
	if us <= 0 {
		return 0
	}
	if us >= int64(rate.InfDuration/time.Microsecond) {
		return rate.InfDuration
	}
	return time.Duration(us) * time.Microsecond
}

// redisKey names the bucket key of policy id. The NUL cannot occur in an ID
// read from Kubernetes object names, so no (id, key) pair names another's
// bucket; hashed keys contain no NUL (unless the prefix does), so they cannot
// collide with unhashed ones.
func (g *Redis) redisKey(id, key string) string {
	n := len(g.prefix) + len(id) + 1 + len(key)
	if n > maxRedisKey {
		h := sha256.New()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(key))
		var sum [sha256.Size]byte
		return g.prefix + "#" + hex.EncodeToString(h.Sum(sum[:0]))
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(g.prefix)
	b.WriteString(id)
	b.WriteByte(0)
	b.WriteString(key)
	return b.String()
}

// sinceEpoch is the monotonic time the circuit runs on. It is real time, not
// the time passed to Decide: the circuit reacts to real timeouts.
func (g *Redis) sinceEpoch() int64 { return int64(time.Since(g.epoch)) + 1 }

// available reports whether this check may go to Redis: always while it is up;
// after a failure, not until the back-off has passed, and then for one request
// at a time, the probe, which pushes the next probe a back-off further.
func (g *Redis) available() bool {
	at := g.retryAt.Load()
	if at == 0 {
		return true
	}
	now := g.sinceEpoch()
	return now >= at && g.retryAt.CompareAndSwap(at, now+int64(g.backoff))
}

func (g *Redis) failed(err error) {
	g.errors.Add(1)
	if g.retryAt.Swap(g.sinceEpoch()+int64(g.backoff)) == 0 {
		mode := "refusing requests (fail closed)"
		if g.failOpen {
			mode = "deciding with local buckets at this replica's share (fail open)"
		}
		g.log.Warn("rate limit store unavailable; "+mode+" until it answers again",
			"error", err, "probe_every", g.backoff)
	}
}

func (g *Redis) succeeded() {
	if g.retryAt.Load() != 0 && g.retryAt.Swap(0) != 0 {
		g.log.Info("rate limit store available again; deciding through it")
	}
}
