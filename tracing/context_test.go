package tracing

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	validTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	validParent = "00f067aa0ba902b7"
)

func TestParse(t *testing.T) {
	check := func(v string, ok bool, flags byte) {
		t.Helper()
		id, parent, f, got := Parse(v)
		if got != ok {
			t.Errorf("Parse(%q) ok = %v, want %v", v, got, ok)
			return
		}
		if !ok {
			if id != (TraceID{}) || parent != (SpanID{}) || f != 0 {
				t.Errorf("Parse(%q) invalid but returned %x %x %x", v, id, parent, f)
			}
			return
		}
		if f != flags {
			t.Errorf("Parse(%q) flags = %#x, want %#x", v, f, flags)
		}
		if h := hexOf(id[:]); h != v[3:35] {
			t.Errorf("Parse(%q) trace = %s", v, h)
		}
		if h := hexOf(parent[:]); h != v[36:52] {
			t.Errorf("Parse(%q) parent = %s", v, h)
		}
	}
	tp := func(version, trace, parent, flags string) string {
		return version + "-" + trace + "-" + parent + "-" + flags
	}
	check(tp("00", validTrace, validParent, "01"), true, 0x01)
	check(tp("00", validTrace, validParent, "00"), true, 0x00)
	check(tp("00", validTrace, validParent, "03"), true, 0x03)              // sampled, random (Level 2)
	check(tp("00", validTrace, validParent, "04"), false, 0)                // a reserved flag in version 00
	check(tp("00", validTrace, validParent, "01")+"-x", false, 0)           // version 00 has nothing after the flags
	check(tp("00", validTrace, validParent, "01")+" ", false, 0)            // nor a space
	check(tp("01", validTrace, validParent, "01"), true, 0x01)              // a later version, read as 00
	check(tp("01", validTrace, validParent, "01")+"-what-ever", true, 0x01) // …with fields of its own after
	check(tp("01", validTrace, validParent, "01")+"x", false, 0)            // …but only after a '-'
	check(tp("cc", validTrace, validParent, "ff"), true, 0x03)              // unknown flags are not passed on
	check(tp("ff", validTrace, validParent, "01"), false, 0)                // version ff is invalid
	check(tp("0g", validTrace, validParent, "01"), false, 0)
	check(tp("00", strings.ToUpper(validTrace), validParent, "01"), false, 0) // lower-case hex only
	check(tp("00", validTrace, strings.ToUpper(validParent), "01"), false, 0)
	check(tp("00", validTrace, validParent, "0A"), false, 0)
	check(tp("00", strings.Repeat("0", 32), validParent, "01"), false, 0) // all-zero trace id
	check(tp("00", validTrace, strings.Repeat("0", 16), "01"), false, 0)  // all-zero parent id
	check(tp("00", validTrace[1:], validParent, "01"), false, 0)
	check(tp("00", validTrace, validParent+"0", "01"), false, 0)
	check(tp("00", validTrace, validParent, "1"), false, 0)
	check(strings.ReplaceAll(tp("00", validTrace, validParent, "01"), "-", "_"), false, 0)
	check("", false, 0)
	check("00", false, 0)
}

// TestParseAgreesWithOpenTelemetry: Parse and the OpenTelemetry SDK's W3C
// propagator (what most services behind the gateway run) accept and reject
// the same values, and read the same ids and flags, on random mutations of
// valid values.
func TestParseAgreesWithOpenTelemetry(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "0123456789abcdefABCDEF-xz "
	for i := range 20000 {
		c := Begin(nil, NewSampler(0.5))
		var b [TraceparentLen]byte
		c.Put(&b)
		v := []byte(string(b[:]))
		if i%3 != 0 {
			v[0], v[1] = hexDigits[r.IntN(16)], hexDigits[r.IntN(16)]
		}
		for range r.IntN(3) {
			if len(v) == 0 {
				break
			}
			switch r.IntN(4) {
			case 0:
				v[r.IntN(len(v))] = alphabet[r.IntN(len(alphabet))]
			case 1:
				v = append(v, alphabet[r.IntN(len(alphabet))])
			case 2:
				v = v[:r.IntN(len(v))]
			case 3:
				at := 3 + r.IntN(32)
				if at < len(v) {
					v[at] = '0'
				}
			}
		}
		agree(t, string(v))
	}
	for _, v := range []string{
		"00-" + strings.Repeat("0", 32) + "-" + validParent + "-01",
		"00-" + validTrace + "-" + strings.Repeat("0", 16) + "-01",
		"fe-" + validTrace + "-" + validParent + "-ff-",
	} {
		agree(t, v)
	}
}

