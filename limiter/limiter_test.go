package limiter

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestKeyKindString(t *testing.T) {
	for k, want := range map[KeyKind]string{KeyPolicy: "policy", KeyClientIP: "client-ip", KeyHeader: "header", KeyConsumer: "consumer", 9: "KeyKind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("KeyKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// TestBurstRefuseRefill drains the burst, checks the refusal's retryAfter, and that
// the bucket refuses shortly before retryAfter and allows exactly at it. (Not 1ns
// before: x/time/rate truncates waits shorter than 1ns to zero and allows them.)
func TestBurstRefuseRefill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit rate.Limit
		burst int
		retry time.Duration
	}{
		{"1/s burst 2", 1, 2, time.Second},
		{"60/min burst 1", 60.0 / 60, 1, time.Second},
		{"100/min burst 5", 100.0 / 60, 5, 600 * time.Millisecond},
		{"3/hour burst 3", 3.0 / 3600, 3, 20 * time.Minute},
		{"1000/s burst 10", 1000, 10, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: tc.limit, Burst: tc.burst})
			for i := range tc.burst {
				if ok, _ := l.Allow(t0, ""); !ok {
					t.Fatalf("request %d within burst refused", i+1)
				}
			}
			ok, retry := l.Allow(t0, "")
			if ok || retry != tc.retry {
				t.Fatalf("after burst: Allow = %v, %v; want false, %v", ok, retry, tc.retry)
			}
			if ok, _ := l.Allow(t0.Add(tc.retry-time.Microsecond), ""); ok {
				t.Fatalf("allowed 1µs before retryAfter")
			}
			if ok, _ := l.Allow(t0.Add(tc.retry), ""); !ok {
				t.Fatalf("refused at retryAfter")
			}
			if ok, _ := l.Allow(t0.Add(tc.retry), ""); ok {
				t.Fatalf("allowed twice on one refilled token")
			}
		})
	}
}

func TestRetryAfterPartialToken(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: 1, Burst: 1})
	l.Allow(t0, "")
	if ok, retry := l.Allow(t0.Add(300*time.Millisecond), ""); ok || retry != 700*time.Millisecond {
		t.Fatalf("Allow = %v, %v; want false, 700ms", ok, retry)
	}
}

func TestLimitExtremes(t *testing.T) {
	r := NewRegistry(Options{})
	never := r.Get(Policy{ID: "ns/never", Limit: 0, Burst: 1})
	if ok, _ := never.Allow(t0, ""); !ok {
		t.Fatal("limit 0 refused its burst")
	}
	if ok, retry := never.Allow(t0.Add(time.Hour), ""); ok || retry != rate.InfDuration {
		t.Fatalf("limit 0 after burst: Allow = %v, %v; want false, InfDuration", ok, retry)
	}
	inf := r.Get(Policy{ID: "ns/inf", Limit: rate.Inf, Burst: 1})
	for range 10 {
		if ok, _ := inf.Allow(t0, "k"); !ok {
			t.Fatal("rate.Inf refused")
		}
	}
	zeroBurst := r.Get(Policy{ID: "ns/zero", Limit: 1, Burst: 0})
	if got := zeroBurst.Policy().Burst; got != 1 {
		t.Fatalf("Burst 0 normalized to %d, want 1", got)
	}
	if ok, _ := zeroBurst.Allow(t0, ""); !ok {
		t.Fatal("Burst 0 policy refused everything")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {-time.Second, 1}, {time.Nanosecond, 1}, {600 * time.Millisecond, 1}, {time.Second, 1},
		{time.Second + time.Nanosecond, 2}, {1500 * time.Millisecond, 2}, {time.Minute, 60},
		{rate.InfDuration, 9223372037},
	} {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: 1, Burst: 1, Key: KeyClientIP})
	for _, step := range []struct {
		key  string
		want bool
	}{{"10.0.0.1", true}, {"10.0.0.1", false}, {"10.0.0.2", true}, {"", true}, {"10.0.0.2", false}, {"", false}} {
		if ok, _ := l.Allow(t0, step.key); ok != step.want {
			t.Fatalf("Allow(%q) = %v, want %v", step.key, ok, step.want)
		}
	}
	if got := l.Len(); got != 3 {
		t.Fatalf("Len = %d, want 3", got)
	}
}

func TestPolicyKeyIgnoresKey(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: 1, Burst: 1})
	l.Allow(t0, "a")
	if ok, _ := l.Allow(t0, "b"); ok {
		t.Fatal("KeyPolicy gave key b its own bucket")
	}
}

