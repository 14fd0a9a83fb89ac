package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request hygiene at the edge, against a live gateway: framing (what one
// request is), forwarding headers, and which failures count against an
// upstream's health. Clients here are raw TCP connections, so that the
// bytes sent are exactly the bytes written below, not what a Go client
// would make of them.

// rawUpstream is an HTTP/1.1 server that records every byte it receives and
// every request it parses from them, answering each with 200 "ok" on a kept
// connection. It parses with net/http's request reader, which is strict:
// what it counts is what any upstream would.
type rawUpstream struct {
	addr string
	port int

	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []seenRequest
}

type seenRequest struct {
	method, target, host string
	header               http.Header
	body                 string
	bodyErr              error
}

func startRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { u.serve(c) })
		}
	})
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, writerFunc(func(p []byte) {
		u.mu.Lock()
		u.raw.Write(p)
		u.mu.Unlock()
	})))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, bodyErr := io.ReadAll(req.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seenRequest{method: req.Method, target: req.RequestURI, host: req.Host,
			header: req.Header, body: string(body), bodyErr: bodyErr})
		u.mu.Unlock()
		if bodyErr != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// take returns and forgets what the upstream received, leaving out the
// probes sendRaw uses to see whether a connection is still open.
func (u *rawUpstream) take() (raw string, reqs []seenRequest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	raw = u.raw.String()
	for _, r := range u.reqs {
		if !strings.HasPrefix(r.target, "/probe") {
			reqs = append(reqs, r)
		}
	}
	u.raw.Reset()
	u.reqs = nil
	return raw, reqs
}

func (u *rawUpstream) server() *upstreamServer { return &upstreamServer{addr: u.addr, port: u.port} }

// rawResult is what a raw client got back.
type rawResult struct {
	statuses []int
	bodies   []string
	open     bool // the connection carried a further request after the answers
}

// sendRaw writes raw to the gateway on a new connection, reads n answers,
// then asks whether the connection is still open by sending a probe
// request on it: answered means open; an error means the gateway closed
// it. No timer decides anything: every request here is complete, so an
// answer or a close always comes.
func sendRaw(t *testing.T, g *gateway, raw string, n int) rawResult {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing: %v", err)
	}
	br := bufio.NewReader(conn)
	var res rawResult
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d of %d: %v (got %v)", i+1, n, err, res.statuses)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.statuses = append(res.statuses, resp.StatusCode)
		res.bodies = append(res.bodies, string(body))
	}
	if _, err := io.WriteString(conn, "GET /probe HTTP/1.1\r\nHost: h.example\r\n\r\n"); err == nil {
		if resp, err := http.ReadResponse(br, nil); err == nil {
			resp.Body.Close()
			res.open = true
		}
	}
	return res
}

func hygieneGateway(t *testing.T, extra ...string) (*gateway, *rawUpstream) {
	t.Helper()
	up := startRawUpstream(t)
	dir := t.TempDir()
	config := "kind: Mapping\nname: raw\nprefix: /\nrewrite: \"\"\nservice: raw\n---\n" +
		"kind: Mapping\nname: abs\nhost: abs.example\nprefix: /abs/\nrewrite: \"\"\nservice: raw\n---\n" +
		"kind: Mapping\nname: limited\nprefix: /limited/\nservice: raw\nrate_limits: [one]\n---\n" +
		"kind: RateLimit\nname: one\nrate: 1\nunit: hour\nkey: client_ip\n"
	writeFile(t, filepath.Join(dir, "raw.yaml"), serviceYAML("raw", config, up.server()))
	return startGateway(t, dir, extra...), up
}

// TestFraming sends requests whose framing is ambiguous or malformed and
// checks each is refused, or normalised as RFC 9112 allows, and that the
// upstream never sees more requests than the client sent.
//
// It runs against each engine (serve --engine): the fast engine must answer
// every case as net/http does, whether it serves the request itself or
// hands the connection over.
func TestFraming(t *testing.T) {
	for _, engine := range []string{"fast", "net/http"} {
		t.Run(engine, func(t *testing.T) { framing(t, engine) })
	}
}

