package tracing

// Sampler decides whether a trace the gateway starts is sampled. The
// decision is the OpenTelemetry SDK's TraceIDRatioBased one, made from the
// trace id alone (its last 8 bytes, big-endian, shifted right once, below
// ratio × 2⁶³), so the SDK, handed the same id, agrees (sampler_test.go
// holds the two to that), and any other component that samples by ratio
// on the id makes the same choice for the same share.
//
// A trace the client started is not the Sampler's to decide: its sampled
// flag is honoured either way (parent-based sampling).
//
// The zero Sampler samples nothing. A Sampler is a value: safe for
// concurrent use.
type Sampler struct {
	bound uint64 // ids below it are sampled
	all   bool
}

// NewSampler samples the given share of the traces the gateway starts:
// 1 or more samples all of them, 0 or less none.
func NewSampler(ratio float64) Sampler {
	switch {
	case ratio >= 1:
		return Sampler{all: true}
	case ratio <= 0 || ratio != ratio: // NaN samples nothing
		return Sampler{}
	}
	return Sampler{bound: uint64(ratio * (1 << 63))}
}

// Sample reports whether the trace with this id is sampled.
func (s Sampler) Sample(id TraceID) bool {
	if s.all {
		return true
	}
	var x uint64
	for _, b := range id[8:] {
		x = x<<8 | uint64(b)
	}
	return x>>1 < s.bound
}
