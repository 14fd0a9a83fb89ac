package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// wrkLatencyReport is wrk 4.1.0's output with --latency, as printed on the
// project's machine (figures edited to exercise the units).
const wrkLatencyReport = `Running 10s test @ http://127.0.0.1:40113/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.78us  12.34ms   78.90%
    Req/Sec    25.67k     1.23k   30.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  510123 requests in 10.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  51012.30
Transfer/sec:     10.00MB
`

// TestWrkArgs checks wrk's command line: pinned, one -H per header with
// the header whole (a value with blanks in one argument), the URL last.
func TestWrkArgs(t *testing.T) {
	got := wrkArgs(1, "http://127.0.0.1:8080/", 2, 64, 5, true, []string{"Authorization: Bearer a.b.c", "X-Api-Key: k"})
	want := []string{"-c", "1", "wrk", "-t", "2", "-c", "64", "-d", "5s", "--timeout", "5s", "--latency",
		"-H", "Authorization: Bearer a.b.c", "-H", "X-Api-Key: k", "http://127.0.0.1:8080/"}
	if !slices.Equal(got, want) {
		t.Errorf("wrkArgs:\n got %q\nwant %q", got, want)
	}
	got = wrkArgs(1, "http://127.0.0.1:8080/", 2, 64, 2, false, nil)
	want = []string{"-c", "1", "wrk", "-t", "2", "-c", "64", "-d", "2s", "--timeout", "5s", "http://127.0.0.1:8080/"}
	if !slices.Equal(got, want) {
		t.Errorf("wrkArgs without headers or latency:\n got %q\nwant %q", got, want)
	}
}

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkLatencyReport)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{
		Requests: 510123, Elapsed: 10 * time.Second, RPS: 51012.30,
		P50: 812 * time.Microsecond, P99: 3200 * time.Microsecond,
		SocketErrors: 6, Non2xx: 12,
	}
	if r != want {
		t.Errorf("parseWrk:\n got %+v\nwant %+v", r, want)
	}
	if r.errors() != 18 {
		t.Errorf("errors() = %d, want 18", r.errors())
	}
}

func TestParseWrkWithoutLatencyOrErrors(t *testing.T) {
	out := "Running 2s test @ http://127.0.0.1:1/\n  2 threads and 256 connections\n" +
		"  Thread Stats   Avg      Stdev     Max   +/- Stdev\n" +
		"    Latency     2.10s   100.00ms    3.00s    90.00%\n" +
		"  1200000 requests in 1.00m, 1.00GB read\nRequests/sec: 1.20M\nTransfer/sec: 17.07MB\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 1200000, Elapsed: time.Minute, RPS: 1.2e6}
	if r != want {
		t.Errorf("parseWrk:\n got %+v\nwant %+v", r, want)
	}
}

func TestParseWrkRejects(t *testing.T) {
	for name, out := range map[string]string{
		"empty":           "",
		"no rate":         "  10 requests in 1.00s, 1.00KB read\n",
		"no count":        "Requests/sec: 10.00\n",
		"bad rate":        "  10 requests in 1.00s, 1.00KB read\nRequests/sec: fast\n",
		"bad latency":     "     99%    3.20parsecs\n  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n",
		"unitless time":   "  10 requests in 1.00, 1KB read\nRequests/sec: 10\n",
		"negative errors": "  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n  Socket errors: connect -1, read 0, write 0, timeout 0\n",
	} {
		if r, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk = %+v, want an error", name, r)
		}
	}
}

func TestParseWrkDuration(t *testing.T) {
	check := func(in string, want time.Duration) {
		t.Helper()
		got, err := parseWrkDuration(in)
		if err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	check("0.00us", 0)
	check("412.00us", 412*time.Microsecond)
	check("12µs", 12*time.Microsecond)
	check("1.23ms", 1230*time.Microsecond)
	check("10.00s", 10*time.Second)
	check("1.50m", 90*time.Second)
	check("2.00h", 2*time.Hour)
	for _, bad := range []string{"", "ms", "1.2", "1.2ns", "-1ms", "1e300h", "NaNs", "1.2 ms"} {
		if d, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) = %v, want an error", bad, d)
		}
	}
}

func TestParseCount(t *testing.T) {
	check := func(in string, want float64) {
		t.Helper()
		got, err := parseCount(in)
		if err != nil || got != want {
			t.Errorf("parseCount(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	check("51012.30", 51012.30)
	check("25.67k", 25670)
	check("1.5M", 1.5e6)
	check("2G", 2e9)
	check("0", 0)
	for _, bad := range []string{"", "k", "1.2x", "-3", "Inf", "NaN", "1.2K"} {
		if v, err := parseCount(bad); err == nil {
			t.Errorf("parseCount(%q) = %v, want an error", bad, v)
		}
	}
}

// FuzzParseWrk checks that no output, however mangled, makes the parser
// panic or report negative figures.
func FuzzParseWrk(f *testing.F) {
	f.Add(wrkLatencyReport)
	f.Add(strings.ReplaceAll(wrkLatencyReport, "ms", "s"))
	f.Add("  1 requests in 1.00m, 1KB read\nRequests/sec: 1.2k\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := parseWrk(out)
		if err != nil {
			return
		}
		if r.Requests < 0 || r.RPS < 0 || r.P50 < 0 || r.P99 < 0 || r.SocketErrors < 0 || r.Non2xx < 0 || r.Elapsed < 0 {
			t.Errorf("parseWrk(%q) = %+v: negative figure", out, r)
		}
	})
}
