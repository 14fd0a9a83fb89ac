package server

import (
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter is a listener that lets at most max connections be open at
// once. A connection beyond the cap is accepted and closed at once with a
// reset, and counted.
//
// Why accept and close rather than stop accepting (as netutil.LimitListener
// does): a listener that stops accepting leaves new connections in the
// kernel's accept queue, where they wait, unanswered, for a slot; once the
// queue is full SYNs are dropped and clients retry with backoff for seconds.
// Everything in the queue is then served late, often after its client gave
// up, and a health check or a load balancer cannot tell a full gateway from
// a dead one. Draining the queue and resetting the excess keeps the queue
// empty and tells the client (or the balancer in front) at once to go
// elsewhere, which is what Envoy does at its connection limit
// (downstream_cx_overflow). The reset (SO_LINGER 0) rather than a FIN also
// leaves no TIME_WAIT entry behind per refused connection, which a flood
// would otherwise pile up.
//
// max <= 0 means no cap; connections are still counted. The plain and the
// TLS listener share one count (open): the cap is on the process's
// descriptors and memory, whichever port a client chose.
type connLimiter struct {
	net.Listener
	max      int64
	open     *atomic.Int64
	rejected prometheus.Counter
}

// on is a limiter of the same count and cap over another listener.
func (l *connLimiter) on(ln net.Listener) *connLimiter {
	return &connLimiter{Listener: ln, max: l.max, open: l.open, rejected: l.rejected}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.take() {
			l.rejected.Inc()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

// take claims a slot. Two listeners' accept loops add to the one count,
// so the check and the add are one compare-and-swap.
func (l *connLimiter) take() bool {
	for {
		n := l.open.Load()
		if l.max > 0 && n >= l.max {
			return false
		}
		if l.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// countedConn gives its slot back on the first Close. A hijacked
// connection (a WebSocket tunnel) keeps its slot until whoever took it
// closes it: it still holds a descriptor.
type countedConn struct {
	net.Conn
	l      *connLimiter
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return err
}

// CloseWrite keeps net/http's half-close (it answers 431, or a body it
// stopped reading, then waits for the client to see it before closing),
// which it finds by this method on the connection.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn is the connection underneath, for what needs the socket itself
// (h1's check for a client that went away).
func (c *countedConn) NetConn() net.Conn { return c.Conn }
