package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
)

// Options say what a Tracer does. The zero value propagates traces,
// samples none of those the gateway starts, and exports nothing.
type Options struct {
	// Endpoint is where spans go, over OTLP/HTTP with protobuf bodies: an
	// http:// or https:// URL naming a host and port. A URL without a path
	// gets OTLP's /v1/traces (a collector's OTLP/HTTP receiver listens
	// there, usually on port 4318). "" exports nothing. The specification's
	// exporter variables other than the endpoint's apply, each also in its
	// OTEL_EXPORTER_OTLP_TRACES_ form: OTEL_EXPORTER_OTLP_HEADERS (for a
	// collector that wants a token), _TIMEOUT (milliseconds per POST,
	// 10000), _COMPRESSION (gzip or none), _CERTIFICATE (a CA file),
	// _CLIENT_CERTIFICATE and _CLIENT_KEY; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES describe the gateway.
	Endpoint string
	// Getenv reads those variables; nil reads the process's environment.
	Getenv func(string) string
	// Sampling is the share of the traces started at the gateway that are
	// sampled, from 0 (none) to 1 (all). A client's sampled flag is
	// honoured whatever it is.
	Sampling float64
	// QueueSize bounds the spans waiting for export; a span that finds the
	// queue full is dropped, never waited for. 0 means 2048 (the SDK's
	// default: at 512 spans a batch, four batches).
	QueueSize int
	// MaxSpansPerSecond bounds the spans made, a second's worth at once:
	// past it a sampled request is still propagated as sampled but gets
	// no span. A client can set the sampled flag on every request, and a
	// span costs far more than the request's forwarding (docs/security.md
	// threat 47); this keeps that cost a fixed share of a core. 0: no
	// bound.
	MaxSpansPerSecond float64
	// Logger is told when an export fails; nil tells no one.
	Logger *slog.Logger
}

// Check reports what New would refuse in o, without starting anything.
func Check(o Options) error {
	if o.Sampling < 0 || o.Sampling > 1 || o.Sampling != o.Sampling {
		return fmt.Errorf("trace sampling %v: want a share from 0 to 1", o.Sampling)
	}
	if o.MaxSpansPerSecond < 0 || o.MaxSpansPerSecond != o.MaxSpansPerSecond {
		return fmt.Errorf("spans per second %v: want 0 (no bound) or more", o.MaxSpansPerSecond)
	}
	if o.Endpoint == "" {
		return nil
	}
	u, err := ParseEndpoint(o.Endpoint)
	if err != nil {
		return err
	}
	e, err := newOTLPExporter(u, getenvOf(o), nil)
	if err != nil {
		return fmt.Errorf("OTLP exporter: %w", err)
	}
	e.Shutdown(context.Background())
	return nil
}

func getenvOf(o Options) func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}

// Stats count spans since the Tracer was made.
type Stats struct {
	Made     uint64 // handed to the batch processor
	Limited  uint64 // sampled requests given no span: over MaxSpansPerSecond
	Exported uint64 // accepted by the OTLP endpoint
	Failed   uint64 // in exports that failed after their retries
}

// Tracer is the gateway's tracing: the sampling decision for traces it
// starts (Begin with Sampler), and, with an endpoint, the export of a span
// per sampled request through the OpenTelemetry SDK's batch processor.
//
// A nil *Tracer is valid: it samples nothing and exports nothing. Safe for
// concurrent use.
type Tracer struct {
	sampler  Sampler
	provider *sdktrace.TracerProvider // nil: no export
	tracer   trace.Tracer
	exporter *otlpExporter
	limit    *rate.Limiter // nil: no bound
	made     atomic.Uint64
	limited  atomic.Uint64
}

