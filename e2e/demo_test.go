package e2e

import (
	"testing"
)

// TestDemo runs the README's run command the way a newcomer does (from the
// repository root, and from anywhere else with the built-in copy) and checks
// that a request reaches an example upstream with the path rewritten.
func TestDemo(t *testing.T) {
	for _, c := range []struct{ name, dir string }{
		{"from the repository", ".."},
		{"built-in copy", t.TempDir()},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startProcess(t, c.dir, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
			r := g.do("GET", "", "/users/42")
			if r.status != 200 || r.echo.Service != "users" || r.echo.Path != "/42" {
				t.Errorf("GET /users/42: %d from %q with path %q; want 200 from users with /42", r.status, r.echo.Service, r.echo.Path)
			}
			r = g.do("GET", "shop.example.com", "/orders/7")
			if r.status != 200 || r.echo.Service != "orders" || r.echo.Path != "/v1/orders/7" {
				t.Errorf("GET shop.example.com/orders/7: %d from %q with path %q", r.status, r.echo.Service, r.echo.Path)
			}
			// The demo runs in the foreground until interrupted; the cleanup
			// stops it, which must free the fixed example ports for the next run.
		})
	}
}
