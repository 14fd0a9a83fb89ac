package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// tlsInput is appInput with Host documents and their Secrets: hosts maps
// a hostname to the Host's extra lines.
func tlsInput(t *testing.T, addr string, secrets []*corev1.Secret, hosts map[string]string) snapshot.Input {
	t.Helper()
	in := appInput(t, addr)
	var docs []string
	for _, h := range sortedKeys(hosts) {
		docs = append(docs, fmt.Sprintf("kind: Host\nname: %s\nhostname: %s\ntls_secret: %s\n%s", strings.ReplaceAll(h, ".", "-"), h, strings.ReplaceAll(h, ".", "-"), hosts[h]))
	}
	in.Services[0].Annotations[annotations.Key] += "---\n" + strings.Join(docs, "---\n")
	in.Secrets = secrets
	return in
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func serverSecret(t *testing.T, ca *testpki.CA, host string) *corev1.Secret {
	crt, key := ca.Server(t, host)
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: strings.ReplaceAll(host, ".", "-")}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}
}

// runTLS runs a Server with a TLS listener until the test ends and returns
// its proxy and TLS addresses.
func runTLS(t *testing.T, cfg Config) (*Server, string, string) {
	t.Helper()
	cfg.Listen, cfg.Admin, cfg.ListenTLS, cfg.AllowLoopback = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", true
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(p, a string) { addrs <- p }) }()
	p := <-addrs
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, p, s.TLSAddr()
}

