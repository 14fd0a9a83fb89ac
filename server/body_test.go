package server

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// nullWriter is a ResponseWriter that keeps nothing, so a benchmark
// measures the handler and not a recorder. Like net/http's, it takes read
// deadlines.
type nullWriter struct{ h http.Header }

func (w nullWriter) Header() http.Header               { return w.h }
func (w nullWriter) Write(p []byte) (int, error)       { return len(p), nil }
func (w nullWriter) WriteHeader(int)                   {}
func (w nullWriter) SetReadDeadline(_ time.Time) error { return nil }

// BenchmarkBodyGuard is the guard's cost per request against the bare
// handler: nothing for a request without a body; for one with a body, one
// allocation, and a lock and two clock readings per read. Moving the
// connection's deadline is not included (a nullWriter has no connection):
// it is a timer update in the runtime's poller.
func BenchmarkBodyGuard(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	guarded := newBodyGuard(h, Limits{}.withDefaults(), prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}))
	payload := []byte(strings.Repeat("x", 512))
	for _, bc := range []struct {
		name string
		h    http.Handler
		body bool
	}{
		{"no-body/bare", h, false},
		{"no-body/guard", guarded, false},
		{"body/bare", h, true},
		{"body/guard", guarded, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := nullWriter{h: http.Header{}}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			rd := bytes.NewReader(payload)
			// Only Read, like net/http's body: no WriteTo shortcut for
			// the bare handler.
			body := io.NopCloser(struct{ io.Reader }{rd})
			for b.Loop() {
				r.Body = http.NoBody
				if bc.body {
					rd.Reset(payload)
					r.Body = body
				}
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}
