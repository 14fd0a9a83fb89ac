package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// otlpExporter sends the SDK's finished spans to an OTLP/HTTP endpoint as
// protobuf, written field by field with protowire.
//
// Why not the SDK's otlptracehttp: it links grpc-go, grpc-gateway and
// protojson for its shared configuration and status types, about 3 MB of
// executable and 3.8 MiB of resident memory on every gateway (measured with
// tracing off, docs/benchmarks.md "Tracing"), for a message this file
// writes in a hundred lines. The encoding is checked against the official
// OTLP protobuf types and a real Collector (otlp_test.go,
// e2e/TestTracingExport).
//
// The batch processor calls ExportSpans from one goroutine; the mutex is
// for Shutdown racing it.
type otlpExporter struct {
	url     string
	client  *http.Client
	headers http.Header
	gzip    bool
	timeout time.Duration // each POST
	log     *slog.Logger

	exported, failed atomic.Uint64 // spans, by how their export ended

	mu       sync.Mutex
	buf      []byte // the encoded request, reused between exports
	zbuf     bytes.Buffer
	zw       *gzip.Writer
	shutdown bool
}

var _ sdktrace.SpanExporter = (*otlpExporter)(nil)

// The environment variables of the OpenTelemetry specification that the
// exporter honours (the _TRACES_ form first). The endpoint is not among
// them: --otlp-endpoint names it.
const (
	envHeaders     = "OTEL_EXPORTER_OTLP_HEADERS"
	envTimeout     = "OTEL_EXPORTER_OTLP_TIMEOUT"
	envCompression = "OTEL_EXPORTER_OTLP_COMPRESSION"
	envCertificate = "OTEL_EXPORTER_OTLP_CERTIFICATE"
	envClientCert  = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
	envClientKey   = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
)

// newOTLPExporter returns an exporter posting to u (http or https, path
// included), configured from getenv.
func newOTLPExporter(u *url.URL, getenv func(string) string, log *slog.Logger) (*otlpExporter, error) {
	env := func(name string) string {
		if v := getenv(strings.Replace(name, "OTLP_", "OTLP_TRACES_", 1)); v != "" {
			return v
		}
		return getenv(name)
	}
	e := &otlpExporter{url: u.String(), headers: http.Header{}, timeout: 10 * time.Second, log: log}
	if v := env(envHeaders); v != "" {
		if err := parseHeaders(v, e.headers); err != nil {
			return nil, fmt.Errorf("%s: %w", envHeaders, err)
		}
	}
	if v := env(envTimeout); v != "" {
		ms, err := strconv.ParseUint(v, 10, 31)
		if err != nil || ms == 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number of milliseconds", envTimeout, v)
		}
		e.timeout = time.Duration(ms) * time.Millisecond
	}
	switch v := env(envCompression); v {
	case "", "none":
	case "gzip":
		e.gzip = true
		e.zw = gzip.NewWriter(&e.zbuf)
	default:
		return nil, fmt.Errorf("%s=%q: want gzip or none", envCompression, v)
	}
	tlsConf, err := exporterTLS(env)
	if err != nil {
		return nil, err
	}
	e.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConf,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: e.timeout,
		},
		// A collector that redirects is misconfigured; following would
		// replay the spans somewhere nobody named.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// parseHeaders reads the specification's "k1=v1,k2=v2" form, values
// percent-encoded, into h.
func parseHeaders(s string, h http.Header) error {
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", pair)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
		// What net/http would refuse on every POST is refused once, here.
		if !h1.IsToken(k) {
			return fmt.Errorf("%q is not a header name", k)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			return fmt.Errorf("header %s: the value holds a line break or NUL", k)
		}
		h.Set(k, val)
	}
	return nil
}

