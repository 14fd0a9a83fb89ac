package main

import (
	"slices"
	"strings"
	"testing"
)

// TestConfigsAreEquivalent checks the settings that make the nginx and
// Gatehouse rows comparable, so an edit cannot drop one unnoticed.
func TestConfigsAreEquivalent(t *testing.T) {
	has := func(what, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, text)
			}
		}
	}
	lacks := func(what, text string, unwanted ...string) {
		t.Helper()
		for _, w := range unwanted {
			if strings.Contains(text, w) {
				t.Errorf("%s has %q:\n%s", what, w, text)
			}
		}
	}
	cert := certFiles{cert: "/tmp/d/tls/cert.pem", key: "/tmp/d/tls/key.pem"}
	plainConf := nginxConf("/tmp/d", 8080, "127.0.0.1:9090", 128, plain, cert)
	has("nginx.conf", plainConf, "worker_processes 1;", "daemon off;", "pid /tmp/d/nginx.pid;", "access_log off;",
		"server 127.0.0.1:9090;", "keepalive 128;", "listen 127.0.0.1:8080;", "proxy_http_version 1.1;",
		`proxy_set_header Connection "";`, "keepalive_requests 1000000000;")
	lacks("nginx.conf", plainConf, "limit_req", "ssl")
	fullConf := nginxConf("/tmp/d", 8080, "127.0.0.1:9090", 128, logAndLimit, cert)
	has("full nginx.conf", fullConf, "access_log /tmp/d/access.log", "limit_req zone=never burst=", "rate=1000000000r/s")
	lacks("full nginx.conf", fullConf, "access_log off;", "ssl")
	// The HTTPS row is the plain one with a TLS listener: every line of
	// the plain configuration but the listen line is in it.
	tlsConf := nginxConf("/tmp/d", 8080, "127.0.0.1:9090", 128, overTLS, cert)
	has("HTTPS nginx.conf", tlsConf, "listen 127.0.0.1:8080 ssl;", "ssl_certificate /tmp/d/tls/cert.pem;",
		"ssl_certificate_key /tmp/d/tls/key.pem;", "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_session_cache shared:SSL:10m;")
	for _, line := range strings.Split(plainConf, "\n") {
		if !strings.Contains(line, "listen ") {
			has("HTTPS nginx.conf", tlsConf, line)
		}
	}

	backend := func(v variant) string {
		t.Helper()
		docs, err := gatehouseManifests(v, "127.0.0.1:9090", "127.0.0.1:9191", credentials{})
		if err != nil || len(docs) == 0 || docs[0].name != "backend.yaml" {
			t.Fatalf("gatehouseManifests(%v) = %+v, %v", v, docs, err)
		}
		return docs[0].text
	}
	m := backend(plain)
	has("manifest", m, "prefix: /\n", "service: backend\n", "port: 9090\n", `addresses: ["127.0.0.1"]`)
	lacks("manifest", m, "RateLimit", "auth:")
	for _, v := range []variant{logAndLimit, logLimitRedis, logLimitTrace, logLimitTraceAll} {
		has("full manifest", backend(v), "      rate_limits: [never]\n", "      kind: RateLimit\n", "      rate: 1000000000\n", "      unit: second\n")
	}
	// A feature row's manifest is its baseline's and the feature.
	for v, base := range map[variant]variant{withJWT: plain, withAPIKey: plain, withExtAuth: plain, logLimitRedis: logAndLimit, logLimitTrace: logAndLimit, logLimitTraceAll: logAndLimit} {
		with := backend(v)
		for _, line := range strings.Split(backend(base), "\n") {
			has(v.suffix()+" manifest", with, line)
		}
	}
}

// TestBaselines checks that every proxy row is compared with an nginx row
// over the same protocol (an nginx row with itself), and every Gatehouse
// feature row with the Gatehouse row it adds the feature to.
func TestBaselines(t *testing.T) {
	features := map[string]string{
		"gatehouse-jwt": "gatehouse", "gatehouse-apikey": "gatehouse", "gatehouse-extauth": "gatehouse",
		"gatehouse-redis": "gatehouse-full", "gatehouse-tracing": "gatehouse-full", "gatehouse-tracing-all": "gatehouse-full",
	}
	for _, c := range configs {
		b, ok := configByName(c.baseline)
		switch {
		case !ok:
			t.Errorf("%s: baseline %q is not a config", c.name, c.baseline)
		case features[c.name] != "":
			if c.baseline != features[c.name] || c.setup == "" || slices.Contains(defaultConfigs, c.name) {
				t.Errorf("%s: baseline %s, setup %q, default %v; want baseline %s, a setup, opt-in",
					c.name, c.baseline, c.setup, slices.Contains(defaultConfigs, c.name), features[c.name])
			}
		case !b.nginx || b.baseline != b.name:
			t.Errorf("%s: baseline %s is not an nginx row compared with itself", c.name, b.name)
		case c.setup != "":
			t.Errorf("%s: a setup line, but it is not a feature row", c.name)
		}
		if ok && b.tls != c.tls {
			t.Errorf("%s (tls %v): baseline %s has tls %v", c.name, c.tls, b.name, b.tls)
		}
	}
}
