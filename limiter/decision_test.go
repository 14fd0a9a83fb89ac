package limiter

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestDecide walks one bucket of 100/minute with a burst of 5 through its
// burst, a refusal and a partial refill, checking every field of the Decision.
func TestDecide(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: 100.0 / 60, Burst: 5})
	const ms = time.Millisecond
	window := 3 * time.Second
	for i, tc := range []struct {
		at   time.Duration
		want Decision
	}{
		{0, Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 600 * ms, Window: window}},
		{0, Decision{Allowed: true, Limit: 5, Remaining: 3, Reset: 1200 * ms, Window: window}},
		{0, Decision{Allowed: true, Limit: 5, Remaining: 2, Reset: 1800 * ms, Window: window}},
		{0, Decision{Allowed: true, Limit: 5, Remaining: 1, Reset: 2400 * ms, Window: window}},
		{0, Decision{Allowed: true, Limit: 5, Remaining: 0, Reset: 3000 * ms, Window: window}},
		{0, Decision{RetryAfter: 600 * ms, Limit: 5, Remaining: 0, Reset: 3000 * ms, Window: window}},
		{300 * ms, Decision{RetryAfter: 300 * ms, Limit: 5, Remaining: 0, Reset: 2700 * ms, Window: window}},
		{600 * ms, Decision{Allowed: true, Limit: 5, Remaining: 0, Reset: 3000 * ms, Window: window}},
		{1800 * ms, Decision{Allowed: true, Limit: 5, Remaining: 1, Reset: 2400 * ms, Window: window}},
		{10 * time.Second, Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 600 * ms, Window: window}},
	} {
		if got := l.Decide(t0.Add(tc.at), nil, netip.Addr{}, ""); got != tc.want {
			t.Fatalf("request %d at +%v: Decide = %+v, want %+v", i+1, tc.at, got, tc.want)
		}
	}
}

func TestDecideExtremes(t *testing.T) {
	r := NewRegistry(Options{})
	never := r.Get(Policy{ID: "never", Limit: 0, Burst: 2})
	for i, want := range []Decision{
		{Allowed: true, Limit: 2, Remaining: 1, Reset: rate.InfDuration, Window: rate.InfDuration},
		{Allowed: true, Limit: 2, Remaining: 0, Reset: rate.InfDuration, Window: rate.InfDuration},
		{RetryAfter: rate.InfDuration, Limit: 2, Remaining: 0, Reset: rate.InfDuration, Window: rate.InfDuration},
	} {
		if got := never.Decide(t0.Add(time.Duration(i)*time.Hour), nil, netip.Addr{}, ""); got != want {
			t.Errorf("rate 0, request %d: Decide = %+v, want %+v", i+1, got, want)
		}
	}
	inf := r.Get(Policy{ID: "inf", Limit: rate.Inf, Burst: 3, Key: KeyConsumer})
	for range 10 {
		if got, want := inf.Decide(t0, nil, netip.Addr{}, "alice"), (Decision{Allowed: true, Limit: 3, Remaining: 3}); got != want {
			t.Fatalf("rate Inf: Decide = %+v, want %+v", got, want)
		}
	}
}

// TestConsumerBuckets: each consumer has a bucket, requests without one share
// the "" bucket, and Allow(now, consumer) and AllowRequest (which has no
// consumer) name the same buckets as Decide.
func TestConsumerBuckets(t *testing.T) {
	r := NewRegistry(Options{})
	l := r.Get(Policy{ID: "ns/rl", Limit: 0, Burst: 1, Key: KeyConsumer, Header: "X-Ignored"})
	if got := l.Policy().Header; got != "" {
		t.Errorf("KeyConsumer policy kept Header %q", got)
	}
	req := &http.Request{Header: http.Header{"X-Ignored": {"bob"}}}
	client := netip.MustParseAddr("192.0.2.1")
	for i, step := range []struct {
		consumer string
		via      string // "decide", "allow" or "request"
		want     bool
	}{
		{"alice", "decide", true},
		{"alice", "decide", false},
		{"alice", "allow", false},
		{"bob", "allow", true},
		{"bob", "decide", false},
		{"", "decide", true},
		{"", "request", false}, // AllowRequest is the anonymous bucket
		{"carol", "decide", true},
		{strings.Repeat("x", 1000) + "1", "decide", true}, // long identities are hashed, still distinct
		{strings.Repeat("x", 1000) + "2", "decide", true},
		{strings.Repeat("x", 1000) + "1", "allow", false},
	} {
		var got bool
		switch step.via {
		case "decide":
			got = l.Decide(t0, req, client, step.consumer).Allowed
		case "allow":
			got, _ = l.Allow(t0, step.consumer)
		case "request":
			got, _ = l.AllowRequest(t0, req, client)
		}
		if got != step.want {
			t.Fatalf("step %d: %s for %.10q allowed = %v, want %v", i+1, step.via, step.consumer, got, step.want)
		}
	}
	if got := l.Key(req, client); got != "" {
		t.Errorf("Key of a KeyConsumer policy = %q, want \"\"", got)
	}
	if got := l.Len(); got != 6 {
		t.Errorf("Len = %d, want 6 (alice, bob, \"\", carol, two long ones)", got)
	}
}

