package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// adminGet asks s's admin mux for target and returns the status and body,
// failing the test unless the answer is JSON.
func adminGet(t *testing.T, s *Server, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %.80s: Content-Type %q, want application/json", target, ct)
	}
	return rec.Code, rec.Body.String()
}

// TestAdminAPI: the endpoints answer from the snapshot being served, 503
// before there is one, and explain sends nothing upstream.
func TestAdminAPI(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer up.Close()
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true})
	defer s.stopBG()

	for _, target := range []string{"/api/routes", "/api/explain?url=/"} {
		code, body := adminGet(t, s, target)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"error": "no snapshot served yet"`) {
			t.Errorf("GET %s before the first snapshot: %d %s", target, code, body)
		}
	}

	s.Apply(appInput(t, up.Listener.Addr().String()))
	code, body := adminGet(t, s, "/api/routes")
	var list snapshot.RouteListing
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/routes: %d %v\n%s", code, err, body)
	}
	if len(list.Routes) != 1 || list.Routes[0].Mapping != "t/app" || list.Routes[0].Path != "/" || list.Hosts == nil {
		t.Errorf("GET /api/routes: %+v", list)
	}

	q := url.Values{"method": {"post"}, "url": {"http://shop.example.com/x?a=1"}, "header": {"X-A: b", "Host: other.example.com"}}
	code, body = adminGet(t, s, "/api/explain?"+q.Encode())
	var rep snapshot.ExplainReport
	if err := json.Unmarshal([]byte(body), &rep); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/explain: %d %v\n%s", code, err, body)
	}
	e := rep.Explanation
	if rep.Method != "POST" || rep.Host != "other.example.com" || rep.Target != "/x?a=1" || !e.Matched || e.Mapping != "t/app" || e.Path != "/x?a=1" || rep.Edge != nil {
		t.Errorf("GET /api/explain: %+v", rep)
	}
	// Without a method, GET.
	if _, body := adminGet(t, s, "/api/explain?url=/y"); !strings.Contains(body, `"method": "GET"`) {
		t.Errorf("GET /api/explain?url=/y: %s", body)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream got %d requests from explain, want none", n)
	}
}

// TestAdminExplainBadInput: explain's questions are bounded and checked;
// each bad one is a 400 saying what is wrong.
func TestAdminExplainBadInput(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true})
	defer s.stopBG()
	s.Apply(appInput(t, "127.0.0.1:9"))
	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "&header=X-%d:%%20v", i)
		}
		return b.String()
	}
	long := "http://a.example.com/" + strings.Repeat("x", 8<<10)
	for _, c := range []struct{ query, want string }{
		{"", "want one url"},
		{"method=GET", "want one url"},
		{"url=/a&url=/b", "want one url"},
		{"url=/a&method=GET&method=PUT", "at most one method"},
		{"url=/a&verb=GET", `unknown parameter "verb"`},
		{"url=%zz", "query: "},
		{"url=" + url.QueryEscape(long), "more than the 8192 allowed"},
		{"url=/a" + headers(65), "65 headers, more than the 64 allowed"},
		{"url=/a&header=X-A:%20" + strings.Repeat("v", 8<<10), "header 1: 8197 bytes"},
		{"url=ftp://a.example.com/", "want http://host/path?query, https://host/path?query or /path?query"},
		{"url=a.example.com/x", "want http://host/path"},
		{"url=http:///x", "want http://host/path"},
		{"url=" + url.QueryEscape("http://[::1/"), "url: parse "},
		{"url=/a&method=G%20T", `method "G T": not an HTTP method`},
		{"url=/a&header=X-A", `header "X-A": want 'Name: value'`},
		{"url=/a&header=X%20A:%20b", `want 'Name: value'`},
		{"url=/a&header=X-A:%20b%0d%0aX-B:%20c", "cannot hold CR, LF or NUL"},
	} {
		code, body := adminGet(t, s, "/api/explain?"+c.query)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); code != http.StatusBadRequest || err != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("?%.60s: %d %.200s, want 400 and %q", c.query, code, body, c.want)
		}
	}
	// At the bounds, fine.
	code, body := adminGet(t, s, "/api/explain?url="+url.QueryEscape(long[:8<<10])+headers(64))
	if code != http.StatusOK {
		t.Errorf("at the bounds: %d %.200s", code, body)
	}
}

// TestAdminAPIMethods: the API is read-only.
func TestAdminAPIMethods(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0"})
	defer s.stopBG()
	for _, target := range []string{"/api/routes", "/api/explain?url=/"} {
		rec := httptest.NewRecorder()
		s.adminMux().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader("{}")))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", target, rec.Code)
		}
	}
}
