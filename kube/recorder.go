package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// EventSink creates core/v1 Events; kube/api's Client is one.
type EventSink interface {
	CreateEvent(ctx context.Context, event *corev1.Event) (*corev1.Event, error)
}

// Defaults of RecorderOptions. The queue bound and the per-object bucket
// are client-go's (tools/record: 1,000 queued Events; its spam filter lets
// an object have 25 at once, then one every 5 minutes, and remembers 4,096
// objects).
const (
	DefaultEventQueue    = 1000
	DefaultEventBurst    = 25
	DefaultEventEvery    = 5 * time.Minute
	DefaultEventObjects  = 4096
	DefaultEventAttempts = 4
	DefaultEventBackoff  = time.Second
)

// RecorderOptions configure an EventRecorder. Zero values mean the defaults.
type RecorderOptions struct {
	// Instance is the Events' reportingInstance: which replica wrote them,
	// e.g. the pod's name. "" leaves it empty.
	Instance string
	// Queue bounds the Events waiting to be written; more are dropped.
	// 0 means DefaultEventQueue.
	Queue int
	// Burst and Every are each object's token bucket: Burst Events at
	// once, then one per Every. 0 means DefaultEventBurst and
	// DefaultEventEvery.
	Burst int
	Every time.Duration
	// Objects bounds how many objects' buckets are kept. 0 means
	// DefaultEventObjects.
	Objects int
	// Attempts is how often a create that failed for want of an answer
	// (API server unreachable, overloaded) is tried before the Event is
	// dropped; Backoff is the wait before the second try, doubled for each
	// further one and jittered. 0 means DefaultEventAttempts and
	// DefaultEventBackoff.
	Attempts int
	Backoff  time.Duration
	// Logger receives drops and failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RecorderStats counts what became of the Events given to an EventRecorder.
type RecorderStats struct {
	Created uint64 // written
	Limited uint64 // refused by their object's token bucket
	Dropped uint64 // refused because the queue was full
	Failed  uint64 // the API server refused them, or kept failing
}

// EventRecorder writes core/v1 Events about Services as component
// "gatehouse", in place of client-go's tools/record (whose scheme would
// link every API group into the binary).
//
// Event never blocks its caller, a Source's loop: it checks the object's
// token bucket, so that one Service flapping between bad and good
// configurations cannot crowd out the Events of others, and queues the
// Event; Run writes the queue one Event at a time, retrying while the API
// server cannot be reached. What does not fit is dropped, counted and
// logged. Memory is bounded: at most Queue Events of at most a few KiB
// each (messages are cut at 1 KiB), and the buckets of at most Objects
// objects.
//
// Repeats are not aggregated or patched as record does: the Source already
// records one Warning per distinct problem and one Programmed per change,
// so each Event is news, and creating is all the RBAC grants.
//
// An EventRecorder is safe for concurrent use; Run runs once.
type EventRecorder struct {
	sink  EventSink
	opts  RecorderOptions
	log   *slog.Logger
	queue chan *corev1.Event
	// logLimit keeps drops from flooding the log: a flapping Service or a
	// full queue is logged at most once per 10 s, with the totals so far.
	logLimit *rate.Limiter

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter // object key → its token bucket; guarded by mu
	swept    time.Time                // when refilled buckets were last removed; guarded by mu
	lastName int64                    // the timestamp of the last Event's name; guarded by mu

	created, limited, dropped, failed atomic.Uint64
}

// NewRecorder returns an EventRecorder that creates Events through sink;
// Run writes them.
func NewRecorder(sink EventSink, opts RecorderOptions) *EventRecorder {
	if opts.Queue <= 0 {
		opts.Queue = DefaultEventQueue
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultEventBurst
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEventEvery
	}
	if opts.Objects <= 0 {
		opts.Objects = DefaultEventObjects
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultEventAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultEventBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EventRecorder{
		sink:     sink,
		opts:     opts,
		log:      log,
		queue:    make(chan *corev1.Event, opts.Queue),
		logLimit: rate.NewLimiter(rate.Every(10*time.Second), 1),
		buckets:  map[string]*rate.Limiter{},
	}
}

// Stats returns the counts so far.
func (r *EventRecorder) Stats() RecorderStats {
	return RecorderStats{
		Created: r.created.Load(),
		Limited: r.limited.Load(),
		Dropped: r.dropped.Load(),
		Failed:  r.failed.Load(),
	}
}

// Event queues an Event about object, of type corev1.EventTypeNormal or
// corev1.EventTypeWarning, unless object has had too many lately or the
// queue is full. It never blocks.
func (r *EventRecorder) Event(object runtime.Object, eventtype, reason, message string) {
	if eventtype != corev1.EventTypeNormal && eventtype != corev1.EventTypeWarning {
		r.log.Error("not recording an Event of an unknown type", "type", eventtype, "reason", reason)
		return
	}
	ref, err := reference(object)
	if err != nil {
		r.log.Error("not recording an Event", "error", err, "reason", reason)
		return
	}
	key := ref.Kind + " " + ref.Namespace + "/" + ref.Name
	now := r.opts.Now()
	r.mu.Lock()
	allowed := r.allow(key, now)
	var stamp int64
	if allowed {
		// Names are unique per recorder even when the clock repeats a
		// reading; a name taken by another replica is AlreadyExists.
		stamp = max(now.UnixNano(), r.lastName+1)
		r.lastName = stamp
	}
	r.mu.Unlock()
	if !allowed {
		n := r.limited.Add(1)
		if r.logLimit.Allow() {
			r.log.Warn("Event not recorded: its object had too many lately", "object", key, "reason", reason, "limitedTotal", n)
		}
		return
	}

	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	t := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: eventName(ref.Name, stamp), Namespace: namespace},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             truncate(message, maxMessage),
		Type:                eventtype,
		Source:              corev1.EventSource{Component: Component},
		FirstTimestamp:      t,
		LastTimestamp:       t,
		Count:               1,
		ReportingController: Component,
		ReportingInstance:   r.opts.Instance,
	}
	select {
	case r.queue <- ev:
	default:
		n := r.dropped.Add(1)
		if r.logLimit.Allow() {
			r.log.Warn("Event dropped: too many waiting to be written", "object", key, "reason", reason, "queue", r.opts.Queue, "droppedTotal", n)
		}
	}
}

