package snapshot

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/router"
)

// refCanonical is the reference CanonicalPath is checked against, written
// from RFC 3986 and the documented choices in three plain passes that share
// no code with path.go: bytes (decoding with strconv, escaping with fmt),
// then segments (hidden dot segments found by replacing and splitting
// strings), then empty segments and §5.2.4's remove_dot_segments, transcribed
// rule by rule.
func refCanonical(p string, opts PathOptions) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", ErrPathNotAbsolute
	}
	reject := opts.EscapedSlashes == RejectEscapedSlashes
	unreserved := func(c byte) bool {
		return c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", rune(c)))
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+3 > len(p) {
				return "", ErrPathEscape
			}
			v, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
			if err != nil {
				return "", ErrPathEscape
			}
			i += 2
			c = byte(v)
			switch {
			case c == 0:
				return "", ErrPathControl
			case unreserved(c):
				b.WriteByte(c)
			case reject && (c == '/' || c == '\\'):
				return "", ErrPathEscapedSlash
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
			continue
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return "", ErrPathControl
		case c == '/' || unreserved(c) || c < 0x80 && strings.ContainsRune("!$&'()*+,;=:@", rune(c)):
			b.WriteByte(c)
		case reject && c == '\\':
			return "", ErrPathEscapedSlash
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	segs := strings.Split(b.String(), "/")[1:]
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			continue
		}
		for _, piece := range strings.Split(strings.NewReplacer("%2F", "/", "%5C", "/").Replace(seg), "/") {
			if piece, _, _ = strings.Cut(piece, ";"); piece == "." || piece == ".." {
				return "", ErrPathDotSegment
			}
		}
	}
	if !opts.KeepEmptySegments {
		var kept []string
		for i, seg := range segs {
			if seg != "" || i == len(segs)-1 {
				kept = append(kept, seg)
			}
		}
		segs = kept
	}
	return removeDotSegments("/" + strings.Join(segs, "/")), nil
}

