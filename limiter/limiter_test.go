package limiter

import (
	"net/http"
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
	for k, want := range map[KeyKind]string{KeyPolicy: "policy", KeyClientIP: "client-ip", KeyHeader: "header", 9: "KeyKind(9)"} {
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
	for _, tc := range []struct {
		l      *Limiter
		remote string
		header []string
		want   string
	}{
		{byIP, "192.0.2.7:5555", nil, "192.0.2.7"},
		{byIP, "[::1]:1234", nil, "::1"},
		{byIP, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{byIP, "[fe80::1%eth0]:80", nil, "fe80::1%eth0"},
		{byIP, "192.0.2.7", nil, "192.0.2.7"},
		{byIP, "2001:db8::1", nil, "2001:db8::1"},
		{byIP, "[::1", nil, "[::1"},
		{byIP, "", nil, ""},
		{byHeader, "192.0.2.7:1", []string{"alice", "bob"}, "alice"},
		{byHeader, "192.0.2.7:1", nil, ""},
		{byHeader, "192.0.2.7:1", []string{""}, ""},
		{byPolicy, "192.0.2.7:1", []string{"alice"}, ""},
	} {
		req := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		for _, v := range tc.header {
			req.Header.Add("X-API-KEY", v)
		}
		if got := tc.l.Key(req); got != tc.want {
			t.Errorf("%s key of (%q, %q) = %q, want %q", tc.l.Policy().Key, tc.remote, tc.header, got, tc.want)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	r := NewRegistry(Options{})
	byIP := r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1e9, Burst: 1})
	byHeader := r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "X-Api-Key", Limit: 1e9, Burst: 1})
	byPolicy := r.Get(Policy{ID: "pol", Limit: 1e9, Burst: 1})
	req := &http.Request{RemoteAddr: "[2001:db8::1]:443", Header: http.Header{"X-Api-Key": {"alice"}}}
	byIP.Allow(t0, "2001:db8::1") // create the bucket first
	now := t0
	for name, f := range map[string]func(){
		"Key/client-ip": func() { byIP.Key(req) },
		"Key/header":    func() { byHeader.Key(req) },
		"Allow/keyed":   func() { now = now.Add(time.Millisecond); byIP.Allow(now, byIP.Key(req)) },
		"Allow/refused": func() { byIP.Allow(t0, "2001:db8::1") },
		"Allow/policy":  func() { now = now.Add(time.Millisecond); byPolicy.Allow(now, "") },
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

func BenchmarkKey(b *testing.B) {
	r := NewRegistry(Options{})
	req := &http.Request{RemoteAddr: "[2001:db8::1]:443", Header: http.Header{"X-Api-Key": {"alice"}}}
	for _, l := range []*Limiter{
		r.Get(Policy{ID: "ip", Key: KeyClientIP, Limit: 1, Burst: 1}),
		r.Get(Policy{ID: "hdr", Key: KeyHeader, Header: "x-api-key", Limit: 1, Burst: 1}),
	} {
		b.Run(l.Policy().Key.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.Key(req)
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
