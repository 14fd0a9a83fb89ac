package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pathExplanation is `gatehouse explain -o json`'s answer.
type pathExplanation struct {
	Matched           bool
	Status            int
	Reason            string
	RoutedPath        string `json:"routed_path"`
	Mapping, Upstream string
	Path, Host        string
	RateLimits        []string `json:"rate_limits"`
}

// accessLine is one access-log line of the gateway.
type accessLine struct {
	RequestID    string `json:"request_id"`
	Status       int
	Path         string
	RawPath      string `json:"raw_path"`
	UpstreamPath string `json:"upstream_path"`
	Route        string
}

// TestPathCanonicalThroughGateway sends paths that spell one path several
// ways, or hide a traversal, to a running gateway, byte for byte as written,
// and checks against `gatehouse explain` over the same manifests: the same
// status, route, upstream path and Host; the upstream never sees a dot
// segment; the access log shows the routed path and the client's spelling.
func TestPathCanonicalThroughGateway(t *testing.T) {
	web := startUpstream(t, echo("web"))
	api := startUpstream(t, echo("api"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "web.yaml"), serviceYAML("web", `kind: Mapping
name: static
prefix: /static/
rewrite: /public/
service: web
---
kind: Mapping
name: files
prefix: /files
rewrite: /srv/
service: web
`, web))
	writeFile(t, filepath.Join(dir, "api.yaml"), serviceYAML("api", `kind: Mapping
name: admin
prefix: /api/admin/
service: api
rate_limits: [once]
---
kind: Mapping
name: api
prefix: /api/
service: api
---
kind: RateLimit
name: once
rate: 1
unit: hour
key: header
header: x-user
`, api))
	g := startGateway(t, dir)
	manifests, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	host := strings.TrimPrefix(g.base, "http://")

	for i, c := range []struct {
		target string
		status int    // what the gateway must answer
		route  string // the Mapping, "" for none
	}{
		{"/static/css/site.css", 200, "default/static"},
		{"/static/%2e%2e/secret.txt", 404, ""},
		{"/static/%2E%2E/secret.txt", 404, ""},
		{"/static/.%2e/.%2E/secret.txt", 404, ""},
		{"/static/css/%2e%2e/app.js", 200, "default/static"},
		{"/static/%2e%2e/api/x", 200, "default/api"},
		{"/static/..%2fsecret.txt", 400, ""},
		{"/static/%2e%2e%2Fsecret.txt", 400, ""},
		{"/static/..%5Csecret.txt", 400, ""},
		{`/static/..\secret.txt`, 400, ""},
		{"/static/..;/secret.txt", 400, ""},
		{"/static/a%00.txt", 400, ""},
		{"/files../etc/passwd", 400, "default/files"},
		{"/files/x", 200, "default/files"},
		{"/api/%61dmin/users", 200, "default/admin"},
		{"//api//admin", 200, "default/api"},
		{"//api//admin//users", 200, "default/admin"},
		{"/api/x/../admin/users", 200, "default/admin"},
		{"/api/admin%2Fusers", 400, ""},
		{"/api/caf%c3%a9/%7euser?q=%2e%2e", 200, "default/api"},
		{"/api/café", 200, "default/api"},
		{"/api/a!b*(c)", 200, "default/api"},
		{"/nowhere/%2e%2e/api/y", 200, "default/api"},
	} {
		id := fmt.Sprintf("path-case-%d", i)
		e := explainPath(t, manifests, "http://"+host+c.target)
		r := rawRequest(t, g, c.target, "X-Request-Id", id, "X-User", id)
		l := g.accessLine(id)

		if r.status != c.status || e.Status != orZero(c.status) || l.Status != c.status || e.Mapping != c.route || l.Route != c.route {
			t.Errorf("%s: gateway %d (log %d, %s), explain %d %q; want %d %q", c.target, r.status, l.Status, l.Route, e.Status, e.Mapping, c.status, c.route)
			continue
		}
		// The path that was routed: explain's routed_path, else the path as sent.
		sent, _, _ := strings.Cut(c.target, "?")
		routed := e.RoutedPath
		if routed == "" {
			routed = sent
		}
		if e.Status == 400 && e.RoutedPath == "" {
			// Refused before routing: the log keeps the client's spelling.
			if l.Path != sent || l.RawPath != "" {
				t.Errorf("%s: refused, logged path %q raw %q", c.target, l.Path, l.RawPath)
			}
			continue
		}
		if l.Path != routed || (routed != sent) != (l.RawPath == sent) {
			t.Errorf("%s: logged path %q raw %q; explain routed %q", c.target, l.Path, l.RawPath, routed)
		}
		if c.status != 200 {
			continue
		}
		service := strings.SplitN(strings.TrimPrefix(e.Upstream, "http://"), ".", 2)[0]
		got := r.echo.Path
		if r.echo.Query != "" {
			got += "?" + r.echo.Query
		}
		if r.echo.Service != service || got != e.Path || r.echo.Host != e.Host {
			t.Errorf("%s: explain says %s %s host %s; upstream %s got %s host %s", c.target, service, e.Path, e.Host, r.echo.Service, got, r.echo.Host)
		}
		if p, _, _ := strings.Cut(e.Path, "?"); l.UpstreamPath != p {
			t.Errorf("%s: logged upstream_path %q, explain %q", c.target, l.UpstreamPath, p)
		}
		for _, seg := range strings.Split(r.echo.Path, "/") {
			if seg == "." || seg == ".." || strings.Contains(strings.ToLower(seg), "%2e") {
				t.Errorf("%s: upstream got a dot segment: %q", c.target, r.echo.Path)
			}
		}
	}

	// Every spelling of the admin path draws from the admin Mapping's bucket.
	if r := rawRequest(t, g, "/api/admin/users", "X-User", "mallory"); r.status != 200 {
		t.Fatalf("first admin request: %d", r.status)
	}
	for _, alias := range []string{"/api/%61dmin/users", "/api/%61%64%6d%69%6e/users", "//api//admin/users", "/api/./admin/users"} {
		e := explainPath(t, manifests, "http://"+host+alias)
		if len(e.RateLimits) != 1 || e.RateLimits[0] != "default/once" {
			t.Errorf("explain %s: rate limits %v", alias, e.RateLimits)
		}
		if r := rawRequest(t, g, alias, "X-User", "mallory"); r.status != 429 {
			t.Errorf("%s: %d, want 429 from the admin limit", alias, r.status)
		}
	}

	// Bytes net/http itself refuses in a request target: still 400, and
	// explain cannot even build the request.
	for _, target := range []string{"/api/%zz", "/api/%2", "/api/a%"} {
		if r := rawRequest(t, g, target); r.status != 400 {
			t.Errorf("%s: %d, want 400", target, r.status)
		}
		out, err := exec.Command(binary, "explain", "-o", "json", "-f", manifests[0], "GET", "http://"+host+target).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("explain %s: %v %s", target, err, out)
		}
	}
}