// exporterTLS is the TLS configuration the environment asks for: a CA
// file to verify the collector with, a client certificate and key; nil
// for the system's roots and no client certificate.
func exporterTLS(env func(string) string) (*tls.Config, error) {
	ca, cert, key := env(envCertificate), env(envClientCert), env(envClientKey)
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envCertificate, err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in %s", envCertificate, ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("%s and %s go together", envClientCert, envClientKey)
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envClientCert, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// ExportSpans posts spans as one ExportTraceServiceRequest, retrying
// what OTLP calls retryable (429, 502, 503, 504 and failures to connect)
// with backoff until ctx ends.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shutdown {
		return errors.New("OTLP exporter is shut down")
	}
	e.buf = appendTracesData(e.buf[:0], spans)
	body := e.buf
	if e.gzip {
		e.zbuf.Reset()
		e.zw.Reset(&e.zbuf)
		e.zw.Write(body) // a bytes.Buffer does not fail
		e.zw.Close()
		body = e.zbuf.Bytes()
	}
	backoff := 100 * time.Millisecond
	for {
		retry, wait, err := e.post(ctx, body)
		if err == nil {
			e.exported.Add(uint64(len(spans)))
			return nil
		}
		if !retry {
			e.failed.Add(uint64(len(spans)))
			return err
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			e.failed.Add(uint64(len(spans)))
			return fmt.Errorf("%w (giving up: %v)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// post sends body once; retry says whether trying again may help, after
// wait when the collector said how long (Retry-After).
func (e *otlpExporter) post(ctx context.Context, body []byte) (retry bool, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, err
	}
	for k, v := range e.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "gatehouse-otlp")
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// Connecting, TLS, a timeout: all may pass; ExportSpans's context
		// bounds the tries.
		return true, 0, fmt.Errorf("posting spans to %s: %w", e.url, err)
	}
	defer resp.Body.Close()
	// Bounded: the answer is a short message, and a hostile or broken
	// endpoint must not make the gateway buffer without limit.
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		if rejected, msg := partialSuccess(reply); (rejected > 0 || msg != "") && e.log != nil {
			e.log.Warn("the OTLP endpoint rejected spans", "rejected", rejected, "message", msg)
		}
		return false, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(min(s, 60)) * time.Second
		}
		return true, wait, fmt.Errorf("posting spans to %s: %s", e.url, resp.Status)
	default:
		return false, 0, fmt.Errorf("posting spans to %s: %s: %s", e.url, resp.Status, statusMessage(reply, resp.Header.Get("Content-Type")))
	}
}

// partialSuccess reads ExportTraceServiceResponse.partial_success
// (field 1: rejected_spans = 1, error_message = 2) from a reply; zero for
// anything it cannot read.
func partialSuccess(b []byte) (rejected int64, msg string) {
	ps := field(b, 1, protowire.BytesType)
	if ps == nil {
		return 0, ""
	}
	if v := field(ps, 1, protowire.VarintType); v != nil {
		n, _ := protowire.ConsumeVarint(v)
		rejected = int64(n)
	}
	return rejected, string(field(ps, 2, protowire.BytesType))
}

// statusMessage is the message of a google.rpc.Status reply (field 2),
// the text of any other reply, shortened either way.
func statusMessage(b []byte, contentType string) string {
	if strings.HasPrefix(contentType, "application/x-protobuf") {
		b = field(b, 2, protowire.BytesType)
	}
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return s
}

// field returns the value of the last field num of type typ in the
// message b: a varint's encoding, or a length-delimited field's bytes;
// nil when there is none or b is malformed.
func field(b []byte, num protowire.Number, typ protowire.Type) []byte {
	var found []byte
	for len(b) > 0 {
		n, t, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			return nil
		}
		b = b[tagLen:]
		valLen := protowire.ConsumeFieldValue(n, t, b)
		if valLen < 0 {
			return nil
		}
		if n == num && t == typ {
			found = b[:valLen]
			if t == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(b)
				found = v
			}
		}
		b = b[valLen:]
	}
	return found
}

// loggedExporter logs a failed export with the exporter's logger and
// tells the batch processor it is done: the processor would only pass the
// error to OpenTelemetry's global error handler, which is process-wide
// state and prints in its own format. The count of failed spans is kept
// by the exporter either way.
type loggedExporter struct{ *otlpExporter }

func (l loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := l.otlpExporter.ExportSpans(ctx, spans); err != nil && l.log != nil {
		l.log.Warn("exporting trace spans", "error", err, "spans", len(spans))
	}
	return nil
}

// Shutdown stops exports; the batch processor has flushed before it calls
// this.
func (e *otlpExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdown = true
	e.client.CloseIdleConnections()
	return nil
}

// Field numbers of the OTLP protobuf messages (opentelemetry-proto,
// trace/v1, common/v1, resource/v1). TracesData's only field is
// ExportTraceServiceRequest's, so one encodes as the other.
const (
	tracesResourceSpans = 1

	resourceSpansResource   = 1
	resourceSpansScopeSpans = 2
	resourceSpansSchemaURL  = 3

	resourceAttributes = 1

	scopeSpansScope     = 1
	scopeSpansSpans     = 2
	scopeSpansSchemaURL = 3

	scopeName    = 1
	scopeVersion = 2
	scopeAttrs   = 3

	spanTraceID      = 1
	spanSpanID       = 2
	spanTraceState   = 3
	spanParentSpanID = 4
	spanName         = 5
	spanKind         = 6
	spanStart        = 7
	spanEnd          = 8
	spanAttributes   = 9
	spanDroppedAttrs = 10
	spanEvents       = 11
	spanDroppedEvts  = 12
	spanLinks        = 13
	spanDroppedLinks = 14
	spanStatus       = 15
	spanFlags        = 16

	eventTime       = 1
	eventName       = 2
	eventAttributes = 3
	eventDropped    = 4

	linkTraceID    = 1
	linkSpanID     = 2
	linkTraceState = 3
	linkAttributes = 4
	linkDropped    = 5
	linkFlags      = 6

	statusMessageField = 2
	statusCode         = 3

	keyValueKey   = 1
	keyValueValue = 2

	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKVList = 6
	anyBytes  = 7

	arrayValues = 1 // ArrayValue.values and KeyValueList.values alike

	// Span.flags and Link.flags: the W3C flags in the low byte, then
	// whether the parent's remoteness is known and whether it is remote.
	flagsHasIsRemote = 0x100
	flagsIsRemote    = 0x200
)

