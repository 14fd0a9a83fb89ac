package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-dev/gatehouse/internal/testotlp"
)

// TestExport: a sampled request's span reaches the receiver with the ids
// the upstream was given (the gateway's span id; the client's span as its
// remote parent, or none for a trace the gateway started), its times,
// kind, attributes and status; an unsampled one sends nothing; Shutdown
// flushes.
func TestExport(t *testing.T) {
	rc := testotlp.Start(t, false)
	tr, err := New(Options{Endpoint: rc.URL, Sampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 5)
	end := start.Add(1500 * time.Microsecond)
	continued := Begin([]string{"00-" + validTrace + "-" + validParent + "-01"}, Sampler{})
	started := Begin(nil, tr.Sampler())
	unsampled := Begin([]string{"00-" + validTrace + "-" + validParent + "-00"}, tr.Sampler())
	tr.Export(&continued, &Span{Name: "GET shop/orders", Start: start, End: end, TraceState: "vendor=x,other=y",
		Attributes: []attribute.KeyValue{attribute.String("gatehouse.route", "shop/orders"), attribute.Int("http.response.status_code", 502)},
		Failed:     true, Status: "upstream unreachable"})
	tr.Export(&started, &Span{Name: "GET no route", Start: start, End: end})
	tr.Export(&unsampled, &Span{Name: "unsampled", Start: start, End: end})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, resource := rc.Spans(), rc.Resource()
	if len(spans) != 2 {
		t.Fatalf("%d spans exported, want 2: %v", len(spans), spans)
	}
	if got := testotlp.Attrs(resource)["service.name"]; got != "gatehouse" {
		t.Errorf("service.name = %v", got)
	}
	s := spans[0]
	if hex.EncodeToString(s.TraceId) != validTrace || hex.EncodeToString(s.ParentSpanId) != validParent || SpanID(s.SpanId) != continued.Span {
		t.Errorf("continued: trace %x parent %x span %x; want %s %s %x", s.TraceId, s.ParentSpanId, s.SpanId, validTrace, validParent, continued.Span)
	}
	if s.Name != "GET shop/orders" || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.TraceState != "vendor=x,other=y" {
		t.Errorf("continued: name %q kind %v tracestate %q", s.Name, s.Kind, s.TraceState)
	}
	if s.StartTimeUnixNano != uint64(start.UnixNano()) || s.EndTimeUnixNano != uint64(end.UnixNano()) {
		t.Errorf("continued: times %d..%d", s.StartTimeUnixNano, s.EndTimeUnixNano)
	}
	if a := testotlp.Attrs(s.Attributes); a["gatehouse.route"] != "shop/orders" || a["http.response.status_code"] != 502 {
		t.Errorf("continued: attributes %v", a)
	}
	if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || s.Status.GetMessage() != "upstream unreachable" {
		t.Errorf("continued: status %v", s.Status)
	}
	s = spans[1]
	if TraceID(s.TraceId) != started.TraceID || SpanID(s.SpanId) != started.Span || len(s.ParentSpanId) != 0 {
		t.Errorf("started: trace %x span %x parent %x; want %x %x and no parent", s.TraceId, s.SpanId, s.ParentSpanId, started.TraceID, started.Span)
	}
	if s.Status.GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("started: status %v", s.Status)
	}
}

// TestExportLimited: past MaxSpansPerSecond (a second's worth at once)
// sampled requests get no span; the counts say how many were made,
// limited and exported. A client that marks every request sampled cannot
// make the gateway build more.
func TestExportLimited(t *testing.T) {
	rc := testotlp.Start(t, false)
	tr, err := New(Options{Endpoint: rc.URL, Sampling: 1, MaxSpansPerSecond: 5})
	if err != nil {
		t.Fatal(err)
	}
	const sent = 200
	for range sent {
		c := Begin([]string{"00-" + validTrace + "-" + validParent + "-01"}, Sampler{})
		tr.Export(&c, &Span{Name: "GET /", Start: time.Unix(1, 0), End: time.Unix(2, 0)})
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	// The burst of 5, and at most a few more the loop's time refilled.
	if st.Made < 5 || st.Made > 10 || st.Made+st.Limited != sent {
		t.Errorf("made %d, limited %d of %d sampled; want 5 to 10 made, the rest limited", st.Made, st.Limited, sent)
	}
	if st.Exported != st.Made || st.Failed != 0 || uint64(len(rc.Spans())) != st.Made {
		t.Errorf("exported %d, failed %d, received %d; want all %d made", st.Exported, st.Failed, len(rc.Spans()), st.Made)
	}
}

// TestExportFailuresCounted: spans of an export the endpoint refuses are
// counted as failed.
func TestExportFailuresCounted(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer refusing.Close()
	var logged bytes.Buffer
	var mu sync.Mutex
	tr, err := New(Options{Endpoint: refusing.URL, Sampling: 1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c := Begin(nil, tr.Sampler())
		tr.Export(&c, &Span{Name: "GET /", Start: time.Unix(1, 0), End: time.Unix(2, 0)})
	}
	tr.Shutdown(context.Background())
	if st := tr.Stats(); st.Made != 3 || st.Exported != 0 || st.Failed != 3 {
		t.Errorf("stats %+v; want 3 made, 3 failed", st)
	}
	// Told through the gateway's logger, not OpenTelemetry's global
	// error handler.
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), `msg="exporting trace spans"`) || !strings.Contains(logged.String(), "400 Bad Request") {
		t.Errorf("log: %q", logged.String())
	}
}

