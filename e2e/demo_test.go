package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// httpsCurlLine finds the curl lines the demo prints for HTTPS.
var httpsCurlLine = regexp.MustCompile(`(?m)^  curl -s [^\n]*--cacert [^\n]*https://[^\n]*$`)

// answeredBy reports whether out holds an echo answer from service.
func answeredBy(out, service string) bool {
	return regexp.MustCompile(`"service":\s*"` + regexp.QuoteMeta(service) + `"`).MatchString(out)
}

// TestDemo runs the README's run command the way a newcomer does (from the
// repository root, and from anywhere else with the built-in copy) and checks
// that a request reaches an example upstream with the path rewritten.
func TestDemo(t *testing.T) {
	for _, c := range []struct{ name, dir string }{
		{"from the repository", ".."},
		{"built-in copy", t.TempDir()},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startProcess(t, c.dir, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0")
			r := g.do("GET", "", "/users/42")
			if r.status != 200 || r.echo.Service != "users" || r.echo.Path != "/42" {
				t.Errorf("GET /users/42: %d from %q with path %q; want 200 from users with /42", r.status, r.echo.Service, r.echo.Path)
			}
			r = g.do("GET", "shop.example.com", "/orders/7")
			if r.status != 200 || r.echo.Service != "orders" || r.echo.Path != "/v1/orders/7" {
				t.Errorf("GET shop.example.com/orders/7: %d from %q with path %q", r.status, r.echo.Service, r.echo.Path)
			}
			// The HTTPS lines it prints work as printed (curl checks the
			// certificate made at start against the CA it names).
			curl := requireTool(t, "curl")
			var lines []string
			g.eventually("the demo prints its HTTPS curl lines", func() bool {
				lines = httpsCurlLine.FindAllString(g.output(), -1)
				return len(lines) == 2
			})
			for i, line := range lines {
				args := strings.Fields(strings.TrimSpace(line))[1:]
				out, err := exec.Command(curl, append([]string{"--max-time", "10", "-w", "\n%{http_version}"}, args...)...).CombinedOutput()
				want := []string{"users", "orders"}[i]
				if err != nil || !answeredBy(string(out), want) {
					t.Errorf("%s: %v\n%s", strings.TrimSpace(line), err, out)
					continue
				}
				if i == 0 && !strings.HasSuffix(strings.TrimSpace(string(out)), "2") {
					t.Errorf("%s: not answered over HTTP/2:\n%s", strings.TrimSpace(line), out)
				}
			}
			// The demo runs in the foreground until interrupted; the cleanup
			// stops it, which must free the fixed example ports for the next run.
		})
	}
}
