package e2e

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-dev/gatehouse/internal/testotlp"
	"github.com/gatehouse-dev/gatehouse/tracing"
)

const (
	e2eTrace  = "0af7651916cd43dd8448eb211c80319c"
	e2eParent = "b7ad6b7169203331"
)

// tracedUpstream answers 200 and records the traceparent each request
// brought, by its X-Request-Id.
type tracedUpstream struct {
	*upstreamServer
	mu  sync.Mutex
	got map[string]string
}

func startTracedUpstream(t *testing.T) *tracedUpstream {
	tu := &tracedUpstream{got: map[string]string{}}
	tu.upstreamServer = startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tu.mu.Lock()
			tu.got[r.Header.Get("X-Request-Id")] = strings.Join(r.Header.Values("Traceparent"), " | ")
			tu.mu.Unlock()
			io.WriteString(w, "ok")
		})
	})
	return tu
}

// traceparent is what the upstream got with request id, parsed.
func (tu *tracedUpstream) traceparent(t *testing.T, id string) (trace tracing.TraceID, parent tracing.SpanID, flags byte) {
	t.Helper()
	tu.mu.Lock()
	v, ok := tu.got[id]
	tu.mu.Unlock()
	if !ok {
		t.Fatalf("the upstream never got request %s", id)
	}
	trace, parent, flags, valid := tracing.Parse(v)
	if !valid || !strings.HasPrefix(v, "00-") {
		t.Fatalf("request %s: the upstream got traceparent %q", id, v)
	}
	return trace, parent, flags
}

// loggedTraceID is the trace_id of request id's access line.
func (g *gateway) loggedTraceID(id string) string {
	g.t.Helper()
	var found string
	g.eventually("the access log has request "+id, func() bool {
		for _, line := range strings.Split(g.log(), "\n") {
			var rec struct {
				RequestID string `json:"request_id"`
				TraceID   string `json:"trace_id"`
			}
			if strings.Contains(line, id) && json.Unmarshal([]byte(line), &rec) == nil && rec.RequestID == id {
				found = rec.TraceID
				return true
			}
		}
		return false
	})
	return found
}