func dialTLS(addr, name string, pool *x509.CertPool, protos []string, cert *tls.Certificate) (*tls.Conn, error) {
	cfg := &tls.Config{ServerName: name, RootCAs: pool, NextProtos: protos}
	if pool == nil {
		// Only which certificate is presented is looked at.
		cfg.InsecureSkipVerify = true
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
}

func TestTLSListener(t *testing.T) {
	for _, engine := range []string{EngineFast, EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s proto=%s xfcc=%q", r.URL.Path, r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Client-Cert"))
			}))
			defer up.Close()
			ca := testpki.NewCA(t, "edge")
			defaultCrt, defaultKey := ca.Server(t, "default.example.com")
			def := testpki.KeyPair(t, defaultCrt, defaultKey)
			s, plain, tlsAddr := runTLS(t, Config{Engine: engine, DefaultCert: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &def, nil }})
			pool := testpki.Pool(ca)
			clients := testpki.NewCA(t, "clients")
			secrets := []*corev1.Secret{serverSecret(t, ca, "a.example.com"), serverSecret(t, ca, "b.example.com"),
				{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "clients"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"ca.crt": clients.PEM}}}
			s.Apply(tlsInput(t, up.Listener.Addr().String(), secrets, map[string]string{
				"a.example.com": "",
				"b.example.com": "insecure: reject\nclient_ca_secret: clients\n",
			}))

			// SNI chooses the certificate; unknown names and clients that
			// send none get the default.
			for name, want := range map[string]string{"a.example.com": "a.example.com", "b.example.com": "b.example.com", "other.example.com": "default.example.com", "": "default.example.com"} {
				c, err := dialTLS(tlsAddr, name, nil, nil, nil)
				if err != nil && name != "b.example.com" {
					t.Errorf("handshake for %q: %v", name, err)
					continue
				}
				if err == nil {
					if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != want {
						t.Errorf("server name %q: certificate for %q, want %q", name, got, want)
					}
					c.Close()
				}
			}
			// ALPN: h2 preferred, HTTP/1.1 when asked, both answered.
			for _, protos := range [][]string{{"h2", "http/1.1"}, {"http/1.1"}, nil} {
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: protos}, ForceAttemptHTTP2: len(protos) == 2}
				if len(protos) < 2 {
					tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
				}
				tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
				}
				c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
				resp, err := c.Get("https://a.example.com/x")
				if err != nil {
					t.Fatalf("ALPN %v: %v", protos, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantMajor := map[int]int{2: 2, 1: 1, 0: 1}[len(protos)]
				if resp.StatusCode != 200 || resp.ProtoMajor != wantMajor || !strings.Contains(string(body), "proto=https") {
					t.Errorf("ALPN %v: %d over HTTP/%d: %s", protos, resp.StatusCode, resp.ProtoMajor, body)
				}
				tr.CloseIdleConnections()
			}
			// A request h1 hands to net/http (chunked body) keeps its TLS
			// state: no redirect loop, https forwarded.
			c, err := dialTLS(tlsAddr, "a.example.com", pool, []string{"http/1.1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /chunked HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			c.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "proto=https") {
				t.Errorf("handed-over request over TLS: %d %s", resp.StatusCode, body)
			}
			// Plain HTTP: a redirects, b refuses.
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			_, tlsPort, _ := net.SplitHostPort(tlsAddr)
			for host, want := range map[string]string{"a.example.com": "301 https://a.example.com:" + tlsPort + "/p?q=1", "b.example.com": "403 "} {
				req, _ := http.NewRequest("GET", "http://"+plain+"/p?q=1", nil)
				req.Host = host
				resp, err := noFollow.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location")); got != want {
					t.Errorf("plain GET %s: %q, want %q", host, got, want)
				}
			}
			// mTLS: b needs a client certificate; with one, its identity
			// reaches the upstream, and a forged header does not.
			if c, err := dialTLS(tlsAddr, "b.example.com", pool, []string{"http/1.1"}, nil); err == nil {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
				if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					t.Errorf("b.example.com answered a client without a certificate")
				}
				c.Close()
			}
			cc, ck := clients.Client(t, "client-1")
			pair := testpki.KeyPair(t, cc, ck)
			c, err = dialTLS(tlsAddr, "b.example.com", pool, []string{"http/1.1"}, &pair)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /who HTTP/1.1\r\nHost: b.example.com\r\nX-Forwarded-Client-Cert: Hash=forged\r\n\r\n")
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			c.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `Subject=\"CN=client-1\"`) || strings.Contains(string(body), "forged") {
				t.Errorf("b.example.com with a client certificate: %d %s", resp.StatusCode, body)
			}
			// On a's connection (no client certificate asked), b is 421.
			c, err = dialTLS(tlsAddr, "a.example.com", pool, []string{"http/1.1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: b.example.com\r\nX-Forwarded-Client-Cert: Hash=forged\r\n\r\n")
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.Close()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("b.example.com on a's connection: %d, want 421", resp.StatusCode)
			}
			// A renewed Secret serves the next handshake; a connection made
			// before carries on.
			old, err := dialTLS(tlsAddr, "a.example.com", pool, []string{"http/1.1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			renewed := serverSecret(t, ca, "a.example.com")
			secrets[0] = renewed
			s.Apply(tlsInput(t, up.Listener.Addr().String(), secrets, map[string]string{"a.example.com": "", "b.example.com": "insecure: reject\nclient_ca_secret: clients\n"}))
			c, err = dialTLS(tlsAddr, "a.example.com", pool, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			leaf := testpki.KeyPair(t, renewed.Data["tls.crt"], renewed.Data["tls.key"])
			if got := c.ConnectionState().PeerCertificates[0].Raw; string(got) != string(leaf.Certificate[0]) {
				t.Errorf("the handshake after the renewal did not get the renewed certificate")
			}
			c.Close()
			fmt.Fprintf(old, "GET /still HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
			if resp, err := http.ReadResponse(bufio.NewReader(old), nil); err != nil || resp.StatusCode != 200 {
				t.Errorf("a connection from before the renewal: %v %v", resp, err)
			}
		})
	}
}

func TestTLSRefusesUnknownNamesWithoutDefault(t *testing.T) {
	_, _, tlsAddr := runTLS(t, Config{})
	ca := testpki.NewCA(t, "edge")
	if c, err := dialTLS(tlsAddr, "nobody.example.com", testpki.Pool(ca), nil, nil); err == nil {
		c.Close()
		t.Errorf("a handshake for a name without a certificate succeeded")
	}
}