func agree(t *testing.T, v string) {
	t.Helper()
	id, parent, flags, ok := Parse(v)
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(http.Header{"Traceparent": {v}}))
	sc := trace.SpanContextFromContext(ctx)
	if !ok && sc.IsValid() && len(v) == TraceparentLen+1 && strings.HasPrefix(v, "00-") && v[TraceparentLen] == '-' {
		// The one known difference: OpenTelemetry takes a version 00 value
		// with a '-' after the flags; the specification says a version 00
		// value is exactly 55 characters, and so does Parse.
		return
	}
	if sc.IsValid() != ok {
		t.Fatalf("%q: Parse ok = %v, OpenTelemetry valid = %v", v, ok, sc.IsValid())
	}
	if ok && (trace.TraceID(id) != sc.TraceID() || trace.SpanID(parent) != sc.SpanID() || trace.TraceFlags(flags) != sc.TraceFlags()) {
		t.Fatalf("%q: Parse read %x %x %x, OpenTelemetry %s %s %s", v, id, parent, flags, sc.TraceID(), sc.SpanID(), sc.TraceFlags())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("00-" + validTrace + "-" + validParent + "-01")
	f.Add("01-" + validTrace + "-" + validParent + "-03-later")
	f.Add("ff-" + validTrace + "-" + validParent + "-01")
	f.Fuzz(func(t *testing.T, v string) {
		agree(t, v)
		id, parent, flags, ok := Parse(v)
		if !ok {
			return
		}
		// What the gateway writes back reads as what it read.
		c := Context{TraceID: id, Parent: parent, Span: parent, Flags: flags}
		var b [TraceparentLen]byte
		c.Put(&b)
		id2, parent2, flags2, ok2 := Parse(string(b[:]))
		if !ok2 || id2 != id || parent2 != parent || flags2 != flags {
			t.Fatalf("%q rewritten as %q reads differently", v, b)
		}
	})
}

func TestBegin(t *testing.T) {
	given := "00-" + validTrace + "-" + validParent + "-01"
	all, none := NewSampler(1), NewSampler(0)

	c := Begin([]string{given}, none)
	if hexOf(c.TraceID[:]) != validTrace || hexOf(c.Parent[:]) != validParent || !c.Sampled() || !c.Continued() {
		t.Errorf("continued: %+v", c)
	}
	if c.Span == (SpanID{}) || c.Span == c.Parent {
		t.Errorf("continued: the gateway's span is %x, the client's %x", c.Span, c.Parent)
	}
	var b [TraceparentLen]byte
	c.Put(&b)
	if want := "00-" + validTrace + "-" + hexOf(c.Span[:]) + "-01"; string(b[:]) != want {
		t.Errorf("continued: traceparent %s, want %s", b, want)
	}
	// The client's unsampled flag is honoured even when the gateway
	// samples everything it starts.
	if c := Begin([]string{"00-" + validTrace + "-" + validParent + "-00"}, all); c.Sampled() || !c.Continued() {
		t.Errorf("continued unsampled: %+v", c)
	}

	for _, tc := range []struct {
		name string
		in   []string
	}{
		{"none", nil},
		{"invalid", []string{"00-" + strings.ToUpper(validTrace) + "-" + validParent + "-01"}},
		{"two fields", []string{given, given}},
	} {
		for _, s := range []Sampler{all, none} {
			c := Begin(tc.in, s)
			if c.Continued() || c.TraceID == (TraceID{}) || c.Span == (SpanID{}) || hexOf(c.TraceID[:]) == validTrace {
				t.Errorf("%s: not a new trace: %+v", tc.name, c)
			}
			if c.Sampled() != (s == all) {
				t.Errorf("%s: sampled = %v with sampler %+v", tc.name, c.Sampled(), s)
			}
			c.Put(&b)
			if id, span, flags, ok := Parse(string(b[:])); !ok || id != c.TraceID || span != c.Span || flags != c.Flags {
				t.Errorf("%s: wrote %q", tc.name, b)
			}
		}
	}
}

func TestBeginShare(t *testing.T) {
	s := NewSampler(0.25)
	n := 0
	for range 40000 {
		if c := Begin(nil, s); c.Sampled() {
			n++
		}
	}
	if n < 9400 || n > 10600 { // 10000 ± 6σ
		t.Errorf("sampled %d of 40000 at 0.25", n)
	}
}

func TestBeginAllocs(t *testing.T) {
	in := []string{"00-" + validTrace + "-" + validParent + "-01"}
	s := NewSampler(0.5)
	var b [TraceparentLen]byte
	for _, v := range [][]string{nil, in} {
		if n := testing.AllocsPerRun(100, func() {
			c := Begin(v, s)
			c.Put(&b)
		}); n != 0 {
			t.Errorf("Begin(%q) and Put: %v allocations", v, n)
		}
	}
}

func hexOf(b []byte) string {
	out := make([]byte, 2*len(b))
	putHex(out, b)
	return string(out)
}
