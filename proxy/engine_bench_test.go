package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/h1"
	"github.com/gatehouse-dev/gatehouse/metrics"
)

// BenchmarkEngine is a request through the whole fast path on loopback, as
// hack/bench drives it but in one process: a keep-alive client, h1's
// server, the proxy handler (100 routes, a rate limit, metrics, and the
// access log into a LogWriter), h1's upstream pool, and an h1-served
// upstream answering 128 bytes. Its allocations per request are the
// gateway's and the test upstream's; the client reuses one buffer.
func BenchmarkEngine(b *testing.B) {
	body := strings.Repeat("x", 128)
	upLn := listen(b)
	up := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"128"}
		io.WriteString(w, body)
	})}
	go up.Serve(upLn)
	defer up.Shutdown(b.Context())

	var routes strings.Builder
	for i := range 100 {
		fmt.Fprintf(&routes, "kind: Mapping\nname: r%d\nprefix: /api/v%d/\nservice: app\nrate_limits: [lots]\n---\n", i, i)
	}
	routes.WriteString("kind: RateLimit\nname: lots\nrate: 1000000000\nunit: second\nkey: client_ip\n")
	logs := NewLogWriter(io.Discard, 100e6)
	defer logs.Close()
	h := New(Options{Guard: loopbackGuard(b), AccessLog: logs, Metrics: metrics.New(prometheus.NewRegistry())})
	h.Publish(compile(b, routes.String(), upLn.Addr().String()))
	gwLn := listen(b)
	gw := &h1.Server{Handler: h}
	go gw.Serve(gwLn)
	defer gw.Shutdown(b.Context())

	c, err := net.Dial("tcp", gwLn.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /api/v57/users HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\n\r\n")
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// The answer's head, then its 128-byte body.
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if n < 0 && !strings.HasPrefix(string(line), "HTTP/1.1 200") {
				b.Fatalf("answer %q", line)
			}
			n++
			if len(line) == 2 {
				break
			}
		}
		if _, err := br.Discard(128); err != nil {
			b.Fatal(err)
		}
	}
}

func listen(tb testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}
