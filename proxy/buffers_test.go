package proxy

import "testing"

func TestBufferPool(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("Get: %d bytes, want %d", len(b), copyBufferSize)
	}
	b[0] = 1
	p.Put(b[:10]) // a shortened buffer comes back whole
	p.Put(make([]byte, 10))
	for range 100 {
		if got := p.Get(); len(got) != copyBufferSize {
			t.Fatalf("a foreign or short buffer came out of the pool: %d bytes", len(got))
		}
	}
}

// BenchmarkBufferPool is the cost ReverseProxy pays per response for its
// copy buffer, against allocating one (what it does without a pool).
func BenchmarkBufferPool(b *testing.B) {
	b.Run("pool", func(b *testing.B) {
		p := newBufferPool()
		b.ReportAllocs()
		for b.Loop() {
			p.Put(p.Get())
		}
	})
	b.Run("alloc", func(b *testing.B) {
		b.ReportAllocs()
		var sink []byte
		for b.Loop() {
			sink = make([]byte, copyBufferSize)
		}
		_ = sink
	})
}
