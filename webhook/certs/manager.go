// Package certs provides the TLS serving certificate of Gatehouse's
// validating admission webhook without cert-manager.
//
// A Manager bootstraps a CA and a serving certificate, keeps both in one
// Secret so that every replica serves the same certificate, sets the CA as
// the caBundle of the webhook's ValidatingWebhookConfiguration and rotates
// both before they expire. Replicas coordinate through the Secret's
// resourceVersion alone: no leader election, no watch, and access to
// nothing but that one Secret and that one configuration, by name.
//
// A FileSource is the alternative for clusters that issue the certificate
// themselves (cert-manager or any tool writing tls.crt and tls.key): it
// serves the mounted files and picks up their replacements.
//
// Both hand the current certificate to crypto/tls through GetCertificate
// with one atomic load, so a rotation never blocks or fails a handshake.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Client is the Kubernetes API as a Manager uses it: get, create and
// update of one Secret, get and update of one ValidatingWebhookConfiguration.
// Errors are the API server's, as client-go returns them, since the
// Manager tells not-found, conflict and forbidden apart with apierrors.
// kube/api's Client is the real one.
type Client interface {
	GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	CreateSecret(ctx context.Context, namespace string, secret *corev1.Secret) (*corev1.Secret, error)
	UpdateSecret(ctx context.Context, namespace string, secret *corev1.Secret) (*corev1.Secret, error)
	GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error)
	UpdateValidatingWebhookConfiguration(ctx context.Context, vwc *admissionregistrationv1.ValidatingWebhookConfiguration) (*admissionregistrationv1.ValidatingWebhookConfiguration, error)
}