// appendTracesData appends spans as a TracesData message, grouped by
// resource and then by instrumentation scope, in their order.
func appendTracesData(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	type scoped struct {
		scope instrumentation.Scope
		spans []sdktrace.ReadOnlySpan
	}
	type resourced struct {
		res    *resource.Resource
		scopes []scoped
	}
	var groups []resourced
	for _, s := range spans {
		gi := -1
		for i := range groups {
			if groups[i].res == s.Resource() || groups[i].res.Equal(s.Resource()) {
				gi = i
				break
			}
		}
		if gi < 0 {
			groups = append(groups, resourced{res: s.Resource()})
			gi = len(groups) - 1
		}
		g := &groups[gi]
		si := -1
		for i := range g.scopes {
			if sameScope(g.scopes[i].scope, s.InstrumentationScope()) {
				si = i
				break
			}
		}
		if si < 0 {
			g.scopes = append(g.scopes, scoped{scope: s.InstrumentationScope()})
			si = len(g.scopes) - 1
		}
		g.scopes[si].spans = append(g.scopes[si].spans, s)
	}
	for _, g := range groups {
		var rs int
		b, rs = beginMessage(b, tracesResourceSpans)
		if g.res != nil {
			var r int
			b, r = beginMessage(b, resourceSpansResource)
			for _, kv := range g.res.Attributes() {
				b = appendKeyValue(b, resourceAttributes, kv)
			}
			b = endMessage(b, r)
		}
		for _, sc := range g.scopes {
			var ss int
			b, ss = beginMessage(b, resourceSpansScopeSpans)
			var sm int
			b, sm = beginMessage(b, scopeSpansScope)
			b = appendString(b, scopeName, sc.scope.Name)
			b = appendString(b, scopeVersion, sc.scope.Version)
			for _, kv := range sc.scope.Attributes.ToSlice() {
				b = appendKeyValue(b, scopeAttrs, kv)
			}
			b = endMessage(b, sm)
			for _, s := range sc.spans {
				b = appendSpan(b, s)
			}
			b = appendString(b, scopeSpansSchemaURL, sc.scope.SchemaURL)
			b = endMessage(b, ss)
		}
		if g.res != nil {
			b = appendString(b, resourceSpansSchemaURL, g.res.SchemaURL())
		}
		b = endMessage(b, rs)
	}
	return b
}

func sameScope(a, b instrumentation.Scope) bool {
	return a.Name == b.Name && a.Version == b.Version && a.SchemaURL == b.SchemaURL && a.Attributes.Equals(&b.Attributes)
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	var at int
	b, at = beginMessage(b, scopeSpansSpans)
	sc, parent := s.SpanContext(), s.Parent()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, spanTraceID, tid[:])
	b = appendBytes(b, spanSpanID, sid[:])
	b = appendString(b, spanTraceState, sc.TraceState().String())
	if parent.SpanID().IsValid() {
		pid := parent.SpanID()
		b = appendBytes(b, spanParentSpanID, pid[:])
	}
	b = appendString(b, spanName, s.Name())
	// OTLP's SpanKind is the API's, both numbering unspecified as 0.
	if k := s.SpanKind(); k != trace.SpanKindUnspecified {
		b = protowire.AppendTag(b, spanKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(k))
	}
	b = appendTime(b, spanStart, s.StartTime())
	b = appendTime(b, spanEnd, s.EndTime())
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, spanAttributes, kv)
	}
	b = appendUint(b, spanDroppedAttrs, s.DroppedAttributes())
	for _, ev := range s.Events() {
		var e int
		b, e = beginMessage(b, spanEvents)
		b = appendTime(b, eventTime, ev.Time)
		b = appendString(b, eventName, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, eventAttributes, kv)
		}
		b = appendUint(b, eventDropped, ev.DroppedAttributeCount)
		b = endMessage(b, e)
	}
	b = appendUint(b, spanDroppedEvts, s.DroppedEvents())
	for _, l := range s.Links() {
		var m int
		b, m = beginMessage(b, spanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytes(b, linkTraceID, ltid[:])
		b = appendBytes(b, linkSpanID, lsid[:])
		b = appendString(b, linkTraceState, l.SpanContext.TraceState().String())
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, linkAttributes, kv)
		}
		b = appendUint(b, linkDropped, l.DroppedAttributeCount)
		b = appendFlags(b, linkFlags, l.SpanContext)
		b = endMessage(b, m)
	}
	b = appendUint(b, spanDroppedLinks, s.DroppedLinks())
	if st := s.Status(); st.Code != codes.Unset {
		var m int
		b, m = beginMessage(b, spanStatus)
		b = appendString(b, statusMessageField, st.Description)
		// OTLP's Status.code: 1 OK, 2 ERROR; the API's codes: 1 Error, 2 Ok.
		code := uint64(1)
		if st.Code == codes.Error {
			code = 2
		}
		b = protowire.AppendTag(b, statusCode, protowire.VarintType)
		b = protowire.AppendVarint(b, code)
		b = endMessage(b, m)
	}
	b = appendFlags(b, spanFlags, parent)
	return endMessage(b, at)
}

