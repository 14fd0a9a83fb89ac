package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// answer is one review's outcome.
type answer struct {
	code       int
	retryAfter string
	allowed    bool
}

// slowReview is a review in flight whose body the test holds back, the
// way a slow (or hostile) client would: the handler takes a slot, starts
// reading, and keeps the slot until release sends the rest.
type slowReview struct {
	reading chan struct{} // closed when the handler first reads the body
	release func()
	answer  chan answer
}

// startReview posts a valid review to h with ctx. With hold, the body is
// held back until release; without, release is a no-op.
func startReview(t *testing.T, h http.Handler, ctx context.Context, hold bool) *slowReview {
	t.Helper()
	body := reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, valid), nil)
	r := &slowReview{reading: make(chan struct{}), release: func() {}, answer: make(chan answer, 1)}
	var src io.Reader = bytes.NewReader(body)
	if hold {
		pr, pw := io.Pipe()
		r.release = sync.OnceFunc(func() {
			go func() {
				pw.Write(body)
				pw.Close()
			}()
		})
		t.Cleanup(r.release)
		src = pr
	}
	once := sync.OnceFunc(func() { close(r.reading) })
	req := httptest.NewRequestWithContext(ctx, "POST", "/validate", readerFunc(func(p []byte) (int, error) {
		once()
		return src.Read(p)
	}))
	req.Header.Set("Content-Type", "application/json")
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var review admissionv1.AdmissionReview
		allowed := json.Unmarshal(w.Body.Bytes(), &review) == nil && review.Response != nil && review.Response.Allowed
		r.answer <- answer{code: w.Code, retryAfter: w.Header().Get("Retry-After"), allowed: allowed}
	}()
	return r
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// started waits until the handler reads the review's body, that is, holds
// a slot for it.
func (r *slowReview) started(t *testing.T) {
	t.Helper()
	select {
	case <-r.reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start reading the review")
	}
}

func (r *slowReview) wait(t *testing.T) answer {
	t.Helper()
	select {
	case a := <-r.answer:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return answer{}
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := New(Options{MaxConcurrent: 2, MaxWait: 50 * time.Millisecond})
	first, second := startReview(t, h, context.Background(), true), startReview(t, h, context.Background(), true)
	first.started(t)
	second.started(t)

	// A third waits MaxWait for a slot, then is told to come back, without
	// its body being read.
	start := time.Now()
	third := startReview(t, h, context.Background(), false)
	a := third.wait(t)
	if a.code != http.StatusTooManyRequests || a.retryAfter != "1" {
		t.Errorf("review beyond the bound: HTTP %d, Retry-After %q; want 429 and 1", a.code, a.retryAfter)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond || waited > 5*time.Second {
		t.Errorf("refused after %v, want after MaxWait (50ms)", waited)
	}
	select {
	case <-third.reading:
		t.Error("the refused review's body was read")
	default:
	}

	// One that arrives while the slots are taken gets the first one freed
	// within its wait.
	h2 := New(Options{MaxConcurrent: 1, MaxWait: 10 * time.Second})
	held := startReview(t, h2, context.Background(), true)
	held.started(t)
	waiting := startReview(t, h2, context.Background(), false)
	time.Sleep(50 * time.Millisecond)
	select {
	case <-waiting.reading:
		t.Fatal("a review beyond the bound started before a slot was free")
	default:
	}
	held.release()
	for _, r := range []*slowReview{held, waiting} {
		if a := r.wait(t); a.code != http.StatusOK || !a.allowed {
			t.Errorf("review: HTTP %d allowed %v, want 200 and allowed", a.code, a.allowed)
		}
	}
	first.release()
	second.release()
	for _, r := range []*slowReview{first, second} {
		if a := r.wait(t); a.code != http.StatusOK || !a.allowed {
			t.Errorf("review: HTTP %d allowed %v, want 200 and allowed", a.code, a.allowed)
		}
	}
}

func TestConcurrencyWaitEndsWithTheRequest(t *testing.T) {
	h := New(Options{MaxConcurrent: 1, MaxWait: time.Minute})
	startReview(t, h, context.Background(), true).started(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if a := startReview(t, h, ctx, false).wait(t); a.code != http.StatusTooManyRequests {
		t.Errorf("HTTP %d, want 429 when the request's own deadline passes first", a.code)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %v with a 50ms deadline", waited)
	}
}

// TestConcurrencyCountsTimedOutReviews: a review that outlives Timeout is
// answered 503 by HTTPHandler but keeps running, and keeps its slot until it
// ends, so timed-out work cannot pile up beyond the bound.
func TestConcurrencyCountsTimedOutReviews(t *testing.T) {
	// MaxWait well under Timeout, so the refusal below is the bound's 429
	// and not the timeout's 503.
	h := New(Options{MaxConcurrent: 1, MaxWait: 20 * time.Millisecond, Timeout: 300 * time.Millisecond}).HTTPHandler()
	stuck := startReview(t, h, context.Background(), true)
	if a := stuck.wait(t); a.code != http.StatusServiceUnavailable {
		t.Fatalf("stuck review: HTTP %d, want 503 from the timeout", a.code)
	}
	if a := startReview(t, h, context.Background(), false).wait(t); a.code != http.StatusTooManyRequests {
		t.Errorf("while the timed-out review still runs: HTTP %d, want 429", a.code)
	}
	stuck.release()
	// The slot comes back once the stuck review's goroutine returns.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := startReview(t, h, context.Background(), false).wait(t)
		if a.code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the timed-out review ended: HTTP %d, want 200", a.code)
		}
	}
}

// TestConcurrencyCheapRefusalsTakeNoSlot: a request refused for its method
// or content type is answered at once even when every slot is taken.
func TestConcurrencyCheapRefusalsTakeNoSlot(t *testing.T) {
	h := New(Options{MaxConcurrent: 1, MaxWait: time.Minute})
	startReview(t, h, context.Background(), true).started(t)
	done := make(chan int, 1)
	go func() {
		w, _ := post(h, []byte("{}"), "text/plain")
		done <- w.Code
	}()
	select {
	case code := <-done:
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("wrong content type while saturated: HTTP %d, want 415", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("a request with the wrong content type waited for a slot")
	}
}

func TestDefaultMaxConcurrent(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for procs, want := range map[int]int{1: 2, 2: 2, 3: 3, 4: 4, 64: 4} {
		runtime.GOMAXPROCS(procs)
		if got := DefaultMaxConcurrent(); got != want {
			t.Errorf("GOMAXPROCS %d: DefaultMaxConcurrent() = %d, want %d", procs, got, want)
		}
	}
	runtime.GOMAXPROCS(prev)
	if h := New(Options{}); cap(h.slots) != DefaultMaxConcurrent() || h.opts.MaxWait != time.Second {
		t.Errorf("New(Options{}): %d slots, MaxWait %v; want DefaultMaxConcurrent() and 1s", cap(h.slots), h.opts.MaxWait)
	}
}