// Options configure a Manager. Zero values mean the defaults given.
type Options struct {
	Client Client
	// Namespace and SecretName name the Secret holding the CA and the
	// serving certificate: the gateway's own namespace, and a name RBAC
	// grants get and update on (the install manifest creates it empty).
	Namespace  string
	SecretName string
	// WebhookConfig names the ValidatingWebhookConfiguration whose
	// webhooks all get the CA as their caBundle; "" leaves it alone.
	WebhookConfig string

	// DNSNames and IPs are the serving certificate's subject alternative
	// names: the webhook Service's DNS names
	// (gatehouse-webhook.gatehouse-system.svc), or the IP of a webhook
	// registered by URL. At least one is required.
	DNSNames []string
	IPs      []net.IP

	// CAValidity is the CA's lifetime; 0 means 10 years.
	CAValidity time.Duration
	// CertValidity is the serving certificate's lifetime; 0 means 1 year.
	// It never outlives its CA.
	CertValidity time.Duration
	// CARenewBefore and CertRenewBefore are how long before expiry a
	// certificate is replaced; 0 means a third of its validity.
	CARenewBefore   time.Duration
	CertRenewBefore time.Duration

	// Resync is how often each replica re-reads the Secret and the
	// caBundle, to pick up another replica's rotation and repair a wiped
	// bundle; 0 means 1 minute. Replicas also wake for their own
	// certificate's renewal time.
	Resync time.Duration

	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Manager keeps the webhook's certificates in a Secret and serves them. Run
// does all the work; GetCertificate and Ready are safe for concurrent use.
type Manager struct {
	opts    Options
	policy  policy
	client  Client
	patcher *bundlePatcher // nil without a WebhookConfig
	log     *slog.Logger

	serving atomic.Pointer[served]
	ready   chan struct{} // closed when serving is first set
}

// served is what GetCertificate returns, with the CA that signed it.
type served struct {
	cert   *tls.Certificate
	issuer *x509.Certificate
}

// ErrNotReady is returned by GetCertificate before a certificate is loaded.
var ErrNotReady = errors.New("no webhook serving certificate loaded yet")

// maxWriteAttempts bounds how often one sync re-reads the Secret after
// losing a write to another replica; each loss means a winner whose
// content the next read accepts, so more than two is already unusual.
const maxWriteAttempts = 5

// NewManager checks opts and returns a Manager; nothing is read or issued
// until Run.
func NewManager(opts Options) (*Manager, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("certificate manager: no Kubernetes client")
	case opts.Namespace == "" || opts.SecretName == "":
		return nil, errors.New("certificate manager: the Secret's namespace and name are required")
	case len(opts.DNSNames) == 0 && len(opts.IPs) == 0:
		return nil, errors.New("certificate manager: the serving certificate needs at least one DNS name or IP")
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if opts.CertValidity == 0 {
		opts.CertValidity = 365 * 24 * time.Hour
	}
	if opts.CARenewBefore == 0 {
		opts.CARenewBefore = opts.CAValidity / 3
	}
	if opts.CertRenewBefore == 0 {
		opts.CertRenewBefore = opts.CertValidity / 3
	}
	// A margin at least as long as the lifetime would replace every
	// certificate as soon as it is issued.
	if opts.CARenewBefore < 0 || opts.CARenewBefore >= opts.CAValidity {
		return nil, fmt.Errorf("certificate manager: CA renewal margin %v must be positive and below the CA validity %v", opts.CARenewBefore, opts.CAValidity)
	}
	if opts.CertRenewBefore < 0 || opts.CertRenewBefore >= opts.CertValidity {
		return nil, fmt.Errorf("certificate manager: certificate renewal margin %v must be positive and below the certificate validity %v", opts.CertRenewBefore, opts.CertValidity)
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts: opts,
		policy: policy{
			dnsNames:        opts.DNSNames,
			ips:             opts.IPs,
			caValidity:      opts.CAValidity,
			certValidity:    opts.CertValidity,
			caRenewBefore:   opts.CARenewBefore,
			certRenewBefore: opts.CertRenewBefore,
		},
		client: opts.Client,
		log:    opts.Logger.With("secret", opts.Namespace+"/"+opts.SecretName),
		ready:  make(chan struct{}),
	}
	if opts.WebhookConfig != "" {
		m.patcher = &bundlePatcher{client: opts.Client, name: opts.WebhookConfig, log: opts.Logger}
	}
	return m, nil
}

// GetCertificate returns the current serving certificate, for
// tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.serving.Load()
	if s == nil {
		return nil, ErrNotReady
	}
	return s.cert, nil
}

// Ready reports whether a serving certificate is loaded.
func (m *Manager) Ready() bool { return m.serving.Load() != nil }

// WaitReady waits until a serving certificate is loaded or ctx ends.
func (m *Manager) WaitReady(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the webhook serving certificate: %w", ctx.Err())
	}
}

