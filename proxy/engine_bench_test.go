package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/h1"
	"github.com/gatehouse-dev/gatehouse/metrics"
	"github.com/gatehouse-dev/gatehouse/tracing"
)

// BenchmarkEngine is a request through the whole fast path on loopback, as
// hack/bench drives it but in one process: a keep-alive client, h1's
// server, the proxy handler (100 routes, a rate limit, metrics, and the
// access log into a LogWriter), h1's upstream pool, and an h1-served
// upstream answering 128 bytes. Its allocations per request are the
// gateway's and the test upstream's (none); the client reuses one buffer.
func BenchmarkEngine(b *testing.B) {
	roundTrip := startEngine(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEngineAllocs: a proxied request on the fast path allocates nothing, in
// the gateway or the upstream; garbage per request is what sets how often the
// collector runs, and its runs are what the p99 pays for
// (docs/benchmarks.md#the-fast-engine). The collector is off while counting,
// so that pools it would empty do not refill.
func TestEngineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("counted without the race detector: hack/test runs the Allocs tests again without it")
	}
	roundTrip := startEngine(t)
	// Not exactly 0: a background goroutine (the access log's flusher, the
	// pool's reaper) may allocate once in a while.
	if allocs := countAllocs(t, roundTrip); allocs > 0.05 {
		t.Errorf("%.2f allocations per proxied request, want 0", allocs)
	}
}

// countAllocs is the allocations per roundTrip, the collector off.
func countAllocs(t *testing.T, roundTrip func() error) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var failed error
	allocs := testing.AllocsPerRun(2000, func() {
		if err := roundTrip(); err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	return allocs
}

// startEngine serves the setup BenchmarkEngine describes and returns a
// function that sends one request and reads its answer.
func startEngine(tb testing.TB) (roundTrip func() error) { return startEngineWith(tb, nil, "") }

// startEngineWith is startEngine with the handler's Tracer and header
// lines ("Name: value\r\n") added to the request.
func startEngineWith(tb testing.TB, tracer *tracing.Tracer, header string) (roundTrip func() error) {
	body := []byte(strings.Repeat("x", 128))
	length := []string{"128"}
	upLn := listen(tb)
	up := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = length
		w.Write(body)
	})}
	go up.Serve(upLn)
	tb.Cleanup(func() { up.Shutdown(context.Background()) })

	var routes strings.Builder
	for i := range 100 {
		fmt.Fprintf(&routes, "kind: Mapping\nname: r%d\nprefix: /api/v%d/\nservice: app\nrate_limits: [lots]\n---\n", i, i)
	}
	routes.WriteString("kind: RateLimit\nname: lots\nrate: 1000000000\nunit: second\nkey: client_ip\n")
	logs := NewLogWriter(io.Discard, 100e6)
	tb.Cleanup(func() { logs.Close() })
	h := New(Options{Guard: loopbackGuard(tb), AccessLog: logs, Metrics: metrics.New(prometheus.NewRegistry()), Tracer: tracer})
	h.Publish(compile(tb, routes.String(), upLn.Addr().String()))
	gwLn := listen(tb)
	gw := &h1.Server{Handler: h}
	go gw.Serve(gwLn)
	tb.Cleanup(func() { gw.Shutdown(context.Background()) })

	c, err := net.Dial("tcp", gwLn.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte("GET /api/v57/users HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\n" + header + "\r\n")
	br := bufio.NewReader(c)
	return func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		// The answer's head, then its 128-byte body.
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			if n < 0 && !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
				return fmt.Errorf("answer %q", line)
			}
			n++
			if len(line) == 2 {
				break
			}
		}
		_, err := br.Discard(128)
		return err
	}
}

func listen(tb testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}
