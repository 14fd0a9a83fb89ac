package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// TestUpstreamTLS: real TLS upstreams behind the gateway in file mode,
// with the CA and client certificate in kubernetes.io/tls Secrets next to
// the Services: the right CA verifies, the wrong one fails closed (502,
// the reason in the access log), an upstream that requires a client
// certificate gets the Mapping's, and a renewed CA Secret is picked up.
func TestUpstreamTLS(t *testing.T) {
	serverCA, clientCA, otherCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA"), testpki.NewCA(t, "other CA")
	start := func(name string, clientAuth tls.ClientAuthType) *upstreamServer {
		certPEM, keyPEM := serverCA.Server(t, name+".default.svc")
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
			Certificates: []tls.Certificate{testpki.KeyPair(t, certPEM, keyPEM)},
			ClientAuth:   clientAuth, ClientCAs: testpki.Pool(clientCA),
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who := "anonymous"
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				who = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			fmt.Fprintf(w, "%s over TLS to %s", name, who)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return &upstreamServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	}
	plain := start("plain", tls.NoClientCert)
	mtls := start("mutual", tls.RequireAndVerifyClientCert)
	clientCert, clientKey := clientCA.Client(t, "gatehouse")

	dir := t.TempDir()
	secret := func(name string, data map[string][]byte) string {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: default\ntype: kubernetes.io/tls\ndata:\n", name)
		for k, v := range data {
			fmt.Fprintf(&b, "  %s: %s\n", k, base64.StdEncoding.EncodeToString(v))
		}
		return b.String()
	}
	writeSecrets := func(ca []byte) {
		// A kubernetes.io/tls Secret must have tls.crt and tls.key, if
		// empty; cert-manager's CA Secrets carry all three.
		writeFile(t, filepath.Join(dir, "secrets.yaml"), secret("upstream-ca", map[string][]byte{"ca.crt": ca, "tls.crt": nil, "tls.key": nil})+"---\n"+
			secret("wrong-ca", map[string][]byte{"ca.crt": otherCA.PEM, "tls.crt": nil, "tls.key": nil})+"---\n"+
			secret("gateway-client", map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey}))
	}
	writeSecrets(serverCA.PEM)
	svc := func(name, prefix, tlsSpec string, up *upstreamServer) string {
		y := serviceYAML(name, "kind: Mapping\nname: "+name+"\nprefix: "+prefix+"\nservice: https://"+name+"\n"+tlsSpec, up)
		y = strings.Replace(y, "- name: http\n    port: 80\n", "- name: https\n    port: 443\n", 1)
		return strings.ReplaceAll(y, "- name: http\n  port:", "- name: https\n  port:") // the EndpointSlice's port
	}
	writeFile(t, filepath.Join(dir, "services.yaml"),
		svc("plain", "/right/", "upstream_tls: {ca_secret: upstream-ca}\n", plain)+"---\n"+
			strings.ReplaceAll(svc("plain", "/wrong/", "upstream_tls: {ca_secret: wrong-ca}\n", plain), "name: plain", "name: plain-wrong")+"---\n"+
			svc("mutual", "/mutual/", "upstream_tls: {ca_secret: upstream-ca, client_secret: gateway-client}\n", mtls))
	g := startGateway(t, dir)

	get := func(path string) (int, string) {
		resp, err := http.Get(g.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/right/x"); code != 200 || body != "plain over TLS to anonymous" {
		t.Fatalf("the right CA: %d %q", code, body)
	}
	if code, body := get("/wrong/x"); code != 502 {
		t.Fatalf("the wrong CA: %d %q, want 502", code, body)
	}
	waitFor(t, "the verification failure in the access log", 10*time.Second, func() bool {
		return strings.Contains(g.log(), "certificate signed by unknown authority")
	})
	if code, body := get("/mutual/x"); code != 200 || body != "mutual over TLS to gatehouse" {
		t.Fatalf("mTLS: %d %q", code, body)
	}
	// The CA Secret now holds the wrong CA: new connections fail closed.
	writeSecrets(otherCA.PEM)
	waitFor(t, "the renewed Secret to be used", 20*time.Second, func() bool { code, _ := get("/right/x"); return code == 502 })
	t.Logf("upstream TLS: right CA 200, wrong CA 502 (reason logged), mTLS with the Mapping's client certificate 200, a changed CA Secret used by new connections")
}
