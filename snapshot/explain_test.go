package snapshot

import "testing"

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b":         "/a/b",
		"/a/../b":      "/b",
		"/a/./b/":      "/a/b/",
		"/../../etc":   "/etc",
		"/.well-known": "/.well-known",
		"/a/..":        "/",
	} {
		if got, ok := CleanPath(in); !ok || got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	if _, ok := CleanPath("example.com:443"); ok {
		t.Errorf("authority-form path accepted")
	}
}
