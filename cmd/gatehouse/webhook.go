package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/webhook"
	"github.com/gatehouse-dev/gatehouse/webhook/certs"
)

// webhookFlags configure the admission webhook role of `serve`. The webhook
// runs inside the gateway rather than as its own Deployment because its
// cross-namespace rules (who owns a host and path, which namespaces grant
// routes) need exactly the view of the cluster the gateway already has:
// checking against the snapshot that serves traffic means the webhook
// admits what the gateway will accept, with no second set of informers.
type webhookFlags struct {
	listen       string
	secret       string
	config       string
	service      string
	namespace    string
	hosts        namespaceList // extra subject alternative names
	certFile     string
	keyFile      string
	caFile       string
	certValidity time.Duration
	caValidity   time.Duration
	resync       time.Duration
	concurrent   int
	wait         time.Duration
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.listen, "webhook-listen", "", `serve the validating admission webhook over TLS on this address, e.g. ":8443" (default: no webhook)`)
	fs.StringVar(&w.secret, "webhook-secret", "gatehouse-webhook-certs", "Secret in --webhook-namespace that holds the webhook's CA and serving certificate (bootstrapped and rotated by the gateway)")
	fs.StringVar(&w.config, "webhook-config", "gatehouse", `ValidatingWebhookConfiguration whose caBundle the gateway keeps current ("" leaves it alone)`)
	fs.StringVar(&w.service, "webhook-service", "gatehouse-webhook", "Service in front of the webhook; its DNS names go into the serving certificate")
	fs.StringVar(&w.namespace, "webhook-namespace", "", "the gateway's own namespace (default: $POD_NAMESPACE, else the ServiceAccount's namespace, else gatehouse-system)")
	fs.Var(&w.hosts, "webhook-host", "another DNS name or IP address for the serving certificate, for a webhook registered by URL (repeatable)")
	fs.StringVar(&w.certFile, "webhook-cert-file", "", "serve this certificate (PEM, e.g. cert-manager's tls.crt) instead of bootstrapping one; reloaded when it changes")
	fs.StringVar(&w.keyFile, "webhook-key-file", "", "the key of --webhook-cert-file (tls.key)")
	fs.StringVar(&w.caFile, "webhook-ca-file", "", "with --webhook-cert-file: refuse a certificate that does not chain to this CA (ca.crt)")
	fs.DurationVar(&w.certValidity, "webhook-cert-validity", 0, "lifetime of bootstrapped serving certificates (default 1 year; renewed when a third is left)")
	fs.DurationVar(&w.caValidity, "webhook-ca-validity", 0, "lifetime of the bootstrapped CA (default 10 years; renewed when a third is left)")
	fs.DurationVar(&w.resync, "webhook-resync", 0, "how often each replica re-reads the certificate Secret and the caBundle (default 1 minute)")
	fs.IntVar(&w.concurrent, "webhook-max-concurrent", webhook.DefaultMaxConcurrent(), "admission reviews checked at once; more wait up to --webhook-max-wait, then get 429")
	fs.DurationVar(&w.wait, "webhook-max-wait", time.Second, "how long a review beyond --webhook-max-concurrent waits for a slot")
}

// ownNamespace is where the gateway runs, for its Secret.
func (w *webhookFlags) ownNamespace() string {
	if w.namespace != "" {
		return w.namespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "gatehouse-system"
}

// certificateSource is a Manager or a FileSource: something that keeps a
// serving certificate current while it runs.
type certificateSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	Run(ctx context.Context) error
}

// ready is the webhook's part of /readyz: a replica without a certificate
// must not receive reviews (the handshake would fail and, with
// failurePolicy Fail, so would the apply), so it is not ready until it has
// one.
func ready(src certificateSource) func() error {
	return func() error {
		if _, err := src.GetCertificate(nil); err != nil {
			return fmt.Errorf("webhook certificate not loaded yet: %w", err)
		}
		return nil
	}
}

func (w *webhookFlags) source(client certs.Client, logger *slog.Logger) (certificateSource, error) {
	if w.certFile != "" || w.keyFile != "" {
		if w.certFile == "" || w.keyFile == "" {
			return nil, errors.New("--webhook-cert-file and --webhook-key-file go together")
		}
		return certs.NewFileSource(certs.FileOptions{CertFile: w.certFile, KeyFile: w.keyFile, CAFile: w.caFile, Logger: logger})
	}
	ns := w.ownNamespace()
	var dns []string
	var ips []net.IP
	if w.service != "" {
		for _, suffix := range []string{"", "." + ns, "." + ns + ".svc", "." + ns + ".svc.cluster.local"} {
			dns = append(dns, w.service+suffix)
		}
	}
	for _, h := range w.hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return certs.NewManager(certs.Options{
		Client:        client,
		Namespace:     ns,
		SecretName:    w.secret,
		WebhookConfig: w.config,
		DNSNames:      dns,
		IPs:           ips,
		CertValidity:  w.certValidity,
		CAValidity:    w.caValidity,
		Resync:        w.resync,
		Logger:        logger,
	})
}

// runWebhook serves admission reviews with src's certificate until ctx
// ends, checking against the snapshot current() returns (nil before the
// first one). It returns when ctx ends or the webhook cannot run.
func runWebhook(ctx context.Context, w webhookFlags, src certificateSource, opts snapshot.Options, current func() *snapshot.Snapshot, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	certErr := make(chan error, 1)
	go func() { certErr <- src.Run(ctx) }()

	h := webhook.New(webhook.Options{
		Emissary: opts.Emissary,
		Reviewer: func() webhook.Reviewer {
			if s := current(); s != nil {
				return s
			}
			return nil // a nil *Snapshot in the interface would not be nil
		},
		Alone:         opts,
		MaxConcurrent: w.concurrent,
		MaxWait:       w.wait,
		Logger:        logger,
	})
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- webhook.Serve(ctx, h, webhook.ServeOptions{
			Addr:           w.listen,
			GetCertificate: src.GetCertificate,
			Logger:         logger,
			OnListen: func(addr string) {
				logger.Info("webhook listening", "addr", addr, "path", webhook.Path)
			},
		})
	}()
	select {
	case err := <-certErr:
		cancel()
		<-serveErr
		if err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
		return nil
	case err := <-serveErr:
		cancel()
		<-certErr
		return err
	}
}
