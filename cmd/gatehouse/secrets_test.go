package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// TestFilesSecrets: TLS Secrets read from files reach the build (the one
// the offline commands and serve --from-dir share, manifestInput), from
// another file than the Mapping's; an Opaque Secret of the same name does
// not.
func TestFilesSecrets(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n    ")

	dir := t.TempDir()
	app := filepath.Join(dir, "app.yaml")
	appDoc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    gatehouse.dev/config: |\n" +
		"      kind: Mapping\n      name: web\n      prefix: /web/\n      service: https://web\n      upstream_tls: {ca_secret: web-ca}\n" +
		"spec:\n  ports:\n  - port: 443\n"
	secret := func(typ string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: web-ca, namespace: shop}\ntype: " + typ +
			"\nstringData:\n  tls.crt: ''\n  tls.key: ''\n  ca.crt: |\n" + indented + "\n"
	}
	tlsFile, opaqueFile := filepath.Join(dir, "tls.yaml"), filepath.Join(dir, "opaque.yaml")
	for name, data := range map[string]string{app: appDoc, tlsFile: secret("kubernetes.io/tls"), opaqueFile: secret("Opaque")} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		files   []string
		secrets int
		ok      bool
	}{
		{"the TLS Secret", []string{app, tlsFile}, 1, true},
		{"an Opaque Secret", []string{app, opaqueFile}, 0, false},
	} {
		all, snap, findings, err := compileFiles(c.files, snapshot.Options{})
		if err != nil || hasErrors(findings) {
			t.Fatalf("%s: %v %v", c.name, err, findings)
		}
		if len(all.Secrets) != c.secrets {
			t.Errorf("%s: %d Secrets read, want %d", c.name, len(all.Secrets), c.secrets)
		}
		routes := snap.Table.Routes()
		if len(routes) != 1 {
			t.Fatalf("%s: %d routes, want 1", c.name, len(routes))
		}
		tc := snap.TLSClient(routes[0].Value)
		if got := tc != nil && tc.Err == nil && tc.Config != nil && tc.Config.RootCAs != nil; got != c.ok {
			t.Errorf("%s: upstream TLS %+v; want it resolved: %v", c.name, tc, c.ok)
		}
	}
}
