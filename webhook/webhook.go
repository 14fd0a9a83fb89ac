// Package webhook is Gatehouse's validating admission webhook: it checks the
// routing annotations of a Service at `kubectl apply` time with the same
// parser and the same cross-Service rules the gateway itself applies, and
// denies the Service with every problem listed, each with its line, column
// and field path. It parses YAML into typed values and nothing else: it never
// renders, templates or executes what it is given.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// Checker applies the rules that need more than one Service (another
// namespace's host and path, targets outside the namespace, canary weights)
// to a Service's parsed annotations, keyed by annotation. The gateway's
// current snapshot implements it.
type Checker interface {
	Check(svc *corev1.Service, cfgs map[string]*annotations.Config) map[string]annotations.Problems
}

// Options configure a Handler. Zero values mean defaults.
type Options struct {
	// Emissary also checks getambassador.io/config, in Emissary's dialect,
	// for documents whose ambassador_id includes AmbassadorID.
	Emissary     bool
	AmbassadorID string

	// Checker returns the current cross-Service view, or nil before the
	// gateway has one; the webhook then checks each Service on its own and
	// says so in a warning (the gateway still enforces the rules).
	Checker func() Checker

	// MaxBodyBytes bounds a review; 0 means 3 MiB, the API server's own
	// limit on a request body, so nothing legitimate is larger.
	MaxBodyBytes int64
	// Timeout bounds one review; 0 means 5 s, well inside the API server's
	// default webhook timeout of 10 s, so a stuck review fails fast.
	Timeout time.Duration

	Logger *slog.Logger
}

// Handler serves AdmissionReview v1 requests for Services.
type Handler struct {
	opts Options
	keys []string
}

// New returns a Handler.
func New(opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 3 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, keys: []string{annotations.Key}}
	if opts.Emissary {
		h.keys = append(h.keys, annotations.EmissaryKey)
	}
	return h
}

// HTTPHandler is the Handler bounded by its Timeout: a review that takes
// longer answers 503, which the API server treats as a failed call.
func (h *Handler) HTTPHandler() http.Handler {
	return http.TimeoutHandler(h, h.opts.Timeout, "admission review timed out")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "content type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
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
	resp := h.review(review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
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

// check parses every annotation we read and applies the cross-Service rules.
func (h *Handler) check(svc *corev1.Service) *admissionv1.AdmissionResponse {
	var denials, warnings []string
	cfgs := map[string]*annotations.Config{}
	for _, key := range h.keys {
		text, ok := svc.Annotations[key]
		if !ok {
			continue
		}
		opts := annotations.Options{Namespace: svc.Namespace}
		if key == annotations.EmissaryKey {
			opts.Dialect, opts.AmbassadorID = annotations.Emissary, h.opts.AmbassadorID
		}
		cfg, problems := annotations.Parse(text, opts)
		denials, warnings = sortOut(key, problems, denials, warnings)
		if cfg != nil {
			cfgs[key] = cfg
		}
	}
	if len(denials) == 0 && len(cfgs) > 0 {
		var checker Checker
		if h.opts.Checker != nil {
			checker = h.opts.Checker()
		}
		if checker == nil {
			warnings = append(warnings, "the gateway has not loaded the cluster's routes yet, so ownership of hosts and paths was not checked; the gateway enforces it when it loads this Service")
		} else {
			for _, key := range h.keys {
				denials, warnings = sortOut(key, checker.Check(svc, cfgs)[key], denials, warnings)
			}
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
