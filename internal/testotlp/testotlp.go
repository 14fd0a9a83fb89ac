// Package testotlp is an OTLP/HTTP trace receiver for tests, built on the
// protocol's official protobuf types: what an OpenTelemetry Collector's
// otlp receiver decodes. The tracing, proxy and e2e tests all receive the
// gateway's spans with it.
package testotlp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Receiver accepts POSTs of ExportTraceServiceRequest on /v1/traces and
// keeps their spans. Anything else is refused with 400 and recorded; the
// test fails at its end if there was any.
type Receiver struct {
	*httptest.Server
	// Hold, when set before exports arrive, makes each wait until it is
	// closed: an exporter that must not block requests can be tested.
	Hold chan struct{}

	discard  bool
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource []*commonpb.KeyValue
	errs     []string
}

// Start serves a Receiver until tb ends. With discard, exports are read
// and answered but not decoded or kept (for benchmarks).
func Start(tb testing.TB, discard bool) *Receiver {
	rc := &Receiver{discard: discard}
	ok, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.Hold != nil {
			<-rc.Hold
		}
		body, err := io.ReadAll(r.Body)
		if rc.discard && err == nil {
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(ok)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			msg := r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
			if err != nil {
				msg += ": " + err.Error()
			}
			rc.errs = append(rc.errs, msg)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			rc.resource = rs.GetResource().GetAttributes()
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(ok)
	}))
	// Registered first, so it runs after Close: no export is in flight.
	tb.Cleanup(func() {
		for _, e := range rc.Errors() {
			tb.Errorf("OTLP receiver refused an export: %s", e)
		}
	})
	tb.Cleanup(rc.Close)
	return rc
}

// Spans are the spans received so far, in order.
func (rc *Receiver) Spans() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// Resource is the resource attributes of the last export.
func (rc *Receiver) Resource() []*commonpb.KeyValue {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.resource
}

// Errors are the exports refused so far.
func (rc *Receiver) Errors() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.errs...)
}

// Attrs maps attributes by key: strings as string, integers as int, any
// other value as its text.
func Attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = int(v.IntValue)
		default:
			m[kv.Key] = kv.Value.String()
		}
	}
	return m
}