func tracedConfig(t *testing.T, up *tracedUpstream) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop.yaml"), serviceYAML("shop", `kind: Mapping
name: orders
prefix: /orders/
service: shop
rate_limits: [two]
---
kind: RateLimit
name: two
rate: 2
unit: minute
`, up.upstreamServer))
	return dir
}

// TestTracingPropagation: through a running gateway, a request without a
// traceparent reaches the upstream with a valid one whose trace id is the
// access log's trace_id; a client's traceparent reaches it with the same
// trace id and flags and a new parent id (the gateway's span).
func TestTracingPropagation(t *testing.T) {
	up := startTracedUpstream(t)
	g := startGateway(t, tracedConfig(t, up))

	if r := g.do("GET", "shop.example", "/orders/1", "X-Request-Id", "fresh-1"); r.status != 200 {
		t.Fatalf("without traceparent: %d %s", r.status, r.body)
	}
	trace, parent, _ := up.traceparent(t, "fresh-1")
	if trace == (tracing.TraceID{}) || parent == (tracing.SpanID{}) {
		t.Fatalf("zero ids: %x %x", trace, parent)
	}
	if logged := g.loggedTraceID("fresh-1"); logged != hex.EncodeToString(trace[:]) {
		t.Errorf("access log trace_id %q, the upstream's trace %x", logged, trace)
	}

	given := "00-" + e2eTrace + "-" + e2eParent + "-01"
	if r := g.do("GET", "shop.example", "/orders/2", "X-Request-Id", "given-1", "Traceparent", given); r.status != 200 {
		t.Fatalf("with traceparent: %d %s", r.status, r.body)
	}
	trace, parent, flags := up.traceparent(t, "given-1")
	if hex.EncodeToString(trace[:]) != e2eTrace || flags != tracing.FlagSampled {
		t.Errorf("the client's trace was not continued: %x flags %x", trace, flags)
	}
	if hex.EncodeToString(parent[:]) == e2eParent {
		t.Errorf("the upstream's parent is the client's span, not the gateway's")
	}
	if logged := g.loggedTraceID("given-1"); logged != e2eTrace {
		t.Errorf("access log trace_id %q, want the client's %s", logged, e2eTrace)
	}
}

// TestTracingExport: with --otlp-endpoint and --trace-sampling 1, each
// request's span reaches an OTLP receiver (flushed when the gateway
// stops) with the trace id the upstream saw, as the upstream's parent,
// and the documented attributes.
func TestTracingExport(t *testing.T) {
	up := startTracedUpstream(t)
	rc := testotlp.Start(t, false)
	g := startGateway(t, tracedConfig(t, up), "--otlp-endpoint", rc.URL, "--trace-sampling", "1")

	given := "00-" + e2eTrace + "-" + e2eParent + "-01"
	if r := g.do("GET", "shop.example:8080", "/orders/%31", "X-Request-Id", "span-1", "Traceparent", given); r.status != 200 {
		t.Fatalf("continued: %d %s", r.status, r.body)
	}
	if r := g.do("GET", "shop.example", "/orders/2", "X-Request-Id", "span-2"); r.status != 200 {
		t.Fatalf("started: %d %s", r.status, r.body)
	}
	if r := g.do("GET", "shop.example", "/orders/3", "X-Request-Id", "span-3"); r.status != 429 {
		t.Fatalf("over the limit: %d %s", r.status, r.body)
	}
	loggedStarted := g.loggedTraceID("span-2")
	g.stop() // Run's end flushes the queue

	spans, errs := rc.Spans(), rc.Errors()
	if len(errs) > 0 {
		t.Fatalf("the receiver refused exports: %q", errs)
	}
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want 3", len(spans))
	}
	common := map[string]any{"http.request.method": "GET", "gatehouse.route": "default/orders", "gatehouse.upstream": "default/shop:80",
		"gatehouse.retries": 0, "gatehouse.auth": "none", "server.address": "shop.example"}

	// A client's trace: the span is the client's span's child and the
	// upstream's parent.
	s := spans[0]
	trace, parent, _ := up.traceparent(t, "span-1")
	if hex.EncodeToString(s.TraceId) != e2eTrace || hex.EncodeToString(trace[:]) != e2eTrace {
		t.Errorf("trace ids: span %x, upstream %x, want %s", s.TraceId, trace, e2eTrace)
	}
	if hex.EncodeToString(s.ParentSpanId) != e2eParent || tracing.SpanID(s.SpanId) != parent {
		t.Errorf("span %x with parent %x; want the upstream's parent %x, the client's span %s", s.SpanId, s.ParentSpanId, parent, e2eParent)
	}
	checkSpan(t, s, "GET default/orders", common, map[string]any{"url.path": "/orders/1", "http.response.status_code": 200,
		"gatehouse.ratelimit": "allowed", "gatehouse.endpoint": up.addr})

	// A trace the gateway started: a root span, the upstream's parent, the
	// access log's trace id.
	s = spans[1]
	trace, parent, _ = up.traceparent(t, "span-2")
	if tracing.TraceID(s.TraceId) != trace || tracing.SpanID(s.SpanId) != parent || len(s.ParentSpanId) != 0 || hex.EncodeToString(s.TraceId) != loggedStarted {
		t.Errorf("started: span %x/%x parent %x; upstream %x/%x; logged %s", s.TraceId, s.SpanId, s.ParentSpanId, trace, parent, loggedStarted)
	}
	checkSpan(t, s, "GET default/orders", common, map[string]any{"url.path": "/orders/2", "http.response.status_code": 200,
		"gatehouse.ratelimit": "allowed", "gatehouse.endpoint": up.addr})

	// Refused by the rate limit: the gateway's own answer, with its reason.
	checkSpan(t, spans[2], "GET default/orders", common, map[string]any{"url.path": "/orders/3", "http.response.status_code": 429,
		"gatehouse.ratelimit": "limited", "gatehouse.reason": "rate limited"})
}

func checkSpan(t *testing.T, s *tracepb.Span, name string, want ...map[string]any) {
	t.Helper()
	if s.Name != name || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.StartTimeUnixNano == 0 || s.EndTimeUnixNano < s.StartTimeUnixNano {
		t.Errorf("span %q kind %v times %d..%d; want %q, server", s.Name, s.Kind, s.StartTimeUnixNano, s.EndTimeUnixNano, name)
	}
	got := testotlp.Attrs(s.Attributes)
	for _, w := range want {
		for k, v := range w {
			if got[k] != v {
				t.Errorf("span %q: %s = %v, want %v (all: %v)", s.Name, k, got[k], v, got)
			}
		}
	}
}
