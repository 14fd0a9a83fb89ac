package main

import (
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
	plain := nginxConf("/tmp/d", 8080, "127.0.0.1:9090", 128, false)
	has("nginx.conf", plain, "worker_processes 1;", "daemon off;", "pid /tmp/d/nginx.pid;", "access_log off;",
		"server 127.0.0.1:9090;", "keepalive 128;", "listen 127.0.0.1:8080;", "proxy_http_version 1.1;",
		`proxy_set_header Connection "";`, "keepalive_requests 1000000000;")
	lacks("nginx.conf", plain, "limit_req")
	full := nginxConf("/tmp/d", 8080, "127.0.0.1:9090", 128, true)
	has("full nginx.conf", full, "access_log /tmp/d/access.log", "limit_req zone=never burst=", "rate=1000000000r/s")
	lacks("full nginx.conf", full, "access_log off;")

	m := gatehouseManifest("9090", false)
	has("manifest", m, "prefix: /\n", "service: backend\n", "port: 9090\n", `addresses: ["127.0.0.1"]`)
	lacks("manifest", m, "RateLimit")
	m = gatehouseManifest("9090", true)
	has("full manifest", m, "      rate_limits: [never]\n", "      kind: RateLimit\n", "      rate: 1000000000\n", "      unit: second\n")
}
