package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// serviceWith is a Service in namespace team carrying annots.
func serviceWith(t testing.TB, annots map[string]string) []byte {
	t.Helper()
	raw, err := json.Marshal(corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "users", Namespace: "team", Annotations: annots},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// padded is the valid annotation grown to exactly n bytes with a comment.
func padded(t testing.TB, n int) string {
	t.Helper()
	const head = "# "
	if n < len(valid)+len(head)+1 {
		t.Fatalf("cannot pad to %d bytes", n)
	}
	return head + strings.Repeat("x", n-len(valid)-len(head)-1) + "\n" + valid
}

// mappings is n valid Mapping documents, each with its own name and prefix.
func mappings(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "kind: Mapping\nname: m%d\nprefix: /m%d/\nservice: users\n", i, i)
	}
	return b.String()
}

// TestLimitsAgreeWithParser pins the pre-parse limits to the figures
// annotations.Parse enforces, which it does not export: the webhook must
// never deny before parsing what the parser would accept, nor let through
// unparsed what it would stop.
func TestLimitsAgreeWithParser(t *testing.T) {
	sizeProblem := func(text string) bool {
		_, problems := annotations.Parse(text, annotations.Options{Namespace: "team"})
		return strings.Contains(problems.Error(), "(256 KiB) are allowed")
	}
	if sizeProblem(padded(t, maxAnnotationBytes)) || !sizeProblem(padded(t, maxAnnotationBytes+1)) {
		t.Errorf("annotations.Parse does not stop at %d bytes as maxAnnotationBytes says", maxAnnotationBytes)
	}
	countProblem := func(text string) bool {
		_, problems := annotations.Parse(text, annotations.Options{Namespace: "team"})
		return strings.Contains(problems.Error(), fmt.Sprintf("more than %d documents", maxAnnotationDocuments))
	}
	if countProblem(mappings(maxAnnotationDocuments)) || !countProblem(mappings(maxAnnotationDocuments+1)) {
		t.Errorf("annotations.Parse does not stop at %d documents as maxAnnotationDocuments says", maxAnnotationDocuments)
	}
}

