package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestWriteCert checks the certificate both proxies serve: an ECDSA P-256
// leaf that the run's CA, and only it, vouches for at both names wrk and
// the probe may use, with a key that only its owner can read.
func TestWriteCert(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c, err := writeCert(t.TempDir()+"/tls", now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	if len(pair.Certificate) != 1 {
		t.Errorf("cert.pem holds %d certificates, want the leaf alone", len(pair.Certificate))
	}
	leaf := pair.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: c.roots, CurrentTime: now}); err != nil {
			t.Errorf("verifying for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: x509.NewCertPool(), CurrentTime: now}); err == nil {
		t.Error("the leaf verifies without the run's CA")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: c.roots, CurrentTime: now.Add(48 * time.Hour)}); err == nil {
		t.Error("the leaf is still valid two days on")
	}
	fi, err := os.Stat(c.key)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", perm)
	}
}

// TestWaitReadyOverTLS checks the readiness probe against an HTTPS server
// with the run's certificate: it trusts the run's CA, speaks HTTP/1.1 as
// wrk does although the server offers HTTP/2, and refuses a certificate
// another CA signed.
func TestWaitReadyOverTLS(t *testing.T) {
	c, err := writeCert(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := make(chan string, 100)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			protos <- r.Proto
			w.Write(body)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
		// The refused handshake below is expected.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	p := &process{name: "test server", exited: make(chan struct{})}
	url := "https://" + ln.Addr().String() + "/"
	if err := waitReady(t.Context(), p, url, c.roots, nil); err != nil {
		t.Fatal(err)
	}
	if proto := <-protos; proto != "HTTP/1.1" {
		t.Errorf("the probe spoke %s, want HTTP/1.1", proto)
	}

	other, err := writeCert(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client := probeClient(other.roots)
	defer client.CloseIdleConnections()
	var unknown x509.UnknownAuthorityError
	if _, err := client.Get(url); !errors.As(err, &unknown) {
		t.Errorf("probe with another CA: err = %v, want x509.UnknownAuthorityError", err)
	}
}
