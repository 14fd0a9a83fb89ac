package proxy

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-dev/gatehouse/internal/testotlp"
	"github.com/gatehouse-dev/gatehouse/tracing"
)

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
	clientState  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// traceUpstream records the trace fields of each request it gets (the
// primary's on got, a shadow copy's on shadows) and answers 503 on /fail.
func traceUpstream(t *testing.T) (addr string, got, shadows chan http.Header) {
	got, shadows = make(chan http.Header, 16), make(chan http.Header, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := http.Header{"Traceparent": r.Header.Values("Traceparent"), "Tracestate": r.Header.Values("Tracestate")}
		if strings.HasSuffix(r.Host, "-shadow") {
			shadows <- h
			return
		}
		got <- h
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(up.Close)
	return addrOf(up), got, shadows
}

// lastLine is the access log's last line, decoded.
func lastLine(t *testing.T, log *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTraceparentPropagated: on both paths, the upstream gets exactly one
// traceparent: the client's trace with the gateway's span as its parent
// and the client's tracestate, or a trace the gateway started (and no
// tracestate) when the client sent none or an invalid one. The access log
// has the trace id; a Mapping that removes traceparent has its way.
func TestTraceparentPropagated(t *testing.T) {
	for _, engine := range []struct {
		name string
		opts Options
	}{{"fast", Options{}}, {"ReverseProxy", Options{NoFastPath: true}}} {
		t.Run(engine.name, func(t *testing.T) {
			addr, got, _ := traceUpstream(t)
			var log bytes.Buffer
			opts := engine.opts
			opts.Guard, opts.AccessLog = loopbackGuard(t), &log
			h := New(opts)
			h.Publish(compile(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n---\nkind: Mapping\nname: untraced\nprefix: /untraced/\nservice: app\nremove_request_headers: [traceparent]\n", addr))
			for _, tc := range []struct {
				name, traceparent string
				continued         bool
			}{
				{"none", "", false},
				{"sampled", "00-" + clientTrace + "-" + clientParent + "-01", true},
				{"unsampled", "00-" + clientTrace + "-" + clientParent + "-00", true},
				{"invalid", "00-" + strings.ToUpper(clientTrace) + "-" + clientParent + "-01", false},
			} {
				headers := []string{"Tracestate", clientState}
				if tc.traceparent != "" {
					headers = append(headers, "Traceparent", tc.traceparent)
				}
				if w := serve(h, "GET", "/x", headers...); w.Code != 200 {
					t.Fatalf("%s: %d", tc.name, w.Code)
				}
				hdr := <-got
				if len(hdr["Traceparent"]) != 1 {
					t.Fatalf("%s: the upstream got traceparent %q", tc.name, hdr["Traceparent"])
				}
				up := hdr.Get("Traceparent")
				trace, parent, flags, ok := tracing.Parse(up)
				if !ok || !strings.HasPrefix(up, "00-") {
					t.Fatalf("%s: the upstream got an invalid traceparent %q", tc.name, up)
				}
				if logged := lastLine(t, &log)["trace_id"]; logged != hex.EncodeToString(trace[:]) {
					t.Errorf("%s: logged trace_id %v, the upstream's is %x", tc.name, logged, trace)
				}
				if hex.EncodeToString(parent[:]) == clientParent {
					t.Errorf("%s: the upstream's parent is the client's span, not the gateway's", tc.name)
				}
				if tc.continued {
					if hex.EncodeToString(trace[:]) != clientTrace || up[53:] != tc.traceparent[53:] || hdr.Get("Tracestate") != clientState {
						t.Errorf("%s: the client's trace was not continued: %q, tracestate %q", tc.name, up, hdr.Get("Tracestate"))
					}
					continue
				}
				if hex.EncodeToString(trace[:]) == clientTrace || flags != 0 || hdr["Tracestate"] != nil {
					t.Errorf("%s: want a new unsampled trace and no tracestate: %q, tracestate %q", tc.name, up, hdr["Tracestate"])
				}
			}
			serve(h, "GET", "/untraced/x", "Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
			if hdr := <-got; hdr["Traceparent"] != nil {
				t.Errorf("a Mapping removing traceparent: the upstream got %q", hdr["Traceparent"])
			}
		})
	}
}

// TestMirrorTraceparent: a shadow's copy is another child of the gateway's
// span: the primary's traceparent, never the client's.
func TestMirrorTraceparent(t *testing.T) {
	addr, got, shadows := traceUpstream(t)
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: main\nprefix: /api/\nservice: app\n---\nkind: Mapping\nname: copy\nprefix: /api/\nservice: app\nshadow: true\n", addr))
	serve(h, "GET", "/api/x", "Traceparent", "00-"+clientTrace+"-"+clientParent+"-01", "Tracestate", clientState)
	primary, shadow := <-got, <-shadows
	if len(shadow["Traceparent"]) != 1 || shadow.Get("Traceparent") != primary.Get("Traceparent") || shadow.Get("Tracestate") != clientState {
		t.Errorf("shadow traceparent %q tracestate %q; the primary's %q", shadow["Traceparent"], shadow["Tracestate"], primary.Get("Traceparent"))
	}
}

// TestTraceSpans: with an exporting Tracer, each sampled request's span
// has the ids the upstream got, the client's span as its parent, and the
// documented attributes (trace.go) for what the gateway decided; an
// unsampled client trace exports nothing.
func TestTraceSpans(t *testing.T) {
	addr, got, _ := traceUpstream(t)
	rc := testotlp.Start(t, false)
	tr, err := tracing.New(tracing.Options{Endpoint: rc.URL, Sampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Guard: loopbackGuard(t), Tracer: tr})
	h.Publish(compileKeys(t, `kind: Mapping
name: app
prefix: /api/
service: app
rate_limits: [two]
---
kind: Mapping
name: retried
prefix: /fail
rewrite: ""
service: app
retry_policy: {retry_on: 5xx, num_retries: 1}
---
kind: Mapping
name: members
prefix: /members/
service: app
auth: keys
---
kind: Auth
name: keys
api_key:
  secrets: [partners]
---
kind: RateLimit
name: two
rate: 2
unit: minute
`, addr, map[string]string{"alice": "key-alice"}))
	sampled := "00-" + clientTrace + "-" + clientParent + "-01"
	var ids []string // the upstream's parent ids, in order
	for _, tc := range []struct {
		path, traceparent string
		status            int
	}{
		{"/api/ok", sampled, 200},
		{"/api/%6fk", "", 200}, // logged and traced as /api/ok
		{"/api/ok", "", 429},
		{"/fail", sampled, 503},
		{"/members/x", "", 401},
		{"/members/x", "X-Api-Key", 200}, // the key's header, in place of a traceparent
		{"/nowhere", "", 404},
		{"/api/ok", "00-" + clientTrace + "-" + clientParent + "-00", 429}, // not sampled: no span
	} {
		var headers []string
		if tc.traceparent == "X-Api-Key" {
			headers = []string{"X-Api-Key", "key-alice"}
		} else if tc.traceparent != "" {
			headers = []string{"Traceparent", tc.traceparent, "Tracestate", clientState}
		}
		w := serve(h, "GET", "http://shop.example:8080"+tc.path, headers...)
		if w.Code != tc.status {
			t.Fatalf("%s: %d, want %d", tc.path, w.Code, tc.status)
		}
		id := ""
	drain:
		for {
			select {
			case hdr := <-got:
				_, parent, _, _ := tracing.Parse(hdr.Get("Traceparent"))
				id = hex.EncodeToString(parent[:]) // a retry's is the same
			default:
				break drain
			}
		}
		ids = append(ids, id)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rc.Spans()
	if len(spans) != 7 {
		t.Fatalf("%d spans, want 7 (the unsampled request has none)", len(spans))
	}
	s := spans[0]
	if hex.EncodeToString(s.TraceId) != clientTrace || hex.EncodeToString(s.ParentSpanId) != clientParent || hex.EncodeToString(s.SpanId) != ids[0] {
		t.Errorf("trace %x parent %x span %x; want the client's trace and span, and the upstream's parent %s", s.TraceId, s.ParentSpanId, s.SpanId, ids[0])
	}
	if s.Name != "GET t/app" || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.TraceState != clientState || s.EndTimeUnixNano < s.StartTimeUnixNano {
		t.Errorf("name %q kind %v tracestate %q times %d..%d", s.Name, s.Kind, s.TraceState, s.StartTimeUnixNano, s.EndTimeUnixNano)
	}
	a := testotlp.Attrs(s.Attributes)
	for k, v := range map[string]any{"http.request.method": "GET", "http.response.status_code": 200, "server.address": "shop.example",
		"gatehouse.upstream": "t/app:80", "gatehouse.auth": "none"} {
		if a[k] != v {
			t.Errorf("%s = %v, want %v", k, a[k], v)
		}
	}
	if ep, _ := a["gatehouse.endpoint"].(string); ep != addr {
		t.Errorf("gatehouse.endpoint = %v, want %s", a["gatehouse.endpoint"], addr)
	}
	if s := spans[1]; len(s.ParentSpanId) != 0 || hex.EncodeToString(s.SpanId) != ids[1] {
		t.Errorf("a trace the gateway started: parent %x, span %x, the upstream's parent %s", s.ParentSpanId, s.SpanId, ids[1])
	}
	if s := spans[6]; s.Name != "GET no route" {
		t.Errorf("no route: span %q", s.Name)
	}
	for i, s := range spans {
		a := testotlp.Attrs(s.Attributes)
		if a["http.response.status_code"] == nil {
			t.Errorf("span %d has no status: %v", i, a)
		}
		if (a["http.response.status_code"] == 503) != (s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) {
			t.Errorf("span %d: status %v for %v", i, s.Status, a["http.response.status_code"])
		}
	}
	wants := []map[string]any{
		{"gatehouse.route": "t/app", "gatehouse.ratelimit": "allowed", "gatehouse.retries": 0, "url.path": "/api/ok"},
		{"gatehouse.route": "t/app", "gatehouse.ratelimit": "allowed", "url.path": "/api/ok"},
		{"gatehouse.route": "t/app", "gatehouse.ratelimit": "limited", "gatehouse.reason": "rate limited", "http.response.status_code": 429},
		{"gatehouse.route": "t/retried", "gatehouse.ratelimit": "none", "gatehouse.retries": 1, "http.response.status_code": 503},
		{"gatehouse.route": "t/members", "gatehouse.auth": "refused", "gatehouse.auth.kind": "api_key", "gatehouse.reason": "authentication refused", "http.response.status_code": 401},
		{"gatehouse.route": "t/members", "gatehouse.auth": "allowed", "gatehouse.auth.kind": "api_key", "gatehouse.consumer": "alice", "http.response.status_code": 200},
		{"gatehouse.route": "no route", "gatehouse.auth": "none", "gatehouse.ratelimit": "none", "http.response.status_code": 404},
	}
	for i, w := range wants {
		a := testotlp.Attrs(spans[i].Attributes)
		for k, v := range w {
			if a[k] != v {
				t.Errorf("span %d (%s): %s = %v, want %v", i, spans[i].Name, k, a[k], v)
			}
		}
	}
}

// TestEngineTraceAllocs: propagation allocates nothing on the fast path,
// whether the client sent a traceparent or not, and neither does an
// unsampled request with export on.
func TestEngineTraceAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("counted without the race detector")
	}
	rc := testotlp.Start(t, true)
	exporting, err := tracing.New(tracing.Options{Endpoint: rc.URL, Sampling: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer exporting.Shutdown(context.Background())
	for _, tc := range []struct {
		name   string
		tracer *tracing.Tracer
		header string
	}{
		{"client traceparent", nil, "Traceparent: 00-" + clientTrace + "-" + clientParent + "-01\r\nTracestate: " + clientState + "\r\n"},
		{"export on, unsampled", exporting, ""},
		{"export on, client unsampled", exporting, "Traceparent: 00-" + clientTrace + "-" + clientParent + "-00\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip := startEngineWith(t, tc.tracer, tc.header)
			if allocs := countAllocs(t, roundTrip); allocs > 0.05 {
				t.Errorf("%.2f allocations per proxied request, want 0", allocs)
			}
		})
	}
}

// BenchmarkEngineTracing is BenchmarkEngine with tracing: the client's
// traceparent propagated (export off), and export on to an OTLP receiver
// that reads and drops what it gets, at sampling ratios 0, 0.01 and 1.
func BenchmarkEngineTracing(b *testing.B) {
	rc := testotlp.Start(b, true)
	for _, bc := range []struct {
		name     string
		endpoint string
		sampling float64
		header   string
	}{
		{"off", "", 0, ""},
		{"propagate", "", 0, "Traceparent: 00-" + clientTrace + "-" + clientParent + "-01\r\n"},
		{"export-0", rc.URL, 0, ""},
		{"export-0.01", rc.URL, 0.01, ""},
		{"export-1", rc.URL, 1, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := tracing.New(tracing.Options{Endpoint: bc.endpoint, Sampling: bc.sampling})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			roundTrip := startEngineWith(b, tr, bc.header)
			b.ReportAllocs()
			for b.Loop() {
				if err := roundTrip(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