func TestKey(t *testing.T) {
	r := NewRegistry(Options{})
	byIP := r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1, Burst: 1})
	byHeader := r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "x-api-key", Limit: 1, Burst: 1})
	byPolicy := r.Get(Policy{ID: "pol", Key: KeyPolicy, Header: "x-api-key", Limit: 1, Burst: 1})
	v4 := func(a, b, c, d byte) string { return string([]byte{a, b, c, d}) }
	v6 := func(s string) string { a := netip.MustParseAddr(s).As16(); return string(a[:]) }
	for _, tc := range []struct {
		l      *Limiter
		client string // "" is the zero Addr: the caller could not tell
		header []string
		want   string
	}{
		{byIP, "192.0.2.7", nil, v4(192, 0, 2, 7)},
		{byIP, "::ffff:192.0.2.7", nil, v4(192, 0, 2, 7)}, // a dual-stack listener's view of an IPv4 client
		{byIP, "::1", nil, v6("::")},
		{byIP, "2001:db8:1:2:3:4:5:6", nil, v6("2001:db8:1:2::")},
		{byIP, "2001:db8:1:2::1%eth0", nil, v6("2001:db8:1:2::")},
		{byIP, "fe80::1%eth0", nil, v6("fe80::")},
		{byIP, "", nil, ""},
		{byIP, "192.0.2.7", []string{"alice"}, v4(192, 0, 2, 7)}, // headers do not matter
		{byHeader, "192.0.2.7", []string{"alice", "bob"}, "alice"},
		{byHeader, "192.0.2.7", nil, ""},
		{byHeader, "192.0.2.7", []string{""}, ""},
		{byPolicy, "192.0.2.7", []string{"alice"}, ""},
	} {
		req := &http.Request{RemoteAddr: "198.51.100.1:1", Header: http.Header{}}
		for _, v := range tc.header {
			req.Header.Add("X-API-KEY", v)
		}
		var client netip.Addr
		if tc.client != "" {
			client = netip.MustParseAddr(tc.client)
		}
		if got := tc.l.Key(req, client); got != tc.want {
			t.Errorf("%s key of (%q, %q) = %q, want %q", tc.l.Policy().Key, tc.client, tc.header, got, tc.want)
		}
	}
}

// TestIPv6Prefix: IPv6 clients of one network share a bucket; how wide a
// network is comes from Options.IPv6Prefix.
func TestIPv6Prefix(t *testing.T) {
	for _, tc := range []struct {
		bits       int
		a, b       string
		sameBucket bool
	}{
		{0, "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true}, // default /64
		{0, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{-5, "2001:db8:1:2::1", "2001:db8:1:2::2", true}, // out of range: /64
		{129, "2001:db8:1:2::1", "2001:db8:1:2::2", true},
		{128, "2001:db8:1:2::1", "2001:db8:1:2::2", false},
		{48, "2001:db8:1:2::1", "2001:db8:1:ffff::1", true},
		{48, "2001:db8:1::1", "2001:db8:2::1", false},
		{0, "192.0.2.1", "192.0.2.2", false}, // IPv4 is per address whatever the IPv6 prefix
		{1, "192.0.2.1", "192.0.2.2", false},
		{0, "::ffff:192.0.2.1", "192.0.2.1", true},
		{0, "::ffff:192.0.2.1", "::ffff:192.0.2.2", false},
	} {
		l := NewRegistry(Options{IPv6Prefix: tc.bits}).Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 0, Burst: 1})
		a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
		if ok, _ := l.AllowRequest(t0, nil, a); !ok {
			t.Fatalf("bits %d: first request of %s refused", tc.bits, a)
		}
		if ok, _ := l.AllowRequest(t0, nil, b); ok == tc.sameBucket {
			t.Errorf("bits %d: %s after %s allowed = %v, want %v (same bucket: %v)", tc.bits, b, a, ok, !tc.sameBucket, tc.sameBucket)
		}
	}
}

