package h1

import (
	"net/http"
	"unsafe"
)

// Arena is memory for the strings of one request and its answer, so that
// building them does not allocate: a server connection keeps one and
// empties it when its next request arrives, as it does with the Request,
// its header map and the ResponseWriter's. It is what makes the fast
// path's per-request garbage small enough that the collector stays out of
// the latency tail (docs/benchmarks.md#the-fast-engine).
//
// The rule for everything in it (and for the Request's own strings, which
// are substrings of the head as read into the connection's buffer): valid
// until the handler has returned and the answer is sent. A handler that
// keeps one longer (a map key, a goroutine) must clone it (strings.Clone).
// Builds with the race detector overwrite the memory when it is reused, so
// a test that keeps a string too long reads garbage, and a goroutine that
// does is reported as a race.
//
// A nil *Arena is valid: its strings are ordinary allocations. That is
// what a handler gets from a ResponseWriter that is not this package's.
type Arena struct {
	buf  []byte
	vals []string // backing for header values (fields)
}

// arenaChunk is the size of the first block; a request that needs more
// gets a block of its own size or twice the last, and keeps it for the
// connection's next requests up to keepBuffer.
const arenaChunk = 512

// String returns b as a string whose bytes live in the arena.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if a == nil {
		return string(b)
	}
	dst := a.room(len(b))
	dst = append(dst, b...)
	return a.keep(dst)
}

// Concat returns x+y with its bytes in the arena; when one of them is
// empty it is the other, without copying.
func (a *Arena) Concat(x, y string) string {
	switch {
	case x == "":
		return y
	case y == "":
		return x
	case a == nil:
		return x + y
	}
	dst := a.room(len(x) + len(y))
	dst = append(dst, x...)
	dst = append(dst, y...)
	return a.keep(dst)
}

// room returns an empty slice at the end of the arena's used bytes with
// room for n more; a new block when the current one is full. Bytes handed
// out before stay where they are: a new block never moves them.
func (a *Arena) room(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		size := max(arenaChunk, 2*cap(a.buf), n)
		a.buf = make([]byte, 0, size)
	}
	return a.buf[len(a.buf):len(a.buf):cap(a.buf)]
}

// keep marks b, from room and filled within its capacity, as used, and
// returns it as a string.
func (a *Arena) keep(b []byte) string {
	a.buf = a.buf[:len(a.buf)+len(b)]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// reset empties the arena for the next request, keeping a block up to
// keepBuffer.
func (a *Arena) reset() {
	if poison {
		clear(a.buf[:cap(a.buf)])
	}
	if cap(a.buf) > keepBuffer {
		a.buf = nil
	}
	a.buf = a.buf[:0]
	// Zeroed whether or not poisoned: a value slice kept too long reads "".
	clear(a.vals[:cap(a.vals)])
	a.vals = a.vals[:0]
	if cap(a.vals) > 4*keepFields {
		a.vals = nil
	}
}

// ArenaOf returns the Arena of the request w answers, nil when w is not
// this package's (then the Arena's methods allocate). It looks through
// wrappers with an Unwrap method, as http.ResponseController does.
func ArenaOf(w http.ResponseWriter) *Arena {
	for {
		if r, ok := w.(*response); ok {
			return &r.c.arena
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}
