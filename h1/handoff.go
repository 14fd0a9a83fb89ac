package h1

import (
	"net"
	"sync"
	"sync/atomic"
)

// Handoff is the listener the fallback server (net/http) accepts from: its
// connections are the ones a Server declined, given to it by Give, with
// what the Server read of them replayed first.
type Handoff struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  atomic.Pointer[net.Addr]
}

// NewHandoff returns an open Handoff; pass its Give as Server.Fallback.
func NewHandoff() *Handoff {
	return &Handoff{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Give passes c to the fallback server. It waits until that server's
// accept loop takes it, which it does at once, or closes c when the
// Handoff is closed.
func (h *Handoff) Give(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *Handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// SetAddr sets what Addr reports: the address of the listener the Server
// serves, where the handed connections came in.
func (h *Handoff) SetAddr(a net.Addr) { h.addr.Store(&a) }

func (h *Handoff) Addr() net.Addr {
	if a := h.addr.Load(); a != nil {
		return *a
	}
	return &net.TCPAddr{}
}
