package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certFiles is the certificate of the HTTPS rows: a leaf for 127.0.0.1 and
// localhost signed by a CA made for this run only, in PEM files that both
// proxies load, so that neither pays for a bigger key or a longer chain.
type certFiles struct {
	cert, key string         // the leaf's PEM files
	roots     *x509.CertPool // the CA alone, which the readiness probe trusts
}

// writeCert makes a throwaway CA and an ECDSA P-256 leaf it signs, valid
// from an hour before now for a day, and writes the leaf and its key into
// dir. The CA's key is never written: nothing else can be signed with it.
// Serial numbers are left to x509.CreateCertificate, which draws them at
// random.
func writeCert(dir string, now time.Time) (certFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certFiles{}, fmt.Errorf("making the CA's key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "gatehouse bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return certFiles{}, fmt.Errorf("signing the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return certFiles{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certFiles{}, fmt.Errorf("making the leaf's key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gatehouse bench"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return certFiles{}, fmt.Errorf("signing the leaf: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certFiles{}, err
	}

	out := certFiles{
		cert:  filepath.Join(dir, "cert.pem"),
		key:   filepath.Join(dir, "key.pem"),
		roots: x509.NewCertPool(),
	}
	out.roots.AddCert(ca)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return certFiles{}, err
	}
	// Only the leaf: the client holds the CA, as a browser holds a root.
	if err := os.WriteFile(out.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644); err != nil {
		return certFiles{}, err
	}
	// nginx's master reads the key before it drops privileges, so 0600
	// owned by whoever runs the benchmark does for both proxies.
	if err := os.WriteFile(out.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return certFiles{}, err
	}
	return out, nil
}