func TestPreParseLimits(t *testing.T) {
	const emissaryKey = annotations.EmissaryKey
	emissary := "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: users\nprefix: /users/\nservice: users\n"
	overSize := padded(t, maxAnnotationBytes+1)
	overCount := mappings(maxAnnotationDocuments+1) + "---\nthis: is never parsed: [\n"
	for _, c := range []struct {
		name     string
		opts     Options
		op       admissionv1.Operation
		object   map[string]string
		old      map[string]string
		allowed  bool
		contains []string
	}{
		{"at the size limit", Options{}, admissionv1.Create, map[string]string{annotations.Key: padded(t, maxAnnotationBytes)}, nil, true, nil},
		{"one byte past it", Options{}, admissionv1.Create, map[string]string{annotations.Key: overSize}, nil, false,
			[]string{"Service team/users: 1 problem(s)", annotations.Key + ": the annotation is 262145 bytes; at most 262144 (256 KiB) are allowed"}},
		{"at the document limit", Options{}, admissionv1.Create, map[string]string{annotations.Key: mappings(maxAnnotationDocuments)}, nil, true, nil},
		{"empty documents are not counted", Options{}, admissionv1.Create,
			map[string]string{annotations.Key: "# header\n---\n" + mappings(maxAnnotationDocuments) + "\n---\n# trailer\n---\n"}, nil, true, nil},
		// The parser would report the syntax error at the end; the count
		// comes first and is all that is said.
		{"one document past it", Options{}, admissionv1.Create, map[string]string{annotations.Key: overCount}, nil, false,
			[]string{annotations.Key + ": the annotation holds 1002 YAML documents; at most 1000 are allowed, so it was not parsed"}},
		{"both keys with Emissary", Options{Emissary: true}, admissionv1.Create,
			map[string]string{annotations.Key: overSize, emissaryKey: strings.Repeat("---\n"+emissary, maxAnnotationDocuments+1)}, nil, false,
			[]string{"2 problem(s)", annotations.Key + ": the annotation is 262145 bytes", emissaryKey + ": the annotation holds 1001 YAML documents"}},
		{"Emissary annotation at the size limit", Options{Emissary: true}, admissionv1.Create,
			map[string]string{emissaryKey: emissary + "# " + strings.Repeat("x", maxAnnotationBytes-len(emissary)-3) + "\n"}, nil, true, nil},
		{"Emissary annotation at the document limit", Options{Emissary: true}, admissionv1.Create,
			map[string]string{emissaryKey: strings.ReplaceAll(mappings(maxAnnotationDocuments), "kind:", "apiVersion: getambassador.io/v3alpha1\nkind:")}, nil, true, nil},
		{"Emissary annotation unread without Emissary", Options{}, admissionv1.Create,
			map[string]string{annotations.Key: valid, emissaryKey: overSize}, nil, true, nil},
		{"update leaving an oversized annotation as it was", Options{}, admissionv1.Update,
			map[string]string{annotations.Key: overSize, "team": "b"}, map[string]string{annotations.Key: overSize, "team": "a"}, true, nil},
		{"update introducing one", Options{}, admissionv1.Update,
			map[string]string{annotations.Key: overCount}, map[string]string{annotations.Key: valid}, false, []string{"1002 YAML documents"}},
		{"delete", Options{}, admissionv1.Delete, nil, map[string]string{annotations.Key: overSize}, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var object, old []byte
			if c.object != nil {
				object = serviceWith(t, c.object)
			}
			if c.old != nil {
				old = serviceWith(t, c.old)
			}
			w, resp := post(New(c.opts), reviewBody(t, c.op, "Service", object, old), "application/json")
			if w.Code != http.StatusOK || resp == nil {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
			}
			if resp.Allowed != c.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, c.allowed, resp.Result)
			}
			if !c.allowed && (resp.Result.Code != http.StatusForbidden || resp.Result.Reason != metav1.StatusReasonInvalid) {
				t.Errorf("denied with code %d reason %q, want 403 Invalid like any other annotation problem", resp.Result.Code, resp.Result.Reason)
			}
			for _, want := range c.contains {
				if !strings.Contains(resp.Result.Message, want) {
					t.Errorf("message lacks %q:\n%s", want, resp.Result.Message)
				}
			}
		})
	}
}