// removeDotSegments is RFC 3986 §5.2.4, step by step.
func removeDotSegments(in string) string {
	out := ""
	cutLast := func() {
		if i := strings.LastIndex(out, "/"); i >= 0 {
			out = out[:i]
		} else {
			out = ""
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = "/" + in[3:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = "/" + in[4:]
			cutLast()
		case in == "/..":
			in = "/"
			cutLast()
		case in == "." || in == "..":
			in = ""
		default:
			j := strings.Index(in[1:], "/")
			if j < 0 {
				out, in = out+in, ""
			} else {
				out, in = out+in[:j+1], in[j+1:]
			}
		}
	}
	return out
}

var (
	keepSlashes = PathOptions{EscapedSlashes: KeepEscapedSlashes}
	keepEmpty   = PathOptions{KeepEmptySegments: true}
	keepBoth    = PathOptions{KeepEmptySegments: true, EscapedSlashes: KeepEscapedSlashes}
	allOptions  = []PathOptions{{}, keepSlashes, keepEmpty, keepBoth}
)

// checker returns a closure asserting CanonicalPath(in) under opts is want
// (or fails with wantErr), and that the reference agrees.
func checker(t *testing.T, opts PathOptions) func(in, want string, wantErr error) {
	return func(in, want string, wantErr error) {
		t.Helper()
		got, err := CanonicalPath(in, opts)
		if got != want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Errorf("CanonicalPath(%q, %+v) = %q, %v; want %q, %v", in, opts, got, err, want, wantErr)
		}
		ref, refErr := refCanonical(in, opts)
		if ref != want || !errors.Is(refErr, wantErr) || (refErr == nil) != (wantErr == nil) {
			t.Errorf("reference(%q, %+v) = %q, %v; want %q, %v", in, opts, ref, refErr, want, wantErr)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	long := "/" + strings.Repeat("segment/", 8192)
	c := checker(t, PathOptions{})
	// Already canonical: returned as is.
	c("/", "/", nil)
	c("/api/v1/users", "/api/v1/users", nil)
	c("/a/b/", "/a/b/", nil)
	c("/.well-known/acme", "/.well-known/acme", nil)
	c("/a;b=c/d:e@f!$&'()*+,", "/a;b=c/d:e@f!$&'()*+,", nil)
	c("/caf%C3%A9", "/caf%C3%A9", nil)
	c("/a%20b", "/a%20b", nil)
	c(long, long, nil)
	// The examples.
	c("/static/%2e%2e/secret.txt", "/secret.txt", nil)
	c("/api/%61dmin/users", "/api/admin/users", nil)
	c("//api//admin", "/api/admin", nil)
	// Unreserved escapes are decoded, in either case; others are upper-cased.
	c("/%41%5a%61%7a%30%39%2d%2E%5f%7E", "/AZaz09-._~", nil)
	c("/caf%c3%a9", "/caf%C3%A9", nil)
	c("/a%3bb%3Fc%23d%25e%2b", "/a%3Bb%3Fc%23d%25e%2B", nil)
	c("/%252e%252e/x", "/%252e%252e/x", nil) // one decoding only: "%25" is "%"
	c("/%01%1f%7f", "/%01%1F%7F", nil)
	// Raw bytes a path may not hold are escaped, so é and %C3%A9 are one path.
	c("/café", "/caf%C3%A9", nil)
	c("/a b\"<>^`{|}[]", "/a%20b%22%3C%3E%5E%60%7B%7C%7D%5B%5D", nil)
	c("/a?b#c", "/a%3Fb%23c", nil)
	// Dot segments, plain and encoded, resolved after decoding (RFC 3986
	// §5.2.4 and the paths of §5.4's examples, base /b/c/d;p).
	c("/a/b/c/./../../g", "/a/g", nil)
	c("/mid/content=5/../6", "/mid/6", nil)
	c("/b/c/g", "/b/c/g", nil)
	c("/b/c/./g", "/b/c/g", nil)
	c("/b/c/g/", "/b/c/g/", nil)
	c("/b/c/./", "/b/c/", nil)
	c("/b/c/../", "/b/", nil)
	c("/b/c/../g", "/b/g", nil)
	c("/b/c/../..", "/", nil)
	c("/b/c/../../", "/", nil)
	c("/b/c/../../g", "/g", nil)
	c("/b/c/../../../g", "/g", nil)
	c("/b/c/../../../../g", "/g", nil)
	c("/./g", "/g", nil)
	c("/../g", "/g", nil)
	c("/b/c/g.", "/b/c/g.", nil)
	c("/b/c/.g", "/b/c/.g", nil)
	c("/b/c/g..", "/b/c/g..", nil)
	c("/b/c/..g", "/b/c/..g", nil)
	c("/b/c/./../g", "/b/g", nil)
	c("/b/c/./g/.", "/b/c/g/", nil)
	c("/b/c/g/./h", "/b/c/g/h", nil)
	c("/b/c/g/../h", "/b/c/h", nil)
	c("/b/c/g;x=1/./y", "/b/c/g;x=1/y", nil)
	c("/b/c/g;x=1/../y", "/b/c/y", nil)
	c("/a/b/..", "/a/", nil)
	c("/a/.", "/a/", nil)
	c("/..", "/", nil)
	c("/.", "/", nil)
	c("/...", "/...", nil)
	c("/%2e", "/", nil)
	c("/%2E%2e/%2e./.%2E/x", "/x", nil)
	c("/static/.%2e/.%2e/etc/passwd", "/etc/passwd", nil)
	c("/a/%2e%2e%2e", "/a/...", nil)
	// Empty segments are merged (before dots are resolved).
	c("//", "/", nil)
	c("///a///b///", "/a/b/", nil)
	c("/a//../b", "/b", nil)
	c("/a/..//b", "/b", nil)
	c("/a/.//", "/a/", nil)
	// Refused.
	c("", "", ErrPathNotAbsolute)
	c("*", "", ErrPathNotAbsolute)
	c("example.com:443", "", ErrPathNotAbsolute)
	c("a/b", "", ErrPathNotAbsolute)
	c("%2Fa", "", ErrPathNotAbsolute)
	c("/a%zz", "", ErrPathEscape)
	c("/a%", "", ErrPathEscape)
	c("/a%2", "", ErrPathEscape)
	c("/a%2/b", "", ErrPathEscape)
	c("/a%g0", "", ErrPathEscape)
	c("/a%+1", "", ErrPathEscape)
	c("/a%00", "", ErrPathControl)
	c("/a%00.jpg", "", ErrPathControl)
	c("/a\x00", "", ErrPathControl)
	c("/a\nb", "", ErrPathControl)
	c("/a\x7f", "", ErrPathControl)
	c("/a%2Fb", "", ErrPathEscapedSlash)
	c("/a%2fb", "", ErrPathEscapedSlash)
	c("/a%5Cb", "", ErrPathEscapedSlash)
	c("/a%5cb", "", ErrPathEscapedSlash)
	c(`/a\b`, "", ErrPathEscapedSlash)
	c("/static/..%2Fsecret.txt", "", ErrPathEscapedSlash)
	c("/public/..;/secret.txt", "", ErrPathDotSegment)
	c("/public/.;x=1/secret.txt", "", ErrPathDotSegment)
	c("/public/%2e%2e;jsessionid=1/x", "", ErrPathDotSegment)
	c("/a/..;/../b", "", ErrPathDotSegment) // refused even though ".." would pop it
	// A byte error wins over a hidden dot segment before it.
	c("/..;/%zz", "", ErrPathEscape)
	c("/a;..", "/a;..", nil) // ".." is in the parameter, not the segment

	k := checker(t, keepSlashes)
	k("/projects/group%2Fproject/issues", "/projects/group%2Fproject/issues", nil)
	k("/projects/group%2fproject", "/projects/group%2Fproject", nil)
	k("/a%5cb", "/a%5Cb", nil)
	k(`/a\b`, "/a%5Cb", nil)
	k("/a%2F%2Fb", "/a%2F%2Fb", nil) // encoded slashes are data: never merged
	k("/static/..%2Fsecret.txt", "", ErrPathDotSegment)
	k("/static/%2e%2e%2fsecret.txt", "", ErrPathDotSegment)
	k("/static/x%2F..", "", ErrPathDotSegment)
	k(`/static/..\secret.txt`, "", ErrPathDotSegment)
	k("/static/..%5csecret.txt", "", ErrPathDotSegment)
	k("/a%2F...%2Fb", "/a%2F...%2Fb", nil)
	k("/a/b%2F../..", "", ErrPathDotSegment)

	e := checker(t, keepEmpty)
	e("//api//admin", "//api//admin", nil)
	e("/a//b/", "/a//b/", nil)
	e("/a//..", "/a/", nil)
	e("/a//../b", "/a/b", nil)
	e("/a/..//b", "//b", nil)
	e("/a//.", "/a//", nil)
}

// TestCanonicalPathMatchesReferenceRandomly runs both implementations over
// paths built from the tokens where the interesting decisions are.
func TestCanonicalPathMatchesReferenceRandomly(t *testing.T) {
	tokens := []string{
		"/", "/", "/", "//", ".", "..", "...", "a", "b", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "%5C",
		`\`, ";", ";x=1", "%3b", "%61", "%41", "%7e", "%7E", "%5f", "%2d", "%30", "%zz", "%", "%2", "%00", "%0a",
		"%c3%a9", "é", " ", "~", "%25", "%252e", "?", "#", "[", "\x01", "\x7f", "\xff", "!", "*", "'", "@", ":",
	}
	rng := rand.New(rand.NewPCG(20240611, 5))
	for range 40000 {
		var b strings.Builder
		if rng.IntN(20) != 0 {
			b.WriteByte('/')
		}
		for n := rng.IntN(12); n > 0; n-- {
			b.WriteString(tokens[rng.IntN(len(tokens))])
		}
		p := b.String()
		for _, opts := range allOptions {
			got, err := CanonicalPath(p, opts)
			want, wantErr := refCanonical(p, opts)
			if got != want || !sameError(err, wantErr) {
				t.Fatalf("CanonicalPath(%q, %+v) = %q, %v; reference %q, %v", p, opts, got, err, want, wantErr)
			}
		}
	}
}

func sameError(a, b error) bool {
	for _, e := range []error{ErrPathNotAbsolute, ErrPathEscape, ErrPathControl, ErrPathEscapedSlash, ErrPathDotSegment} {
		if errors.Is(a, e) != errors.Is(b, e) {
			return false
		}
	}
	return (a == nil) == (b == nil)
}

var (
	escapedUnreserved = regexp.MustCompile(`%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[dDeE]|5[fF]|7[eE])`)
	lowerHex          = regexp.MustCompile(`%(?:[0-9a-f][a-f]|[a-f][0-9])`)
	nonPathByte       = regexp.MustCompile(`[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]`)
)

// FuzzCanonicalPath: whatever a client sends, the canonical path agrees
// with the reference and, under every option, is absolute, a fixed point,
// free of dot segments, of escaped unreserved characters, of lower-case hex
// and of bytes a path may not hold raw.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{
		"/", "/a/../b", "/a/./b/", "/../../etc/passwd", "/a/..", "/.well-known/x", "//a//b/", "/a/b/../../..", "x", "",
		"/%2e%2e/", "/a/.b/..c/", "/static/%2e%2e/secret.txt", "/api/%61dmin/users", "//api//admin", "/a%2Fb",
		"/..%2F..%5Cx", `/a\..\b`, "/..;/x", "/caf%c3%a9", "/café", "/a%zz", "/a%", "/%00", "/a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, opts := range allOptions {
			c, err := CanonicalPath(p, opts)
			ref, refErr := refCanonical(p, opts)
			if c != ref || !sameError(err, refErr) {
				t.Fatalf("CanonicalPath(%q, %+v) = %q, %v; reference %q, %v", p, opts, c, err, ref, refErr)
			}
			if err != nil {
				continue
			}
			if again, err := CanonicalPath(c, opts); again != c || err != nil {
				t.Fatalf("not a fixed point under %+v: %q → %q → %q, %v", opts, p, c, again, err)
			}
			if !strings.HasPrefix(c, "/") {
				t.Fatalf("CanonicalPath(%q) = %q, not absolute", p, c)
			}
			for _, seg := range strings.Split(c, "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("CanonicalPath(%q) = %q keeps a dot segment", p, c)
				}
			}
			if m := escapedUnreserved.FindString(c); m != "" {
				t.Fatalf("CanonicalPath(%q) = %q keeps the escape %s of an unreserved character", p, c, m)
			}
			if m := lowerHex.FindString(c); m != "" {
				t.Fatalf("CanonicalPath(%q) = %q keeps lower-case hex %s", p, c, m)
			}
			if m := nonPathByte.FindString(c); m != "" {
				t.Fatalf("CanonicalPath(%q) = %q holds %q raw", p, c, m)
			}
			if !opts.KeepEmptySegments && strings.Contains(c, "//") {
				t.Fatalf("CanonicalPath(%q) = %q keeps an empty segment", p, c)
			}
			if opts.EscapedSlashes == RejectEscapedSlashes && (strings.Contains(c, "%2F") || strings.Contains(c, "%5C")) {
				t.Fatalf("CanonicalPath(%q) = %q keeps an escaped slash", p, c)
			}
		}
	})
}

// TestCanonicalPathAllocations: the common case, a path already canonical,
// costs no allocation, and neither does reading it off the request.
func TestCanonicalPathAllocations(t *testing.T) {
	r := httptest.NewRequest("GET", "/api/v1/users/42/orders?page=2", nil)
	for _, p := range []string{"/", "/api/v1/users/42/orders", "/projects/a;b/c.d/%C3%A9/"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalPath(p, PathOptions{}) }); n != 0 {
			t.Errorf("CanonicalPath(%q): %v allocations", p, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = RouterRequest(r, PathOptions{}) }); n != 0 {
		t.Errorf("RouterRequest: %v allocations", n)
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, c := range []struct{ name, path string }{
		{"canonical", "/api/v1/users/42/orders"},
		{"escaped", "/api/%61dmin/users/caf%c3%a9"},
		{"dots", "/static/css/../%2e%2e/img/./logo.png"},
		{"slashes", "//api//v1//users"},
		{"long-canonical", "/" + strings.Repeat("segment/", 256)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.path)))
			for b.Loop() {
				_, _ = CanonicalPath(c.path, PathOptions{})
			}
		})
		// The baseline: what routing did before, resolving dot segments of
		// the still-escaped path only.
		b.Run(c.name+"/baseline-path.Clean", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.path)))
			for b.Loop() {
				if strings.Contains(c.path, "/.") {
					_ = path.Clean(c.path)
				}
			}
		})
	}
}

func TestWirePath(t *testing.T) {
	for target, want := range map[string]string{
		"/a/b":            "/a/b",
		"/a%2Fb":          "/a%2Fb",
		"/a%2fb%5C":       "/a%2fb%5C",
		`/a%2Fb\c`:        `/a%2Fb\c`, // EscapedPath would say "/a/b%5Cc"
		"/api/%61dmin":    "/api/%61dmin",
		"/caf%C3%A9":      "/caf%C3%A9",
		"/a!b":            "/a!b",
		"http://h/x%2Fy?": "/x%2Fy",
	} {
		r := httptest.NewRequest("GET", target, nil)
		if got := WirePath(r.URL); got != want {
			t.Errorf("WirePath(%q) = %q, want %q", target, got, want)
		}
	}
	// A RawPath that no longer belongs to Path (someone set Path alone) is
	// not trusted.
	r := httptest.NewRequest("GET", "/a%2Fb", nil)
	r.URL.Path = "/c"
	if got := WirePath(r.URL); got != "/c" {
		t.Errorf("stale RawPath: %q", got)
	}
}

func TestForwardPath(t *testing.T) {
	for _, c := range []struct {
		kind            router.PathKind
		prefix, rewrite string
		in, want        string
		err             error
	}{
		{router.Prefix, "/static/", "/public/", "/static/css/a.css", "/public/css/a.css", nil},
		{router.Prefix, "/static/", "/public/", "/static/..;x", "", ErrRewriteDotSegment}, // CanonicalPath refuses it first
		{router.Prefix, "/static", "/public/", "/static../secret", "", ErrRewriteDotSegment},
		{router.Prefix, "/static", "/public/", "/static./secret", "", ErrRewriteDotSegment},
		{router.Prefix, "/static", "/public/", "/static.x/y", "/public/.x/y", nil},
		{router.Prefix, "/s", "/public/.", "/s./x", "", ErrRewriteDotSegment},
		{router.Prefix, "/s", "/public/%2e", "/s./x", "", ErrRewriteDotSegment},
		{router.Prefix, "/s", "/p/x%2F.", "/s.", "", ErrRewriteDotSegment},
		{router.Prefix, "/foo", "/", "/foo/bar", "//bar", nil},
		{router.Prefix, "/keep/", "", "/keep/a", "/keep/a", nil},
		{router.Exact, "/status", "/a/../healthz", "/status", "", ErrRewriteDotSegment},
	} {
		r := &Route{Kind: c.kind, Prefix: c.prefix, Rewrite: c.rewrite, RewriteEnabled: c.rewrite != ""}
		got, err := r.ForwardPath(c.in)
		if got != c.want || !errors.Is(err, c.err) || (err == nil) != (c.err == nil) {
			t.Errorf("%v %q rewrite %q: %q → %q, %v; want %q, %v", c.kind, c.prefix, c.rewrite, c.in, got, err, c.want, c.err)
		}
	}
}

func TestEscapedSlashesFlag(t *testing.T) {
	var e EscapedSlashes
	if e.String() != "reject" {
		t.Errorf("zero value is %q", e)
	}
	if err := e.Set("keep"); err != nil || e != KeepEscapedSlashes || e.String() != "keep" {
		t.Errorf("Set(keep): %v, %v", e, err)
	}
	if err := e.Set("unescape"); err == nil || e != KeepEscapedSlashes {
		t.Errorf("Set(unescape): %v, %v", e, err)
	}
}

// TestExplainPaths: explain reports the canonical path it routed, the path
// the upstream gets, and why a path is refused.
func TestExplainPaths(t *testing.T) {
	cfg := mapping("static", "/static/", "web", "rewrite: /public/") + "---\n" +
		mapping("admin", "/api/admin/", "api", "rate_limits: [slow]") + "---\n" +
		mapping("api", "/api/", "api") + "---\n" +
		mapping("files", "/files", "web", "rewrite: /srv/") + "---\n" +
		"kind: RateLimit\nname: slow\nrate: 1\nunit: minute\n"
	s, reports := build(t, newBuilder(), Input{Services: []*corev1.Service{service("t", "web", cfg)}})
	if len(reports) != 1 || reports[0].Rejected {
		t.Fatalf("reports %+v", reports)
	}
	for _, c := range []struct {
		target, want string
	}{
		{"/static/%2e%2e/secret.txt", `{"matched":false,"status":404,"routed_path":"/secret.txt"}`},
		{"/static/css/%2E%2E/app.js", `{"matched":true,"routed_path":"/static/app.js","mapping":"t/static","upstream":"http://web.t:80","path":"/public/app.js","host":"example.com","rate_limits":[]}`},
		{"/api/%61dmin/users", `{"matched":true,"routed_path":"/api/admin/users","mapping":"t/admin","upstream":"http://api.t:80","path":"/users","host":"example.com","rate_limits":["t/slow"]}`},
		{"//api//admin/x", `{"matched":true,"routed_path":"/api/admin/x","mapping":"t/admin","upstream":"http://api.t:80","path":"/x","host":"example.com","rate_limits":["t/slow"]}`},
		{"/api/admin%2Fusers", `{"matched":false,"status":400,"reason":"encoded slash or backslash (%2F, %5C, \\) in path"}`},
		{"/static/..;/secret.txt", `{"matched":false,"status":400,"reason":"dot segment hidden behind \";\" or an encoded slash"}`},
		{"/files../etc/passwd", `{"matched":true,"status":400,"reason":"the route's rewrite would forward a dot segment","mapping":"t/files","rate_limits":[]}`},
		{"/api/users", `{"matched":true,"mapping":"t/api","upstream":"http://api.t:80","path":"/users","host":"example.com","rate_limits":[]}`},
	} {
		e := Explain(s, httptest.NewRequest("GET", "http://example.com"+c.target, nil))
		got, err := e.MarshalJSON()
		if err != nil || string(got) != c.want {
			t.Errorf("explain %s:\n got  %s\n want %s", c.target, got, c.want)
		}
	}
}
