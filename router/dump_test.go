package router

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestWriteToGolden(t *testing.T) {
	tbl := mustNew(t, []Route[string]{
		{ID: "users", Host: "api.example.com", Path: "/api/v1/users/"},
		{ID: "user-exact", Host: "api.example.com", Path: "/api/v1/users", Kind: Exact, Method: "get"},
		{ID: "orgs", Host: "api.example.com", Path: "/api/v1/orgs/", Headers: []HeaderMatch{{Name: "x-env", Value: "canary"}, {Name: "x-debug", Present: true}}},
		{ID: "repos", Host: "api.example.com", Path: "/api/v1/repos/"},
		{ID: "pulls", Host: "api.example.com", Path: "/api/v1/repos/[^/]+/[^/]+/pulls/[0-9]+", Kind: Regex, Precedence: 1},
		{ID: "tenant", Host: "*.Tenant.example.com", Path: "/"},
		{ID: "health", Path: "/healthz", Kind: Exact},
		{ID: "static", Path: "/static/"},
		{ID: "anything", Path: ".*", Kind: Regex, Precedence: -1},
		{ID: "docs", Host: "api.example.com", Path: "/Docs/", CaseInsensitive: true},
		{ID: "docs-re", Host: "api.example.com", Path: "^/Docs/v[0-9]+/.*", Kind: Regex, CaseInsensitive: true},
		{ID: "search", Path: "/search", Kind: Exact, Query: []QueryMatch{{Name: "q", Present: true}, {Name: "page", Value: "[0-9]+", Regex: true}, {Name: "lang", Value: "go"}}},
		{ID: "read", Host: `[a-z]+\.regions\.example\.com`, HostRegex: true, Path: "/", Method: "GET|HEAD", MethodRegex: true},
		{ID: "beta", Host: `[a-z]+\.regions\.example\.com`, HostRegex: true, Path: "/beta/", Headers: []HeaderMatch{{Name: "x-user", Value: "[0-9]+", Regex: true}}},
		{ID: "shop-v2", Path: "/shop/", Group: "shop", Weight: 10},
		{ID: "shop-v1", Path: "/shop/", Group: "shop", Weight: 90},
	})
	var buf bytes.Buffer
	n, err := tbl.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, buf.Len())
	}
	golden := filepath.Join("testdata", "dump.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("dump differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", golden, buf.Bytes(), want)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestWriteToReportsWriteError(t *testing.T) {
	tbl := mustNew(t, []Route[string]{{ID: "a", Path: "/a"}, {ID: "b", Host: "h.example.com", Path: "/b"}})
	if _, err := tbl.WriteTo(&failingWriter{n: 2}); err == nil || err.Error() != "disk full" {
		t.Errorf("WriteTo error = %v, want disk full", err)
	}
}