// New returns the Tracer o describes. Nothing is connected yet: the first
// batch of spans dials the endpoint.
func New(o Options) (*Tracer, error) {
	if err := Check(Options{Sampling: o.Sampling, MaxSpansPerSecond: o.MaxSpansPerSecond}); err != nil {
		return nil, err
	}
	t := &Tracer{sampler: NewSampler(o.Sampling)}
	if o.Endpoint == "" {
		return t, nil
	}
	if o.MaxSpansPerSecond > 0 {
		t.limit = rate.NewLimiter(rate.Limit(o.MaxSpansPerSecond), max(1, int(o.MaxSpansPerSecond)))
	}
	u, err := ParseEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	// Connects nowhere yet.
	exp, err := newOTLPExporter(u, getenvOf(o), o.Logger)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	// service.name first, so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// (read last) can rename the gateway or add to what it says of itself.
	res, err := resource.New(context.Background(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "gatehouse")), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("describing the gateway for OTLP: %w", err)
	}
	queue := o.QueueSize
	if queue <= 0 {
		queue = sdktrace.DefaultMaxQueueSize
	}
	t.provider = sdktrace.NewTracerProvider(
		// Not blocking (the default): a full queue drops the span, so a
		// slow or absent collector never holds a request up. Failed
		// exports are logged by loggedExporter: the SDK would hand them to
		// OpenTelemetry's process-global error handler.
		sdktrace.WithBatcher(loggedExporter{exp}, sdktrace.WithMaxQueueSize(queue)),
		sdktrace.WithResource(res),
		// The SDK makes the same decision Begin made (sampler.go), so a
		// span Export creates is one the SDK keeps.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.Sampling))),
		sdktrace.WithIDGenerator(ids{}),
	)
	t.tracer = t.provider.Tracer("github.com/gatehouse-dev/gatehouse/proxy")
	t.exporter = exp
	return t, nil
}

// Stats are the span counts so far; zero for a Tracer that does not
// export.
func (t *Tracer) Stats() Stats {
	if !t.Exporting() {
		return Stats{}
	}
	return Stats{Made: t.made.Load(), Limited: t.limited.Load(), Exported: t.exporter.exported.Load(), Failed: t.exporter.failed.Load()}
}

// ParseEndpoint checks an OTLP/HTTP endpoint URL and returns it with its
// path filled in (/v1/traces when it has none).
func ParseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("OTLP endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("OTLP endpoint %q: want an http:// or https:// URL", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want a host and a port (a collector's OTLP/HTTP port is usually 4318)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want no credentials, query or fragment", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u, nil
}

// Sampler is the decision for traces the gateway starts; the zero
// Sampler (sampling none) for a nil Tracer.
func (t *Tracer) Sampler() Sampler {
	if t == nil {
		return Sampler{}
	}
	return t.sampler
}

// Exporting reports whether sampled requests get a span exported.
func (t *Tracer) Exporting() bool { return t != nil && t.provider != nil }

// Span is what Export records of one request.
type Span struct {
	Name       string
	Start, End time.Time
	// TraceState is the client's tracestate, kept with its span as the
	// parent's; "" for none (and ignored for a trace the gateway started).
	TraceState string
	Attributes []attribute.KeyValue
	// Failed marks the span's status as an error, with Status as its
	// description.
	Failed bool
	Status string
}

// Export hands the span of the request in c to the batch processor: a
// server span with c's ids (the span the upstream was told is its parent),
// the client's span as its remote parent when the trace is the client's.
// It does nothing unless the Tracer is exporting and c is sampled. It
// does not wait for the export, and keeps nothing of s but its strings.
func (t *Tracer) Export(c *Context, s *Span) {
	if !t.Exporting() || !c.Sampled() {
		return
	}
	if t.limit != nil && !t.limit.Allow() {
		t.limited.Add(1)
		return
	}
	t.made.Add(1)
	// The ids are c's, not new ones: the SDK asks ids{} for them with this
	// context.
	ctx := context.WithValue(context.Background(), idsKey{}, c)
	if c.Continued() {
		state, _ := trace.ParseTraceState(s.TraceState) // a broken tracestate is dropped, not the trace
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID(c.TraceID),
			SpanID:     trace.SpanID(c.Parent),
			TraceFlags: trace.TraceFlags(c.Flags),
			TraceState: state,
			Remote:     true,
		}))
	}
	_, span := t.tracer.Start(ctx, s.Name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(s.Start),
		trace.WithAttributes(s.Attributes...))
	if s.Failed {
		span.SetStatus(codes.Error, s.Status)
	}
	span.End(trace.WithTimestamp(s.End))
}

// Shutdown exports what is queued and stops the exporter, within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if !t.Exporting() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("flushing trace spans: %w", err)
	}
	return nil
}

// ids gives the SDK the ids Begin chose, which the upstream already has.
// Outside Export (nothing else starts spans on this provider) it makes
// random ones, as the SDK's own generator does.
type ids struct{}

type idsKey struct{}

var _ sdktrace.IDGenerator = ids{}

func (ids) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if c, ok := ctx.Value(idsKey{}).(*Context); ok {
		return trace.TraceID(c.TraceID), trace.SpanID(c.Span)
	}
	c := Begin(nil, Sampler{})
	return trace.TraceID(c.TraceID), trace.SpanID(c.Span)
}

func (ids) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if c, ok := ctx.Value(idsKey{}).(*Context); ok {
		return trace.SpanID(c.Span)
	}
	return trace.SpanID(newSpanID())
}
