// Package webhook is Gatehouse's validating admission webhook: it checks the
// routing annotations of a Service at `kubectl apply` time with the same
// parser and the same cross-Service rules the gateway itself applies, and
// denies the Service with every problem listed, each with its line, column
// and field path. It parses YAML into typed values and nothing else: it never
// renders, templates or executes what it is given.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// Reviewer runs the gateway's whole pipeline on a Service's annotations —
// parsing, budgets, the router's own checks, and the rules that need other
// Services (hosts another namespace owns, targets, canary weights) — and
// returns every problem by annotation key. The gateway's current snapshot
// implements it, so what the webhook admits the gateway compiles and
// serves; snapshot.Options implements it for a Service on its own.
type Reviewer interface {
	Review(svc *corev1.Service) map[string]annotations.Problems
}

// Options configure a Handler. Zero values mean defaults.
type Options struct {
	// Emissary also checks getambassador.io/config (the Reviewers parse it
	// in Emissary's dialect).
	Emissary bool

	// Reviewer returns the gateway's current view, or nil before the
	// gateway has one; the webhook then reviews each Service on its own
	// with Alone and says so in a warning (the gateway still enforces the
	// rules that need other Services).
	Reviewer func() Reviewer
	// Alone reviews a Service on its own; nil skips the review when there
	// is no current view (the annotations are then only size-checked).
	Alone Reviewer

	// MaxBodyBytes bounds a review; 0 means 3 MiB, the API server's own
	// limit on a request body, so nothing legitimate is larger.
	MaxBodyBytes int64
	// Timeout bounds one review; 0 means 5 s, well inside the API server's
	// default webhook timeout of 10 s, so a stuck review fails fast.
	Timeout time.Duration

	// MaxConcurrent bounds the reviews read and checked at once; 0 means
	// DefaultMaxConcurrent(). A review holds its body (up to MaxBodyBytes)
	// and its parse for as long as it runs, and the webhook shares the
	// gateway's process and memory limit, so an unbounded burst, from an
	// API server or from anything else that can reach the port, would cost
	// the data plane memory and CPU.
	MaxConcurrent int
	// MaxWait bounds how long a review beyond MaxConcurrent waits for a
	// slot (less when its own deadline is nearer); 0 means 1 s. Then it is
	// answered 429 with Retry-After: 1: the API server's client retries
	// that within the webhook's timeoutSeconds, and after it the
	// failurePolicy decides. Waiting longer would only hold the API
	// server's request while the burst lasts.
	MaxWait time.Duration

	Logger *slog.Logger
}

// DefaultMaxConcurrent is MaxConcurrent's default: the number of CPUs Go
// uses, at least 2 and at most 4. A review is CPU-bound (decode, parse,
// compile, cross-check), so more at once than there are CPUs only adds
// memory; at least 2 keeps one slow review from holding up the next; at
// most 4 bounds memory on a big node, where GOMAXPROCS follows the node
// (the manifest sets no CPU limit): the costliest review that reaches the
// parser holds about 17 MiB while it runs (BenchmarkReviewAtLimits,
// peak-MiB), so four hold about 70 MiB, which the manifest's 256Mi limit
// has room for beside the gateway's own 188 MB at 10,000 Services
// (docs/latency.md). An ordinary review takes milliseconds, so 2 to 4
// slots still admit hundreds of Services a second.
func DefaultMaxConcurrent() int {
	return min(max(runtime.GOMAXPROCS(0), 2), 4)
}

// Handler serves AdmissionReview v1 requests for Services. It is safe for
// concurrent use.
type Handler struct {
	opts  Options
	keys  []string
	slots chan struct{} // one token per review in progress
}

// New returns a Handler.
func New(opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 3 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent()
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, keys: []string{annotations.Key}, slots: make(chan struct{}, opts.MaxConcurrent)}
	if opts.Emissary {
		h.keys = append(h.keys, annotations.EmissaryKey)
	}
	return h
}

// HTTPHandler is the Handler bounded by its Timeout: a review that takes
// longer answers 503, which the API server treats as a failed call. The
// review itself runs on and keeps its concurrency slot until it returns,
// so the bound counts the work still being done, not only the answers
// still owed.
func (h *Handler) HTTPHandler() http.Handler {
	return http.TimeoutHandler(h, h.opts.Timeout, "admission review timed out")
}