// TestCheck: what New would refuse, Check reports without starting
// anything.
func TestCheck(t *testing.T) {
	for _, o := range []Options{
		{Sampling: 1.5},
		{Sampling: -0.1},
		{MaxSpansPerSecond: -1},
		{Endpoint: "ftp://collector:4318"},
		{Endpoint: "http://collector:4318", Getenv: func(k string) string {
			if k == "OTEL_EXPORTER_OTLP_COMPRESSION" {
				return "brotli"
			}
			return ""
		}},
	} {
		if err := Check(o); err == nil {
			t.Errorf("Check(%+v) = nil", o)
		}
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if err := Check(Options{Endpoint: "http://collector:4318", Sampling: 0.5, MaxSpansPerSecond: 100}); err != nil {
		t.Errorf("a valid configuration: %v", err)
	}
}

// TestExportNeverWaits: with the collector stuck, spans beyond the queue
// are dropped and Export returns at once; Shutdown gives up at its
// context's end.
func TestExportNeverWaits(t *testing.T) {
	rc := testotlp.Start(t, false)
	rc.Hold = make(chan struct{})
	defer close(rc.Hold)
	tr, err := New(Options{Endpoint: rc.URL + "/v1/traces", Sampling: 1, QueueSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	c := Begin(nil, tr.Sampler())
	began := time.Now()
	for range 20000 {
		tr.Export(&c, &Span{Name: "x", Start: began, End: began})
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("20000 exports took %v with the collector stuck", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown reported a flush the stuck collector never took")
	}
}

func TestNilTracer(t *testing.T) {
	var tr *Tracer
	c := Begin(nil, tr.Sampler())
	if c.Sampled() || tr.Exporting() {
		t.Errorf("a nil Tracer samples")
	}
	tr.Export(&c, &Span{})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	tr, err := New(Options{Sampling: 1})
	if err != nil || tr.Exporting() || !tr.Sampler().Sample(c.TraceID) {
		t.Errorf("without an endpoint: %v, exporting %v", err, tr.Exporting())
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":             "http://collector:4318/v1/traces",
		"http://collector:4318/":            "http://collector:4318/v1/traces",
		"https://otel.example:443/x/traces": "https://otel.example:443/x/traces",
		"http://[::1]:4318":                 "http://[::1]:4318/v1/traces",
		"collector:4318":                    "",
		"grpc://collector:4317":             "",
		"http://collector":                  "",
		"http://:4318":                      "",
		"http://u:p@collector:4318":         "",
		"http://collector:4318/?a=b":        "",
		"http://collector:4318/%zz":         "",
	} {
		u, err := ParseEndpoint(in)
		switch {
		case want == "" && err == nil:
			t.Errorf("ParseEndpoint(%q) = %v, want an error", in, u)
		case want != "" && err != nil:
			t.Errorf("ParseEndpoint(%q): %v", in, err)
		case want != "" && u.String() != want:
			t.Errorf("ParseEndpoint(%q) = %v, want %s", in, u, want)
		}
	}
}

// BenchmarkExport is the request goroutine's part of a sampled request's
// span: the SDK span, its attributes, the hand-off to the batch processor
// (whose queue drops what the discarding receiver cannot take in time).
func BenchmarkExport(b *testing.B) {
	rc := testotlp.Start(b, false)
	tr, err := New(Options{Endpoint: rc.URL, Sampling: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	c := Begin([]string{"00-" + validTrace + "-" + validParent + "-01"}, Sampler{})
	now := time.Now()
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "GET"), attribute.String("url.path", "/api/v1/users"),
		attribute.Int("http.response.status_code", 200), attribute.String("server.address", "shop.example"),
		attribute.String("gatehouse.route", "shop/users"), attribute.String("gatehouse.upstream", "shop/users:80"),
		attribute.String("gatehouse.endpoint", "10.0.0.7:8080"), attribute.Int("gatehouse.retries", 0),
		attribute.String("gatehouse.ratelimit", "allowed"), attribute.String("gatehouse.auth", "none"),
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.Export(&c, &Span{Name: "GET shop/users", Start: now, End: now, Attributes: attrs})
	}
}