// orZero is the Status explain reports for a gateway status: none for 200.
func orZero(status int) int {
	if status == 200 {
		return 0
	}
	return status
}

func explainPath(t *testing.T, manifests []string, url string) pathExplanation {
	t.Helper()
	args := []string{"explain", "-o", "json"}
	for _, m := range manifests {
		args = append(args, "-f", m)
	}
	out, err := exec.Command(binary, append(args, "GET", url)...).Output()
	if err != nil {
		t.Fatalf("explain %s: %v\n%s", url, err, out)
	}
	var e pathExplanation
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("explain output %q: %v", out, err)
	}
	return e
}

// rawRequest writes a GET for target on a fresh connection exactly as given
// (net/http's client would rewrite "//a" and refuse some bytes).
func rawRequest(t *testing.T, g *gateway, target string, headers ...string) reply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(g.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, strings.TrimPrefix(g.base, "http://"))
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	return readReply(resp)
}

// accessLine waits for the access-log line of the request with id.
func (g *gateway) accessLine(id string) accessLine {
	g.t.Helper()
	var found accessLine
	g.eventually("the access log has request "+id, func() bool {
		for _, line := range strings.Split(g.log(), "\n") {
			if !strings.Contains(line, `"request_id":"`+id+`"`) {
				continue
			}
			if err := json.Unmarshal([]byte(line), &found); err == nil && found.RequestID == id {
				return true
			}
		}
		return false
	})
	return found
}