func TestCountDocuments(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"# only a comment\n", 0},
		{"a: 1", 1},
		{"---\na: 1\n", 1},
		{"a: 1\n---\nb: 2\n", 2},
		{"a: 1\n---\n", 1},
		{"# c\n---\n  # d\n---\na: 1\n", 1},
		{"--- a\n--- b\n", 2},
		{"--- # c\na: 1\n", 1},
		{"---\t[x]\n", 1},
		{"a: |\n  ---\n  text\n", 1},   // indented: not a marker
		{"----\n", 1},                  // a plain scalar
		{"---x: 1\n", 1},               // a key, not a marker
		{"a: 1\r\n---\r\nb: 2\r\n", 2}, // CRLF
		{"a: 1\r---\rb: 2", 2},         // CR alone
		{"a: 1\u0085---\u2028b: 2\u2029---\nc: 3", 3},
		{"%YAML 1.2\n---\na: 1\n", 1},
		{"a: 1\n...\n---\nb: 2\n", 2},
		{"a: 1\n...\n", 1},
		{"\ufeff---\na: 1\n", 1},
	} {
		if got := countDocuments(c.in); got != c.want {
			t.Errorf("countDocuments(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// parserCount counts documents the way annotations.Parse does: non-empty
// documents of a stream the YAML library reads to its end. ok is false when
// it cannot.
func parserCount(s string) (n int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return n, true
		}
		if err != nil {
			return 0, false
		}
		root := doc.Content[0]
		if !(root.Kind == yaml.ScalarNode && root.Value == "" && root.ShortTag() == "!!null" && root.Style == 0) {
			n++
		}
	}
}

// printable reports whether s is UTF-8 made of YAML's printable characters.
// The parser denies anything else before reading a document, so a count
// of such text never decides anything.
func printable(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return false
		case r == '\t', r == '\n', r == '\r', r >= 0x20 && r <= 0x7E, r == 0x85:
		case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// FuzzCountDocuments checks the pre-count against the YAML library: on any
// stream it reads to the end, the two agree, so the webhook never denies by
// count what the parser would accept. Tags and anchors are left out: a
// document holding nothing but "!!null" or "&a" is empty to the parser and
// counted here, a difference no real annotation meets at 1,000 documents.
func FuzzCountDocuments(f *testing.F) {
	for _, s := range []string{"a: 1\n---\nb: 2\n", "--- # c\n---\n", "%YAML 1.2\n---\na\n...\n", "a: |\n  ---\n", "[a,\n b]\n---\n'x\n y'\n", "a: 1\r---\rb", "\ufeff--- x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := countDocuments(s)
		if strings.ContainsAny(s, "!&") || !printable(s) {
			return
		}
		if want, ok := parserCount(s); ok && got != want {
			t.Errorf("countDocuments(%q) = %d, the YAML library reads %d non-empty documents", s, got, want)
		}
	})
}

// atLimits is the costliest review the pre-parse limits let reach the
// parser: both annotations (Emissary on) near 256 KiB and 1000 Mappings, in
// a 2.4 MiB body padded by another annotation. The pipeline denies it (more
// Mappings than a Service may route), but only after parsing all of it.
func atLimits(b *testing.B) []byte {
	var sb strings.Builder
	for i := range maxAnnotationDocuments {
		fmt.Fprintf(&sb, "---\nkind: Mapping\nname: mapping-%04d\nhost: host-%04d.tenant.example.com\nprefix: /api/v%d/resources/\nservice: users\n"+
			"headers:\n  x-tenant: tenant-%04d\n  x-region: eu-west-1\nquery_parameters:\n  version: v%d\n  format: json\ntimeout_ms: 3000\n", i, i, i, i, i)
	}
	native := sb.String()
	emissary := strings.ReplaceAll(native, "kind:", "apiVersion: getambassador.io/v3alpha1\nkind:")
	emissary = emissary[:strings.LastIndex(emissary[:maxAnnotationBytes], "---\n")]
	if len(native) > maxAnnotationBytes {
		b.Fatalf("the native annotation is %d bytes", len(native))
	}
	return reviewBody(b, admissionv1.Create, "Service", serviceWith(b, map[string]string{
		annotations.Key: native, annotations.EmissaryKey: emissary, "padding": strings.Repeat("x", 2<<20),
	}), nil)
}

// BenchmarkReviewAtLimits times the costliest review that gets past the
// pre-parse limits and reports, besides its allocations, peak-MiB: the live
// heap one such review adds, sampled with the collector at GOGC=5 so the
// heap stays near what is live. DefaultMaxConcurrent's cap is sized by it.
func BenchmarkReviewAtLimits(b *testing.B) {
	body := atLimits(b)
	// The whole pipeline, as the gateway wires it (its snapshot reviews
	// with the same code plus the cross-Service rules).
	h := New(Options{Emissary: true, Alone: snapshot.Options{Emissary: true}})
	if w, resp := post(h, body, "application/json"); w.Code != http.StatusOK || resp == nil || resp.Result == nil ||
		strings.Contains(resp.Result.Message, "so it was not parsed") {
		b.Fatalf("HTTP %d: want a review the parser sees: %+v", w.Code, resp)
	}
	peak := peakHeap(func() { post(h, body, "application/json") })
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		post(h, body, "application/json")
	}
	// After the loop: its start deletes metrics reported earlier.
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
}

// peakHeap returns how far the live heap rises above its level before f
// while f runs.
func peakHeap(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	f()
	close(done)
	<-sampled
	return max(peak.Load(), base) - base
}
