// Package tracing is the gateway's part in distributed traces: the W3C
// Trace Context (https://www.w3.org/TR/trace-context/) of every request,
// continued from the client's traceparent or started here, passed to the
// upstream with a span id of the gateway's own; the decision whether a
// trace the gateway starts is sampled; and, with an OTLP endpoint, one
// span per sampled request exported with the OpenTelemetry SDK.
//
// Propagation runs on every request and allocates nothing: a traceparent
// is parsed by hand into fixed arrays (Parse) and written back from them
// (Context.Put). Only the export of a sampled request goes through the SDK
// (Tracer.Export), and that path allocates.
package tracing

import (
	"math/rand/v2"
)

// TraceID is a trace's id, 16 bytes, not all zero when valid.
type TraceID [16]byte

// SpanID is a span's id, 8 bytes, not all zero when valid.
type SpanID [8]byte

// FlagSampled is the trace-flags bit that says the caller may have
// recorded the trace, and asks those after it to do the same.
const FlagSampled byte = 0x01

// flagsKnown are the trace-flags bits passed on: sampled and random (Trace
// Context Level 2, "the trace id is random"). Others are reserved; as the
// OpenTelemetry SDK's propagator does, a version 00 traceparent setting
// one is invalid, and a later version's are not passed on.
const flagsKnown byte = 0x03

// TraceparentLen is the length of a version 00 traceparent value:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const TraceparentLen = 55

// Context is one request's place in its trace.
//
// Its zero value is no trace; Begin makes a valid one.
type Context struct {
	// TraceID is the client's trace, or the one the gateway started.
	TraceID TraceID
	// Parent is the client's span (the parent-id it sent); zero when the
	// trace started at the gateway.
	Parent SpanID
	// Span is the gateway's span: the parent-id the upstream is sent, and
	// the id of the span exported for the request.
	Span SpanID
	// Flags are the trace-flags the upstream is sent: the client's, or the
	// gateway's sampling decision for a trace it started.
	Flags byte
}

// Sampled reports whether the trace is sampled.
func (c *Context) Sampled() bool { return c.Flags&FlagSampled != 0 }

// Continued reports whether the trace came from the client's traceparent
// (its tracestate goes on with it); false for a trace the gateway started.
func (c *Context) Continued() bool { return c.Parent != SpanID{} }

// Put writes the traceparent the upstream is sent: version 00, the trace,
// the gateway's span, the flags.
func (c *Context) Put(dst *[TraceparentLen]byte) {
	dst[0], dst[1], dst[2] = '0', '0', '-'
	putHex(dst[3:35], c.TraceID[:])
	dst[35] = '-'
	putHex(dst[36:52], c.Span[:])
	dst[52] = '-'
	dst[53], dst[54] = hexDigits[c.Flags>>4], hexDigits[c.Flags&0x0f]
}

const hexDigits = "0123456789abcdef"

func putHex(dst, src []byte) {
	for i, b := range src {
		dst[2*i] = hexDigits[b>>4]
		dst[2*i+1] = hexDigits[b&0x0f]
	}
}

// Parse reads a traceparent value: version, trace-id, parent-id and
// trace-flags, lower-case hex separated by '-'. A version 00 value is
// exactly TraceparentLen long; a later version's may go on after another
// '-', and is read as far as version 00 reaches (what the specification
// asks of a reader that knows only 00). Version ff, an all-zero trace-id
// or parent-id, and upper-case hex are invalid (ok false). The flags
// returned keep only the known bits.
func Parse(v string) (trace TraceID, parent SpanID, flags byte, ok bool) {
	if len(v) < TraceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace, parent, 0, false
	}
	var version [1]byte
	if !getHex(version[:], v[0:2]) || version[0] == 0xff {
		return trace, parent, 0, false
	}
	if len(v) > TraceparentLen && (version[0] == 0 || v[TraceparentLen] != '-') {
		return trace, parent, 0, false
	}
	var f [1]byte
	if !getHex(trace[:], v[3:35]) || !getHex(parent[:], v[36:52]) || !getHex(f[:], v[53:55]) {
		return TraceID{}, SpanID{}, 0, false
	}
	if version[0] == 0 && f[0]&^flagsKnown != 0 {
		return TraceID{}, SpanID{}, 0, false
	}
	if trace == (TraceID{}) || parent == (SpanID{}) {
		return TraceID{}, SpanID{}, 0, false
	}
	return trace, parent, f[0] & flagsKnown, true
}

// getHex decodes lower-case hex s into dst (len(s) == 2*len(dst)).
func getHex(dst []byte, s string) bool {
	for i := range dst {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi > 0x0f || lo > 0x0f {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 0xff
}

// Begin continues the trace of a request whose traceparent field has the
// values given (http.Header's slice, nil when it sent none), or starts one.
// One valid value continues the client's trace: same trace id and flags,
// the client's span as the parent, a new span for the gateway. Anything
// else (none, an invalid value, several fields, which the specification
// forbids) starts a new trace, sampled as s decides, and whatever
// tracestate came with it belongs to no trace the gateway knows.
//
// The ids come from math/rand/v2's top-level functions: the runtime's
// ChaCha8 generator, one per thread, seeded from the operating system's
// entropy, so no lock is shared between requests and nothing is allocated
// (the OpenTelemetry SDK makes its ids the same way).
func Begin(traceparent []string, s Sampler) Context {
	var c Context
	if len(traceparent) == 1 {
		var ok bool
		if c.TraceID, c.Parent, c.Flags, ok = Parse(traceparent[0]); ok {
			c.Span = newSpanID()
			return c
		}
	}
	for c.TraceID == (TraceID{}) {
		putUint64(c.TraceID[:8], rand.Uint64())
		putUint64(c.TraceID[8:], rand.Uint64())
	}
	c.Parent = SpanID{}
	c.Flags = 0
	if s.Sample(c.TraceID) {
		c.Flags = FlagSampled
	}
	c.Span = newSpanID()
	return c
}

func newSpanID() SpanID {
	var id SpanID
	for id == (SpanID{}) {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}
