package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
// and the documented attributes. Twice: straight to a receiver on the
// official OTLP protobuf types, and through a real OpenTelemetry
// Collector (hack/otelcol/build), whose OTLP receiver must accept what
// the gateway sends and whose exporter hands it on to that receiver.
func TestTracingExport(t *testing.T) {
	t.Run("receiver", func(t *testing.T) {
		rc := testotlp.Start(t, false)
		checkExport(t, rc.URL, rc)
	})
	t.Run("collector", func(t *testing.T) {
		rc := testotlp.Start(t, false)
		checkExport(t, startCollector(t, rc.URL), rc)
	})
}

// checkExport runs a gateway exporting to endpoint and checks the spans
// that reach rc.
func checkExport(t *testing.T, endpoint string, rc *testotlp.Receiver) {
	up := startTracedUpstream(t)
	g := startGateway(t, tracedConfig(t, up), "--otlp-endpoint", endpoint, "--trace-sampling", "1")

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
	// A span is made as its request's answer ends, the access line written.
	waitFor(t, "three spans made", 10*time.Second, func() bool { return metric(t, g, "gatehouse_trace_spans_total") == 3 })
	if limited := metric(t, g, "gatehouse_trace_spans_limited_total"); limited != 0 {
		t.Errorf("%v spans limited under the default bound", limited)
	}
	g.stop() // Run's end flushes the queue

	// A Collector hands spans on when its own exporter gets to them.
	waitFor(t, "three spans reach the receiver", 20*time.Second, func() bool { return len(rc.Spans()) >= 3 || len(rc.Errors()) > 0 })
	spans, errs := rc.Spans(), rc.Errors()
	if len(errs) > 0 {
		t.Fatalf("the receiver refused exports: %q", errs)
	}
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want 3", len(spans))
	}
	if got := testotlp.Attrs(rc.Resource()); got["service.name"] != "gatehouse" {
		t.Errorf("resource attributes %v, want service.name gatehouse", got)
	}
	byPath := map[string]*tracepb.Span{}
	for _, s := range spans {
		byPath[fmt.Sprint(testotlp.Attrs(s.Attributes)["url.path"])] = s
	}
	common := map[string]any{"http.request.method": "GET", "gatehouse.route": "default/orders", "gatehouse.upstream": "default/shop:80",
		"gatehouse.retries": 0, "gatehouse.auth": "none", "server.address": "shop.example"}

	// A client's trace: the span is the client's span's child and the
	// upstream's parent.
	s := byPath["/orders/1"]
	if s == nil {
		t.Fatalf("no span for /orders/1 among %d", len(spans))
	}
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
	s = byPath["/orders/2"]
	if s == nil {
		t.Fatalf("no span for /orders/2 among %d", len(spans))
	}
	trace, parent, _ = up.traceparent(t, "span-2")
	if tracing.TraceID(s.TraceId) != trace || tracing.SpanID(s.SpanId) != parent || len(s.ParentSpanId) != 0 || hex.EncodeToString(s.TraceId) != loggedStarted {
		t.Errorf("started: span %x/%x parent %x; upstream %x/%x; logged %s", s.TraceId, s.SpanId, s.ParentSpanId, trace, parent, loggedStarted)
	}
	checkSpan(t, s, "GET default/orders", common, map[string]any{"url.path": "/orders/2", "http.response.status_code": 200,
		"gatehouse.ratelimit": "allowed", "gatehouse.endpoint": up.addr})

	// Refused by the rate limit: the gateway's own answer, with its reason.
	s = byPath["/orders/3"]
	if s == nil {
		t.Fatalf("no span for /orders/3 among %d", len(spans))
	}
	checkSpan(t, s, "GET default/orders", common, map[string]any{"url.path": "/orders/3", "http.response.status_code": 429,
		"gatehouse.ratelimit": "limited", "gatehouse.reason": "rate limited"})
}

// collectorBinary is where hack/otelcol/build puts the Collector.
const collectorBinary = "../_output/bin/otelcol"

// startCollector runs the OpenTelemetry Collector with an OTLP/HTTP
// receiver on a free loopback port and an OTLP/HTTP exporter to forward,
// and returns the receiver's endpoint once it accepts connections.
func startCollector(t *testing.T, forward string) string {
	t.Helper()
	bin, err := filepath.Abs(collectorBinary)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		skipOrFail(t, "%s needs the OpenTelemetry Collector (hack/otelcol/build): %v", t.Name(), err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg := filepath.Join(t.TempDir(), "otelcol.yaml")
	// compression none: the test's receiver reads plain protobuf. The
	// Collector's own telemetry is off so it opens no other port.
	writeFile(t, cfg, fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  otlphttp:
    endpoint: %s
    compression: none
    encoding: proto
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
`, listen, forward))
	cmd := exec.Command(bin, "--config=file:"+cfg)
	var mu sync.Mutex
	var buf strings.Builder
	cmd.Stdout = lockedWriter{&mu, &buf}
	cmd.Stderr = cmd.Stdout
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Collector: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Collector output:\n%s", output())
		}
	})
	waitFor(t, "the Collector listens on "+listen, 20*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the Collector exited: %v\n%s", err, output())
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + listen
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
