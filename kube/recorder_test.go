package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeSink records the Events created. fail, when set, decides each call's
// error by its number (1-based); gate, when set, holds every call until it
// receives, after saying so on entered.
type fakeSink struct {
	mu      sync.Mutex
	events  []*corev1.Event
	calls   int
	fail    func(call int) error
	gate    chan struct{}
	entered chan struct{}
}

func (f *fakeSink) CreateEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error) {
	if f.gate != nil {
		f.entered <- struct{}{}
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		if err := f.fail(f.calls); err != nil {
			return nil, err
		}
	}
	f.events = append(f.events, ev.DeepCopy())
	return ev, nil
}

func (f *fakeSink) created() []*corev1.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*corev1.Event(nil), f.events...)
}

func (f *fakeSink) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeNow is a clock the test sets.
type fakeNow struct{ ns atomic.Int64 }

func newFakeNow(t time.Time) *fakeNow  { c := &fakeNow{}; c.ns.Store(t.UnixNano()); return c }
func (c *fakeNow) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeNow) add(d time.Duration) { c.ns.Add(int64(d)) }

// running starts r and stops it when the test ends.
func running(t *testing.T, r *EventRecorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// eventually polls cond until it holds, failing the test after a deadline:
// Run works asynchronously and nothing else says when it is done.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func named(name string) *corev1.Service {
	svc := service("7", map[string]string{ourKey: "x"}, 80)
	svc.Name = name
	return svc
}

func TestRecorderEvent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sink := &fakeSink{}
	r := NewRecorder(sink, RecorderOptions{Instance: "gatehouse-6d4b9-x2x7q", Now: newFakeNow(t0).now})
	running(t, r)

	r.Event(service("7", nil, 80), corev1.EventTypeWarning, ReasonInvalidConfig, "line 1, column 1: bad")
	// The same clock reading again: the name must still be new.
	r.Event(service("8", nil, 80), corev1.EventTypeNormal, ReasonProgrammed, strings.Repeat("é", 600))
	// Not recorded: a type the API does not know, and an object of no known kind.
	r.Event(service("9", nil, 80), "Error", ReasonProgrammed, "m")
	r.Event(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}}, corev1.EventTypeNormal, ReasonProgrammed, "m")
	eventually(t, "two Events created", func() bool { return len(sink.created()) == 2 })

	ts := metav1.NewTime(t0)
	want := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web.%x", t0.UnixNano()), Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Service", APIVersion: "v1", Namespace: "shop", Name: "web", UID: "uid-1", ResourceVersion: "7",
		},
		Reason:              ReasonInvalidConfig,
		Message:             "line 1, column 1: bad",
		Type:                corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: "gatehouse"},
		FirstTimestamp:      ts,
		LastTimestamp:       ts,
		Count:               1,
		ReportingController: "gatehouse",
		ReportingInstance:   "gatehouse-6d4b9-x2x7q",
	}
	got := sink.created()
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("Event\n%+v\nwant\n%+v", got[0], want)
	}
	if name := fmt.Sprintf("web.%x", t0.UnixNano()+1); got[1].Name != name || got[1].InvolvedObject.ResourceVersion != "8" {
		t.Errorf("second Event %s about resourceVersion %s; want %s about 8", got[1].Name, got[1].InvolvedObject.ResourceVersion, name)
	}
	if m := got[1].Message; len(m) > maxMessage || !strings.HasSuffix(m, "(truncated)") {
		t.Errorf("a %d-byte message was not cut to %d", len(m), maxMessage)
	}
	if s := r.Stats(); s != (RecorderStats{Created: 2}) {
		t.Errorf("stats %+v", s)
	}
}

// Event never waits for the API server: with the writer stuck, the queue
// fills and what does not fit is dropped and counted.
func TestRecorderQueueBound(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	r := NewRecorder(sink, RecorderOptions{Queue: 3})
	running(t, r)

	r.Event(named("s0"), corev1.EventTypeNormal, ReasonProgrammed, "m")
	<-sink.entered // s0 is being written, and the writer is stuck
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 5; i++ {
			r.Event(named(fmt.Sprintf("s%d", i)), corev1.EventTypeNormal, ReasonProgrammed, "m")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Event blocked on a full queue")
	}
	if s := r.Stats(); s.Dropped != 2 || s.Created != 0 {
		t.Errorf("with the writer stuck: %+v; want s4 and s5 dropped", s)
	}

	close(sink.gate)
	eventually(t, "the queued Events written", func() bool { return r.Stats().Created == 4 })
	var names []string
	for _, ev := range sink.created() {
		names = append(names, ev.InvolvedObject.Name)
	}
	if strings.Join(names, " ") != "s0 s1 s2 s3" {
		t.Errorf("written %v, want s0 to s3 in order", names)
	}
}