// Run keeps the Secret, the caBundle and the served certificate in step
// until ctx ends, then returns nil. Failures (API server unreachable,
// RBAC) are logged and retried with backoff; the certificate already
// loaded keeps being served meanwhile.
func (m *Manager) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		s, err := m.sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := jitter(m.opts.Resync)
		if s != nil {
			wait = m.nextSync(s, m.opts.Now())
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), m.opts.Resync)
			wait = min(wait, backoff)
			m.log.Error("syncing webhook certificates", "error", err, "retryIn", wait)
		} else {
			backoff = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// sync brings the Secret and the caBundle up to date and serves the
// Secret's certificate. The bundle is set before a certificate from a new
// CA is served, so this replica never serves what the API server does not
// yet trust; if setting it fails, the previous certificate is kept while it
// is still valid.
func (m *Manager) sync(ctx context.Context) (*state, error) {
	s, err := m.ensureSecret(ctx)
	if err != nil {
		return nil, err
	}
	var bundleErr error
	if m.patcher != nil {
		_, bundleErr = m.patcher.ensure(ctx, s.trusted(), m.opts.Now())
	}
	cur := m.serving.Load()
	switch {
	case cur != nil && cur.cert.Leaf.Equal(s.cert.Leaf):
	case bundleErr != nil && cur != nil && m.opts.Now().Before(cur.cert.Leaf.NotAfter) &&
		chainsTo(s.cert.Leaf, cur.issuer, m.opts.Now()) != nil:
		m.log.Warn("keeping the previous serving certificate until the caBundle trusts the new CA")
	default:
		m.serve(s)
	}
	return s, bundleErr
}

func (m *Manager) serve(s *state) {
	issuer := s.ca
	if chainsTo(s.cert.Leaf, s.ca, m.opts.Now()) != nil {
		issuer = s.previous
	}
	m.serving.Store(&served{cert: s.cert, issuer: issuer})
	select {
	case <-m.ready:
	default:
		close(m.ready)
	}
	m.log.Info("serving webhook certificate",
		"serial", s.cert.Leaf.SerialNumber.Text(16), "notAfter", s.cert.Leaf.NotAfter,
		"caSerial", issuer.SerialNumber.Text(16))
}

// ensureSecret reads the Secret and, if its content is missing, invalid or
// due for renewal, writes a replacement conditional on the version read.
// A replica that loses the race re-reads and takes the winner's content,
// so replicas starting together end up with the same certificate.
func (m *Manager) ensureSecret(ctx context.Context) (*state, error) {
	for attempt := 1; ; attempt++ {
		sec, err := m.client.GetSecret(ctx, m.opts.Namespace, m.opts.SecretName)
		missing := apierrors.IsNotFound(err)
		if err != nil && !missing {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", m.opts.Namespace, m.opts.SecretName, err)
		}
		var data map[string][]byte
		if !missing {
			data = sec.Data
		}
		s, reasons, err := m.policy.reconcile(data, m.opts.Now())
		if err != nil {
			return nil, fmt.Errorf("issuing webhook certificates: %w", err)
		}
		if len(reasons) == 0 {
			return s, nil
		}
		if missing {
			_, err = m.client.CreateSecret(ctx, m.opts.Namespace, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name:      m.opts.SecretName,
					Namespace: m.opts.Namespace,
					Labels:    map[string]string{"app.kubernetes.io/managed-by": "gatehouse"},
				},
				Type: corev1.SecretTypeOpaque,
				Data: s.data,
			})
		} else {
			sec = sec.DeepCopy()
			sec.Data = s.data
			_, err = m.client.UpdateSecret(ctx, m.opts.Namespace, sec)
		}
		switch {
		case err == nil:
			m.log.Info("webhook certificates written", "reasons", reasons)
			return s, nil
		case (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < maxWriteAttempts:
			m.log.Debug("another replica wrote the Secret first; re-reading", "error", err)
		case missing && apierrors.IsForbidden(err):
			return nil, fmt.Errorf("creating Secret %s/%s (the install manifest creates it empty; without it the gateway needs create on secrets): %w",
				m.opts.Namespace, m.opts.SecretName, err)
		default:
			return nil, fmt.Errorf("writing Secret %s/%s (%v): %w", m.opts.Namespace, m.opts.SecretName, reasons, err)
		}
	}
}

// nextSync returns how long to wait before the next sync: the resync
// period, or less if something in s falls due sooner, so a replica renews
// on time rather than up to a resync late.
func (m *Manager) nextSync(s *state, now time.Time) time.Duration {
	due := []time.Time{
		s.cert.Leaf.NotAfter.Add(-m.policy.certRenewBefore),
		m.policy.caRenewAt(s.ca),
	}
	if s.previous != nil {
		due = append(due, s.previous.NotAfter, s.ca.NotBefore.Add(skew+handover))
	}
	wait := jitter(m.opts.Resync)
	for _, at := range due {
		if d := at.Sub(now); d >= 0 && d < wait {
			wait = d
		}
	}
	// Something just due is handled by the sync that woke now; the floor
	// keeps a clock step from turning the loop into a spin.
	return max(wait, m.opts.Resync/20)
}

// jitter spreads d by ±10% so replicas started together do not read and
// write in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
