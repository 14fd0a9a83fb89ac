package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// The TLS listener (--listen-tls).
//
// Its accept loop only accepts: each connection's handshake runs on the
// connection's own goroutine, bounded by the header timeout, so a client
// that opens a connection and says nothing holds a slot of the connection
// cap for that long and nobody's accept waits on it. The certificate is
// chosen per handshake from the snapshot being served (SNI: a Host's own,
// else the default, else the handshake is refused), so a renewed Secret
// serves new handshakes as soon as its snapshot is published while
// established connections carry on with theirs.
//
// After the handshake, ALPN decides who serves the connection: "h2" goes
// to net/http (HTTP/2), anything else to the same engine as the plain
// listener (h1 for plain HTTP/1.1 requests, net/http for what h1 hands
// over, such as upgrades), so HTTPS/1.1 costs what HTTP/1.1 does plus the
// cipher.

// tlsBase is the configuration every handshake starts from: TLS 1.2 or
// later with Go's cipher suites and curves (forward secret AEADs only for
// 1.2), HTTP/2 preferred over HTTP/1.1 by ALPN, and session tickets with
// keys Go rotates.
func (s *Server) tlsBase() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2", "http/1.1"},
		GetConfigForClient: s.configForClient,
	}
}

// configForClient picks the configuration of one handshake by its server
// name.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if h := s.handler.Current().EdgeTLS().Lookup(hello.ServerName); h.HasCert() {
		return h.ServerConfig(s.tlsConfig), nil
	}
	if s.defaultTLS != nil {
		return s.defaultTLS, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownName, hello.ServerName)
}

// errUnknownName refuses a handshake for a name no Host and no default
// certificate covers (counted as unknown_name).
var errUnknownName = errors.New("no certificate for server name")

// tlsEngine serves the TLS listener.
type tlsEngine struct {
	cfg     *tls.Config
	timeout time.Duration // for the handshake; <= 0 none
	log     *slog.Logger
	errs    *prometheus.CounterVec

	fast   *h1.Server  // nil with EngineNetHTTP
	fastIn *h1.Handoff // connections for fast
	std    *http.Server
	stdIn  *h1.Handoff // connections for std: HTTP/2 ones, and those fast hands over

	mu         sync.Mutex
	ln         net.Listener
	shutdown   bool
	handshakes sync.WaitGroup
}

// tlsServer builds the engine for the TLS listener, serving the same
// handler with the same limits as the plain one.
func (s *Server) tlsServer() *tlsEngine {
	lim := s.limits
	handler := counted{inFlight: &s.inFlight, next: newBodyGuard(s.handler, lim, s.bodyTimeouts)}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	e := &tlsEngine{
		cfg:     s.tlsConfig,
		timeout: lim.ReadHeaderTimeout,
		log:     s.log,
		errs:    s.handshakeErrors,
		stdIn:   h1.NewHandoff(),
	}
	e.std = &http.Server{
		Handler:           tlsState{handler},
		ReadHeaderTimeout: positive(lim.ReadHeaderTimeout),
		IdleTimeout:       positive(lim.IdleTimeout),
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Protocols:         protocols,
		ConnContext:       withTLSState,
	}
	if s.cfg.Engine != EngineNetHTTP {
		e.fastIn = h1.NewHandoff()
		e.fast = &h1.Server{
			Handler:           handler,
			Fallback:          e.stdIn.Give,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			IdleTimeout:       lim.IdleTimeout,
			SendTimeout:       lim.SendTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			Logger:            s.log,
		}
	}
	return e
}

func (e *tlsEngine) Serve(l net.Listener) error {
	e.mu.Lock()
	if e.shutdown {
		e.mu.Unlock()
		return http.ErrServerClosed
	}
	e.ln = l
	e.mu.Unlock()
	e.stdIn.SetAddr(l.Addr())
	served := 1
	errs := make(chan error, 2)
	go func() { errs <- e.std.Serve(e.stdIn) }()
	if e.fast != nil {
		e.fastIn.SetAddr(l.Addr())
		served++
		go func() { errs <- e.fast.Serve(e.fastIn) }()
	}
	err := e.accept(l)
	e.handshakes.Wait()
	e.stdIn.Close()
	if e.fastIn != nil {
		e.fastIn.Close()
	}
	for range served {
		if serr := <-errs; !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (e *tlsEngine) accept(l net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			e.mu.Lock()
			done := e.shutdown
			e.mu.Unlock()
			if done {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		e.handshakes.Add(1)
		go e.handshake(nc)
	}
}

// handshake completes the TLS handshake of nc and hands the connection to
// the server its protocol needs.
func (e *tlsEngine) handshake(nc net.Conn) {
	defer e.handshakes.Done()
	tc := tls.Server(nc, e.cfg)
	if e.timeout > 0 {
		_ = nc.SetDeadline(time.Now().Add(e.timeout))
	}
	if err := tc.HandshakeContext(context.Background()); err != nil {
		e.errs.WithLabelValues(handshakeFailure(err)).Inc()
		e.log.Debug("TLS handshake failed", "client", nc.RemoteAddr().String(), "error", err)
		tc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" || e.fast == nil {
		e.stdIn.Give(tc)
		return
	}
	e.fastIn.Give(tc)
}

// handshakeFailure is the reason label of a failed handshake: a few fixed
// values, whatever the client sent.
func handshakeFailure(err error) string {
	var ne net.Error
	var alert tls.AlertError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.Is(err, errUnknownName):
		return "unknown_name"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &cv):
		return "client_certificate"
	case errors.As(err, &alert):
		return "client_alert"
	}
	return "other"
}

// Shutdown stops accepting, then drains both servers as the plain
// listener's engine does.
func (e *tlsEngine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.shutdown = true
	ln := e.ln
	e.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	var wg sync.WaitGroup
	var fastErr, stdErr error
	wg.Add(1)
	go func() { defer wg.Done(); stdErr = e.std.Shutdown(ctx) }()
	if e.fast != nil {
		wg.Add(1)
		go func() { defer wg.Done(); fastErr = e.fast.Shutdown(ctx) }()
	}
	wg.Wait()
	return errors.Join(fastErr, stdErr)
}

// tlsStateKey carries, in a connection's context, the TLS state of a
// connection h1 handed to net/http: net/http sees h1's wrapper, not the
// *tls.Conn, and would serve its requests as plain HTTP.
type tlsStateKey struct{}

func withTLSState(ctx context.Context, c net.Conn) context.Context {
	for {
		if tc, ok := c.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return ctx
		}
		c = u.NetConn()
	}
}

// tlsState gives requests of handed-over TLS connections their TLS state.
type tlsState struct{ next http.Handler }

func (t tlsState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st
		}
	}
	t.next.ServeHTTP(w, r)
}