// appendFlags writes a span's or link's flags: the trace flags, and
// whether the parent (for a span) or the linked span was remote.
func appendFlags(b []byte, num protowire.Number, sc trace.SpanContext) []byte {
	flags := uint32(sc.TraceFlags()) | flagsHasIsRemote
	if sc.IsRemote() {
		flags |= flagsIsRemote
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, flags)
}

func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	var at int
	b, at = beginMessage(b, num)
	// A key is written even when empty: it is the one required field.
	b = protowire.AppendTag(b, keyValueKey, protowire.BytesType)
	b = appendUTF8(b, string(kv.Key))
	var v int
	b, v = beginMessage(b, keyValueValue)
	b = appendValue(b, kv.Value)
	b = endMessage(b, v)
	return endMessage(b, at)
}

// appendValue writes the fields of an AnyValue holding v (an empty
// AnyValue for an empty or unknown value).
func appendValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, anyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, anyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, anyDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, anyString, protowire.BytesType)
		b = appendUTF8(b, v.AsString())
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, anyBytes, protowire.BytesType)
		b = protowire.AppendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		vs := v.AsBoolSlice()
		b = appendArray(b, len(vs), func(b []byte, i int) []byte { return appendValue(b, attribute.BoolValue(vs[i])) })
	case attribute.INT64SLICE:
		vs := v.AsInt64Slice()
		b = appendArray(b, len(vs), func(b []byte, i int) []byte { return appendValue(b, attribute.Int64Value(vs[i])) })
	case attribute.FLOAT64SLICE:
		vs := v.AsFloat64Slice()
		b = appendArray(b, len(vs), func(b []byte, i int) []byte { return appendValue(b, attribute.Float64Value(vs[i])) })
	case attribute.STRINGSLICE:
		vs := v.AsStringSlice()
		b = appendArray(b, len(vs), func(b []byte, i int) []byte { return appendValue(b, attribute.StringValue(vs[i])) })
	case attribute.SLICE:
		vs := v.AsSlice()
		b = appendArray(b, len(vs), func(b []byte, i int) []byte { return appendValue(b, vs[i]) })
	case attribute.MAP:
		var at int
		b, at = beginMessage(b, anyKVList)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, arrayValues, kv)
		}
		b = endMessage(b, at)
	}
	return b
}

// appendArray writes an AnyValue's array_value of n values, each
// written by value.
func appendArray(b []byte, n int, value func(b []byte, i int) []byte) []byte {
	var at int
	b, at = beginMessage(b, anyArray)
	for i := range n {
		var e int
		b, e = beginMessage(b, arrayValues)
		b = value(b, i)
		b = endMessage(b, e)
	}
	return endMessage(b, at)
}

// beginMessage writes the tag of an embedded message and a one-byte
// length to be filled by endMessage, and returns where that byte is.
// Writing in place and moving the rare message over 127 bytes spares
// encoding each level twice to learn its size first.
func beginMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b)
}

// endMessage writes the length of the message begun at at, making room
// for a longer varint when it needs one.
func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	size := protowire.SizeVarint(uint64(n))
	if size > 1 {
		b = append(b, make([]byte, size-1)...)
		copy(b[at+size:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

// Proto3 leaves zero values out; so do these.

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return appendUTF8(b, s)
}

// appendUTF8 appends s as a length-delimited string, invalid UTF-8 as
// U+FFFD: proto3 strings must be UTF-8, and receivers built on the
// official types refuse a whole request with one bad string, so a
// client's path of raw bytes would cost the batch it is in.
func appendUTF8(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendUint(b []byte, num protowire.Number, n int) []byte {
	if n <= 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(t.UnixNano()))
}
