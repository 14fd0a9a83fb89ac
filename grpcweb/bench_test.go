package grpcweb

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discard is a client connection that keeps nothing, so that what is
// measured is the translation.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Flush()                      {}

// streamedAnswer translates a request of content type ct and a 1 KiB
// answer streamed as four 256-byte messages, each flushed, as
// ReverseProxy hands it on, then its trailers.
func streamedAnswer(d *discard, r *http.Request, chunk []byte, grpcType, zero []string) {
	clear(d.h)
	ww, _, finish := Translate(d, r)
	h := ww.Header()
	h["Content-Type"] = grpcType
	ww.WriteHeader(http.StatusOK)
	for range 4 {
		ww.Write(chunk)
		ww.(http.Flusher).Flush()
	}
	h[http.TrailerPrefix+"Grpc-Status"] = zero
	finish()
}

func benchmarkAnswer(b *testing.B, ct string) {
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Accept", "*/*")
	r.Header.Set("X-Grpc-Web", "1")
	r.Header.Set("User-Agent", "Mozilla/5.0")
	chunk := msg(strings.Repeat("x", 256-5))
	grpcType, zero := []string{"application/grpc+proto"}, []string{"0"}
	d := &discard{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(4 * int64(len(chunk)))
	for b.Loop() {
		streamedAnswer(d, r, chunk, grpcType, zero)
	}
}

func BenchmarkAnswerBinary(b *testing.B) { benchmarkAnswer(b, "application/grpc-web+proto") }
func BenchmarkAnswerText(b *testing.B)   { benchmarkAnswer(b, "application/grpc-web-text+proto") }

func BenchmarkDecoder(b *testing.B) {
	text := base64.StdEncoding.EncodeToString(msg(strings.Repeat("x", 1024-5)))
	p := make([]byte, 32<<10) // as net/http's transport reads
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		d := newDecoder(io.NopCloser(strings.NewReader(text)))
		for {
			if _, err := d.Read(p); err != nil {
				break
			}
		}
	}
}

// TestAllocs holds the translation of a streamed answer to its budget:
// the writer (which holds the outgoing request and the header values it
// sets), finish (a method value), the outgoing request's own header
// (Header.Clone: the map, its first group, one array for all values: r
// is the caller's and stays as it is); and the encoder for the text form.
// Writing, flushing and the trailer frame allocate nothing.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	check := func(ct string, budget float64) {
		t.Helper()
		r := httptest.NewRequest("POST", "/svc.S/M", nil)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Accept", "*/*")
		chunk := msg(strings.Repeat("x", 251))
		grpcType, zero := []string{"application/grpc+proto"}, []string{"0"}
		d := &discard{h: make(http.Header)}
		if got := testing.AllocsPerRun(100, func() { streamedAnswer(d, r, chunk, grpcType, zero) }); got > budget {
			t.Errorf("%s: %v allocations, budget %v", ct, got, budget)
		}
	}
	check("application/grpc-web+proto", 5)
	check("application/grpc-web-text+proto", 6)
}
