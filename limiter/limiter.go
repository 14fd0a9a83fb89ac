// Package limiter enforces RateLimit policies with token buckets: one bucket per
// policy, per client IP, per header value or per consumer, held in tables whose
// memory is bounded no matter how many distinct keys clients send, and kept across
// snapshot rebuilds by a Registry so that publishing new configuration does not
// refill every bucket.
//
// With several gateway replicas a policy holds across them in one of two ways:
// each replica enforces its share of it (Registry.SetShare), which costs nothing
// per request but is only as even as the load balancer; or every replica decides
// through one Redis (Registry.SetGlobal), which is exact and costs a round trip,
// with the replica's share as the fallback while Redis is away.
package limiter

import (
	"math"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// KeyKind says what a policy's buckets are keyed by.
type KeyKind uint8

const (
	// KeyPolicy shares one bucket among all requests the policy applies to.
	KeyPolicy KeyKind = iota
	// KeyClientIP gives each client its own bucket: each IPv4 address, each
	// IPv6 network of Options.IPv6Prefix bits (a /64 by default).
	KeyClientIP
	// KeyHeader gives each value of Policy.Header its own bucket.
	KeyHeader
	// KeyConsumer gives each consumer (the authenticated identity the caller
	// passes to Decide) its own bucket. Requests without a consumer share the
	// "" bucket, so being anonymous does not escape the limit.
	KeyConsumer
)

func (k KeyKind) String() string {
	switch k {
	case KeyPolicy:
		return "policy"
	case KeyClientIP:
		return "client-ip"
	case KeyHeader:
		return "header"
	case KeyConsumer:
		return "consumer"
	default:
		return "KeyKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Policy is one compiled RateLimit.
type Policy struct {
	// ID names the policy ("namespace/name", plus whatever the caller adds to make
	// it unique). The Registry keys limiters by ID, so two different policies must
	// not share one.
	ID string
	// Limit is the refill rate in tokens per second (100/minute is 100.0/60).
	// rate.Inf allows everything; 0 never refills, so only Burst requests pass.
	Limit rate.Limit
	// Burst is the bucket size; values below 1 are treated as 1, because a bucket
	// that can never hold a token would refuse every request forever.
	Burst int
	Key   KeyKind
	// Header names the header whose value keys the buckets when Key is KeyHeader.
	Header string
}

// normalize gives equivalent policies one spelling, so that the Registry's
// equality check does not hand out fresh buckets for a cosmetic difference.
func (p Policy) normalize() Policy {
	if p.Burst < 1 {
		p.Burst = 1
	}
	if p.Key == KeyHeader {
		p.Header = textproto.CanonicalMIMEHeaderKey(p.Header)
	} else {
		p.Header = ""
	}
	return p
}

// Limiter enforces one Policy. It is safe for concurrent use; obtain one from a
// Registry so its buckets outlive snapshot rebuilds, and so it follows the
// Registry's replica share and global store.
type Limiter struct {
	policy Policy
	reg    *Registry
	// single is the only bucket of a KeyPolicy limiter: it skips the table (and
	// its hashing and locking) because every request would land on the same key.
	single *rate.Limiter
	// singleGen is the share generation single is tuned to; retune serializes
	// the rare retuning so the common path stays one atomic load.
	singleGen atomic.Uint64
	retune    sync.Mutex
	table     *table
	// ipv6Bits is how much of an IPv6 client address names its bucket.
	ipv6Bits int
}

func newLimiter(p Policy, reg *Registry) *Limiter {
	l := &Limiter{policy: p, reg: reg, ipv6Bits: reg.ipv6Bits}
	if p.Key == KeyPolicy {
		rt := l.rates()
		l.single = rate.NewLimiter(rt.limit, rt.burst)
		l.singleGen.Store(rt.gen)
	} else {
		l.table = newTable(reg.maxKeys)
	}
	return l
}

// rates returns what this replica's buckets enforce under the current share.
func (l *Limiter) rates() rates { return l.reg.share.Load().rates(l.policy) }

// Policy returns the policy this limiter enforces, normalized (Burst at least 1,
// Header in canonical form and empty unless Key is KeyHeader).
func (l *Limiter) Policy() Policy { return l.policy }

// Key returns the bucket key of a request, the one AllowRequest takes a token
// from, so that Allow(now, l.Key(r, client)) and AllowRequest(now, r, client)
// are the same thing (and Decide, for the kinds whose key is in the request):
//   - KeyPolicy: "" (one shared bucket).
//   - KeyClientIP: the client address, as the caller vouches for it, cut to
//     its network (see Options.IPv6Prefix; an IPv4 address is kept whole), in
//     binary: 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6. It
//     is opaque; what matters is that the clients of one network share it.
//     An invalid client (the caller could not tell who sent the request)
//     gets "", one bucket for all such requests, so being unidentifiable
//     does not escape the limit. The request itself is not consulted: which
//     address to believe (the TCP peer, or what trusted proxies say in
//     X-Forwarded-For) is the proxy's decision, made once per request, so the
//     limit, the logs and the upstream's X-Real-IP all name the same client.
//   - KeyHeader: the first value of Policy.Header. Requests without the header all
//     share the "" bucket, so omitting the header does not escape the limit; it
//     only puts the client in one crowd with everyone else who omits it.
//   - KeyConsumer: "". The consumer is not something Key can read from the
//     request: the caller authenticates it and passes it to Decide, and
//     Allow(now, consumer) names the same bucket as Decide with that consumer.
//
// Key allocates for KeyClientIP; Decide and AllowRequest, the per-request
// paths, do not.
func (l *Limiter) Key(r *http.Request, client netip.Addr) string {
	switch l.policy.Key {
	case KeyClientIP:
		var buf [16]byte
		return string(l.clientKey(&buf, client))
	case KeyHeader:
		return l.headerKey(r)
	}
	return ""
}

func (l *Limiter) headerKey(r *http.Request) string {
	if r == nil {
		return ""
	}
	// Direct map access: Policy.Header is already canonical, and Header.Get
	// would canonicalize it again on every request.
	if v := r.Header[l.policy.Header]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// clientKey writes the bucket key of client into buf and returns it (see Key).
func (l *Limiter) clientKey(buf *[16]byte, client netip.Addr) []byte {
	client = client.Unmap()
	switch {
	case client.Is4():
		*buf = client.As16()
		return buf[12:]
	case client.Is6():
		// A host is usually given a whole /64 and may use any address in it
		// (privacy addresses rotate on their own): keyed by full address, one
		// host would have 2^64 buckets to spread its requests over. Prefix
		// also drops the zone, which says nothing about who the client is.
		p, _ := client.Prefix(l.ipv6Bits)
		*buf = p.Addr().As16()
		return buf[:]
	}
	return buf[:0]
}

// Decide takes one token for a request from its bucket at now and reports the
// outcome with what the RateLimit header fields tell the client (see Decision).
// The bucket is the one Key names, or for KeyConsumer the consumer's ("" for
// requests without one, which share a bucket). consumer is ignored by the other
// kinds.
//
// With a global store (Registry.SetGlobal) the decision is Redis's, across all
// replicas; while Redis is unreachable or slower than its Timeout, the local
// bucket at this replica's share decides (RedisOptions.FailOpen) or the request
// is refused. Without one, the local bucket decides, without allocating once it
// exists: the proxy calls Decide on every request.
func (l *Limiter) Decide(now time.Time, r *http.Request, client netip.Addr, consumer string) Decision {
	var d Decision
	switch l.policy.Key {
	case KeyClientIP:
		var buf [16]byte
		l.decideBytes(&d, now, l.clientKey(&buf, client), true)
	case KeyHeader:
		l.decide(&d, now, l.headerKey(r), true)
	case KeyConsumer:
		l.decide(&d, now, consumer, true)
	default:
		l.decide(&d, now, "", true)
	}
	return d
}

// AllowRequest is Decide without a consumer, reduced to what a Retry-After
// header needs: KeyConsumer policies put every request in the "" bucket.
func (l *Limiter) AllowRequest(now time.Time, r *http.Request, client netip.Addr) (ok bool, retryAfter time.Duration) {
	var d Decision
	switch l.policy.Key {
	case KeyClientIP:
		var buf [16]byte
		l.decideBytes(&d, now, l.clientKey(&buf, client), false)
	case KeyHeader:
		l.decide(&d, now, l.headerKey(r), false)
	default:
		l.decide(&d, now, "", false)
	}
	return d.Allowed, d.RetryAfter
}

// Allow takes one token from key's bucket at now. The key is ignored for KeyPolicy
// limiters. A refused request takes nothing, and retryAfter (> 0) is how long
// until the bucket holds a whole token again, assuming nobody else takes it first;
// turn it into a Retry-After header with RetryAfterSeconds.
func (l *Limiter) Allow(now time.Time, key string) (ok bool, retryAfter time.Duration) {
	if l.policy.Key == KeyPolicy {
		key = ""
	}
	var d Decision
	l.decide(&d, now, key, false)
	return d.Allowed, d.RetryAfter
}

// decide is Decide on a key held in a string, into d (which is passed in, not
// returned, because copying it out through three calls showed in benchmarks).
// detail asks for Remaining, Reset and Window, which cost a second look at the
// bucket; Allow and AllowRequest, whose callers only want the verdict, skip it
// when the request is allowed.
func (l *Limiter) decide(d *Decision, now time.Time, key string, detail bool) {
	if g := l.reg.global.Load(); g != nil && l.policy.Limit != rate.Inf {
		if g.decide(d, now, l.policy, key) {
			return
		}
		if !g.failOpen {
			*d = closedDecision(l.policy)
			return
		}
	}
	rt := l.rates()
	var lim *rate.Limiter
	if l.single != nil {
		lim = l.singleAt(now, rt)
	} else {
		lim = l.table.get(now, key, rt)
	}
	decideBucket(d, now, lim, rt, detail)
}

// decideBytes is decide for a key held in bytes (a client address), which the
// local path looks up without converting it to a string.
func (l *Limiter) decideBytes(d *Decision, now time.Time, key []byte, detail bool) {
	if g := l.reg.global.Load(); g != nil && l.policy.Limit != rate.Inf {
		if g.decide(d, now, l.policy, string(key)) {
			return
		}
		if !g.failOpen {
			*d = closedDecision(l.policy)
			return
		}
	}
	rt := l.rates()
	decideBucket(d, now, l.table.getBytes(now, key, rt), rt, detail)
}

// singleAt returns the single bucket, first retuned to rt if a share change
// has not reached it yet.
func (l *Limiter) singleAt(now time.Time, rt rates) *rate.Limiter {
	if l.singleGen.Load() < rt.gen {
		l.retune.Lock()
		if l.singleGen.Load() < rt.gen {
			rt.apply(l.single, now)
			l.singleGen.Store(rt.gen)
		}
		l.retune.Unlock()
	}
	return l.single
}

// decideBucket takes a token from lim, a bucket tuned to rt. Remaining and
// Reset are read after the token is taken, in a second step: a concurrent
// request on the same bucket can land in between, so they are a snapshot
// for the client's information, exact when nobody else is using the bucket.
func decideBucket(d *Decision, now time.Time, lim *rate.Limiter, rt rates, detail bool) {
	d.Limit = rt.burst
	if rt.limit == rate.Inf {
		d.Allowed = true
		d.Remaining = rt.burst
		return
	}
	d.Allowed = lim.AllowN(now, 1)
	if d.Allowed && !detail {
		return
	}
	d.Window = rt.window()
	tokens := lim.TokensAt(now)
	if !d.Allowed {
		d.RetryAfter = retryAfter(tokens, rt.limit)
	}
	// The epsilon keeps float noise (4.9999999999) from costing a whole token.
	d.Remaining = max(0, int(math.Floor(tokens+1e-9)))
	if missing := float64(rt.burst) - tokens; missing > 0 {
		d.Reset = tokensDuration(missing, rt.limit)
	}
}

// retryAfter is how long a bucket holding tokens (< 1) takes to hold one.
func retryAfter(tokens float64, limit rate.Limit) time.Duration {
	d := tokensDuration(1-tokens, limit)
	if d <= 0 {
		// Another request at a later instant can make TokensAt(now) report a whole
		// token we were just refused; promise a retry after the smallest delay.
		d = time.Nanosecond
	}
	return d
}

// tokensDuration is how long limit takes to refill n tokens: rate.InfDuration
// if it never does.
func tokensDuration(n float64, limit rate.Limit) time.Duration {
	if limit <= 0 {
		return rate.InfDuration
	}
	// Rounding to the nearest nanosecond hides float noise (100/minute must say
	// 600ms, not 600.000001ms); the caller rounds up to seconds anyway.
	d := math.Round(n / float64(limit) * float64(time.Second))
	if d >= float64(rate.InfDuration) {
		return rate.InfDuration
	}
	return time.Duration(d)
}

// Len reports how many keyed buckets the limiter holds (always 0 for KeyPolicy),
// for metrics and tests of the memory bound.
func (l *Limiter) Len() int {
	if l.table == nil {
		return 0
	}
	return l.table.len()
}

// RetryAfterSeconds converts a retryAfter from Allow into the whole seconds a
// Retry-After header carries: rounded up, so a client that obeys it finds a token,
// and at least 1, since "0" would invite an immediate retry that is refused again.
func RetryAfterSeconds(d time.Duration) int {
	if d <= time.Second {
		return 1
	}
	s := d / time.Second
	if d%time.Second != 0 {
		s++
	}
	return int(s)
}
