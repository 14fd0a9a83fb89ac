package tracing

import (
	"math/rand/v2"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestSamplerAgreesWithSDK: the fast path's decision for a trace the
// gateway starts is the SDK's TraceIDRatioBased decision on the same id,
// so every span Tracer.Export starts is one the SDK keeps, and a trace
// told "sampled" upstream is one the gateway exports.
func TestSamplerAgreesWithSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ids := []TraceID{{}, {15: 1}, {8: 0x80}, {8: 0x7f, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}}
	for range 5000 {
		var id TraceID
		putUint64(id[:8], r.Uint64())
		putUint64(id[8:], r.Uint64())
		ids = append(ids, id)
	}
	for _, ratio := range []float64{-1, 0, 1e-9, 0.001, 0.01, 0.25, 0.5, 0.999999, 1, 2} {
		ours, sdk := NewSampler(ratio), sdktrace.TraceIDRatioBased(ratio)
		for _, id := range ids {
			want := sdk.ShouldSample(sdktrace.SamplingParameters{TraceID: trace.TraceID(id)}).Decision == sdktrace.RecordAndSample
			if got := ours.Sample(id); got != want {
				t.Fatalf("ratio %v, id %x: Sample = %v, the SDK says %v", ratio, id, got, want)
			}
		}
	}
}
