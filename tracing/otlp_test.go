package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

var (
	tid1 = trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid1 = trace.SpanID{1, 1, 1, 1, 1, 1, 1, 1}
	sid2 = trace.SpanID{2, 2, 2, 2, 2, 2, 2, 2}
	sid3 = trace.SpanID{3, 3, 3, 3, 3, 3, 3, 3}
)

func decodeTraces(t testing.TB, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("the official types cannot read the encoding: %v", err)
	}
	return &req
}

func strKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// TestOTLPEncoding: what appendTracesData writes is, field for field, the
// ExportTraceServiceRequest the official OTLP types describe: every kind
// of attribute value, events, links, status, remote parent flags,
// grouping by resource and scope, and messages long enough to need
// multi-byte lengths at every level.
func TestOTLPEncoding(t *testing.T) {
	start := time.Unix(1_700_000_000, 123)
	end := start.Add(1500 * time.Microsecond)
	res := resource.NewSchemaless(attribute.String("service.name", "gatehouse"))
	other := resource.NewSchemaless(attribute.String("service.name", "other"))
	scope := instrumentation.Scope{Name: "github.com/gatehouse-dev/gatehouse/proxy", Version: "v1"}
	state, _ := trace.ParseTraceState("rojo=00f067aa0ba902b7")
	long := strings.Repeat("x", 20000) // a length of three varint bytes, nested four deep

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid1, TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
	stubs := tracetest.SpanStubs{
		{
			Name:        "GET default/orders",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid2, TraceFlags: trace.FlagsSampled, TraceState: state}),
			Parent:      parent,
			SpanKind:    trace.SpanKindServer,
			StartTime:   start, EndTime: end,
			Attributes: []attribute.KeyValue{
				attribute.String("gatehouse.route", "default/orders"),
				attribute.Int("http.response.status_code", 503),
				attribute.Int64("negative", -7),
				attribute.Bool("flag", true),
				attribute.Float64("ratio", 0.25),
				attribute.StringSlice("strings", []string{"a", "", "c"}),
				attribute.IntSlice("ints", []int{1, -2}),
				attribute.BoolSlice("bools", []bool{true, false}),
				attribute.Float64Slice("floats", []float64{1.5}),
				attribute.String("long", long),
			},
			Events:            []sdktrace.Event{{Name: "retry", Time: start.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.Int("try", 2)}, DroppedAttributeCount: 1}},
			Links:             []sdktrace.Link{{SpanContext: parent, Attributes: []attribute.KeyValue{attribute.String("why", "x")}}},
			Status:            sdktrace.Status{Code: codes.Error, Description: "upstream timeout"},
			DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5,
			Resource: res, InstrumentationScope: scope,
		},
		{ // a root span, status OK, same resource and scope
			Name:        "GET default/users",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid3}),
			SpanKind:    trace.SpanKindServer,
			StartTime:   start, EndTime: end,
			Status:   sdktrace.Status{Code: codes.Ok},
			Resource: res, InstrumentationScope: scope,
		},
		{ // another resource
			Name:        "x",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid1}),
			StartTime:   start, EndTime: end,
			Resource: other, InstrumentationScope: scope,
		},
	}
	got := decodeTraces(t, appendTracesData(nil, stubs.Snapshots()))

	intV := func(i int64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
	}
	strV := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	boolV := func(b bool) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
	}
	dblV := func(f float64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
	}
	arr := func(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
	kv := func(k string, v *commonpb.AnyValue) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: v} }
	scopePB := &commonpb.InstrumentationScope{Name: scope.Name, Version: scope.Version}
	want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strKV("service.name", "gatehouse")}},
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: scopePB, Spans: []*tracepb.Span{
				{
					TraceId: tid1[:], SpanId: sid2[:], ParentSpanId: sid1[:], TraceState: "rojo=00f067aa0ba902b7",
					Name: "GET default/orders", Kind: tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(end.UnixNano()),
					Attributes: []*commonpb.KeyValue{
						kv("gatehouse.route", strV("default/orders")), kv("http.response.status_code", intV(503)), kv("negative", intV(-7)),
						kv("flag", boolV(true)), kv("ratio", dblV(0.25)), kv("strings", arr(strV("a"), strV(""), strV("c"))),
						kv("ints", arr(intV(1), intV(-2))), kv("bools", arr(boolV(true), boolV(false))), kv("floats", arr(dblV(1.5))),
						kv("long", strV(long)),
					},
					DroppedAttributesCount: 3,
					Events: []*tracepb.Span_Event{{TimeUnixNano: uint64(start.Add(time.Millisecond).UnixNano()), Name: "retry",
						Attributes: []*commonpb.KeyValue{kv("try", intV(2))}, DroppedAttributesCount: 1}},
					DroppedEventsCount: 4,
					Links: []*tracepb.Span_Link{{TraceId: tid1[:], SpanId: sid1[:], TraceState: "rojo=00f067aa0ba902b7",
						Attributes: []*commonpb.KeyValue{kv("why", strV("x"))}, Flags: 0x01 | 0x100 | 0x200}},
					DroppedLinksCount: 5,
					Status:            &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream timeout"},
					Flags:             0x01 | 0x100 | 0x200, // sampled; the parent is known to be remote
				},
				{
					TraceId: tid1[:], SpanId: sid3[:], Name: "GET default/users", Kind: tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(end.UnixNano()),
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
					Flags:  0x100, // not sampled; no remote parent
				},
			}}},
		},
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strKV("service.name", "other")}},
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: scopePB, Spans: []*tracepb.Span{{
				TraceId: tid1[:], SpanId: sid1[:], Name: "x",
				StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(end.UnixNano()), Flags: 0x100,
			}}}},
		},
	}}
	if !proto.Equal(got, want) {
		t.Errorf("decoded request differs from the expected one:\n got %v\nwant %v", shorten(got), shorten(want))
	}
}

