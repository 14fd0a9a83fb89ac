package h1

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// fastParse runs the fast path's decision on one buffer: the request it
// parsed, or ok false when it would hand the connection to net/http (or
// wait for more bytes).
func fastParse(in []byte) (*http.Request, int, bool) {
	c := &conn{buf: in, w: len(in), hdr: http.Header{}}
	if bareLF(in, 0) {
		return nil, 0, false
	}
	end := endOfHead(in, 0)
	if end < 0 || !c.parse(end) {
		return nil, 0, false
	}
	r := c.req
	u := *c.req.URL
	r.URL = &u
	return &r, end, true
}

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET /%61dmin/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a!b*(c)\\d HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /x HTTP/1.1\r\nhost: a\r\nx-lower: 1\r\nX-MiXeD-cAsE: 2\r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n",
	"GET /x HTTP/1.1\nHost: a\n\n",
	"GET /x HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nX-A: \xe9\t \r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
	"GET /x HTTP/1.1\r\nHost: [::1]:80\r\nX-Empty:\r\n\r\n",
	"GET /x? HTTP/1.1\r\nHost: a\r\n\r\n",
}

// FuzzRequestHead is differential: whatever request head the fast path
// accepts, net/http reads the same way (method, target, Host, fields,
// body length, whether the connection closes). The fast path may decline
// anything; it may never frame a request differently.
func FuzzRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, end, ok := fastParse(slices.Clone(in))
		if !ok {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("the fast path accepted what net/http refuses (%v):\n%q", err, in)
		}
		if std.Method != fast.Method || std.Host != fast.Host || std.RequestURI != fast.RequestURI ||
			std.URL.Path != fast.URL.Path || std.URL.RawQuery != fast.URL.RawQuery || std.URL.ForceQuery != fast.URL.ForceQuery || std.URL.EscapedPath() != fast.URL.EscapedPath() ||
			std.ContentLength != fast.ContentLength || std.Close != fast.Close || std.ProtoMinor != fast.ProtoMinor || len(std.TransferEncoding) != 0 {
			t.Fatalf("read differently:\nfast %s %q %q %q host %q length %d close %v\nstd  %s %q %q %q host %q length %d close %v\n%q",
				fast.Method, fast.URL.Path, fast.URL.EscapedPath(), fast.URL.RawQuery, fast.Host, fast.ContentLength, fast.Close,
				std.Method, std.URL.Path, std.URL.EscapedPath(), std.URL.RawQuery, std.Host, std.ContentLength, std.Close, in)
		}
		stdHeader := std.Header.Clone()
		delete(stdHeader, "Host") // net/http moves it to Request.Host
		fastHeader := fast.Header.Clone()
		delete(fastHeader, "Host")
		if !maps.EqualFunc(stdHeader, fastHeader, slices.Equal) {
			t.Fatalf("fields differ:\nfast %q\nstd  %q\n%q", fastHeader, stdHeader, in)
		}
		// The body starts where both say the head ends.
		if !strings.HasSuffix(string(in[:end]), "\r\n\r\n") {
			t.Fatalf("head ends at %d: %q", end, in[:end])
		}
	})
}

var answerSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nbody until close",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 999 X\r\nConnection: close\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
}

// FuzzAnswer reads arbitrary upstream answers: never a panic, never more
// than the body the head declared; and what it accepts, net/http reads
// with the same status, fields and framing.
func FuzzAnswer(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s), false)
	}
	// One arena across inputs, as a connection keeps one across requests.
	var arena Arena
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		c := &UpConn{br: bufio.NewReaderSize(bytes.NewReader(in), 64)}
		c.body.c = c
		h := http.Header{}
		arena.reset()
		a, err := c.ReadAnswer(method, h, 4096, &arena)
		if err != nil {
			return
		}
		body := &bytes.Buffer{}
		_, berr := body.ReadFrom(c.Body())
		if a.Length >= 0 && berr == nil && int64(body.Len()) != a.Length {
			t.Fatalf("read %d bytes of a body declared %d", body.Len(), a.Length)
		}
		// net/http, skipping interim answers as ReadAnswer does.
		br := bufio.NewReader(bytes.NewReader(in))
		req := &http.Request{Method: method}
		var std *http.Response
		for {
			std, err = http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("accepted what net/http refuses (%v): %q", err, in)
			}
			if std.StatusCode >= 200 {
				break
			}
		}
		if std.StatusCode != a.Status {
			t.Fatalf("status %d, net/http %d: %q", a.Status, std.StatusCode, in)
		}
		if head || a.Status == http.StatusNoContent || a.Status == http.StatusNotModified {
			return // no body, whatever the fields say; both agree on that
		}
		stdChunked := slices.Contains(std.TransferEncoding, "chunked")
		if stdChunked != a.Chunked || !a.Chunked && a.Length >= 0 && std.ContentLength >= 0 && std.ContentLength != a.Length {
			t.Fatalf("framing: chunked %v length %d; net/http chunked %v length %d: %q", a.Chunked, a.Length, stdChunked, std.ContentLength, in)
		}
	})
}