// ServeHTTP answers one AdmissionReview. The cheap refusals (method,
// content type) come first; then the review waits for a concurrency slot,
// and only then is its body read, so memory spent on bodies is bounded by
// the slots too; then the annotations' size and document count are checked
// before any YAML is parsed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "content type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	release, ok := h.acquire(r.Context())
	if !ok {
		h.opts.Logger.Warn("admission review refused: too many in progress", "max_concurrent", h.opts.MaxConcurrent, "remote", r.RemoteAddr)
		// The API server's client retries a 429 that carries Retry-After
		// while its timeoutSeconds lasts; after that failurePolicy decides.
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("too many admission reviews in progress (at most %d); retry later", h.opts.MaxConcurrent), http.StatusTooManyRequests)
		return
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "admission review too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading admission review: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "body is not an AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	resp := h.admit(review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// acquire waits for a concurrency slot for at most MaxWait or until ctx
// ends. A bounded wait rather than none absorbs short bursts (several
// clients applying Services at once); a bounded wait rather than an
// unbounded one keeps a flood from piling up goroutines and API server
// requests behind the slots.
func (h *Handler) acquire(ctx context.Context) (release func(), ok bool) {
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, true
	default:
	}
	t := time.NewTimer(h.opts.MaxWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

// admit applies the pre-parse limits, then review. A panic in the limits
// becomes an errored response like one in review, so a bug fails the call
// instead of the process.
func (h *Handler) admit(req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("admission review panicked", "panic", fmt.Sprint(p), "uid", req.UID)
			resp = errored(http.StatusInternalServerError, "internal error while checking the Service")
		}
	}()
	if resp := h.overLimits(req); resp != nil {
		return resp
	}
	return h.review(req)
}

// review decides one request. A panic while checking becomes an errored
// response, so a bug fails the call instead of the process.
func (h *Handler) review(req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("admission review panicked", "panic", fmt.Sprint(p), "uid", req.UID)
			resp = errored(http.StatusInternalServerError, "internal error while checking the Service")
		}
	}()
	if req.Kind.Group != "" || req.Kind.Kind != "Service" {
		return allowed(nil) // not ours; matchConditions should not have sent it
	}
	// Deleting never needs permission from the gateway, and neither does
	// anything that is not a create or an update.
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return allowed(nil)
	}
	var svc corev1.Service
	if err := json.Unmarshal(req.Object.Raw, &svc); err != nil {
		return errored(http.StatusBadRequest, "decoding the Service: "+err.Error())
	}
	if req.Operation == admissionv1.Update {
		var old corev1.Service
		if err := json.Unmarshal(req.OldObject.Raw, &old); err == nil && h.sameAnnotations(&old, &svc) {
			// Scaling or fixing something else must never be blocked by an
			// annotation that was already there.
			return allowed(nil)
		}
	}
	if svc.Namespace == "" {
		svc.Namespace = req.Namespace
	}
	return h.check(&svc)
}

func (h *Handler) sameAnnotations(a, b *corev1.Service) bool {
	for _, k := range h.keys {
		va, oka := a.Annotations[k]
		vb, okb := b.Annotations[k]
		if oka != okb || va != vb {
			return false
		}
	}
	return true
}

// check runs the gateway's pipeline on the Service's annotations.
func (h *Handler) check(svc *corev1.Service) *admissionv1.AdmissionResponse {
	var denials, warnings []string
	var reviewer Reviewer
	if h.opts.Reviewer != nil {
		reviewer = h.opts.Reviewer()
	}
	if reviewer == nil {
		reviewer = h.opts.Alone
		warnings = append(warnings, "the gateway has not loaded the cluster's routes yet, so ownership of hosts, targets in other namespaces and canary weights were not checked; the gateway enforces them when it loads this Service")
	}
	if reviewer != nil {
		problems := reviewer.Review(svc)
		for _, key := range h.keys {
			denials, warnings = sortOut(key, problems[key], denials, warnings)
		}
	}
	if len(denials) > 0 {
		resp := errored(http.StatusForbidden, fmt.Sprintf("Service %s/%s: %d problem(s) in its routing annotations:\n%s",
			svc.Namespace, svc.Name, len(denials), strings.Join(denials, "\n")))
		resp.Result.Reason = metav1.StatusReasonInvalid
		resp.Warnings = warnings
		return resp
	}
	return allowed(warnings)
}

// sortOut formats problems as "KEY: line L, column C: PATH: message" and adds
// them to denials or warnings.
func sortOut(key string, problems annotations.Problems, denials, warnings []string) ([]string, []string) {
	for _, p := range problems {
		msg := key + ": " + p.Error()
		if p.Warning {
			warnings = append(warnings, msg)
		} else {
			denials = append(denials, msg)
		}
	}
	return denials, warnings
}

func allowed(warnings []string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
}

func errored(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}
