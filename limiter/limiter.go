// Package limiter enforces RateLimit policies with token buckets: one bucket per
// policy, per client IP or per header value, held in tables whose memory is bounded
// no matter how many distinct keys clients send, and kept across snapshot rebuilds
// by a Registry so that publishing new configuration does not refill every bucket.
package limiter

import (
	"math"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
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
)

func (k KeyKind) String() string {
	switch k {
	case KeyPolicy:
		return "policy"
	case KeyClientIP:
		return "client-ip"
	case KeyHeader:
		return "header"
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
// Registry so its buckets outlive snapshot rebuilds.
type Limiter struct {
	policy Policy
	// single is the only bucket of a KeyPolicy limiter: it skips the table (and
	// its hashing and locking) because every request would land on the same key.
	single *rate.Limiter
	table  *table
	// ipv6Bits is how much of an IPv6 client address names its bucket.
	ipv6Bits int
}

func newLimiter(p Policy, maxKeys, ipv6Bits int) *Limiter {
	l := &Limiter{policy: p, ipv6Bits: ipv6Bits}
	if p.Key == KeyPolicy {
		l.single = rate.NewLimiter(p.Limit, p.Burst)
	} else {
		l.table = newTable(p.Limit, p.Burst, maxKeys)
	}
	return l
}

// Policy returns the policy this limiter enforces, normalized (Burst at least 1,
// Header in canonical form and empty unless Key is KeyHeader).
func (l *Limiter) Policy() Policy { return l.policy }

// Key returns the bucket key of a request, the one AllowRequest takes a token
// from, so that Allow(now, l.Key(r, client)) and AllowRequest(now, r, client)
// are the same thing:
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
//
// Key allocates for KeyClientIP; AllowRequest, the per-request path, does not.
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

// AllowRequest is Allow on the bucket Key(r, client) names, without
// allocating once the bucket exists: the proxy calls it on every request.
func (l *Limiter) AllowRequest(now time.Time, r *http.Request, client netip.Addr) (ok bool, retryAfter time.Duration) {
	switch l.policy.Key {
	case KeyClientIP:
		var buf [16]byte
		return l.allow(now, l.table.getBytes(now, l.clientKey(&buf, client)))
	case KeyHeader:
		return l.Allow(now, l.headerKey(r))
	}
	return l.Allow(now, "")
}

// Allow takes one token from key's bucket at now. The key is ignored for KeyPolicy
// limiters. A refused request takes nothing, and retryAfter (> 0) is how long
// until the bucket holds a whole token again, assuming nobody else takes it first;
// turn it into a Retry-After header with RetryAfterSeconds.
func (l *Limiter) Allow(now time.Time, key string) (ok bool, retryAfter time.Duration) {
	lim := l.single
	if lim == nil {
		lim = l.table.get(now, key)
	}
	return l.allow(now, lim)
}

func (l *Limiter) allow(now time.Time, lim *rate.Limiter) (ok bool, retryAfter time.Duration) {
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, l.retryAfter(lim, now)
}

func (l *Limiter) retryAfter(lim *rate.Limiter, now time.Time) time.Duration {
	if l.policy.Limit <= 0 {
		return rate.InfDuration
	}
	missing := 1 - lim.TokensAt(now)
	// Rounding to the nearest nanosecond hides float noise (100/minute must say
	// 600ms, not 600.000001ms); the caller rounds up to seconds anyway.
	d := time.Duration(math.Round(missing / float64(l.policy.Limit) * float64(time.Second)))
	if d <= 0 {
		// Another request at a later instant can make TokensAt(now) report a whole
		// token we were just refused; promise a retry after the smallest delay.
		d = time.Nanosecond
	}
	return d
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