// TestDecideIgnoresConsumerForOtherKinds: the consumer only keys KeyConsumer.
func TestDecideIgnoresConsumerForOtherKinds(t *testing.T) {
	r := NewRegistry(Options{})
	req := &http.Request{Header: http.Header{"X-Api-Key": {"k"}}}
	client := netip.MustParseAddr("192.0.2.1")
	for _, p := range []Policy{
		{ID: "pol", Limit: 0, Burst: 1},
		{ID: "ip", Limit: 0, Burst: 1, Key: KeyClientIP},
		{ID: "hdr", Limit: 0, Burst: 1, Key: KeyHeader, Header: "X-Api-Key"},
	} {
		l := r.Get(p)
		if !l.Decide(t0, req, client, "alice").Allowed || l.Decide(t0, req, client, "bob").Allowed {
			t.Errorf("%s: the consumer changed the bucket", p.Key)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	r := NewRegistry(Options{})
	byIP := r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1e9, Burst: 1})
	byHeader := r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "X-Api-Key", Limit: 1e9, Burst: 1})
	byConsumer := r.Get(Policy{ID: "consumer", Key: KeyConsumer, Limit: 1e9, Burst: 1})
	byPolicy := r.Get(Policy{ID: "pol", Limit: 1e9, Burst: 1})
	req := &http.Request{Header: http.Header{"X-Api-Key": {"alice"}}}
	v6, v4 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")
	for _, l := range []*Limiter{byIP, byHeader, byConsumer, byPolicy} { // create the buckets first
		l.Decide(t0, req, v6, "alice")
		l.Decide(t0, req, v4, "alice")
	}
	r.SetShare(3) // retuning buckets to a new share does not allocate either
	now := t0
	for name, f := range map[string]func(){
		"Decide/policy":      func() { now = now.Add(time.Millisecond); byPolicy.Decide(now, req, v6, "") },
		"Decide/client-ipv6": func() { now = now.Add(time.Millisecond); byIP.Decide(now, req, v6, "") },
		"Decide/client-ipv4": func() { now = now.Add(time.Millisecond); byIP.Decide(now, req, v4, "") },
		"Decide/header":      func() { now = now.Add(time.Millisecond); byHeader.Decide(now, req, v6, "") },
		"Decide/consumer":    func() { now = now.Add(time.Millisecond); byConsumer.Decide(now, req, v6, "alice") },
		"Decide/refused":     func() { byIP.Decide(t0, req, v6, "") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}

func TestHeaders(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name      string
		d         Decision
		policy    string
		ratelimit string
	}{
		{"ns/api", Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 600 * ms, Window: 3 * time.Second},
			`"ns/api";q=5;w=3`, `"ns/api";r=4;t=1`},
		{"full", Decision{Allowed: true, Limit: 10, Remaining: 10, Window: time.Minute},
			`"full";q=10;w=60`, `"full";r=10;t=0`},
		{"seconds round up", Decision{Allowed: true, Limit: 10, Remaining: 3, Reset: 1500 * ms, Window: 1001 * ms},
			`"seconds round up";q=10;w=2`, `"seconds round up";r=3;t=2`},
		{"subsecond window", Decision{Allowed: true, Limit: 10, Remaining: 9, Reset: ms, Window: 10 * ms},
			`"subsecond window";q=10;w=1`, `"subsecond window";r=9;t=1`},
		// Refused: t is the Retry-After delay, not the time to a full bucket.
		{"refused", Decision{RetryAfter: 600 * ms, Limit: 5, Reset: 3 * time.Second, Window: 3 * time.Second},
			`"refused";q=5;w=3`, `"refused";r=0;t=1`},
		{"refused later", Decision{RetryAfter: 20 * time.Minute, Limit: 3, Reset: time.Hour, Window: time.Hour},
			`"refused later";q=3;w=3600`, `"refused later";r=0;t=1200`},
		// Rate 0: no window, and no reset once anything is spent.
		{"never", Decision{Allowed: true, Limit: 2, Remaining: 1, Reset: rate.InfDuration, Window: rate.InfDuration},
			`"never";q=2`, `"never";r=1`},
		{"never refused", Decision{RetryAfter: rate.InfDuration, Limit: 2, Reset: rate.InfDuration, Window: rate.InfDuration},
			`"never refused";q=2`, `"never refused";r=0`},
		// Rate Inf: no window.
		{"inf", Decision{Allowed: true, Limit: 3, Remaining: 3}, `"inf";q=3`, `"inf";r=3;t=0`},
		// Escaping: `"` and `\` get a backslash; controls and non-ASCII cannot be carried.
		{`a"b\c`, Decision{Allowed: true, Limit: 1, Window: time.Second},
			`"a\"b\\c";q=1;w=1`, `"a\"b\\c";r=0;t=0`},
		{"tab\there", Decision{Allowed: true, Limit: 1}, `"tab?here";q=1`, `"tab?here";r=0;t=0`},
		{"café ☕", Decision{Allowed: true, Limit: 1}, `"caf? ?";q=1`, `"caf? ?";r=0;t=0`},
		{"\xff", Decision{Allowed: true, Limit: 1}, `"?";q=1`, `"?";r=0;t=0`},
		{"", Decision{Allowed: true, Limit: 1}, `"";q=1`, `"";r=0;t=0`},
		// Integers stay within what a structured field can carry.
		{"huge", Decision{Allowed: true, Limit: 1 << 62, Remaining: -1, Reset: 1 << 62, Window: 1 << 62},
			`"huge";q=999999999999999;w=4611686019`, `"huge";r=0;t=4611686019`},
	} {
		policy, ratelimit := tc.d.Headers(tc.name)
		if policy != tc.policy || ratelimit != tc.ratelimit {
			t.Errorf("%+v.Headers(%q) =\n\t%s\n\t%s\nwant\n\t%s\n\t%s", tc.d, tc.name, policy, ratelimit, tc.policy, tc.ratelimit)
		}
	}
}

