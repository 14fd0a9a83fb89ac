package snapshot

import (
	"strings"
	"testing"
)

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

// FuzzCleanPath: whatever a client sends, the routed path is absolute, has
// no dot segments left to resolve, and cleaning it again changes nothing.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a/./b/", "/../../etc/passwd", "/a/..", "/.well-known/x", "//a//b/", "/a/b/../../..", "x", "", "/%2e%2e/", "/a/.b/..c/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, ok := CleanPath(p)
		if !ok {
			if p != "" && p[0] == '/' {
				t.Fatalf("CleanPath(%q) refused an absolute path", p)
			}
			return
		}
		if c == "" || c[0] != '/' {
			t.Fatalf("CleanPath(%q) = %q, not absolute", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("CleanPath(%q) = %q keeps a dot segment", p, c)
			}
		}
		if again, _ := CleanPath(c); again != c {
			t.Fatalf("CleanPath is not idempotent: %q → %q → %q", p, c, again)
		}
	})
}