// shorten prints a request with its long string cut, for a readable
// failure.
func shorten(m proto.Message) string {
	return strings.ReplaceAll(prototext.Format(m), strings.Repeat("x", 100), "")
}

// FuzzOTLPEncoding: any span name, attribute key and values encode to a
// request the official types read back unchanged.
func FuzzOTLPEncoding(f *testing.F) {
	f.Add("GET /", "k", "v", int64(1), 0.5, true, 0)
	f.Add("", "", "", int64(-1), -0.0, false, 200)
	f.Add(strings.Repeat("n", 300), "\xff", "\x00", int64(1<<62), 1e300, true, 17000)
	f.Fuzz(func(t *testing.T, name, key, sval string, ival int64, fval float64, bval bool, pad int) {
		if pad < 0 || pad > 1<<16 {
			return
		}
		res := resource.NewSchemaless(attribute.String("service.name", "gatehouse"))
		stub := tracetest.SpanStub{
			Name:        name,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid2}),
			StartTime:   time.Unix(1, 0), EndTime: time.Unix(2, 0),
			Attributes: []attribute.KeyValue{
				attribute.String(key, sval+strings.Repeat("p", pad)), attribute.Int64("i", ival), attribute.Float64("f", fval),
				attribute.Bool("b", bval), attribute.StringSlice("s", []string{sval, name}),
			},
			Resource: res,
		}
		got := decodeTraces(t, appendTracesData(nil, tracetest.SpanStubs{stub}.Snapshots()))
		if len(got.ResourceSpans) != 1 || len(got.ResourceSpans[0].ScopeSpans) != 1 || len(got.ResourceSpans[0].ScopeSpans[0].Spans) != 1 {
			t.Fatalf("structure: %v", got)
		}
		s := got.ResourceSpans[0].ScopeSpans[0].Spans[0]
		// proto3 strings must be UTF-8 (the official decoder refuses the
		// whole request otherwise): invalid bytes arrive as U+FFFD.
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		if s.Name != valid(name) || len(s.Attributes) != 5 {
			t.Fatalf("name %q attributes %d", s.Name, len(s.Attributes))
		}
		a := s.Attributes
		if a[0].Key != valid(key) || a[0].Value.GetStringValue() != valid(sval)+strings.Repeat("p", pad) || a[1].Value.GetIntValue() != ival ||
			(a[2].Value.GetDoubleValue() != fval && fval == fval) || a[3].Value.GetBoolValue() != bval ||
			len(a[4].Value.GetArrayValue().GetValues()) != 2 {
			t.Fatalf("attributes changed: %v", a)
		}
	})
}

// collector records what an exporter posts and answers as told.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	posts  []*http.Request
	bodies [][]byte
	answer func(n int, w http.ResponseWriter) // n counts posts from 1
}

func startCollector(t *testing.T, answer func(n int, w http.ResponseWriter)) *collector {
	c := &collector{answer: answer}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.posts = append(c.posts, r)
		c.bodies = append(c.bodies, body)
		n := len(c.posts)
		c.mu.Unlock()
		if c.answer != nil {
			c.answer(n, w)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.posts)
}

func testSpans() []sdktrace.ReadOnlySpan {
	return tracetest.SpanStubs{{
		Name:        "GET default/orders",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid2, TraceFlags: trace.FlagsSampled}),
		StartTime:   time.Unix(1, 0), EndTime: time.Unix(2, 0),
		Resource: resource.NewSchemaless(attribute.String("service.name", "gatehouse")),
	}}.Snapshots()
}