// A client that connects and sends nothing holds its slot for the header
// timeout, not for ever, and does not keep others from connecting.
func TestTLSHandshakeIsBounded(t *testing.T) {
	ca := testpki.NewCA(t, "edge")
	crt, key := ca.Server(t, "x.example.com")
	def := testpki.KeyPair(t, crt, key)
	s, _, tlsAddr := runTLS(t, Config{Limits: Limits{ReadHeaderTimeout: 200 * time.Millisecond}, DefaultCert: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &def, nil }})
	silent, err := net.Dial("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if c, err := dialTLS(tlsAddr, "x.example.com", testpki.Pool(ca), nil, nil); err != nil {
		t.Errorf("a handshake while a silent client waits: %v", err)
	} else {
		c.Close()
	}
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Errorf("the silent connection got data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the silent connection was not closed by the gateway")
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.conns.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.conns.open.Load(); n != 0 {
		t.Errorf("%d connections still counted", n)
	}
}

// An upgrade over TLS (WebSocket's handshake, then bytes both ways) goes
// through as on the plain listener.
func TestTLSUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	defer up.Close()
	ca := testpki.NewCA(t, "edge")
	s, _, tlsAddr := runTLS(t, Config{})
	in := tlsInput(t, up.Listener.Addr().String(), []*corev1.Secret{serverSecret(t, ca, "ws.example.com")}, map[string]string{"ws.example.com": ""})
	in.Services[0].Annotations[annotations.Key] = strings.Replace(in.Services[0].Annotations[annotations.Key], "service: app\n", "service: app\nallow_upgrade: [websocket]\n", 1)
	s.Apply(in)
	c, err := dialTLS(tlsAddr, "ws.example.com", testpki.Pool(ca), []string{"h2", "http/1.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2 when offered first", p)
	}
	c.Close()
	c, err = dialTLS(tlsAddr, "ws.example.com", testpki.Pool(ca), []string{"http/1.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade over TLS: %v %v", resp, err)
	}
	fmt.Fprintf(c, "hello\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "echo hello\n" {
		t.Errorf("after the upgrade: %q %v", line, err)
	}
}

// Sessions resume (TLS 1.3 tickets, keys Go rotates) for Hosts that do not
// ask for client certificates, and never for those that do: a ticket
// carries the certificate its first handshake verified, for whatever
// server name it is presented to.
func TestTLSSessionResumption(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ca := testpki.NewCA(t, "edge")
	clients := testpki.NewCA(t, "clients")
	s, _, tlsAddr := runTLS(t, Config{})
	secrets := []*corev1.Secret{serverSecret(t, ca, "open.example.com"), serverSecret(t, ca, "mtls.example.com"),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "clients"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"ca.crt": clients.PEM}}}
	s.Apply(tlsInput(t, up.Listener.Addr().String(), secrets, map[string]string{"open.example.com": "", "mtls.example.com": "client_ca_secret: clients\n"}))
	cc, ck := clients.Client(t, "c")
	pair := testpki.KeyPair(t, cc, ck)
	for name, want := range map[string]bool{"open.example.com": true, "mtls.example.com": false} {
		cache := tls.NewLRUClientSessionCache(4)
		cfg := &tls.Config{ServerName: name, RootCAs: testpki.Pool(ca), ClientSessionCache: cache, Certificates: []tls.Certificate{pair}}
		resumed := false
		for range 3 {
			c, err := tls.Dial("tcp", tlsAddr, cfg)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// TLS 1.3 tickets arrive after the handshake: a request and
			// its answer make sure the client has read them.
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", name)
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %v %v", name, resp, err)
			}
			resumed = resumed || c.ConnectionState().DidResume
			c.Close()
		}
		if resumed != want {
			t.Errorf("%s: a session resumed: %v, want %v", name, resumed, want)
		}
	}
}

// A handshake refused for want of a certificate is counted once, as
// unknown_name.
func TestTLSUnknownNameCountedOnce(t *testing.T) {
	s, _, tlsAddr := runTLS(t, Config{})
	if c, err := dialTLS(tlsAddr, "nobody.example.com", nil, nil, nil); err == nil {
		c.Close()
		t.Fatal("handshake succeeded")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if testCount(s.handshakeErrors.WithLabelValues("unknown_name")) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if u, o := testCount(s.handshakeErrors.WithLabelValues("unknown_name")), testCount(s.handshakeErrors.WithLabelValues("other")); u != 1 || o != 0 {
		t.Errorf("unknown_name %v, other %v; want 1 and 0", u, o)
	}
}

func testCount(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
