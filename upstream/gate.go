package upstream

import (
	"sync/atomic"
	"time"
)

// Gate enforces a Mapping's circuit_breakers thresholds, Envoy's
// concurrency caps as Emissary passes them on: requests in flight
// (max_requests; and max_connections, which over HTTP/1.1 is the same
// bound, one request to a connection), requests waiting for one of those
// slots (max_pending_requests: Envoy queues a request while every
// connection is busy), and retries in flight (max_retries). Past them a
// request is refused at once (503), which is the point: a Mapping that
// says its Service takes 100 requests at a time must not be sent 101.
//
// A Gate is kept across snapshot rebuilds while its thresholds stay the
// same (snapshot.Builder), so requests in flight during a change still
// count. It is safe for concurrent use; entering a free slot neither
// allocates nor locks.
type Gate struct {
	slots      chan struct{}
	pending    atomic.Int64
	maxPending int64
	retries    atomic.Int64
	maxRetries int64
}

// Why a Gate refused a request, for the access log and metrics.
const (
	// OverflowFull: every slot taken (max_requests, max_connections) and
	// the queue full (max_pending_requests).
	OverflowFull = "overflow"
	// OverflowWaited: queued for a slot until the route's timeout.
	OverflowWaited = "pending_timeout"
)

// NewGate returns a Gate of active slots, a queue of pending and retries
// concurrent retries; a negative retries means no cap on them.
func NewGate(active, pending, retries int) *Gate {
	return &Gate{slots: make(chan struct{}, max(active, 1)), maxPending: int64(max(pending, 0)), maxRetries: int64(retries)}
}

// Enter takes a slot, waiting at most wait (the route's timeout; 0 means
// no waiting) when all are taken and the queue has room. It returns "" when
// the request may go, and which threshold refused it otherwise. Every
// successful Enter needs a Leave.
func (g *Gate) Enter(wait time.Duration) string {
	select {
	case g.slots <- struct{}{}:
		return ""
	default:
	}
	if wait <= 0 || g.pending.Add(1) > g.maxPending {
		if wait > 0 {
			g.pending.Add(-1)
		}
		return OverflowFull
	}
	defer g.pending.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return ""
	case <-t.C:
		return OverflowWaited
	}
}

// Leave gives back the slot an Enter took.
func (g *Gate) Leave() { <-g.slots }

// TryRetry takes a retry slot when fewer than max_retries retries are in
// flight; RetryDone gives it back. nil-safe: a nil Gate caps nothing.
func (g *Gate) TryRetry() bool {
	if g == nil || g.maxRetries < 0 {
		return true
	}
	if g.retries.Add(1) > g.maxRetries {
		g.retries.Add(-1)
		return false
	}
	return true
}

// RetryDone ends a retry TryRetry allowed; nil-safe.
func (g *Gate) RetryDone() {
	if g != nil && g.maxRetries >= 0 {
		g.retries.Add(-1)
	}
}

// InFlight is how many requests hold a slot.
func (g *Gate) InFlight() int { return len(g.slots) }

// Pending is how many requests wait for a slot.
func (g *Gate) Pending() int { return int(g.pending.Load()) }
