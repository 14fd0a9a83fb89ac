package snapshot

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/router"
)

// worstRegex is a pattern that defeats Go's RE2 fast paths (no literal to
// search for, not one-pass, every thread alive to the end): matching it
// costs close to the worst per instruction and input byte. Padded to the
// program budget.
func worstRegex(budget int) string {
	for n := 60; n > 0; n-- {
		p := "/(?:[a-z]*){" + fmt.Sprint(n) + "}x"
		if size, err := programSize(regexKey{p, false}); err == nil && size <= budget {
			return p
		}
	}
	return "/x"
}

// worstCPUAnnotation spends a Service's whole regex budget on host-less
// path expressions that one crafted request runs in full, one after another.
func worstCPUAnnotation(b Budgets) string {
	re := worstRegex(b.MaxRegexProgram)
	size, _ := programSize(regexKey{re, false})
	var docs []string
	for i := 0; i < b.MaxRegexTotal/size && i < b.MaxRoutes; i++ {
		docs = append(docs, mapping(fmt.Sprintf("r%d", i), `"`+re+`"`, "s", "prefix_regex: true", fmt.Sprintf("precedence: %d", i)))
	}
	return strings.Join(docs, "---\n")
}

// worstMemoryAnnotation fills the 256 KiB annotation with as many routes
// and conditions as the budgets admit, with long values.
func worstMemoryAnnotation(b Budgets) string {
	var sb strings.Builder
	for i := 0; i < b.MaxRoutes; i++ {
		doc := "kind: Mapping\nname: r" + fmt.Sprint(i) + "\nprefix: /" + fmt.Sprint(i) + "/\nservice: s\nhost: h" + fmt.Sprint(i) + ".example.com\nheaders:\n"
		for j := 0; j < b.MaxConditions; j++ {
			doc += fmt.Sprintf("  x-h%d: \"%s\"\n", j, strings.Repeat("v", 16))
		}
		if sb.Len()+len(doc)+4 > 256<<10 {
			break
		}
		if i > 0 {
			sb.WriteString("---\n")
		}
		sb.WriteString(doc)
	}
	return sb.String()
}

// TestWorstAnnotationsAdmitted: the worst-case annotations the benchmarks
// measure are admitted at the defaults, so the figures are of what a
// tenant can really do, and one step further is denied.
func TestWorstAnnotationsAdmitted(t *testing.T) {
	d := DefaultBudgets()
	for name, text := range map[string]string{"cpu": worstCPUAnnotation(d), "memory": worstMemoryAnnotation(d)} {
		if ps := (Options{}).Review(service("t", "s", text)); ps[annotations.Key].HasErrors() {
			t.Errorf("%s: worst annotation denied: %v", name, ps)
		}
	}
	more := worstCPUAnnotation(d) + "---\n" + mapping("one-more", `"`+worstRegex(d.MaxRegexProgram)+`"`, "s", "prefix_regex: true")
	if ps := (Options{}).Review(service("t", "s", more)); !ps[annotations.Key].HasErrors() {
		t.Errorf("one more use of the worst expression was admitted")
	}
}

// BenchmarkWorstRequest is the CPU one crafted request costs against the
// worst admitted annotation at the default budgets: every expression runs
// on a path of MaxRegexInput bytes and fails at the end. Compare with
// BenchmarkOrdinaryRequest, a plain prefix hit.
func BenchmarkWorstRequest(b *testing.B) {
	d := DefaultBudgets()
	s, _ := newBuilder().Build(Input{Services: []*corev1.Service{service("t", "s", worstCPUAnnotation(d))}})
	req := &router.Request{Host: "a.example.com", Method: "GET", Path: "/" + strings.Repeat("a", d.MaxRegexInput-1)}
	if _, ok := s.Table.Match(req); ok {
		b.Fatal("the crafted request matched")
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Table.Match(req)
	}
}

func BenchmarkOrdinaryRequest(b *testing.B) {
	s, _ := newBuilder().Build(Input{Services: []*corev1.Service{service("t", "s", mapping("a", "/a/", "s"))}})
	req := &router.Request{Host: "a.example.com", Method: "GET", Path: "/a/" + strings.Repeat("a", 100)}
	b.ReportAllocs()
	for b.Loop() {
		s.Table.Match(req)
	}
}

// BenchmarkWorstMemory reports the heap one Service with the worst admitted
// annotation holds once built (heap-bytes/service), against an ordinary
// one-Mapping Service.
func BenchmarkWorstMemory(b *testing.B) {
	const services = 20
	for name, text := range map[string]string{
		"worst":    worstMemoryAnnotation(DefaultBudgets()),
		"cpu":      worstCPUAnnotation(DefaultBudgets()),
		"ordinary": mapping("a", "/a/", "s"),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var perService float64
			for b.Loop() {
				var in Input
				for i := range services {
					// A host per Service keeps every copy's routes apart.
					in.Services = append(in.Services, service(fmt.Sprintf("ns%d", i), "s", strings.ReplaceAll(text, ".example.com", fmt.Sprintf(".ns%d.example.com", i))))
				}
				before := heapInUse()
				s, _ := newBuilder().Build(in)
				perService = float64(heapInUse()-before) / services
				runtime.KeepAlive(s)
				runtime.KeepAlive(in)
			}
			b.ReportMetric(perService, "heap-bytes/service")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
