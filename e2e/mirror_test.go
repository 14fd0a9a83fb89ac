package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestMirrorDoesNotSlowThePrimary: the primary's latency with a shadow
// that answers at once, one that takes a second to answer, and one that
// is down. No primary request may wait for its shadow: with the slow one,
// every primary answer must come back well before the shadow's second.
func TestMirrorDoesNotSlowThePrimary(t *testing.T) {
	primary := startUpstream(t, echo("primary"))
	var copies atomic.Int64
	quick := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { copies.Add(1) })
	})
	slow := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			copies.Add(1)
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		})
	})
	down := &upstreamServer{addr: "127.0.0.1:1", port: 1}
	dir := t.TempDir()
	write := func(shadow *upstreamServer) {
		y := serviceYAML("primary", "kind: Mapping\nname: main\nprefix: /m/\nservice: primary\n", primary)
		if shadow != nil {
			y += "---\n" + serviceYAML("shadow", "kind: Mapping\nname: copy\nprefix: /m/\nservice: shadow\nshadow: true\ntimeout_ms: 2000\n", shadow)
		}
		writeFile(t, filepath.Join(dir, "svc.yaml"), y)
	}
	write(nil)
	g := startGateway(t, dir, "--access-log=false")
	c := &http.Client{Timeout: 10 * time.Second}
	get := func() time.Duration {
		start := time.Now()
		resp, err := c.Get(g.base + "/m/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("primary answered %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	measure := func() (p50, p99, worst time.Duration) {
		var lat []time.Duration
		for range 400 {
			lat = append(lat, get())
		}
		slices.Sort(lat)
		return quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1]
	}
	var report string
	for _, tc := range []struct {
		name   string
		shadow *upstreamServer
	}{{"no shadow", nil}, {"quick shadow", quick}, {"slow shadow (1 s)", slow}, {"shadow down", down}} {
		write(tc.shadow)
		before := copies.Load()
		if tc.shadow != nil && tc.shadow != down {
			waitFor(t, "the shadow to get copies", 20*time.Second, func() bool { get(); return copies.Load() > before })
		}
		p50, p99, worst := measure()
		report += fmt.Sprintf("%s: p50 %v p99 %v max %v; ", tc.name, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
		if tc.shadow == slow && worst >= 500*time.Millisecond {
			t.Fatalf("with a shadow that takes 1 s, a primary request took %v: it waited for its copy", worst)
		}
	}
	t.Log("primary latency, 400 sequential requests each: " + report)
}
