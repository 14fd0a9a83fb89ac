package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 12's acceptance: what retries, retry budgets, outlier detection and
// request body limits do for clients of a live `gatehouse serve --from-dir`
// when upstreams die, fail everything, or are sent too much.

// echoProc is an e2e/testdata/echo process on a loopback port: an upstream
// that can be SIGKILLed, which an in-process server cannot be (closing a
// listener lets answers in flight finish; a kill does not).
type echoProc struct {
	addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{} // closed when the process has exited
}

// buildEcho builds e2e/testdata/echo into a temporary directory.
func buildEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "echo")
	run(t, "go", "build", "-o", bin, "./testdata/echo")
	return bin
}

// startEchoProc starts an echo process on addr, answering as name, and
// waits until it answers. It is killed when t ends.
func startEchoProc(t *testing.T, bin, addr, name string) *echoProc {
	t.Helper()
	p := &echoProc{addr: addr, out: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-listen", addr, "-name", name)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	waitFor(t, "echo process "+addr+" answers", 20*time.Second, func() bool {
		select {
		case <-p.done:
			// Read only once the process is gone: Wait has copied the
			// last of its output by then.
			t.Fatalf("echo process on %s exited: %s", addr, p.out)
		default:
		}
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill SIGKILLs the process and waits until it is gone; idempotent.
func (p *echoProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// loopbackUpstream describes an upstream at a loopback port for serviceYAML,
// which needs only the port.
func loopbackUpstream(addr string) *upstreamServer {
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return &upstreamServer{addr: addr, port: n}
}

// seriesValue reads one series of the gateway's /metrics: name with exactly
// the labels given (as name, value pairs), 0 when the series is absent (a
// counter that never counted has no series yet).
func seriesValue(t *testing.T, g *gateway, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		got := map[string]string{}
		for pair := range strings.SplitSeq(set, ",") {
			k, v, _ := strings.Cut(pair, "=")
			got[k] = strings.Trim(v, `"`)
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		return f
	}
	return 0
}

// ejection is one "endpoint ejected" line of the gateway's log.
type ejection struct {
	Time     time.Time `json:"time"`
	Upstream string    `json:"upstream"`
	Endpoint string    `json:"endpoint"`
	For      string    `json:"for"`
}

// ejections returns the gateway's "endpoint ejected" log lines so far.
func ejections(g *gateway) []ejection {
	var out []ejection
	for line := range strings.SplitSeq(g.log(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
			ejection
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "endpoint ejected" {
			out = append(out, rec.ejection)
		}
	}
	return out
}

// TestKillOneEndpointUnderLoad: one of three endpoints is SIGKILLed under
// steady load. Retries send what it fails (the requests it had in flight,
// then refused connections) to the other two, and outlier detection ejects
// it, so clients barely notice; once it is back on the same port it serves
// again when its ejection ends.
//
// The load is paced, so the 0.1% bar is a known number of failures:
// 8 workers × 125 requests a second for about 6 s, some 6,000 requests, at
// most 6 failed. That is what makes the bar mean something. Without
// retries, the kill fails the requests the endpoint had in flight and the 5
// refused connections that eject it, and 5 more when its first ejection
// (2 s) ends while it is still dead, which the 4,000 requests after the
// ejection outlast: run with retry_policy removed from the Mapping, 10 of
// 6,040 failed (0.166%) and the test failed. Unpaced, the same failures
// would hide among however many requests the machine manages to send.
func TestKillOneEndpointUnderLoad(t *testing.T) {
	const (
		workers       = 8
		interval      = 8 * time.Millisecond // 125 requests a second per worker
		beforeKill    = 2000                 // requests before the kill, about 2 s
		afterEjection = 4000                 // requests after the ejection, about 4 s: past its end
		maxFailShare  = 0.001                // issue 12: fewer than 0.1% of requests fail
	)
	bin := buildEcho(t)
	procs := make([]*echoProc, 3)
	ups := make([]*upstreamServer, 3)
	for i := range procs {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		procs[i] = startEchoProc(t, bin, addr, "kill")
		ups[i] = loopbackUpstream(addr)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kill.yaml"), serviceYAML("kill", `kind: Mapping
name: kill
prefix: /kill/
service: kill
retry_policy: {retry_on: gateway-error, num_retries: 2}
`, ups...))
	g := startGateway(t, dir, "--outlier-ejection-time", "2s", "--access-log=false")
	if r := g.do("GET", "", "/kill/x"); r.status != 200 || r.echo.Service != "kill" {
		t.Fatalf("before the load: status %d from %q, want 200 from kill", r.status, r.echo.Service)
	}

	l := startLoad(t, g.base+"/kill/x", workers, interval, func(r reply) bool { return r.status/100 == 2 && r.echo.Service != "" })
	waitFor(t, fmt.Sprintf("%d requests before the kill", beforeKill), 60*time.Second, func() bool {
		return l.total() >= beforeKill
	})
	victim := procs[1]
	killedAt := time.Now()
	victim.kill()
	var ejected ejection
	waitFor(t, "the killed endpoint is ejected", 30*time.Second, func() bool {
		for _, e := range ejections(g) {
			if e.Endpoint == victim.addr && e.Upstream == "default/kill:80" {
				ejected = e
				return true
			}
		}
		return false
	})
	atEjection := l.total()
	waitFor(t, fmt.Sprintf("%d requests after the ejection", afterEjection), 60*time.Second, func() bool {
		return l.total() >= atEjection+afterEjection
	})
	l.end()
	ok, failed := l.ok.Load(), l.failed.Load()
	total := ok + failed
	retries := seriesValue(t, g, "gatehouse_upstream_retries_total", "upstream", "default/kill:80", "result", "sent")
	ejectionCount := seriesValue(t, g, "gatehouse_upstream_ejections_total", "upstream", "default/kill:80")

	// Back on the same port, the endpoint serves again once its ejection
	// (2 s, or 4 s if it was ejected a second time while dead) is over.
	restartedAt := time.Now()
	startEchoProc(t, bin, victim.addr, "kill")
	waitFor(t, "the restarted endpoint answers through the gateway", 30*time.Second, func() bool {
		return g.do("GET", "", "/kill/x").echo.Endpoint == victim.addr
	})
	readmitted := time.Since(restartedAt)

	t.Logf("killed 1 of 3 under load: %d requests, %d failed (%.3f%%), %.0f retries sent, ejected after %v (for %s; %.0f ejections counted), re-admitted %v after restart",
		total, failed, 100*float64(failed)/float64(total), retries,
		ejected.Time.Sub(killedAt).Round(time.Millisecond), ejected.For, ejectionCount, readmitted.Round(time.Millisecond))
	if float64(failed) >= maxFailShare*float64(total) {
		l.mu.Lock()
		t.Errorf("%d of %d requests failed (%.3f%%), want under %.1f%%; first: %s",
			failed, total, 100*float64(failed)/float64(total), 100*maxFailShare, strings.Join(l.firsts, "; "))
		l.mu.Unlock()
	}
	if ejectionCount < 1 {
		t.Errorf("gatehouse_upstream_ejections_total{upstream=\"default/kill:80\"} is %v, want at least 1 (the log says %s was ejected)", ejectionCount, victim.addr)
	}
	for _, e := range ejections(g) {
		if e.Endpoint != victim.addr {
			t.Errorf("a live endpoint was ejected: %+v", e)
		}
	}
}

// TestRetryBudgetBoundsLoad: when every endpoint of an upstream fails
// everything, retries are bounded by the upstream's budget (20% of requests
// plus 3 a second, and the 30 a new upstream starts with), not by
// num_retries: at 3 retries a request, the upstream would otherwise be sent
// four times the traffic it cannot serve.
func TestRetryBudgetBoundsLoad(t *testing.T) {
	const (
		rate     = 200 // requests a second
		duration = 5 * time.Second
		workers  = 4 // a request may wait out back-offs; others keep the pace
		// The budget (upstream.RetryBudget): a share of requests, a floor per
		// second, and what a new upstream holds.
		fraction, perSecond, initial = 0.2, 3.0, 30.0
		// The budget never hands out more than the three terms (its settle
		// discounts deposits, never adds); the slack is for the two
		// processes' clocks and float rounding, not for the budget.
		slack = 5.0
	)
	failing := func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		})
	}
	ups := []*upstreamServer{startUpstream(t, failing), startUpstream(t, failing), startUpstream(t, failing)}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "budget.yaml"), serviceYAML("budget", `kind: Mapping
name: budget
prefix: /budget/
service: budget
retry_policy: {retry_on: gateway-error, num_retries: 3}
`, ups...))
	// The budget's floor flows from when the gateway creates the upstream,
	// which is after this.
	created := time.Now()
	// The breaker would otherwise open after 5 failures and answer 503
	// itself: the budget is what is measured here.
	g := startGateway(t, dir, "--breaker-failures", "1000000", "--breaker-failure-ratio", "2", "--access-log=false")

	var requests, unexpected atomic.Int64
	tickets := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for range tickets {
				resp, err := c.Get(g.base + "/budget/x")
				requests.Add(1)
				if err != nil {
					unexpected.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					unexpected.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second / rate)
	for end := time.Now().Add(duration); time.Now().Before(end); {
		<-tick.C
		select {
		case tickets <- struct{}{}:
		default: // every worker is busy: the tick is dropped, not queued
		}
	}
	tick.Stop()
	close(tickets)
	wg.Wait()
	elapsed := time.Since(created)

	n := requests.Load()
	var hits int64
	for _, u := range ups {
		hits += u.hits.Load()
	}
	sent := seriesValue(t, g, "gatehouse_upstream_retries_total", "upstream", "default/budget:80", "result", "sent")
	refused := seriesValue(t, g, "gatehouse_upstream_retries_total", "upstream", "default/budget:80", "result", "budget_exhausted")
	bound := (1+fraction)*float64(n) + perSecond*elapsed.Seconds() + initial + slack
	t.Logf("retry budget: %d requests in %v, %d upstream hits (%.2f per request; bound %.0f, %.0f without a budget), retries %.0f sent, %.0f budget_exhausted",
		n, duration, hits, float64(hits)/float64(n), bound, 4*float64(n), sent, refused)

	if n < rate { // a second's worth: the pace was not kept at all
		t.Fatalf("only %d requests were sent in %v: the load measured nothing", n, duration)
	}
	if u := unexpected.Load(); u != 0 {
		t.Errorf("%d of %d requests were not answered with the upstreams' 503", u, n)
	}
	if hits <= n {
		t.Errorf("%d upstream hits for %d requests: no retry was sent, so the budget was not what bounded them", hits, n)
	}
	if float64(hits) > bound {
		t.Errorf("%d upstream hits for %d requests in %v: more than the budget allows, %.0f", hits, n, elapsed.Round(time.Millisecond), bound)
	}
	if int64(sent) != hits-n {
		t.Errorf("gatehouse_upstream_retries_total{result=\"sent\"} is %.0f, but the upstreams saw %d hits beyond the %d requests", sent, hits-n, n)
	}
	if refused == 0 {
		t.Errorf("gatehouse_upstream_retries_total{result=\"budget_exhausted\"} is 0: the budget never refused a retry")
	}
}

// rawPost sends a request head and body on a new connection to the gateway
// and returns the answer's status and body. Raw, because Go's client would
// send the body it was given in full, or decide the framing itself.
func rawPost(t *testing.T, g *gateway, head, body string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(slowDeadline))
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatalf("writing %.80q: %v", head, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.80q: %v", head, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// chunked frames body as a chunked body in pieces of at most 500 bytes.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 500)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// TestRequestBodyLimit: a body over a route's bound is answered 413 by the
// gateway, without the upstream hearing of it when the Content-Length says
// so; a bound of 0 on the Mapping means none, whatever the gateway's
// default; a Mapping without one gets --max-request-body-bytes.
func TestRequestBodyLimit(t *testing.T) {
	up := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "got %d bytes", len(b))
		})
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "body.yaml"), serviceYAML("body", `kind: Mapping
name: limited
prefix: /limited/
service: body
max_request_body_bytes: 1000
---
kind: Mapping
name: default
prefix: /default/
service: body
---
kind: Mapping
name: unlimited
prefix: /unlimited/
service: body
max_request_body_bytes: 0
`, up))
	g := startGateway(t, dir, "--max-request-body-bytes", "5000", "--access-log=false")

	// What each case got, for the log: path, size, status, upstream hits.
	var got []string
	note := func(what string, status int, hits int64) {
		got = append(got, fmt.Sprintf("%s → %d (%d upstream hits)", what, status, hits))
	}

	// Over the bound by Content-Length: the head alone is sent, so a gateway
	// that waited for the body, or sent the request on, could not answer.
	for _, c := range []struct {
		path string
		size int
	}{{"/limited/x", 1001}, {"/default/x", 5001}} {
		before := up.hits.Load()
		status, body := rawPost(t, g, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", c.path, c.size), "")
		hits := up.hits.Load() - before
		note(fmt.Sprintf("%s Content-Length %d", c.path, c.size), status, hits)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with Content-Length %d: status %d (%q), want 413", c.path, c.size, status, body)
		}
		if hits != 0 {
			t.Errorf("POST %s with Content-Length %d reached the upstream %d times, want never", c.path, c.size, hits)
		}
	}

	// At or under the bound (or with none), the body goes through whole.
	for _, c := range []struct {
		path string
		size int
	}{{"/limited/x", 1000}, {"/default/x", 5000}, {"/unlimited/x", 100_000}} {
		before := up.hits.Load()
		resp, err := http.Post(g.base+c.path, "application/octet-stream", bytes.NewReader(bytes.Repeat([]byte("b"), c.size)))
		if err != nil {
			t.Fatalf("POST %s with %d bytes: %v", c.path, c.size, err)
		}
		r := readReply(resp)
		resp.Body.Close()
		hits := up.hits.Load() - before
		note(fmt.Sprintf("%s %d bytes", c.path, c.size), r.status, hits)
		if want := fmt.Sprintf("got %d bytes", c.size); r.status != http.StatusOK || r.body != want {
			t.Errorf("POST %s with %d bytes: status %d, %q; want 200, %q", c.path, c.size, r.status, r.body, want)
		}
		if hits != 1 {
			t.Errorf("POST %s with %d bytes reached the upstream %d times, want once", c.path, c.size, hits)
		}
	}

	// Chunked, the size is known only as the body comes, so the request may
	// have gone upstream before the bound is passed (and the upstream may
	// count it after the 413 is back): only the status is asserted. Over the
	// bound is 413, at it the body goes through.
	head := "POST /limited/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	status, body := rawPost(t, g, head, chunked(strings.Repeat("c", 2000)))
	got = append(got, fmt.Sprintf("/limited/x chunked 2000 bytes → %d", status))
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST of 2000 bytes to /limited/: status %d (%q), want 413", status, body)
	}
	status, body = rawPost(t, g, head, chunked(strings.Repeat("c", 1000)))
	got = append(got, fmt.Sprintf("/limited/x chunked 1000 bytes → %d", status))
	if status != http.StatusOK || body != "got 1000 bytes" {
		t.Errorf("chunked POST of 1000 bytes to /limited/: status %d, %q; want 200, \"got 1000 bytes\"", status, body)
	}
	t.Logf("body limits (route 1000, default 5000, unlimited 0): %s", strings.Join(got, "; "))
}
