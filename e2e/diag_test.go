package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotDir is where TestDiagnosticsPage leaves its screenshots, to be
// looked at after a run (git ignores /_output/).
const screenshotDir = "../_output/diag-screenshots"

// requireChromium returns the path of Debian's chromium (hack/chromium
// ensure installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	skipOrFail(t, "%s needs chromium (hack/chromium ensure)", t.Name())
	return ""
}

// TestDiagnosticsPage drives a real headless Chromium through the admin
// listener's diagnostics page of a gateway serving several Services, one
// of them rejected from the start and one serving its last good
// configuration: the route table, the Services' problems with their
// positions, a link from a route to its upstream's endpoints, and the
// explain form.
func TestDiagnosticsPage(t *testing.T) {
	chromium := requireChromium(t)
	alpha := startUpstream(t, echo("alpha"))
	beta := startUpstream(t, echo("beta"))
	gamma := startUpstream(t, echo("gamma"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alpha.yaml"), serviceYAML("alpha", `kind: Mapping
name: alpha-api
prefix: /alpha/
service: alpha
rate_limits: [ten-per-second]
---
kind: Mapping
name: alpha-blue
prefix: /blue/
headers:
  x-team: blue
service: alpha
---
kind: RateLimit
name: ten-per-second
rate: 10
unit: second
`, alpha))
	writeFile(t, filepath.Join(dir, "beta.yaml"), serviceYAML("beta", "kind: Mapping\nname: beta-exact\nprefix: /beta\nprefix_exact: true\nservice: beta\n", beta))
	// Rejected from its first version: nothing of it is served.
	writeFile(t, filepath.Join(dir, "broken.yaml"), serviceYAML("broken", "kind: Mapping\nname: broken\nprefx: /broken/\nservice: beta\n"))
	writeFile(t, filepath.Join(dir, "gamma.yaml"), serviceYAML("gamma", "kind: Mapping\nname: gamma\nprefix: /gamma/\nservice: gamma\n", gamma))
	g := startGateway(t, dir)
	page := func(path string) string {
		resp, err := http.Get(g.admin + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	g.eventually("gamma is served", func() bool { return strings.Contains(page("/diag/routes"), "default/gamma") })
	// A bad edit: gamma keeps serving what it had.
	writeFile(t, filepath.Join(dir, "gamma.yaml"), serviceYAML("gamma", "kind: Mapping\nname: gamma\nprefix: /gamma/\nservice: gamma\ntimeout_ms: soon\n", gamma))
	g.eventually("gamma's bad edit is rejected", func() bool { return strings.Contains(page("/diag/services"), "serving last good") })

	start := time.Now()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout that would end it
		t.Fatalf("starting chromium: %v", err)
	}
	// Each step is bounded; the browser outlives them.
	step := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := f(sctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(ctx context.Context, sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	screenshot := func(ctx context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantAll := func(what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: no %q in\n%s", what, w, got)
			}
		}
	}

	step("the routes page", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/routes"), chromedp.WaitVisible(chromedp.CSS("#routes"))); err != nil {
			return err
		}
		routes := text(ctx, "#routes")
		wantAll("routes table", routes, "default/alpha-api", "default/alpha-blue", "header X-Team=\"blue\"", "default/beta-exact",
			"exact /beta", "default/gamma", "ten-per-second", "default/alpha")
		if strings.Contains(routes, "default/broken") {
			t.Errorf("the rejected Service's Mapping is in the routes table:\n%s", routes)
		}
		screenshot(ctx, "routes")
		return nil
	})

	step("the Services page", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/services"), chromedp.WaitVisible(chromedp.CSS(`[id="svc-default/broken"]`))); err != nil {
			return err
		}
		wantAll("the rejected Service", text(ctx, `[id="svc-default/broken"]`), "rejected", "none of its routes are served",
			"3:1", `Mapping "broken"`, `unknown field "prefx"`)
		wantAll("the Service serving its last good configuration", text(ctx, `[id="svc-default/gamma"]`), "rejected", "serving last good",
			"last good configuration, accepted", "5:1", "timeout_ms", "default/gamma")
		wantAll("an accepted Service", text(ctx, `[id="svc-default/alpha"]`), "accepted", "default/alpha-api", "default/alpha:80")
		screenshot(ctx, "services")
		return nil
	})

	step("following a route to its upstream", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/routes"), chromedp.WaitVisible(chromedp.CSS("#routes"))); err != nil {
			return err
		}
		link := chromedp.Search(`//tr[td[contains(@class, "mapping") and text()="default/alpha-api"]]//a[contains(@class, "upstream")]`)
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(link))
		if err != nil {
			return err
		}
		if resp.Status != http.StatusOK || !strings.Contains(strings.ToLower(resp.URL), "/diag/upstream?id=default%2falpha%3a80") {
			t.Errorf("the route's upstream link led to %s (%d)", resp.URL, resp.Status)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#endpoints"))); err != nil {
			return err
		}
		wantAll("the upstream's endpoints", text(ctx, "#endpoints"), alpha.addr, "in balancing")
		wantAll("the upstream's breaker", text(ctx, "#breaker"), "closed")
		screenshot(ctx, "upstream")
		return nil
	})

	step("the explain form", func(ctx context.Context) error {
		const hostile = `X-Note: <script>alert(1)</script>`
		if err := chromedp.Do(ctx,
			chromedp.Navigate(g.admin+"/diag/explain"),
			chromedp.WaitVisible(chromedp.CSS("#explain")),
			chromedp.SetValue(chromedp.CSS("#method"), "post"),
			chromedp.SetValue(chromedp.CSS("#url"), "http://shop.example.com/alpha/items?id=7"),
			chromedp.SetValue(chromedp.CSS("#headers"), "X-Team: blue\n"+hostile),
		); err != nil {
			return err
		}
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#submit")))
		if err != nil {
			return err
		}
		if resp.Status != http.StatusOK || !strings.Contains(resp.URL, "/diag/explain?") {
			t.Errorf("submitting the form led to %s (%d)", resp.URL, resp.Status)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#answer"))); err != nil {
			return err
		}
		wantAll("explain's answer", text(ctx, "#answer"), "POST /alpha/items?id=7", "shop.example.com", "matched",
			"default/alpha-api", "/items?id=7", "ten-per-second")
		headers, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#headers")))
		if err != nil {
			return err
		}
		wantAll("the form, kept", headers, hostile)
		scripts, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("script"), chromedp.AtLeast(0)))
		if err != nil {
			return err
		}
		if len(scripts) != 0 {
			t.Errorf("the explain page has %d script elements after a header value with one", len(scripts))
		}
		screenshot(ctx, "explain")
		return nil
	})
	step("the overview, rate limits and snapshots", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/"), chromedp.WaitVisible(chromedp.CSS("#summary"))); err != nil {
			return err
		}
		wantAll("the overview", text(ctx, "#summary"), "ready", "4 annotated", "2 rejected", "1 serving their last good configuration")
		screenshot(ctx, "overview")
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/limits"), chromedp.WaitVisible(chromedp.CSS("#limits"))); err != nil {
			return err
		}
		wantAll("the rate limits", text(ctx, "#limits"), "default/ten-per-second", "10/s", "default/alpha-api")
		if err := chromedp.Do(ctx, chromedp.Navigate(g.admin+"/diag/snapshots"), chromedp.WaitVisible(chromedp.CSS("#snapshots"))); err != nil {
			return err
		}
		wantAll("the snapshots", text(ctx, "#snapshots"), "default/gamma: rejected", "default/broken: added, rejected", " ms")
		screenshot(ctx, "snapshots")
		return nil
	})
	abs, _ := filepath.Abs(screenshotDir)
	t.Logf("browser steps took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), abs)
}
