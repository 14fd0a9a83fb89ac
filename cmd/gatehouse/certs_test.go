package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Certificates for the edge TLS tests. They are made the same every run
// (Ed25519 keys from fixed seeds, fixed serials and dates; Ed25519
// signatures are deterministic), so goldens can print fingerprints, and
// their validity is far enough from any real clock that "expired" and
// "not yet valid" hold for as long as this code lives: the CLI judges
// validity by time.Now, as the builder does.
var (
	longAgo  = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	pastEnd  = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	farAhead = time.Date(2190, 1, 1, 0, 0, 0, 0, time.UTC)
	farEnd   = time.Date(2199, 12, 31, 0, 0, 0, 0, time.UTC)
)

// certSpec describes one test certificate, self-signed unless it has a
// parent.
type certSpec struct {
	seed      byte // of the key; also the serial number
	cn        string
	dns       []string
	notBefore time.Time
	notAfter  time.Time
	ca        bool
	parent    *certSpec // signs this one when set
}

func (c certSpec) key() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = c.seed
	return ed25519.NewKeyFromSeed(seed)
}

func (c certSpec) template() *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber: big.NewInt(int64(c.seed)),
		Subject:      pkix.Name{CommonName: c.cn},
		DNSNames:     c.dns,
		NotBefore:    c.notBefore,
		NotAfter:     c.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if c.ca {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage |= x509.KeyUsageCertSign
		t.ExtKeyUsage = nil
	}
	return t
}

// pem returns the certificate and its private key, PEM-encoded.
func (c certSpec) pem(t testing.TB) (crt, key []byte) {
	t.Helper()
	k := c.key()
	parent, signer := c.template(), k
	if c.parent != nil {
		parent, signer = c.parent.template(), c.parent.key()
	}
	der, err := x509.CreateCertificate(rand.Reader, c.template(), parent, k.Public(), signer)
	if err != nil {
		t.Fatalf("certificate %q: %v", c.cn, err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// tlsSecret renders a kubernetes.io/tls Secret holding c; a CA's Secret
// carries its certificate as ca.crt as well.
func tlsSecret(t testing.TB, namespace, name string, c certSpec) string {
	t.Helper()
	crt, key := c.pem(t)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: kubernetes.io/tls\nstringData:\n", name, namespace)
	block := func(field string, data []byte) {
		fmt.Fprintf(&b, "  %s: |\n    %s\n", field, strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n    "))
	}
	block("tls.crt", crt)
	block("tls.key", key)
	if c.ca {
		block("ca.crt", crt)
	}
	return b.String()
}