// allow takes a token from key's bucket at now. A bucket refilled to the
// full burst is the same as a new one, so such buckets are removed when a
// new object arrives once per Every, and whenever Objects buckets are
// kept; if none has refilled then, the fullest is removed, the one a fresh
// bucket favours least. The caller holds mu.
func (r *EventRecorder) allow(key string, now time.Time) bool {
	b, ok := r.buckets[key]
	if !ok {
		if now.Sub(r.swept) >= r.opts.Every || len(r.buckets) >= r.opts.Objects {
			r.sweep(now)
		}
		b = rate.NewLimiter(rate.Every(r.opts.Every), r.opts.Burst)
		r.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

func (r *EventRecorder) sweep(now time.Time) {
	r.swept = now
	fullest, most := "", math.Inf(-1)
	for k, b := range r.buckets {
		tokens := b.TokensAt(now)
		if tokens >= float64(r.opts.Burst) {
			delete(r.buckets, k)
			continue
		}
		if tokens > most {
			fullest, most = k, tokens
		}
	}
	if len(r.buckets) >= r.opts.Objects {
		delete(r.buckets, fullest)
	}
}

// Run writes queued Events until ctx ends; what is still queued then is
// dropped.
func (r *EventRecorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			r.write(ctx, ev)
		}
	}
}

// write creates ev, trying again after a backoff while the API server gives
// no answer or sheds load, up to Attempts times.
func (r *EventRecorder) write(ctx context.Context, ev *corev1.Event) {
	backoff := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		_, err := r.sink.CreateEvent(ctx, ev)
		switch {
		case err == nil:
			r.created.Add(1)
			return
		case apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			// Another replica wrote one of the same name in the same
			// nanosecond, or the Service's namespace is going away.
			r.failed.Add(1)
			r.log.Debug("Event not recorded", "error", err, "object", objectKey(ev), "reason", ev.Reason)
			return
		case ctx.Err() != nil || !retryable(err) || attempt >= r.opts.Attempts:
			r.failed.Add(1)
			r.log.Error("recording an Event", "error", err, "object", objectKey(ev), "reason", ev.Reason, "attempts", attempt)
			return
		}
		// Jittered, so that replicas that lost the API server together do
		// not return to it in step.
		t := time.NewTimer(time.Duration(float64(backoff) * (0.5 + rand.Float64())))
		select {
		case <-ctx.Done():
			t.Stop()
			r.failed.Add(1)
			return
		case <-t.C:
		}
		backoff *= 2
	}
}

// retryable reports whether a failed create may succeed if tried again:
// the API server could not be reached, timed out or shed load. Any other
// answer (invalid, forbidden) would be the same next time.
func retryable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	code := status.Status().Code
	return code == http.StatusTooManyRequests || code >= http.StatusInternalServerError
}

func objectKey(ev *corev1.Event) string {
	return ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name
}

// reference names object in an Event. Objects from an informer's cache
// carry no kind or apiVersion (decoding into Go types drops them), so for
// the Services the gateway records about they come from the Go type.
func reference(object runtime.Object) (corev1.ObjectReference, error) {
	m, err := meta.Accessor(object)
	if err != nil {
		return corev1.ObjectReference{}, fmt.Errorf("referring to a %T: %w", object, err)
	}
	gvk := object.GetObjectKind().GroupVersionKind()
	if gvk.Empty() {
		switch object.(type) {
		case *corev1.Service:
			gvk = corev1.SchemeGroupVersion.WithKind("Service")
		case *corev1.Namespace:
			gvk = corev1.SchemeGroupVersion.WithKind("Namespace")
		default:
			return corev1.ObjectReference{}, fmt.Errorf("referring to a %T: its kind is not known", object)
		}
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return corev1.ObjectReference{
		Kind:            kind,
		APIVersion:      apiVersion,
		Namespace:       m.GetNamespace(),
		Name:            m.GetName(),
		UID:             m.GetUID(),
		ResourceVersion: m.GetResourceVersion(),
	}, nil
}

// eventName is record's name for an Event: the object's name and the
// timestamp in hex, which sorts and is unique per object. A name too long
// for that is cut, keeping it a DNS subdomain.
func eventName(object string, stamp int64) string {
	suffix := fmt.Sprintf(".%x", stamp)
	const maxName = 253
	if len(object)+len(suffix) > maxName {
		object = strings.TrimRight(object[:maxName-len(suffix)], ".-")
	}
	return object + suffix
}
