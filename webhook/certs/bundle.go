package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
)

// bundlePatcher keeps the caBundle of every webhook in one
// ValidatingWebhookConfiguration equal to the CAs the Secret names. It reads
// the configuration by name on every call, so a re-applied manifest that
// wiped the bundle is repaired on the next resync.
type bundlePatcher struct {
	client Client
	name   string
	log    *slog.Logger
}

// ensure makes every webhook trust exactly want, plus any CA of ours
// already in its bundle that is newer than want[0] and still valid at now.
// Such a CA means another replica has read a newer Secret than the caller
// (the caller read the Secret, then that replica rotated the CA and
// patched); removing it would break that replica until the caller's next
// resync. It reports whether it wrote; a missing configuration is logged and
// is not an error, as nothing can then call the webhook with a stale bundle.
func (p *bundlePatcher) ensure(ctx context.Context, want []*x509.Certificate, now time.Time) (bool, error) {
	wrote := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vwc, err := p.client.GetValidatingWebhookConfiguration(ctx, p.name)
		if apierrors.IsNotFound(err) {
			p.log.Warn("ValidatingWebhookConfiguration not found; its caBundle cannot be set", "name", p.name)
			return nil
		}
		if err != nil {
			return err
		}
		changed := false
		for i := range vwc.Webhooks {
			cc := &vwc.Webhooks[i].ClientConfig
			if b, ok := mergeBundle(cc.CABundle, want, now); !ok {
				cc.CABundle = b
				changed = true
			}
		}
		if !changed {
			return nil
		}
		if _, err := p.client.UpdateValidatingWebhookConfiguration(ctx, vwc); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("setting the caBundle of ValidatingWebhookConfiguration %s: %w", p.name, err)
	}
	if wrote {
		p.log.Info("caBundle updated", "validatingWebhookConfiguration", p.name, "cas", len(want))
	}
	return wrote, nil
}

// mergeBundle returns the bundle that should replace have, and whether have
// already trusts the same set of CAs (order and encoding aside), in which
// case it is left alone so replicas never fight over byte order.
func mergeBundle(have []byte, want []*x509.Certificate, now time.Time) ([]byte, bool) {
	current := ParseCertificates(have)
	out := append([]*x509.Certificate(nil), want...)
	for _, c := range current {
		if c.IsCA && c.Subject.CommonName == caCommonName && c.NotBefore.After(want[0].NotBefore) &&
			now.Before(c.NotAfter) && !containsCert(out, c) {
			out = append(out, c)
		}
	}
	same := true
	for _, c := range current {
		same = same && containsCert(out, c)
	}
	for _, c := range out {
		same = same && containsCert(current, c)
	}
	if same {
		return have, true
	}
	var b bytes.Buffer
	for _, c := range out {
		b.Write(encodeCert(c))
	}
	return b.Bytes(), false
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, d := range certs {
		if d.Equal(c) {
			return true
		}
	}
	return false
}
