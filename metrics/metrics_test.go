package metrics

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// labels returns the values of label name across the series of family.
func labels(t *testing.T, reg *prometheus.Registry, family, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == name && !slices.Contains(out, l.GetValue()) {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestRetainDeletesSeriesOfWhatIsGone(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(reg)
	for _, r := range []string{"ns/a", "ns/b", ""} {
		s.Request(r, 200)
		s.Request(r, 503)
	}
	s.UpstreamLatency("ns/a:80", time.Millisecond)
	s.UpstreamLatency("ns/b:80", time.Millisecond)
	s.BreakerState("ns/b:80", 2)
	s.RateLimited("ns/rl-a")
	s.RateLimited("ns/rl-b")

	keep := func(vs ...string) func(string) bool { return func(v string) bool { return slices.Contains(vs, v) } }
	s.Retain(keep("ns/a"), keep("ns/a:80"), keep("ns/rl-a"))

	for _, c := range []struct {
		family, label string
		want          []string
	}{
		{"gatehouse_requests_total", "route", []string{"", "ns/a"}},
		{"gatehouse_upstream_latency_seconds", "upstream", []string{"ns/a:80"}},
		{"gatehouse_breaker_state", "upstream", nil},
		{"gatehouse_ratelimit_rejections_total", "policy", []string{"ns/rl-a"}},
	} {
		if got := labels(t, reg, c.family, c.label); !slices.Equal(got, c.want) {
			t.Errorf("%s{%s} after Retain = %q, want %q", c.family, c.label, got, c.want)
		}
	}

	// A series deleted and then used again comes back, and goes with the
	// next Retain that does not keep it.
	s.Request("ns/b", 200)
	if got := labels(t, reg, "gatehouse_requests_total", "route"); !slices.Contains(got, "ns/b") {
		t.Errorf("ns/b not recorded again: %q", got)
	}
	s.Retain(keep("ns/a"), keep(), keep())
	if got := labels(t, reg, "gatehouse_requests_total", "route"); slices.Contains(got, "ns/b") {
		t.Errorf("ns/b survived the second Retain: %q", got)
	}
	var nilSet *Set
	nilSet.Retain(keep(), keep(), keep()) // must not panic
}

func TestRecordersCountLikeSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(reg)
	r := s.Route("ns/a")
	u := s.Upstream("ns/a:80")
	if got := labels(t, reg, "gatehouse_upstream_latency_seconds", "upstream"); got != nil {
		t.Errorf("a recorder nobody used exported %q", got)
	}
	for _, status := range []int{200, 503, 200} {
		r.Request(status)
	}
	s.Request("ns/a", 200) // the same series as the recorder's
	u.Latency(time.Millisecond)
	if got := labels(t, reg, "gatehouse_requests_total", "status"); !slices.Equal(got, []string{"200", "503"}) {
		t.Errorf("statuses = %q", got)
	}
	if got := labels(t, reg, "gatehouse_upstream_latency_seconds", "upstream"); !slices.Equal(got, []string{"ns/a:80"}) {
		t.Errorf("upstreams = %q", got)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			want := 3.0
			if m.GetLabel()[1].GetValue() == "503" {
				want = 1
			}
			if got := m.GetCounter().GetValue(); got != want {
				t.Errorf("%v = %v, want %v", m.GetLabel(), got, want)
			}
		}
	}
	// Retain sees what the recorders used.
	s.Retain(func(string) bool { return false }, func(string) bool { return false }, func(string) bool { return false })
	if got := labels(t, reg, "gatehouse_requests_total", "route"); got != nil {
		t.Errorf("routes after Retain = %q", got)
	}

	if n := testing.AllocsPerRun(100, func() { r.Request(200); u.Latency(time.Millisecond) }); n != 0 {
		t.Errorf("recording a known series allocates %v times", n)
	}
	var nr *RouteRequests
	var nu *UpstreamObserver
	nr.Request(200) // nil recorders must not panic
	nu.Latency(time.Second)
	var nilSet *Set
	if nilSet.Route("x") != nil || nilSet.Upstream("x") != nil {
		t.Error("a nil Set made recorders")
	}
}
