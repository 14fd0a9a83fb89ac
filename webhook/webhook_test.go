package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

func serviceJSON(t testing.TB, annotation string) []byte {
	t.Helper()
	svc := corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "users", Namespace: "team"},
	}
	if annotation != "" {
		svc.Annotations = map[string]string{annotations.Key: annotation}
	}
	raw, err := json.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func reviewBody(t testing.TB, op admissionv1.Operation, kind string, object, old []byte) []byte {
	t.Helper()
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Namespace: "team", Operation: op,
			Object: runtime.RawExtension{Raw: object}, OldObject: runtime.RawExtension{Raw: old},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func post(h http.Handler, body []byte, contentType string) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
	req := httptest.NewRequest("POST", "/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var out admissionv1.AdmissionReview
	if json.Unmarshal(w.Body.Bytes(), &out) != nil {
		return w, nil
	}
	return w, out.Response
}

// stubReviewer is the pipeline on a Service alone, plus a cross-Service
// rule: any Mapping whose prefix is /taken/ is denied.
type stubReviewer struct{}

func (stubReviewer) Review(svc *corev1.Service) map[string]annotations.Problems {
	out := snapshot.Options{Emissary: true}.Review(svc)
	for _, key := range []string{annotations.Key, annotations.EmissaryKey} {
		text, ok := svc.Annotations[key]
		if !ok {
			continue
		}
		cfg, _ := annotations.Parse(text, annotations.Options{Namespace: svc.Namespace})
		if cfg == nil {
			continue
		}
		for _, m := range cfg.Mappings {
			if m.Prefix == "/taken/" {
				out[key] = append(out[key], annotations.Problem{Pos: m.Pos, Path: `Mapping "` + m.Name + `"`, Message: `host "*" and prefix "/taken/" are already routed by namespace "other"`})
			}
		}
	}
	return out
}

const valid = "kind: Mapping\nname: users\nprefix: /users/\nservice: users\n"

func TestReview(t *testing.T) {
	h := New(Options{Reviewer: func() Reviewer { return stubReviewer{} }})
	two := "kind: Mapping\nname: users\nprefx: /users/\nprefix: /u/\nservice: users\nprecedence: high\n"
	for _, c := range []struct {
		name     string
		op       admissionv1.Operation
		kind     string
		object   []byte
		old      []byte
		allowed  bool
		contains []string
	}{
		{"valid", admissionv1.Create, "Service", serviceJSON(t, valid), nil, true, nil},
		{"no annotation", admissionv1.Create, "Service", serviceJSON(t, ""), nil, true, nil},
		{"two errors", admissionv1.Create, "Service", serviceJSON(t, two), nil, false,
			[]string{"2 problem(s)", `gatehouse.dev/config: line 3, column 1: Mapping "users".prefx: unknown field "prefx" (did you mean "prefix"?)`,
				`line 6, column 13: Mapping "users".precedence: expected an integer`}},
		{"tab", admissionv1.Create, "Service", serviceJSON(t, "kind: Mapping\nname: a\nheaders:\n\tx: y\n"), nil, false, []string{"line 4, column 1", "tab character"}},
		{"taken", admissionv1.Create, "Service", serviceJSON(t, "kind: Mapping\nname: a\nprefix: /taken/\nservice: a\n"), nil, false, []string{`already routed by namespace "other"`}},
		{"update keeps a bad annotation", admissionv1.Update, "Service", serviceJSON(t, two), serviceJSON(t, two), true, nil},
		{"update introduces a bad annotation", admissionv1.Update, "Service", serviceJSON(t, two), serviceJSON(t, valid), false, []string{"prefx"}},
		{"delete", admissionv1.Delete, "Service", nil, serviceJSON(t, two), true, nil},
		{"not a Service", admissionv1.Create, "ConfigMap", []byte(`{}`), nil, true, nil},
	} {
		_, resp := post(h, reviewBody(t, c.op, c.kind, c.object, c.old), "application/json")
		if resp == nil {
			t.Errorf("%s: no AdmissionReview response", c.name)
			continue
		}
		if resp.UID != "uid-1" || resp.Allowed != c.allowed {
			t.Errorf("%s: uid %q allowed %v, want uid-1 and %v (%+v)", c.name, resp.UID, resp.Allowed, c.allowed, resp.Result)
			continue
		}
		for _, want := range c.contains {
			if resp.Result == nil || !strings.Contains(resp.Result.Message, want) {
				t.Errorf("%s: message lacks %q:\n%v", c.name, want, resp.Result)
			}
		}
	}
}

func TestWarningsAndMissingView(t *testing.T) {
	h := New(Options{Alone: snapshot.Options{}}) // no cross-Service view yet
	_, resp := post(h, reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, valid+"retry_policy:\n  num_retries: 2\n"), nil), "application/json")
	if resp == nil || !resp.Allowed {
		t.Fatalf("response %+v", resp)
	}
	joined := strings.Join(resp.Warnings, "\n")
	for _, want := range []string{"retry_policy without retry_on retries nothing", "ownership of hosts, targets in other namespaces and canary weights were not checked"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
}

func TestHardening(t *testing.T) {
	h := New(Options{MaxBodyBytes: 1024})
	if w, _ := post(h, reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, valid), nil), "text/plain"); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d", w.Code)
	}
	big := reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, strings.Repeat("# padding\n", 200)+valid), nil)
	if w, _ := post(h, big, "application/json"); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", w.Code)
	}
	if w, _ := post(h, []byte(`{"kind":"AdmissionReview"}`), "application/json"); w.Code != http.StatusBadRequest {
		t.Errorf("review without a request: %d", w.Code)
	}
	req := httptest.NewRequest("GET", "/validate", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

// panicky is a Reviewer with a bug.
type panicky struct{}

func (panicky) Review(*corev1.Service) map[string]annotations.Problems {
	panic("boom")
}

func TestPanicBecomesErroredResponse(t *testing.T) {
	h := New(Options{Reviewer: func() Reviewer { return panicky{} }})
	w, resp := post(h, reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, valid), nil), "application/json")
	if w.Code != 200 || resp == nil || resp.Allowed || resp.Result.Code != 500 {
		t.Errorf("panic: HTTP %d, response %+v", w.Code, resp)
	}
}

// FuzzReview feeds arbitrary bodies and annotations to the handler: it never
// panics, and whatever it answers is an HTTP error or an AdmissionReview.
func FuzzReview(f *testing.F) {
	f.Add([]byte(`{}`), valid)
	f.Add(reviewBody(f, admissionv1.Create, "Service", serviceJSON(f, valid), nil), "kind: Mapping\n\tname: x")
	f.Add([]byte(`{"request":{"uid":"x","kind":{"kind":"Service"},"operation":"CREATE","object":{"metadata":{"annotations":{"gatehouse.dev/config":"*a"}}}}}`), "")
	h := New(Options{Emissary: true, Reviewer: func() Reviewer { return stubReviewer{} }})
	f.Fuzz(func(t *testing.T, body []byte, annotation string) {
		for _, b := range [][]byte{body, reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, annotation), nil)} {
			w, resp := post(h, b, "application/json")
			if w.Code == 200 && resp == nil {
				t.Fatalf("200 without an AdmissionReview: %q", w.Body.String())
			}
		}
	})
}