func framing(t *testing.T, engine string) {
	g, up := hygieneGateway(t, "--engine", engine)
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n"
	chunkedSmuggle := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
	big := strings.Repeat("a", 80<<10) // past the default 64 KiB head limit

	type want struct {
		statuses []int    // the answers, in order
		open     bool     // whether the connection may carry another request
		upstream []string // "METHOD target" of each request the upstream gets
	}
	refused := func(status int) want { return want{statuses: []int{status}} }
	for _, tc := range []struct {
		name string
		raw  string
		want want
		// check looks further at what the upstream got, when set.
		check func(t *testing.T, raw string, reqs []seenRequest)
	}{
		// RFC 9112 §6.1: framed by Transfer-Encoding, then the connection is
		// closed (framing.go). By Content-Length the smuggled request would be
		// the body; by Transfer-Encoding it is the next request: either way
		// it never reaches the upstream as a request.
		{name: "CL+TE, the next request by TE", raw: "POST /cl-te HTTP/1.1\r\nHost: h.example\r\nContent-Length: " +
			fmt.Sprint(5+len(smuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			want: want{statuses: []int{200}, upstream: []string{"POST /cl-te"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].body != "" || reqs[0].header.Get("Content-Length") != "" {
					t.Errorf("upstream got Content-Length %q and body %q, want the chunked framing alone", reqs[0].header.Get("Content-Length"), reqs[0].body)
				}
			}},
		{name: "CL+TE, the next request by CL", raw: "POST /te-cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle,
			want: want{statuses: []int{200}, upstream: []string{"POST /te-cl"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].body != smuggled {
					t.Errorf("upstream body %q, want the chunked body", reqs[0].body)
				}
			}},
		{name: "TE on HTTP/1.0", raw: "POST /te-10 HTTP/1.0\r\nHost: h.example\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
			want: want{statuses: []int{200}, upstream: []string{"POST /te-10"}}},
		{name: "TE not chunked", raw: "POST /te HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunkedSmuggle, want: refused(501)},
		{name: "TE chunked twice", raw: "POST /te HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle, want: refused(501)},
		{name: "TE with space before colon", raw: "POST /te HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding : chunked\r\n\r\n" + chunkedSmuggle, want: refused(400)},
		{name: "duplicate CL, same value", raw: "POST /dup-cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
			want: want{statuses: []int{200}, open: true, upstream: []string{"POST /dup-cl"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].body != "hello" || len(reqs[0].header["Content-Length"]) != 1 {
					t.Errorf("upstream got Content-Length %q, body %q", reqs[0].header["Content-Length"], reqs[0].body)
				}
			}},
		{name: "duplicate CL, different values", raw: "POST /dup-cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nhello" + smuggled[:36], want: refused(400)},
		{name: "CL list", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5, 5\r\n\r\nhello", want: refused(400)},
		{name: "CL not a number", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: abc\r\n\r\n" + smuggled, want: refused(400)},
		{name: "CL negative", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: -1\r\n\r\n" + smuggled, want: refused(400)},
		{name: "CL with a sign", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: +5\r\n\r\nhello", want: refused(400)},
		{name: "CL in hex", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 0x5\r\n\r\nhello", want: refused(400)},
		{name: "CL empty", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: \r\n\r\n" + smuggled, want: refused(400)},
		{name: "CL overflows", raw: "POST /cl HTTP/1.1\r\nHost: h.example\r\nContent-Length: 99999999999999999999\r\n\r\n", want: refused(400)},
		// RFC 9112 §5.2: an obs-fold is rejected or replaced by spaces.
		{name: "obs-fold", raw: "GET /fold HTTP/1.1\r\nHost: h.example\r\nX-Folded: a\r\n b\r\n\tc\r\n\r\n",
			want: want{statuses: []int{200}, open: true, upstream: []string{"GET /fold"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if v := reqs[0].header.Get("X-Folded"); v != "a b c" {
					t.Errorf("folded value reached the upstream as %q, want %q", v, "a b c")
				}
				if strings.Contains(raw, "\r\n b") || strings.Contains(raw, "\r\n\tc") {
					t.Errorf("the fold itself reached the upstream:\n%s", raw)
				}
			}},
		{name: "obs-fold hiding Transfer-Encoding", raw: "POST /fold-te HTTP/1.1\r\nHost: h.example\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
			want: want{statuses: []int{200}, open: true, upstream: []string{"POST /fold-te"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].body != "hello" || reqs[0].header.Get("Transfer-Encoding") != "" {
					t.Errorf("upstream got body %q, Transfer-Encoding %q", reqs[0].body, reqs[0].header.Get("Transfer-Encoding"))
				}
			}},
		// RFC 9112 §2.2: whitespace before the first field is rejected.
		{name: "whitespace before the first field", raw: "GET /ws HTTP/1.1\r\n Host: h.example\r\n\r\n", want: refused(400)},
		// RFC 9112 §2.2: a bare LF may end a line; the upstream gets CRLF.
		{name: "bare LF line endings", raw: "GET /lf HTTP/1.1\nHost: h.example\nX-A: 1\n\n",
			want: want{statuses: []int{200}, open: true, upstream: []string{"GET /lf"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if strings.Count(raw, "\n") != strings.Count(raw, "\r\n") {
					t.Errorf("a bare LF reached the upstream:\n%q", raw)
				}
			}},
		{name: "bare LF pipelined", raw: "GET /lf1 HTTP/1.1\nHost: h.example\n\nGET /lf2 HTTP/1.1\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200, 200}, open: true, upstream: []string{"GET /lf1", "GET /lf2"}}},
		{name: "bare CR in a field", raw: "GET /cr HTTP/1.1\r\nHost: h.example\r\nX-A: 1\rX-B: 2\r\n\r\n", want: refused(400)},
		{name: "NUL in a field value", raw: "GET /nul HTTP/1.1\r\nHost: h.example\r\nX-A: a\x00b\r\n\r\n", want: refused(400)},
		{name: "NUL in a field name", raw: "GET /nul HTTP/1.1\r\nHost: h.example\r\nX-\x00A: b\r\n\r\n", want: refused(400)},
		{name: "oversized head", raw: "GET /big HTTP/1.1\r\nHost: h.example\r\nX-Big: " + big + "\r\n\r\n", want: refused(431)},
		{name: "invalid method token", raw: "G(T /m HTTP/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		{name: "NUL in the method", raw: "GE\x00T /m HTTP/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		{name: "no version", raw: "GET /m\r\nHost: h.example\r\n\r\n", want: refused(400)},
		// RFC 9110 §2.5: a higher minor version is read as the highest
		// supported; another major version is not HTTP/1.
		{name: "HTTP/1.7", raw: "GET /ver HTTP/1.7\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200}, open: true, upstream: []string{"GET /ver"}}},
		{name: "HTTP/3.0 as text", raw: "GET /m HTTP/3.0\r\nHost: h.example\r\n\r\n", want: refused(505)},
		{name: "space in the target", raw: "GET /a b HTTP/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		// RFC 9112 §3.2.2: the absolute-form's host replaces Host; the
		// upstream gets the origin form.
		{name: "absolute-form target", raw: "GET http://abs.example/abs/x?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
			want: want{statuses: []int{200}, open: true, upstream: []string{"GET /abs/x?q=1"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].host != "abs.example" {
					t.Errorf("upstream Host %q, want abs.example", reqs[0].host)
				}
			}},
		// OPTIONS * is answered by the server itself (RFC 9110 §9.3.7);
		// any other method with * has no path to route.
		{name: "asterisk OPTIONS", raw: "OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n", want: want{statuses: []int{200}, open: true}},
		{name: "asterisk GET", raw: "GET * HTTP/1.1\r\nHost: h.example\r\n\r\n", want: want{statuses: []int{400}, open: true}},
		{name: "pipelined", raw: "GET /pipe1 HTTP/1.1\r\nHost: h.example\r\n\r\nGET /pipe2 HTTP/1.1\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200, 200}, open: true, upstream: []string{"GET /pipe1", "GET /pipe2"}}},
		{name: "pipelined, a request inside a body", raw: "POST /pipe3 HTTP/1.1\r\nHost: h.example\r\nContent-Length: " + fmt.Sprint(len(smuggled)) +
			"\r\n\r\n" + smuggled + "GET /pipe4 HTTP/1.1\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200, 200}, open: true, upstream: []string{"POST /pipe3", "GET /pipe4"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if reqs[0].body != smuggled {
					t.Errorf("body %q", reqs[0].body)
				}
			}},
		// What the fast engine parses itself: well-formed requests that are
		// nearly the malformed ones above.
		{name: "Connection: close", raw: "GET /close HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n",
			want: want{statuses: []int{200}, upstream: []string{"GET /close"}}},
		{name: "tab, obs-text and trailing spaces in values", raw: "GET /vals HTTP/1.1\r\nHost: h.example\r\nX-A: a\tb \xe9  \r\n\r\n",
			want: want{statuses: []int{200}, open: true, upstream: []string{"GET /vals"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if v := reqs[0].header.Get("X-A"); v != "a\tb \xe9" {
					t.Errorf("X-A reached the upstream as %q", v)
				}
			}},
		{name: "Content-Length 0 then a pipelined request", raw: "POST /zero HTTP/1.1\r\nHost: h.example\r\nContent-Length: 0\r\n\r\nGET /after HTTP/1.1\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200, 200}, open: true, upstream: []string{"POST /zero", "GET /after"}}},
		{name: "three pipelined with bodies", raw: "POST /b1 HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\n\r\nabcPOST /b2 HTTP/1.1\r\nHost: h.example\r\nContent-Length: 2\r\n\r\ndeGET /b3 HTTP/1.1\r\nHost: h.example\r\n\r\n",
			want: want{statuses: []int{200, 200, 200}, open: true, upstream: []string{"POST /b1", "POST /b2", "GET /b3"}},
			check: func(t *testing.T, raw string, reqs []seenRequest) {
				if len(reqs) == 3 && (reqs[0].body != "abc" || reqs[1].body != "de" || reqs[2].body != "") {
					t.Errorf("bodies %q %q %q", reqs[0].body, reqs[1].body, reqs[2].body)
				}
			}},
		{name: "no Host", raw: "GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n", want: refused(400)},
		{name: "two Hosts", raw: "GET /hosts HTTP/1.1\r\nHost: h.example\r\nHost: other.example\r\n\r\n", want: refused(400)},
		{name: "Host with a space", raw: "GET /h HTTP/1.1\r\nHost: h .example\r\n\r\n", want: refused(400)},
		{name: "two spaces after the method", raw: "GET  /two HTTP/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		{name: "lower-case version", raw: "GET /v http/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		{name: "DEL in a value", raw: "GET /del HTTP/1.1\r\nHost: h.example\r\nX-A: a\x7fb\r\n\r\n", want: refused(400)},
		{name: "bad escape in the target", raw: "GET /bad%zz HTTP/1.1\r\nHost: h.example\r\n\r\n", want: refused(400)},
		{name: "malformed chunk size", raw: "POST /chunk HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + smuggled,
			want: want{statuses: []int{400}}},
		{name: "chunk size overflows", raw: "POST /chunk2 HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n" + smuggled,
			want: want{statuses: []int{400}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sendRaw(t, g, tc.raw, len(tc.want.statuses))
			raw, all := up.take()
			// A request an earlier case left unfinished (a body the gateway
			// abandoned) may reach the upstream late, here: each case
			// counts only the requests it sent, and the smuggled one.
			var reqs []seenRequest
			for _, r := range all {
				if strings.Contains(tc.raw, r.target+" HTTP/") || strings.HasPrefix(r.target, "/smuggled") {
					reqs = append(reqs, r)
				}
			}
			if fmt.Sprint(res.statuses) != fmt.Sprint(tc.want.statuses) {
				t.Errorf("answers %v %q, want %v", res.statuses, res.bodies, tc.want.statuses)
			}
			if res.open && !tc.want.open {
				t.Errorf("the connection carried another request; it must be closed")
			}
			if !res.open && tc.want.open {
				t.Errorf("the connection was closed; a well-framed exchange keeps it")
			}
			var got []string
			for _, r := range reqs {
				// A request whose body the gateway had to abandon may reach the
				// upstream unfinished; it is still one request, never two.
				if r.bodyErr == nil {
					got = append(got, r.method+" "+r.target)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want.upstream) {
				t.Errorf("upstream got %q, want %q; raw:\n%s", got, tc.want.upstream, raw)
			}
			if len(reqs) > max(1, len(tc.want.statuses)) {
				t.Errorf("upstream parsed %d requests from a client that sent %d", len(reqs), len(tc.want.statuses))
			}
			for _, r := range reqs {
				if strings.HasPrefix(r.target, "/smuggled") {
					t.Errorf("the upstream got the smuggled request")
				}
			}
			if tc.check != nil && len(reqs) > 0 {
				tc.check(t, raw, reqs)
			}
		})
	}
}

// TestForwarded: a client the gateway does not trust (every client here:
// no --trusted-proxies) cannot tell the upstream, or the rate limiter, who
// it is. Everything it claims is dropped; the upstream hears of the
// connection's address, consistently in every header.
func TestForwarded(t *testing.T) {
	g, up := hygieneGateway(t)
	res := sendRaw(t, g, "GET /fwd HTTP/1.1\r\nHost: h.example\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n"+
		"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 443\r\n"+
		"X-Forwarded-Client-Cert: Hash=forged\r\nTrue-Client-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n", 1)
	if fmt.Sprint(res.statuses) != "[200]" {
		t.Fatalf("answers %v", res.statuses)
	}
	raw, reqs := up.take()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	h := reqs[0].header
	for name, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Real-Ip":         "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "h.example",
		"Forwarded":         `for=127.0.0.1;host="h.example";proto=http`,
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if strings.Contains(raw, "6.6.6.6") || strings.Contains(raw, "forged") || strings.Contains(raw, "evil.example") || h.Get("X-Forwarded-Port") != "" {
		t.Errorf("a client's claim reached the upstream:\n%s", raw)
	}

	// client_ip limits key on the same address, not on what the client says.
	for i, xff := range []string{"1.1.1.1", "2.2.2.2", ""} {
		want := 429
		if i == 0 {
			want = 200
		}
		hdr := ""
		if xff != "" {
			hdr = "X-Forwarded-For: " + xff + "\r\nX-Real-IP: " + xff + "\r\n"
		}
		res := sendRaw(t, g, "GET /limited/x HTTP/1.1\r\nHost: h.example\r\n"+hdr+"\r\n", 1)
		if res.statuses[0] != want {
			t.Errorf("request %d claiming %q: %d, want %d", i+1, xff, res.statuses[0], want)
		}
	}
}

// TestBreakerClient: clients that stall their bodies, go away while the
// upstream works, or disconnect mid-body do not open a healthy upstream's
// breaker; an upstream's own 5xx answers do.
func TestBreakerClient(t *testing.T) {
	entered := make(chan struct{}, 16)
	slow := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("wait") {
				entered <- struct{}{}
				<-r.Context().Done()
				return
			}
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
		})
	})
	flaky := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "broken", http.StatusInternalServerError)
		})
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "slow.yaml"), serviceYAML("slow", "kind: Mapping\nname: slow\nprefix: /slow/\nservice: slow\ntimeout_ms: 300\n", slow))
	writeFile(t, filepath.Join(dir, "flaky.yaml"), serviceYAML("flaky", "kind: Mapping\nname: flaky\nprefix: /flaky/\nservice: flaky\n", flaky))
	// An open breaker stays open for the rest of the test.
	g := startGateway(t, dir, "--breaker-failures", "3", "--breaker-open-timeout", "1h")
	addr := strings.TrimPrefix(g.base, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	const rounds = 6 // twice --breaker-failures
	for i := 0; i < rounds; i++ {
		// A body that stops coming: the route's 300 ms timeout ends it.
		c := dial()
		io.WriteString(c, "POST /slow/x HTTP/1.1\r\nHost: h.example\r\nContent-Length: 100\r\n\r\npartial")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled body %d: %v", i+1, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled body %d: %d, want 408", i+1, resp.StatusCode)
		}

		// A client that goes away while the upstream works on its request.
		c = dial()
		io.WriteString(c, "GET /slow/x?wait HTTP/1.1\r\nHost: h.example\r\n\r\n")
		answered := make(chan int, 1)
		// c is passed, not captured: the loop goes on to dial the next
		// connection into the same variable while this one reads.
		go func(c net.Conn) {
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				answered <- resp.StatusCode
			}
		}(c)
		select {
		case <-entered:
		case code := <-answered:
			t.Fatalf("client %d that was to go away got %d before its request reached the upstream", i+1, code)
		}
		c.Close()

		// A client that disconnects mid-body.
		c = dial()
		io.WriteString(c, "POST /slow/x HTTP/1.1\r\nHost: h.example\r\nContent-Length: 100\r\n\r\npartial")
		c.Close()
	}
	// Every one of those exchanges has ended (its outcome reported to the
	// breaker) once the access log has its line.
	g.eventually("the access log has every client-spoiled exchange", func() bool {
		n := 0
		for _, line := range strings.Split(g.log(), "\n") {
			var rec struct {
				Msg, Route, Path string
				Status           int
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Route == "default/slow" &&
				(rec.Status == 400 || rec.Status == 408 || rec.Status == 499) {
				n++
			}
		}
		return n >= 3*rounds
	})
	if r := g.do("GET", "", "/slow/x"); r.status != 200 {
		t.Fatalf("after %d stalled, %d cancelled and %d broken-off clients: %d, want 200 (breaker closed)", rounds, rounds, rounds, r.status)
	}

	for i := 0; i < 3; i++ {
		if r := g.do("POST", "", "/flaky/x"); r.status != 500 {
			t.Fatalf("failure %d: %d, want the upstream's 500", i+1, r.status)
		}
	}
	before := flaky.hits.Load()
	if r := g.do("GET", "", "/flaky/x"); r.status != 503 || !strings.Contains(r.body, "circuit breaker") {
		t.Fatalf("after 3 upstream 500s: %d %q, want 503 from the open breaker", r.status, r.body)
	}
	if flaky.hits.Load() != before {
		t.Errorf("an open breaker let a request through")
	}
	if r := g.do("GET", "", "/slow/x"); r.status != 200 {
		t.Errorf("another upstream's breaker: %d, want 200", r.status)
	}
}

// TestUpgradeTunnel: an upgrade a Mapping allows is tunnelled both ways on
// each engine (the fast one hands such a connection to net/http, whose
// ReverseProxy hijacks it); one it does not allow is refused with 403.
func TestUpgradeTunnel(t *testing.T) {
	up := startUpstream(t, func(u *upstreamServer) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
				http.Error(w, "no upgrade", http.StatusBadRequest)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			io.Copy(conn, brw) // echo until the client closes
		})
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tunnel.yaml"), serviceYAML("tunnel",
		"kind: Mapping\nname: tunnel\nprefix: /tunnel/\nservice: tunnel\nallow_upgrade: [echo]\n---\n"+
			"kind: Mapping\nname: plain\nprefix: /plain/\nservice: tunnel\n", up))
	for _, engine := range []string{"fast", "net/http"} {
		t.Run(engine, func(t *testing.T) {
			g := startGateway(t, dir, "--engine", engine)
			addr := strings.TrimPrefix(g.base, "http://")
			open := func(path string) (net.Conn, *bufio.Reader, *http.Response) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				return c, br, resp
			}
			c, br, resp := open("/tunnel/x")
			defer c.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %d", resp.StatusCode)
			}
			for _, msg := range []string{"ping\n", "pong pong\n"} {
				io.WriteString(c, msg)
				got, err := br.ReadString('\n')
				if err != nil || got != msg {
					t.Fatalf("through the tunnel: %q, %v; want %q", got, err, msg)
				}
			}
			c2, _, resp := open("/plain/x")
			defer c2.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("upgrade on a Mapping without allow_upgrade: %d, want 403", resp.StatusCode)
			}
		})
	}
}
