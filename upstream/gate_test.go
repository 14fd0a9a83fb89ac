package upstream

import (
	"testing"
	"time"
)

func TestGateSlotsAndQueue(t *testing.T) {
	g := NewGate(2, 1, 1)
	if g.Enter(0) != "" || g.Enter(0) != "" {
		t.Fatal("two slots refused")
	}
	if why := g.Enter(0); why != OverflowFull {
		t.Fatalf("third without waiting: %q, want %q", why, OverflowFull)
	}
	// One may wait; it gets the slot a Leave frees.
	got := make(chan string, 1)
	go func() { got <- g.Enter(10 * time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for g.Pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiting request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if why := g.Enter(10 * time.Second); why != OverflowFull {
		t.Fatalf("with the queue full: %q, want %q at once", why, OverflowFull)
	}
	g.Leave()
	if why := <-got; why != "" {
		t.Fatalf("queued request: %q, want the freed slot", why)
	}
	if g.InFlight() != 2 || g.Pending() != 0 {
		t.Fatalf("in flight %d, pending %d", g.InFlight(), g.Pending())
	}
	// Waiting out the time is its own reason.
	if why := g.Enter(20 * time.Millisecond); why != OverflowWaited {
		t.Fatalf("waited out: %q, want %q", why, OverflowWaited)
	}
	if g.Pending() != 0 {
		t.Fatal("a request that gave up still counts as pending")
	}
}

func TestGateRetries(t *testing.T) {
	g := NewGate(1, 1, 2)
	if !g.TryRetry() || !g.TryRetry() || g.TryRetry() {
		t.Fatal("max_retries 2 did not allow exactly two")
	}
	g.RetryDone()
	if !g.TryRetry() {
		t.Fatal("a finished retry did not free its slot")
	}
	var none *Gate
	if !none.TryRetry() {
		t.Fatal("a nil gate caps retries")
	}
	none.RetryDone()
	if unlimited := NewGate(1, 1, -1); !unlimited.TryRetry() || !unlimited.TryRetry() {
		t.Fatal("negative max_retries caps retries")
	}
}

func BenchmarkGate(b *testing.B) {
	g := NewGate(1024, 1024, 3)
	b.ReportAllocs()
	for b.Loop() {
		if g.Enter(time.Second) != "" {
			b.Fatal("refused")
		}
		g.Leave()
	}
}