// TestHeadersOfDecide ties the two together for the example in Headers' doc.
func TestHeadersOfDecide(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "ns/api", Limit: 100.0 / 60, Burst: 5})
	policy, ratelimit := l.Decide(t0, nil, netip.Addr{}, "").Headers("ns/api")
	if policy != `"ns/api";q=5;w=3` || ratelimit != `"ns/api";r=4;t=1` {
		t.Errorf("Headers = %s, %s", policy, ratelimit)
	}
}

// FuzzHeaders: whatever the name, the values are a valid sf-string item
// with parameters, which a client can parse.
func FuzzHeaders(f *testing.F) {
	for _, s := range []string{"ns/api", `a"b\c`, "café", "\x00", ""} {
		f.Add(s, 5, 4, int64(time.Second), int64(3*time.Second), true)
	}
	f.Fuzz(func(t *testing.T, name string, limit, remaining int, reset, window int64, allowed bool) {
		d := Decision{Allowed: allowed, Limit: limit, Remaining: remaining, Reset: time.Duration(reset), Window: time.Duration(window), RetryAfter: time.Duration(reset)}
		policy, ratelimit := d.Headers(name)
		for _, v := range []string{policy, ratelimit} {
			rest, ok := parseSFString(v)
			if !ok {
				t.Fatalf("%q: not an sf-string item", v)
			}
			for rest != "" {
				var param string
				if rest[0] != ';' {
					t.Fatalf("%q: junk after the item: %q", v, rest)
				}
				param, rest, _ = strings.Cut(rest[1:], ";")
				if rest != "" {
					rest = ";" + rest
				}
				k, n, ok := strings.Cut(param, "=")
				if !ok || len(k) != 1 || n == "" || len(n) > 15 || strings.Trim(n, "0123456789") != "" {
					t.Fatalf("%q: bad parameter %q", v, param)
				}
			}
		}
	})
}

// parseSFString reads an sf-string at the start of v, per RFC 9651 4.2.5.
func parseSFString(v string) (rest string, ok bool) {
	if v == "" || v[0] != '"' {
		return "", false
	}
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", false
			}
		case c == '"':
			return v[i+1:], true
		case c < 0x20 || c > 0x7e:
			return "", false
		}
	}
	return "", false
}