// TestAllowRequestIsAllowOfKey: the allocation-free path and the string key
// name the same buckets, for every kind of key.
func TestAllowRequestIsAllowOfKey(t *testing.T) {
	r := NewRegistry(Options{})
	req := &http.Request{Header: http.Header{"X-Api-Key": {"alice"}}}
	for _, p := range []Policy{
		{ID: "ip", Key: KeyClientIP, Limit: 0, Burst: 2},
		{ID: "hdr", Key: KeyHeader, Header: "x-api-key", Limit: 0, Burst: 2},
		{ID: "pol", Limit: 0, Burst: 2},
	} {
		for _, client := range []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), {}} {
			l := r.Get(Policy{ID: p.ID + client.String(), Key: p.Key, Header: p.Header, Limit: p.Limit, Burst: p.Burst})
			a, _ := l.AllowRequest(t0, req, client)
			b, _ := l.Allow(t0, l.Key(req, client))
			c, _ := l.AllowRequest(t0, req, client)
			if !a || !b || c {
				t.Errorf("%s, client %v: AllowRequest, Allow(Key), AllowRequest = %v %v %v; want one bucket of 2: true true false", p.Key, client, a, b, c)
			}
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	r := NewRegistry(Options{})
	byIP := r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1e9, Burst: 1})
	byHeader := r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "X-Api-Key", Limit: 1e9, Burst: 1})
	byPolicy := r.Get(Policy{ID: "pol", Limit: 1e9, Burst: 1})
	req := &http.Request{RemoteAddr: "[2001:db8::1]:443", Header: http.Header{"X-Api-Key": {"alice"}}}
	v6, v4 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")
	byIP.AllowRequest(t0, req, v6) // create the buckets first
	byIP.AllowRequest(t0, req, v4)
	now := t0
	for name, f := range map[string]func(){
		"Key/header":               func() { byHeader.Key(req, v6) },
		"AllowRequest/client-ipv6": func() { now = now.Add(time.Millisecond); byIP.AllowRequest(now, req, v6) },
		"AllowRequest/client-ipv4": func() { now = now.Add(time.Millisecond); byIP.AllowRequest(now, req, v4) },
		"AllowRequest/header":      func() { now = now.Add(time.Millisecond); byHeader.AllowRequest(now, req, v6) },
		"AllowRequest/refused":     func() { byIP.AllowRequest(t0, req, v6) },
		"Allow/keyed":              func() { now = now.Add(time.Millisecond); byIP.Allow(now, "2001:db8::1") },
		"Allow/policy":             func() { now = now.Add(time.Millisecond); byPolicy.Allow(now, "") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}

func TestConcurrentAllowTakesExactlyBurst(t *testing.T) {
	for _, p := range []Policy{
		{ID: "pol", Limit: 1, Burst: 50},
		{ID: "ip", Limit: 1, Burst: 50, Key: KeyClientIP},
	} {
		l := NewRegistry(Options{}).Get(p)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if ok, _ := l.Allow(t0, "k"); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != 50 {
			t.Errorf("%s: %d of 800 concurrent requests allowed, want exactly the burst of 50", p.Key, got)
		}
	}
}

func BenchmarkAllowRequest(b *testing.B) {
	r := NewRegistry(Options{})
	req := &http.Request{Header: http.Header{"X-Api-Key": {"alice"}}}
	client := netip.MustParseAddr("2001:db8::1")
	for _, l := range []*Limiter{
		r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1e9, Burst: 1}),
		r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "x-api-key", Limit: 1e9, Burst: 1}),
	} {
		b.Run(l.Policy().Key.String(), func(b *testing.B) {
			b.ReportAllocs()
			now := t0
			for b.Loop() {
				now = now.Add(time.Microsecond)
				l.AllowRequest(now, req, client)
			}
		})
	}
}

// BenchmarkAllow measures the per-request cost on the common path, where the
// request is allowed, and on the refused path, which also computes retryAfter.
func BenchmarkAllow(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	for _, tc := range []struct {
		name  string
		kind  KeyKind
		limit rate.Limit
		keys  []string
	}{
		{"policy", KeyPolicy, 1e9, []string{""}},
		{"policy-refused", KeyPolicy, 1e-9, []string{""}},
		{"client-ip-1000-keys", KeyClientIP, 1e9, keys},
		{"client-ip-1000-keys-refused", KeyClientIP, 1e-9, keys},
	} {
		newLimiter := func() *Limiter {
			l := NewRegistry(Options{}).Get(Policy{ID: "ns/rl", Limit: tc.limit, Burst: 1, Key: tc.kind})
			for _, k := range tc.keys {
				l.Allow(t0, k)
			}
			return l
		}
		b.Run(tc.name, func(b *testing.B) {
			l := newLimiter()
			b.ReportAllocs()
			now, i := t0, 0
			for b.Loop() {
				now = now.Add(time.Microsecond)
				l.Allow(now, tc.keys[i%len(tc.keys)])
				i++
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			l := newLimiter()
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 7919 // each goroutine walks the keys from its own offset
				now := t0
				for pb.Next() {
					now = now.Add(time.Microsecond)
					l.Allow(now, tc.keys[i%len(tc.keys)])
					i++
				}
			})
		})
	}
}

func TestLongKeysAreBoundedAndDistinct(t *testing.T) {
	l := NewRegistry(Options{}).Get(Policy{ID: "hdr", Key: KeyHeader, Header: "X-Api-Key", Limit: 1, Burst: 1})
	a, b := strings.Repeat("x", 8192)+"a", strings.Repeat("x", 8192)+"b"
	for _, step := range []struct {
		key  string
		want bool
	}{{a, true}, {b, true}, {a, false}, {b, false}} {
		if ok, _ := l.Allow(t0, step.key); ok != step.want {
			t.Fatalf("Allow(...%q) = %v, want %v", step.key[len(step.key)-1:], ok, step.want)
		}
	}
	for i := range l.table.shards {
		for k := range l.table.shards[i].buckets {
			if len(k) > maxKeyBytes {
				t.Errorf("table stores a %d-byte key, want at most %d", len(k), maxKeyBytes)
			}
		}
	}
}
