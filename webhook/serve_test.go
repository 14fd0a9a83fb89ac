package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// TestServeBoundsSlowBodies: a client that sends headers and then trickles
// its body holds a review slot only until the read times out (the review
// Timeout), after which reviews are answered again.
func TestServeBoundsSlowBodies(t *testing.T) {
	// httptest's certificate for 127.0.0.1, served by Serve.
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ts.Close()

	h := New(Options{MaxConcurrent: 1, MaxWait: 20 * time.Millisecond, Timeout: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, h, ServeOptions{
			Addr:           "127.0.0.1:0",
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
			OnListen:       func(addr string) { addrc <- addr },
		})
	}()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	addr := <-addrc

	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", Path)
	held := time.Now()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	defer client.CloseIdleConnections()
	body := reviewBody(t, admissionv1.Create, "Service", serviceJSON(t, valid), nil)
	codes := map[int]int{}
	for time.Since(held) < 10*time.Second {
		resp, err := client.Post("https://"+addr+Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusOK {
			break
		}
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] != 1 {
		t.Errorf("answers %v: want 429 while the slow body holds the slot, then 200", codes)
	}
	if d := time.Since(held); d > 5*time.Second {
		t.Errorf("the slot came back after %v, want about the 500ms Timeout", d)
	}
}
