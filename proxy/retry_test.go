package proxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// counting is an upstream that answers with status and counts its
// requests.
func counting(t *testing.T, status int, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// handlerWith publishes one Mapping with the given extra fields over
// endpoints; breakers open only after many failures, so that what is
// measured is the retries.
func handlerWith(t *testing.T, fields string, endpoints ...string) *Handler {
	t.Helper()
	return handlerOpts(t, Options{Guard: loopbackGuard(t)}, fields, endpoints...)
}

func handlerOpts(t *testing.T, opts Options, fields string, endpoints ...string) *Handler {
	t.Helper()
	h := New(opts)
	ups := upstream.NewRegistry(upstream.RegistryOptions{
		Breaker: upstream.BreakerSettings{ConsecutiveFailures: 1000, FailureRatio: 2, OpenTimeout: time.Hour},
		Guard:   loopbackGuard(t),
	})
	h.Publish(compileWith(t, ups, "kind: Mapping\nname: m\nprefix: /\nservice: app\n"+fields, endpoints...))
	return h
}

func TestRetryGoesToAnotherEndpoint(t *testing.T) {
	bad, badHits := counting(t, http.StatusServiceUnavailable, 0)
	good, goodHits := counting(t, http.StatusOK, 0)
	h := handlerWith(t, "retry_policy: {retry_on: gateway-error, num_retries: 1}\n", addrOf(bad), addrOf(good))
	for i := range 20 {
		if w := serve(h, "GET", "/x"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d; a 503 from one endpoint should have been retried on the other", i, w.Code)
		}
	}
	if badHits.Load() == 0 || goodHits.Load() != 20 {
		t.Fatalf("failing endpoint %d requests, healthy %d; want some and all 20", badHits.Load(), goodHits.Load())
	}
}

// TestRetryOnTheReverseProxyPath: requests the fast path does not take
// (here: all of them) are retried too when they carry no body.
func TestRetryOnTheReverseProxyPath(t *testing.T) {
	bad, badHits := counting(t, http.StatusBadGateway, 0)
	good, goodHits := counting(t, http.StatusOK, 0)
	h := handlerOpts(t, Options{Guard: loopbackGuard(t), NoFastPath: true}, "retry_policy: {retry_on: 5xx, num_retries: 1}\n", addrOf(bad), addrOf(good))
	for i := range 20 {
		if w := serve(h, "GET", "/x"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d, want the 502 retried", i, w.Code)
		}
	}
	if badHits.Load() == 0 || goodHits.Load() != 20 {
		t.Fatalf("failing endpoint %d requests, healthy %d", badHits.Load(), goodHits.Load())
	}
}

func TestRetryOnlyWhatThePolicyNames(t *testing.T) {
	bad, _ := counting(t, http.StatusServiceUnavailable, 0)
	good, _ := counting(t, http.StatusOK, 0)
	// connect-failure: a 503 answer is the upstream's answer, not retried.
	h := handlerWith(t, "retry_policy: {retry_on: connect-failure, num_retries: 3}\n", addrOf(bad), addrOf(good))
	var unavailable int
	for range 10 {
		if serve(h, "GET", "/x").Code == http.StatusServiceUnavailable {
			unavailable++
		}
	}
	if unavailable == 0 {
		t.Fatal("a 503 was retried under retry_on: connect-failure")
	}
}

func TestConnectFailureRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	good, _ := counting(t, http.StatusOK, 0)
	for _, on := range []string{"connect-failure", "reset", "gateway-error", "5xx"} {
		h := handlerWith(t, "retry_policy: {retry_on: "+on+", num_retries: 1}\n", dead, addrOf(good))
		for i := range 10 {
			if w := serve(h, "GET", "/x"); w.Code != http.StatusOK {
				t.Fatalf("retry_on %s, request %d: %d, want the refused connection retried", on, i, w.Code)
			}
		}
	}
	// Without a policy, a refused connection is a 502.
	h := handlerWith(t, "", dead)
	if w := serve(h, "GET", "/x"); w.Code != http.StatusBadGateway {
		t.Fatalf("without retry_policy: %d, want 502", w.Code)
	}
}

func TestPerTryTimeout(t *testing.T) {
	slow, slowHits := counting(t, http.StatusOK, 10*time.Second)
	fast, _ := counting(t, http.StatusOK, 0)
	h := handlerWith(t, "timeout_ms: 8000\nretry_policy: {retry_on: reset, num_retries: 1, per_try_timeout: 100ms}\n", addrOf(slow), addrOf(fast))
	for i := range 6 {
		if w := serve(h, "GET", "/x"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d; a try past per_try_timeout should have been retried", i, w.Code)
		}
	}
	if slowHits.Load() == 0 {
		t.Fatal("the slow endpoint was never tried: the test proves nothing")
	}
}

func TestRequestBodyLimit(t *testing.T) {
	up, hits := counting(t, http.StatusOK, 0)
	h := handlerWith(t, "max_request_body_bytes: 10\n", addrOf(up))
	post := func(body string) int {
		req := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if code := post(strings.Repeat("a", 11)); code != http.StatusRequestEntityTooLarge || hits.Load() != 0 {
		t.Fatalf("11 bytes over a bound of 10: %d with %d upstream requests, want 413 and none", code, hits.Load())
	}
	if code := post(strings.Repeat("a", 10)); code != http.StatusOK {
		t.Fatalf("10 bytes: %d", code)
	}
	// A body of unknown length is counted as it is read.
	req := httptest.NewRequest("POST", "/x", strings.NewReader(strings.Repeat("b", 100)))
	req.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked 100 bytes: %d, want 413", w.Code)
	}
}

func TestCookieBalancingSetsTheCookie(t *testing.T) {
	a, aHits := counting(t, http.StatusOK, 0)
	b, bHits := counting(t, http.StatusOK, 0)
	h := handlerWith(t, "load_balancer: {policy: ring_hash, cookie: {name: sticky, path: /, ttl: 1h}}\n", addrOf(a), addrOf(b))
	w := serve(h, "GET", "/x")
	set := w.Header().Get("Set-Cookie")
	value, ok := strings.CutPrefix(set, "sticky=")
	if !ok || !strings.HasSuffix(set, "; Path=/; Max-Age=3600; HttpOnly") {
		t.Fatalf("Set-Cookie %q", set)
	}
	value, _, _ = strings.Cut(value, ";")
	before := [2]int64{aHits.Load(), bHits.Load()}
	for range 20 {
		w := serve(h, "GET", "/x", "Cookie", "other=1; sticky="+value)
		if w.Header().Get("Set-Cookie") != "" {
			t.Fatal("a request carrying the cookie got another")
		}
	}
	if da, db := aHits.Load()-before[0], bHits.Load()-before[1]; da != 0 && db != 0 {
		t.Fatalf("one cookie went to both endpoints: %d and %d", da, db)
	}
}

func addrOf(s *httptest.Server) string { return s.Listener.Addr().String() }

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
