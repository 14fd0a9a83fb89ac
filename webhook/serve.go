package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Path is where the API server sends AdmissionReviews (the
// ValidatingWebhookConfiguration's clientConfig path).
const Path = "/validate"

// ServeOptions configure Serve.
type ServeOptions struct {
	// Addr is the TLS listener's address, e.g. ":8443".
	Addr string
	// GetCertificate returns the serving certificate for each handshake,
	// so a rotated certificate is used without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// OnListen, when set, is told the bound address.
	OnListen func(addr string)
	Logger   *slog.Logger
}

// Serve serves h over TLS at opts.Addr until ctx ends, then lets in-flight
// reviews finish for a few seconds. Only POST Path is answered; everything
// else is 404, so the listener offers nothing but reviews.
func Serve(ctx context.Context, h *Handler, opts ServeOptions) error {
	if opts.GetCertificate == nil {
		return errors.New("serving the webhook: no certificate source")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+Path, h.HTTPHandler())
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: opts.GetCertificate,
		},
		// The API server sends one small request per review; anything slow
		// is not the API server. A review holds its concurrency slot while
		// its body is read, and is answered 503 after h's Timeout anyway,
		// so reading it may take no longer than that: a client trickling
		// bodies cannot keep the slots for longer.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       h.opts.Timeout,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listening for admission reviews: %w", err)
	}
	if opts.OnListen != nil {
		opts.OnListen(l.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving admission reviews: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("stopping the webhook listener: %w", err)
	}
	return nil
}
