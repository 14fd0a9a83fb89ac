package limiter

import (
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Decision is the outcome of one request against one policy, with what the
// RateLimit header fields (Headers) tell the client about its quota.
//
// Token buckets have no fixed windows, so the quota is told the way a bucket
// works: Limit requests at once (the burst), refilled over Window; Remaining
// can be spent now, and after Reset the bucket is full again.
type Decision struct {
	// Allowed reports whether the request may proceed; it took a token.
	Allowed bool
	// RetryAfter is, for a refused request, how long until the bucket holds a
	// token again, assuming nobody else takes it first (rate.InfDuration if it
	// never refills); 0 when allowed. Turn it into a Retry-After header with
	// RetryAfterSeconds.
	RetryAfter time.Duration
	// Limit is the quota: the burst of the bucket that decided. That is the
	// policy's burst, or this replica's share of it when a local bucket decides
	// under Registry.SetShare.
	Limit int
	// Remaining is how many tokens the bucket holds after this request,
	// rounded down: how many more requests it would allow right now.
	Remaining int
	// Reset is how long until the bucket is full again (0 if it is),
	// rate.InfDuration if it never refills.
	Reset time.Duration
	// Window is how long the bucket takes to refill from empty, burst/rate:
	// the time the quota refills in. 0 at an infinite rate, rate.InfDuration at
	// a zero one.
	Window time.Duration
}

// closedDecision refuses a request of p because the global store could not
// decide it and the policy fails closed: retry in a second, when the circuit
// to Redis may have closed again.
func closedDecision(p Policy) Decision {
	return Decision{
		RetryAfter: time.Second,
		Limit:      p.Burst,
		Reset:      time.Second,
		Window:     rates{limit: p.Limit, burst: p.Burst}.window(),
	}
}

// sfMaxInteger is the largest Integer a structured field can carry (RFC 9651,
// section 3.3.1: at most 15 digits).
const sfMaxInteger = 999_999_999_999_999

// Headers returns the values of the RateLimit-Policy and RateLimit response
// header fields for this decision, as draft-ietf-httpapi-ratelimit-headers
// (the structured-field versions, -08 on) defines them:
//
//	RateLimit-Policy: "name";q=<Limit>;w=<Window in seconds>
//	RateLimit:        "name";r=<Remaining>;t=<seconds to reset>
//
// For 100 requests a minute with a burst of 5, after the first request:
// `"ns/api";q=5;w=3` and `"ns/api";r=4;t=1`.
//
// The policy name is an sf-string: `"` and `\` are escaped, and characters it
// cannot carry (controls, non-ASCII) become '?'. Seconds are whole, rounded
// up: w is at least 1 for any refilling bucket (the draft has no subsecond
// precision), and left out where it would be 0 or infinite, both of which the
// draft allows (w is optional). t is how long until the bucket is full, except
// on a refused request, where it is the Retry-After delay, because the draft
// asks for t and Retry-After to name the same instant when both are sent; t is
// left out when the bucket never refills. Each value is one List member;
// join the values of several policies with ", ".
func (d Decision) Headers(policyName string) (policy, ratelimit string) {
	var buf [192]byte
	b, split := d.AppendHeaders(buf[:0], policyName)
	return string(b[:split]), string(b[split:])
}

// AppendHeaders appends the two values Headers returns to b, one after
// the other, and returns where the second begins: for callers that keep
// the values in memory of their own (the proxy's per-connection arena)
// rather than allocate two strings per request.
func (d Decision) AppendHeaders(b []byte, policyName string) ([]byte, int) {
	start := len(b)
	b = appendSFString(b, policyName)
	name := b[start:]

	b = append(b, ";q="...)
	b = strconv.AppendInt(b, sfInt(int64(d.Limit)), 10)
	if d.Window > 0 && d.Window < rate.InfDuration {
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, sfInt(ceilSeconds(d.Window)), 10)
	}
	split := len(b)

	b = append(b, name...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, sfInt(int64(d.Remaining)), 10)
	switch {
	case !d.Allowed && d.RetryAfter < rate.InfDuration:
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, sfInt(int64(RetryAfterSeconds(d.RetryAfter))), 10)
	case d.Allowed && d.Reset < rate.InfDuration:
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, sfInt(ceilSeconds(d.Reset)), 10)
	}
	return b, split
}

// appendSFString appends s as a structured-field String (RFC 9651, section
// 3.3.3): printable ASCII in quotes, with `"` and `\` escaped by a backslash.
// Anything else cannot be carried and becomes '?', one per character.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', byte(c))
		case c >= 0x20 && c <= 0x7e:
			b = append(b, byte(c))
		default:
			b = append(b, '?')
		}
	}
	return append(b, '"')
}

// ceilSeconds is d in whole seconds, rounded up, 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

func sfInt(n int64) int64 { return min(max(n, 0), sfMaxInteger) }
