package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// Checks to a plain-HTTP/1.1 auth service go through h1's keep-alive pool,
// the fast path's, rather than net/http's transport: a check is a whole
// second exchange per request, and the transport's per-request goroutine
// hand-offs and allocations cost about as much as the proxying itself
// (docs/benchmarks.md, "Authentication and global limits").

// errBadCheckHeader is a header value that cannot be written on HTTP/1.1.
var errBadCheckHeader = errors.New("a check request's header value holds a line break or NUL")

// poolRoundTrip sends req to addr over a pooled connection and returns the
// answer; its Body must be closed, which gives the connection back when
// the answer was read to its end. req's context bounds the exchange. A
// reused connection the service had closed before answering is replaced
// once: a check is safe to send again.
func (h *Handler) poolRoundTrip(req *http.Request, addr string, connectTimeout time.Duration) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		body = b
	}
	for try := 0; ; try++ {
		c, err := h.pool.Get(addr, connectTimeout, time.Now())
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		// A context ended before its deadline (the client left) stops
		// the exchange too. release waits for that function when it has
		// started, so the connection is never touched once given back.
		fired := make(chan struct{})
		stopFunc := context.AfterFunc(ctx, func() {
			c.SetDeadline(time.Unix(1, 0))
			close(fired)
		})
		stop := func() bool {
			if stopFunc() {
				return true
			}
			<-fired
			return false
		}
		err = writeCheck(c.Writer(), req, body)
		if err == nil {
			err = c.Flush()
		}
		var a h1.Answer
		hdr := http.Header{}
		if err == nil {
			a, err = c.ReadAnswer(req.Method, hdr, maxAnswerHead, nil)
		}
		if err != nil {
			stop()
			retry := try == 0 && c.Reused() && !c.GotAnswer() && ctx.Err() == nil && !errors.Is(err, errBadCheckHeader)
			h.pool.Discard(c)
			if retry {
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		resp := &http.Response{
			Status: strconv.Itoa(a.Status) + " " + http.StatusText(a.Status), StatusCode: a.Status,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, ContentLength: a.Length, Close: a.Close, Request: req,
		}
		resp.Body = &pooledBody{c: c, r: c.Body(), pool: h.pool, stop: stop}
		if req.Method == http.MethodHead || a.Status == http.StatusNoContent || a.Status == http.StatusNotModified {
			resp.Body.Close()
			resp.Body = http.NoBody
		}
		return resp, nil
	}
}

// writeCheck writes req's head and body as HTTP/1.1.
func writeCheck(w *bufio.Writer, req *http.Request, body []byte) error {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return errBadCheckHeader
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if len(body) > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	_, err := w.Write(body)
	return err
}

// pooledBody is an answer's body on a pooled connection; Close gives the
// connection back (kept when the body was read to its end and the service
// keeps it open, closed otherwise).
type pooledBody struct {
	c    *h1.UpConn
	r    io.Reader
	pool *h1.Pool
	stop func() bool
	done bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *pooledBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if !b.stop() {
		// The context ended and broke the connection's deadline: whatever
		// state it is in, it does not go back.
		b.pool.Discard(b.c)
		return nil
	}
	b.pool.Put(b.c, time.Now())
	return nil
}
