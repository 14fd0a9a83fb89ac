package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

func TestEdgePolicy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer up.Close()
	cfg := `kind: Mapping
name: app
prefix: /
service: app
---
kind: Host
name: shop
hostname: shop.example.com
tls_secret: shop-tls
hsts:
  max_age: 60
---
kind: Host
name: strict
hostname: strict.example.com
tls_secret: strict-tls
insecure: reject
---
kind: Host
name: open
hostname: open.example.com
tls_secret: open-tls
insecure: route
`
	h := New(Options{Guard: loopbackGuard(t), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	h.Publish(compile(t, cfg, up.Listener.Addr().String()))
	type want struct {
		code           int
		location, hsts string
	}
	check := func(name string, port int, method, target string, tlsOn bool, peer string, w want, headers ...string) {
		t.Helper()
		h.SetHTTPSPort(port)
		req := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if tlsOn {
			req.TLS = &tls.ConnectionState{ServerName: req.Host}
		}
		if peer != "" {
			req.RemoteAddr = peer
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != w.code || rec.Header().Get("Location") != w.location || rec.Header().Get("Strict-Transport-Security") != w.hsts {
			t.Errorf("%s: %d Location %q HSTS %q; want %d %q %q", name, rec.Code, rec.Header().Get("Location"), rec.Header().Get("Strict-Transport-Security"), w.code, w.location, w.hsts)
		}
	}
	check("plain GET redirects, path and query kept", 8443, "GET", "http://shop.example.com/a/b?c=d&e", false, "", want{301, "https://shop.example.com:8443/a/b?c=d&e", ""})
	check("the Host header's port is not kept", 8443, "GET", "http://shop.example.com:8080/", false, "", want{301, "https://shop.example.com:8443/", ""})
	check("443 is left out", 443, "HEAD", "http://SHOP.example.com/", false, "", want{301, "https://shop.example.com/", ""})
	check("no HTTPS port known: the default", 0, "GET", "http://shop.example.com/", false, "", want{301, "https://shop.example.com/", ""})
	check("other methods get 308 (method and body kept)", 8443, "POST", "http://shop.example.com/form", false, "", want{308, "https://shop.example.com:8443/form", ""})
	check("ACME challenges are never redirected", 8443, "GET", "http://shop.example.com/.well-known/acme-challenge/tok", false, "", want{200, "", ""})
	check("over TLS: served, with HSTS", 8443, "GET", "https://shop.example.com/x", true, "", want{200, "", "max-age=60"})
	check("reject", 8443, "GET", "http://strict.example.com/x", false, "", want{403, "", ""})
	check("reject exempts ACME too", 8443, "GET", "http://strict.example.com/.well-known/acme-challenge/t", false, "", want{200, "", ""})
	check("route serves plain HTTP", 8443, "GET", "http://open.example.com/x", false, "", want{200, "", ""})
	check("no Host: untouched", 8443, "GET", "http://elsewhere.example.com/x", false, "", want{200, "", ""})
	check("a trusted proxy that terminated TLS", 8443, "GET", "http://shop.example.com/x", false, "192.0.2.1:1234", want{200, "", "max-age=60"}, "X-Forwarded-Proto", "https")
	check("an untrusted client saying https is redirected", 8443, "GET", "http://shop.example.com/x", false, "198.51.100.1:1234", want{301, "https://shop.example.com:8443/x", ""}, "X-Forwarded-Proto", "https")
}

func TestSnapshotHostName(t *testing.T) {
	for in, want := range map[string]string{
		"a.example.com":      "a.example.com",
		"a.example.com:8080": "a.example.com",
		"[::1]:8443":         "::1",
		"[::1]":              "::1",
		"":                   "",
	} {
		if got := snapshot.HostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestXFCCEscape(t *testing.T) {
	for in, want := range map[string]string{
		`CN=a,O=b`:        `CN=a,O=b`,
		`CN=a"b\c`:        `CN=a\"b\\c`,
		"CN=a\r\nX-Evil:": `CN=a%0D%0AX-Evil:`,
		"CN=é":            `CN=%C3%A9`,
	} {
		if got := xfccEscape(in); got != want {
			t.Errorf("xfccEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
