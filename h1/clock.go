package h1

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a coarse clock: the time as one goroutine reads it every tick.
// Reading the time costs a vDSO call, and on a virtual machine's clock
// source that call was the largest single item of the fast path's own CPU
// (3.4% of the gateway under hack/bench): what needs the time on every
// request at no more than a tick's precision (idle and head timeouts, the
// Date field, how long a connection sat in a pool) reads this instead.
type Clock struct {
	now  atomic.Int64 // UnixNano
	stop chan struct{}
	once sync.Once
}

// NewClock starts a clock ticking every tick; Stop ends its goroutine.
func NewClock(tick time.Duration) *Clock {
	c := &Clock{stop: make(chan struct{})}
	c.now.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.now.Store(now.UnixNano())
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

// Nanos is the time at the last tick, in Unix nanoseconds.
func (c *Clock) Nanos() int64 { return c.now.Load() }

// Stop stops the clock; it keeps the time of its last tick.
func (c *Clock) Stop() { c.once.Do(func() { close(c.stop) }) }
