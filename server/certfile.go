package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertFiles is a certificate and key in PEM files (serve's --tls-cert-file
// and --tls-key-file: the default certificate), read again when either
// file changes, so a mounted Secret that is renewed is served without a
// restart. A change that does not load keeps the certificate that did.
type CertFiles struct {
	certPath, keyPath string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // the files' modification times when cert was read
	bad     [2]time.Time // those of a change that did not load, told once
	checked time.Time
}

// certRecheck is how often the files are looked at again: a stat of two
// files once a second at most, however many handshakes there are.
const certRecheck = time.Second

// LoadCertFiles reads the pair once; an error means the pair is unusable
// now, which a gateway should not start with.
func LoadCertFiles(certPath, keyPath string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertFiles{certPath: certPath, keyPath: keyPath, log: log, now: time.Now}
	stamp, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certPath, keyPath, err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, c.now()
	return c, nil
}

func (c *CertFiles) stat() ([2]time.Time, error) {
	var out [2]time.Time
	for i, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fi.ModTime()
	}
	return out, nil
}

// Certificate returns the pair as last loaded, loading it again first when
// the files changed.
func (c *CertFiles) Certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < certRecheck {
		return c.cert, nil
	}
	c.checked = now
	stamp, err := c.stat()
	if err != nil || stamp == c.stamp || stamp == c.bad {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		// Often a renewal caught between its two writes: the next change
		// of either file is looked at again.
		c.bad = stamp
		c.log.Warn("default certificate files changed but do not load; serving the previous one", "cert", c.certPath, "key", c.keyPath, "error", err)
		return c.cert, nil
	}
	c.cert, c.stamp = &cert, stamp
	c.log.Info("default certificate reloaded", "cert", c.certPath)
	return c.cert, nil
}
