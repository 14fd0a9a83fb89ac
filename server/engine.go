package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// Engines for Config.Engine and serve's --engine.
//
// EngineFast serves plain HTTP/1.1 requests with package h1 and hands every
// connection whose request it does not recognise as plain to net/http,
// which answers it exactly as EngineNetHTTP would; the proxy reaches
// plain-HTTP upstreams through h1.Pool for requests with small bodies.
// EngineNetHTTP is net/http on both sides for everything: slower (about a
// third of the throughput, docs/benchmarks.md), kept as the reference the
// framing and behaviour tests compare with, and as a way back.
const (
	EngineFast    = "fast"
	EngineNetHTTP = "net/http"
)

// proxyEngine serves the proxy listener.
type proxyEngine interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// proxyServer builds the engine Config.Engine names, with the Limits and
// the body guard in front of the proxy handler either way.
func (s *Server) proxyServer() proxyEngine {
	lim := s.limits
	handler := counted{inFlight: &s.inFlight, next: newBodyGuard(s.handler, lim, s.bodyTimeouts)}
	std := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: positive(lim.ReadHeaderTimeout),
		IdleTimeout:       positive(lim.IdleTimeout),
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// HTTP/2 with prior knowledge on the plain listener: gRPC clients
		// speak it (h1's server hands such connections over, their
		// preface not being an HTTP/1.1 request). TLS (issue 13) will
		// offer h2 by ALPN.
		Protocols: edgeProtocols(),
	}
	if s.cfg.Engine == EngineNetHTTP {
		return std
	}
	handoff := h1.NewHandoff()
	return &fastEngine{
		fast: &h1.Server{
			Handler:           handler,
			Fallback:          handoff.Give,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			IdleTimeout:       lim.IdleTimeout,
			SendTimeout:       lim.SendTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			Logger:            s.log,
		},
		std:     std,
		handoff: handoff,
	}
}

// fastEngine is h1's server in front, net/http behind it for the
// connections h1 declines.
type fastEngine struct {
	fast    *h1.Server
	std     *http.Server
	handoff *h1.Handoff
}

func (e *fastEngine) Serve(l net.Listener) error {
	e.handoff.SetAddr(l.Addr())
	errs := make(chan error, 1)
	go func() { errs <- e.std.Serve(e.handoff) }()
	err := e.fast.Serve(l)
	e.handoff.Close()
	if stdErr := <-errs; !errors.Is(stdErr, http.ErrServerClosed) && !errors.Is(stdErr, net.ErrClosed) {
		err = errors.Join(err, stdErr)
	}
	return err
}

// Shutdown drains both: h1's connections and those handed to net/http.
func (e *fastEngine) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var fastErr, stdErr error
	wg.Add(2)
	go func() { defer wg.Done(); fastErr = e.fast.Shutdown(ctx) }()
	go func() { defer wg.Done(); stdErr = e.std.Shutdown(ctx) }()
	wg.Wait()
	return errors.Join(fastErr, stdErr)
}

// counted keeps the count of requests in flight.
type counted struct {
	inFlight *atomic.Int64
	next     http.Handler
}

func (c counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.next.ServeHTTP(w, r)
}

// edgeProtocols are what the proxy listener speaks: HTTP/1.1, and HTTP/2
// with prior knowledge (h2c).
func edgeProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
