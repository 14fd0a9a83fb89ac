package proxy

import "sync"

// copyBufferSize is the buffer ReverseProxy copies response bodies through:
// the size it would allocate itself.
const copyBufferSize = 32 << 10

// bufferPool lends ReverseProxy its copy buffers. Without one it allocates
// and zeroes a fresh 32 KiB buffer for every response, which hack/bench
// profiles showed as the largest single source of garbage on the request
// path. The pool holds pointers, as sync.Pool wants; Put then allocates
// only a 24-byte slice header instead of 32 KiB.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}}}
}

// Get returns a buffer of copyBufferSize bytes.
func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

// get and put are Get and Put for the fast path, which keeps the pointer
// the pool holds and so does not allocate one for each Put.
func (p *bufferPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *bufferPool) put(b *[]byte) { p.pool.Put(b) }

// Put takes back a buffer from Get; anything else is dropped, so a
// caller's mistake cannot put a small buffer into circulation.
func (p *bufferPool) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	p.pool.Put(&b)
}
