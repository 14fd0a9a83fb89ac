package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// detach returns a copy of r, a request from h1's server, that the
// ReverseProxy path can hand to net/http's transport. h1's strings are the
// connection's memory and its body reads the connection; both are reused
// for the next request once the handler returns (h1.Arena). The transport
// writes the request from a goroutine of its own, and an upstream that
// answers before it has read all of the request lets the handler return
// while that goroutine is still writing. So the copy's strings are its
// own, and its body stops reading when the handler closes it. Only
// requests the fast path does not take (TLS upstreams, bodies over
// maxBuffered) pay for this.
func detach(r *http.Request) (*http.Request, *detachedBody) {
	out := new(http.Request)
	*out = *r
	out.Method = strings.Clone(r.Method)
	out.Host = strings.Clone(r.Host)
	out.RequestURI = strings.Clone(r.RequestURI)
	u := *r.URL
	u.Path = strings.Clone(u.Path)
	u.RawPath = strings.Clone(u.RawPath)
	u.RawQuery = strings.Clone(u.RawQuery)
	out.URL = &u
	out.Header = make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		c := make([]string, len(vs))
		for i, v := range vs {
			c[i] = strings.Clone(v)
		}
		out.Header[strings.Clone(k)] = c
	}
	var body *detachedBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &detachedBody{rc: r.Body}
		out.Body = body
	}
	return out, body
}

// detachedBody is a request body that can be cut off from the connection
// it reads: after end, reads fail instead of racing the connection's next
// use.
type detachedBody struct {
	mu    sync.Mutex
	rc    io.ReadCloser
	ended bool
}

var errDetached = errors.New("request body read after its exchange ended")

func (b *detachedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return 0, errDetached
	}
	return b.rc.Read(p)
}

func (b *detachedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return nil
	}
	return b.rc.Close()
}

// end cuts the body off; nil-safe. A read still waiting for the client is
// ended with interrupt rather than waited for.
func (b *detachedBody) end(interrupt func()) {
	if b == nil {
		return
	}
	if !b.mu.TryLock() {
		interrupt()
		b.mu.Lock()
	}
	b.ended = true
	b.mu.Unlock()
}
