package h1

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestArenaKeepsEveryString(t *testing.T) {
	var a Arena
	var want, got []string
	// Past one block, so later strings come from new blocks while the
	// earlier ones must stay as they were.
	for i := 0; len(a.buf) < 3*arenaChunk && i < 1000; i++ {
		s := fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%40))
		want = append(want, s)
		if i%2 == 0 {
			got = append(got, a.String([]byte(s)))
		} else {
			got = append(got, a.Concat(s[:3], s[3:]))
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d = %q, want %q", i, got[i], want[i])
		}
	}
	if a.Concat("", "y") != "y" || a.Concat("x", "") != "x" || a.String(nil) != "" {
		t.Error("empty parts")
	}
	big := strings.Repeat("b", 3*keepBuffer)
	if a.String([]byte(big)) != big {
		t.Error("a string bigger than a block")
	}
	a.reset()
	if cap(a.buf) > keepBuffer || len(a.buf) != 0 {
		t.Errorf("after reset: len %d cap %d, want empty and at most %d kept", len(a.buf), cap(a.buf), keepBuffer)
	}
}

func TestNilArena(t *testing.T) {
	var a *Arena
	if a.String([]byte("ab")) != "ab" || a.Concat("a", "b") != "ab" {
		t.Fatal("nil arena")
	}
	if ArenaOf(httptest.NewRecorder()) != nil {
		t.Fatal("ArenaOf a writer not h1's is not nil")
	}
}

// unwrapper stands for a middleware's ResponseWriter.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// TestKeptStringsArePoisoned: in race builds (CI's), a string a handler
// keeps past its request (a request field, or one built in the arena) is
// overwritten when the connection reads its next request, so a test that
// keeps one sees garbage rather than passing by luck.
func TestKeptStringsArePoisoned(t *testing.T) {
	if !poison {
		t.Skip("only race builds overwrite reused memory")
	}
	var field, built string
	_, addr := serve(t, func(s *Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := ArenaOf(unwrapper{w})
			if a == nil {
				t.Error("no arena behind the wrapper")
				return
			}
			if field == "" {
				field, built = r.Header.Get("X-Keep"), a.Concat(r.URL.Path, "/built")
			}
			w.Header().Set("Content-Length", "0")
		})
	})
	// The second request is shorter and builds nothing: without the
	// overwriting, both strings would still read as they did.
	exchange(t, addr, "GET /first HTTP/1.1\r\nHost: h\r\nX-Keep: kept-value\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 2)
	if field == "kept-value" || built == "/first/built" {
		t.Fatalf("strings kept past their request still read %q and %q: reused memory is not overwritten", field, built)
	}
}

// TestIdleHoldsNoBuffers: a connection between requests, client or
// upstream, holds no write buffer, and an idle upstream connection no read
// buffer either.
func TestIdleHoldsNoBuffers(t *testing.T) {
	var held atomic.Int32
	_, addr := serve(t, func(s *Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// On the connection's goroutine: what it held between requests.
			if w.(*response).c.bw != nil {
				held.Add(1)
			}
			echo(w, r)
		})
	})
	exchange(t, addr, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", 2)
	if held.Load() != 0 {
		t.Errorf("%d requests found a write buffer held since the last answer", held.Load())
	}

	p := &Pool{Dial: func(addr string, d time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", addr, d) }, MaxIdlePerAddr: 4}
	now := time.Now()
	uc, err := p.Get(addr, time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	uc.Writer().WriteString("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	if err := uc.Flush(); err != nil {
		t.Fatal(err)
	}
	if uc.bw != nil {
		t.Error("the write buffer is kept after the request is sent")
	}
	a, err := uc.ReadAnswer(http.MethodGet, http.Header{}, 4096, nil)
	if err != nil || a.Status != 200 {
		t.Fatalf("answer %+v, %v", a, err)
	}
	if _, err := io.Copy(io.Discard, uc.Body()); err != nil {
		t.Fatal(err)
	}
	p.Put(uc, now)
	if p.idleN != 1 {
		t.Fatalf("%d idle connections, want the one put back", p.idleN)
	}
	if uc.br != nil || uc.bw != nil {
		t.Error("an idle upstream connection holds buffers")
	}
}