// One Service flapping cannot use up the Events of others: each object has
// its own bucket of 25, refilled one per 5 minutes.
func TestRecorderPerObjectLimit(t *testing.T) {
	clk := newFakeNow(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	sink := &fakeSink{}
	r := NewRecorder(sink, RecorderOptions{Now: clk.now})
	running(t, r)

	for range 30 {
		r.Event(named("flappy"), corev1.EventTypeWarning, ReasonInvalidConfig, "m")
	}
	r.Event(named("calm"), corev1.EventTypeNormal, ReasonProgrammed, "m")
	clk.add(DefaultEventEvery)
	r.Event(named("flappy"), corev1.EventTypeWarning, ReasonInvalidConfig, "m") // refilled by one
	r.Event(named("flappy"), corev1.EventTypeWarning, ReasonInvalidConfig, "m")

	eventually(t, "27 Events written", func() bool { return r.Stats().Created == 27 })
	if s := r.Stats(); s.Limited != 6 || s.Dropped != 0 {
		t.Errorf("stats %+v; want 6 limited", s)
	}
	calm := 0
	for _, ev := range sink.created() {
		if ev.InvolvedObject.Name == "calm" {
			calm++
		}
	}
	if calm != 1 {
		t.Errorf("calm has %d Events, want 1", calm)
	}
}

// Buckets are forgotten once refilled, and never more than Objects are
// kept; when full, the fullest goes, never one a flapping object emptied.
func TestRecorderBucketsBounded(t *testing.T) {
	clk := newFakeNow(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := NewRecorder(&fakeSink{}, RecorderOptions{Objects: 4, Burst: 2, Every: time.Minute, Queue: 100, Now: clk.now})
	event := func(name string) {
		t.Helper()
		r.Event(named(name), corev1.EventTypeNormal, ReasonProgrammed, "m")
		r.mu.Lock()
		n := len(r.buckets)
		r.mu.Unlock()
		if n > 4 {
			t.Fatalf("%d buckets kept, bound 4", n)
		}
	}
	for _, name := range []string{"a", "b", "c", "d", "a", "a"} {
		event(name)
	}
	if s := r.Stats(); s.Limited != 1 {
		t.Fatalf("a limited %d times, want 1", s.Limited)
	}
	event("e") // the map is full: one of b, c and d goes
	event("a")
	if s := r.Stats(); s.Limited != 2 {
		t.Errorf("a limited %d times, want 2: its empty bucket was forgotten", s.Limited)
	}
	for i := range 20 {
		event(fmt.Sprintf("x%d", i))
	}

	clk.add(2 * time.Minute) // every bucket refilled
	event("later")
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buckets) != 1 {
		t.Errorf("%d buckets kept after all refilled, want only the new one", len(r.buckets))
	}
}

// A create that got no answer is tried again after a backoff, up to
// Attempts times; one the API server refused is not.
func TestRecorderRetries(t *testing.T) {
	unreachable := errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("RBAC"))
	for _, tc := range []struct {
		name           string
		fail           func(call int) error
		calls, created int
	}{
		{"unreachable, then written", func(n int) error {
			if n < 3 {
				return unreachable
			}
			return nil
		}, 3, 1},
		{"unreachable throughout", func(int) error { return unreachable }, 4, 0},
		{"overloaded, then written", func(n int) error {
			if n == 1 {
				return apierrors.NewTooManyRequests("slow down", 0)
			}
			return nil
		}, 2, 1},
		{"forbidden", func(int) error { return forbidden }, 1, 0},
		{"namespace terminating", func(int) error {
			err := apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("terminating"))
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
			return err
		}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{fail: tc.fail}
			r := NewRecorder(sink, RecorderOptions{Backoff: time.Millisecond})
			running(t, r)
			r.Event(named("web"), corev1.EventTypeWarning, ReasonInvalidConfig, "m")
			eventually(t, "the Event written or given up", func() bool {
				s := r.Stats()
				return s.Created+s.Failed == 1
			})
			if got := sink.callCount(); got != tc.calls || len(sink.created()) != tc.created {
				t.Errorf("%d creates, %d written; want %d, %d", got, len(sink.created()), tc.calls, tc.created)
			}
		})
	}
}

func TestEventName(t *testing.T) {
	long := strings.Repeat("a", 248) + ".-bcd" // 253 bytes
	for _, tc := range []struct {
		object string
		want   string
	}{
		{"web", "web.1f"},
		{long, strings.Repeat("a", 248) + ".1f"}, // cut to fit, without a trailing '.' or '-'
	} {
		if got := eventName(tc.object, 31); got != tc.want || len(got) > 253 {
			t.Errorf("eventName(%.20s…) = %q, want %q", tc.object, got, tc.want)
		}
	}
}