func exporterFor(t *testing.T, rawURL string, env map[string]string, log *slog.Logger) *otlpExporter {
	t.Helper()
	u, err := ParseEndpoint(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newOTLPExporter(u, func(k string) string { return env[k] }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

// TestOTLPExporterPosts: one POST of protobuf to /v1/traces, with the
// headers and compression the environment names (the _TRACES_ form over
// the general one).
func TestOTLPExporterPosts(t *testing.T) {
	c := startCollector(t, nil)
	c.Start()
	e := exporterFor(t, c.URL, map[string]string{
		"OTEL_EXPORTER_OTLP_HEADERS":            "Authorization=Bearer%20general",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS":     "Authorization=Bearer%20tok, X-Tenant = a%2Cb",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
	}, nil)
	for range 2 { // the second reuses the buffers
		if err := e.ExportSpans(context.Background(), testSpans()); err != nil {
			t.Fatal(err)
		}
	}
	if c.count() != 2 {
		t.Fatalf("%d posts, want 2", c.count())
	}
	for i, r := range c.posts {
		if r.Method != "POST" || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" ||
			r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("X-Tenant") != "a,b" {
			t.Errorf("post %d: %s %s %v", i, r.Method, r.URL.Path, r.Header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(c.bodies[i]))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		req := decodeTraces(t, body)
		if s := req.ResourceSpans[0].ScopeSpans[0].Spans[0]; s.Name != "GET default/orders" || !bytes.Equal(s.SpanId, sid2[:]) {
			t.Errorf("post %d: span %v", i, s)
		}
	}
	if e.Shutdown(context.Background()); e.ExportSpans(context.Background(), testSpans()) == nil {
		t.Error("an export after Shutdown succeeded")
	}
}

// TestOTLPExporterRetries: 429/502/503/504 are tried again (after
// Retry-After when given) until the context ends; other refusals are not,
// and their message is in the error; a redirect is not followed; a
// partial success is logged.
func TestOTLPExporterRetries(t *testing.T) {
	t.Run("retryable then accepted", func(t *testing.T) {
		c := startCollector(t, func(n int, w http.ResponseWriter) {
			switch n {
			case 1:
				w.WriteHeader(http.StatusServiceUnavailable)
			case 2:
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		})
		c.Start()
		e := exporterFor(t, c.URL, nil, nil)
		start := time.Now()
		if err := e.ExportSpans(context.Background(), testSpans()); err != nil {
			t.Fatal(err)
		}
		if c.count() != 3 {
			t.Errorf("%d posts, want 3", c.count())
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("Retry-After: 1 was not honoured: all three posts within %v", waited)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c := startCollector(t, func(n int, w http.ResponseWriter) { http.Error(w, "spans too old", http.StatusBadRequest) })
		c.Start()
		err := exporterFor(t, c.URL, nil, nil).ExportSpans(context.Background(), testSpans())
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "spans too old") || c.count() != 1 {
			t.Errorf("error %v after %d posts; want the 400 and its message after one", err, c.count())
		}
	})
	t.Run("gives up with the context", func(t *testing.T) {
		c := startCollector(t, func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
		c.Start()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := exporterFor(t, c.URL, nil, nil).ExportSpans(ctx, testSpans())
		if err == nil || !strings.Contains(err.Error(), "502") || c.count() < 2 {
			t.Errorf("error %v after %d posts; want the 502 after more than one", err, c.count())
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		c := startCollector(t, func(n int, w http.ResponseWriter) {
			w.Header().Set("Location", "http://elsewhere.invalid/v1/traces")
			w.WriteHeader(http.StatusTemporaryRedirect)
		})
		c.Start()
		err := exporterFor(t, c.URL, nil, nil).ExportSpans(context.Background(), testSpans())
		if err == nil || !strings.Contains(err.Error(), "307") || c.count() != 1 {
			t.Errorf("error %v after %d posts", err, c.count())
		}
	})
	t.Run("partial success", func(t *testing.T) {
		reply, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "span too big"}})
		c := startCollector(t, func(n int, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(reply)
		})
		c.Start()
		var logged bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
		if err := exporterFor(t, c.URL, nil, log).ExportSpans(context.Background(), testSpans()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(logged.String(), "rejected=1") || !strings.Contains(logged.String(), `message="span too big"`) {
			t.Errorf("log: %q", logged.String())
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestOTLPExporterTLS: a collector behind TLS with client certificates is
// reached with the CA and client certificate the environment names, and
// refuses the exporter without the certificate.
func TestOTLPExporterTLS(t *testing.T) {
	ca := testpki.NewCA(t, "collector CA")
	c := startCollector(t, nil)
	serverCert, serverKey := ca.Server(t, "localhost")
	c.TLS = &tls.Config{
		Certificates: []tls.Certificate{testpki.KeyPair(t, serverCert, serverKey)},
		ClientCAs:    testpki.Pool(ca),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	c.StartTLS()
	endpoint := strings.Replace(c.URL, "127.0.0.1", "localhost", 1) // the name the certificate has
	dir := t.TempDir()
	cert, key := ca.Client(t, "gatehouse")
	for name, data := range map[string][]byte{"ca.crt": ca.PEM, "tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_CERTIFICATE":        filepath.Join(dir, "ca.crt"),
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": filepath.Join(dir, "tls.crt"),
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":         filepath.Join(dir, "tls.key"),
	}
	if err := exporterFor(t, endpoint, env, nil).ExportSpans(context.Background(), testSpans()); err != nil || c.count() != 1 {
		t.Fatalf("with the client certificate: %v, %d posts", err, c.count())
	}
	delete(env, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
	delete(env, "OTEL_EXPORTER_OTLP_CLIENT_KEY")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := exporterFor(t, endpoint, env, nil).ExportSpans(ctx, testSpans()); err == nil || c.count() != 1 {
		t.Errorf("without a client certificate: %v, %d posts", err, c.count())
	}
}

// TestOTLPExporterSettings: a malformed variable is an error at start,
// naming the variable.
func TestOTLPExporterSettings(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:4318/v1/traces")
	for _, tc := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "ten"},
		{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"},
		{"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "no-value"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "k=%zz"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "bad name=v"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "k=a%0D%0AInjected: 1"},
		{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.crt"},
		{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/nonexistent/tls.crt"},
	} {
		_, err := newOTLPExporter(u, func(k string) string {
			if k == tc.name {
				return tc.value
			}
			return ""
		}, nil)
		base := strings.Replace(tc.name, "_TRACES", "", 1)
		if err == nil || !strings.Contains(err.Error(), base) {
			t.Errorf("%s=%q: error %v, want one naming %s", tc.name, tc.value, err, base)
		}
	}
}

// FuzzOTLPReply: whatever a collector answers, reading it for a partial
// success or a status message neither panics nor returns more than it
// was given.
func FuzzOTLPReply(f *testing.F) {
	ok, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "m"}})
	f.Add(ok)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("plain text"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, msg := partialSuccess(b)
		if len(msg) > len(b) {
			t.Fatalf("message %q longer than the reply", msg)
		}
		statusMessage(b, "application/x-protobuf")
		statusMessage(b, "text/plain")
	})
}

// BenchmarkOTLPEncode is the exporter goroutine's encoding of a batch of
// 512 spans (the batch processor's default) with a request span's
// attributes, per span.
func BenchmarkOTLPEncode(b *testing.B) {
	res := resource.NewSchemaless(attribute.String("service.name", "gatehouse"))
	stub := tracetest.SpanStub{
		Name:        "GET default/orders",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid2, TraceFlags: trace.FlagsSampled}),
		Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid1, SpanID: sid1, TraceFlags: trace.FlagsSampled, Remote: true}),
		SpanKind:    trace.SpanKindServer,
		StartTime:   time.Unix(1, 0), EndTime: time.Unix(2, 0),
		Attributes: []attribute.KeyValue{
			attribute.String("http.request.method", "GET"), attribute.String("url.path", "/orders/1"),
			attribute.String("server.address", "shop.example"), attribute.Int("http.response.status_code", 200),
			attribute.String("gatehouse.route", "default/orders"), attribute.String("gatehouse.upstream", "default/shop:80"),
			attribute.String("gatehouse.endpoint", "10.0.0.7:8080"), attribute.Int("gatehouse.retries", 0),
			attribute.String("gatehouse.ratelimit", "allowed"), attribute.String("gatehouse.auth", "none"),
		},
		Resource: res,
	}
	stubs := make(tracetest.SpanStubs, 512)
	for i := range stubs {
		stubs[i] = stub
	}
	spans := stubs.Snapshots()
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(spans) {
		buf = appendTracesData(buf[:0], spans)
	}
	b.SetBytes(int64(len(buf) / len(spans)))
}

// FuzzOTLPHeaders: any OTEL_EXPORTER_OTLP_HEADERS value is parsed or
// refused, never half-applied: on success every pair written is set, with
// its key trimmed and its value unescaped.
func FuzzOTLPHeaders(f *testing.F) {
	f.Add("Authorization=Bearer%20tok, X-Tenant = a%2Cb")
	f.Add("k=%zz")
	f.Add(",,=,")
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		if err := parseHeaders(v, h); err != nil {
			return
		}
		for _, pair := range strings.Split(v, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			k, _, _ := strings.Cut(pair, "=")
			if k = strings.TrimSpace(k); len(h.Values(k)) == 0 {
				t.Fatalf("%q: %q parsed but not set (%v)", v, k, h)
			}
		}
	})
}
