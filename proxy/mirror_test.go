package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestMirror: a shadow Mapping with the primary's match criteria gets a
// copy of each request, body and all, with "-shadow" on its Host; the
// primary's answer does not wait for it.
func TestMirror(t *testing.T) {
	release := make(chan struct{})
	copies := make(chan string, 100)
	var primaries atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Host, "-shadow") {
			b, _ := io.ReadAll(r.Body)
			copies <- r.Method + " " + r.Host + " " + r.URL.Path + " " + string(b)
			<-release // a shadow that hangs
			return
		}
		primaries.Add(1)
		io.WriteString(w, "primary")
	}))
	defer up.Close()
	defer close(release)
	h := New(Options{Guard: loopbackGuard(t)})
	h.Publish(compile(t, "kind: Mapping\nname: main\nprefix: /api/\nservice: app\n---\nkind: Mapping\nname: copy\nprefix: /api/\nrewrite: /mirror/\nservice: app\nshadow: true\n", addrOf(up)))

	req := httptest.NewRequest("POST", "http://shop.example/api/orders", strings.NewReader("order-1"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req) // returns while the shadow still holds its copy
	if w.Code != 200 || w.Body.String() != "primary" {
		t.Fatalf("primary: %d %q", w.Code, w.Body.String())
	}
	if got := <-copies; got != "POST shop.example-shadow /mirror/orders order-1" {
		t.Fatalf("the shadow got %q", got)
	}

	// A shadow that does not answer fills its share, and then copies are
	// dropped rather than queued: the primary goes on.
	for i := range maxMirrorsPerShadow + 5 {
		if w := serve(h, "GET", "http://shop.example/api/x"); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if n := h.mirrors.inFlight.Load(); n != maxMirrorsPerShadow {
		t.Fatalf("%d copies in flight to a hung shadow, want the cap %d", n, maxMirrorsPerShadow)
	}
	if primaries.Load() != maxMirrorsPerShadow+6 {
		t.Fatalf("%d primary requests, want every one", primaries.Load())
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"shop.example":      "shop.example-shadow",
		"shop.example:8080": "shop.example-shadow:8080",
		"[::1]":             "[::1]-shadow",
		"[::1]:80":          "[::1]-shadow:80",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}
