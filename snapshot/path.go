package snapshot

// This file decides the one path a request is known by. The gateway routes,
// rate limits, rewrites, logs and forwards the canonical path, and explain
// computes the same one, so no later step can read the request differently
// from the step that made a decision about it.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/router"
)

// PathOptions say how CanonicalPath treats the forms RFC 3986 leaves to the
// server. The zero value is the default, which is the safe choice for each.
// It is a plain value, shared by copying.
type PathOptions struct {
	// KeepEmptySegments forwards "//" as sent. False, the default, merges
	// adjacent slashes (Envoy's merge_slashes): nginx, Apache and most
	// frameworks serve "//admin" as "/admin", so an unmerged path would slip
	// past a "/admin" prefix and still reach the admin pages.
	KeepEmptySegments bool
	// EscapedSlashes is what to do with %2F and %5C (and a raw "\", which is
	// forwarded as %5C). The zero value rejects them.
	EscapedSlashes EscapedSlashes
}

// EscapedSlashes is the action for an encoded slash or backslash in a path,
// after Envoy's path_with_escaped_slashes_action. It is a flag.Value
// ("reject" or "keep").
type EscapedSlashes uint8

const (
	// RejectEscapedSlashes answers 400 (Envoy's REJECT_REQUEST). It is the
	// default because many upstreams decode %2F before they route or resolve
	// dot segments (every WSGI app, whose PATH_INFO is decoded; nginx
	// serving files; older Go ServeMux): there "/api/admin%2Fusers" is
	// /api/admin/users though the gateway matched it against /api/ and not
	// against the /api/admin/ Mapping and its rate limit, and
	// "/public/..%2Fsecret" leaves /public/. Rejecting is loud and safe;
	// an API that needs encoded slashes in ids (GitLab's group%2Fproject)
	// turns KeepEscapedSlashes on, knowing its upstreams.
	RejectEscapedSlashes EscapedSlashes = iota
	// KeepEscapedSlashes routes and forwards %2F and %5C unchanged, as part
	// of one segment (Envoy's KEEP_UNCHANGED, Emissary's behaviour). A
	// segment that some server would split into a dot segment there
	// ("..%2Fx") is still refused.
	KeepEscapedSlashes
)

func (e EscapedSlashes) String() string {
	if e == KeepEscapedSlashes {
		return "keep"
	}
	return "reject"
}

// Set parses "reject" or "keep", for a command-line flag.
func (e *EscapedSlashes) Set(s string) error {
	switch s {
	case "reject":
		*e = RejectEscapedSlashes
	case "keep":
		*e = KeepEscapedSlashes
	default:
		return fmt.Errorf("escaped slashes: want reject or keep; got %q", s)
	}
	return nil
}

// Errors of CanonicalPath and ForwardPath. Each means the gateway answers
// 400: there is no single reading of the path that every upstream shares.
var (
	ErrPathNotAbsolute = errors.New(`path does not start with "/"`)
	ErrPathEscape      = errors.New(`invalid percent-encoding in path ("%" not followed by two hex digits)`)
	// ErrPathControl is a raw control character or an encoded NUL: NUL ends
	// the path early for C code ("/x.php%00.jpg").
	ErrPathControl      = errors.New("control character or encoded NUL in path")
	ErrPathEscapedSlash = errors.New("encoded slash or backslash (%2F, %5C, \\) in path")
	// ErrPathDotSegment is "..;x" or ".;x" (Tomcat and Jetty drop the path
	// parameter and resolve the dot segment) or, with KeepEscapedSlashes,
	// "..%2Fx" (resolved by servers that decode the slash first).
	ErrPathDotSegment = errors.New(`dot segment hidden behind ";" or an encoded slash`)
	// ErrRewriteDotSegment: a plain-string rewrite can put two halves of a
	// dot segment together ("/static" → "/public/" makes "/static../x"
	// "/public/../x"), which the upstream would resolve outside the target.
	ErrRewriteDotSegment = errors.New("the route's rewrite would forward a dot segment")
)

// CanonicalPath returns the normal form (RFC 3986 §6.2.2) of a request path
// as escaped on the wire:
//
//   - escapes of unreserved characters are decoded ("%61dmin" → "admin",
//     "%2e%2e" → ".."), the hex of the other escapes is upper-cased
//     ("%c3%a9" → "%C3%A9") and the other escapes stay escaped;
//   - raw bytes that a URI path may not hold (space, `"<>[\]^{|}`, the
//     backquote, bytes above 0x7F) are escaped, so "é" and "%C3%A9" are one path;
//   - adjacent slashes are merged unless opts.KeepEmptySegments;
//   - dot segments are removed after decoding (§5.2.4: "/a/b/../c" →
//     "/a/c", "/a/b/.." → "/a/"; ".." never climbs above "/").
//
// It fails for a path that does not start with "/" (a request for "*",
// an authority), an invalid or NUL escape, a raw control character, an
// escaped slash unless opts keep them, and a dot segment hidden behind ";"
// (see the errors). A canonical path is returned as is, without allocating.
func CanonicalPath(p string, opts PathOptions) (string, error) {
	if p == "" || p[0] != '/' {
		return "", ErrPathNotAbsolute
	}
	if isCanonical(p, opts) {
		return p, nil
	}
	return normalize(p, opts)
}

// isCanonical reports whether CanonicalPath would return p unchanged: one
// pass without writing anything. It says false for a path in error, and
// normalize then finds the error.
func isCanonical(p string, opts PathOptions) bool {
	seg, dotted := 1, false
	for i := 1; ; i++ {
		// Most bytes need no second look; skipping them in a tight loop
		// keeps the common case at a table lookup a byte.
		for i < len(p) && plainByte[p[i]] {
			i++
		}
		if i == len(p) || p[i] == '/' {
			if i == seg && i < len(p) && !opts.KeepEmptySegments {
				return false
			}
			if dotted && dotSegment(p[seg:i]) != notDot {
				return false
			}
			if i == len(p) {
				return true
			}
			seg, dotted = i+1, false
			continue
		}
		switch c := p[i]; {
		case c == '%':
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return false
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if v == 0 || unreserved[v] {
				return false
			}
			if (v == '/' || v == '\\') && opts.EscapedSlashes == RejectEscapedSlashes {
				return false
			}
			i += 2
		case c == '.':
			dotted = true // a dot segment, plain or hidden, needs one
		default:
			return false
		}
	}
}

// normalize is CanonicalPath for a path that needs work. It processes one
// segment at a time into out, which always reads "/s1/.../sk" (empty for
// k = 0), so ".." is a cut at the last slash and the whole pass is linear.
// Errors in bytes are reported at once, left to right; a hidden dot segment
// only once every byte has been checked, so the error does not depend on
// which came first.
func normalize(p string, opts PathOptions) (string, error) {
	reject := opts.EscapedSlashes == RejectEscapedSlashes
	out := make([]byte, 0, len(p)+8)
	hidden := false
	i := 1
	for {
		mark := len(out)
		out = append(out, '/')
		start := len(out)
		for i < len(p) && p[i] != '/' {
			switch c := p[i]; {
			case c == '%':
				if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
					return "", ErrPathEscape
				}
				v := unhex(p[i+1])<<4 | unhex(p[i+2])
				i += 3
				switch {
				case v == 0:
					return "", ErrPathControl
				case unreserved[v]:
					out = append(out, v)
				case reject && (v == '/' || v == '\\'):
					return "", ErrPathEscapedSlash
				default:
					out = appendEscape(out, v)
				}
			case c < 0x20 || c == 0x7f:
				return "", ErrPathControl
			case pathByte[c]:
				out = append(out, c)
				i++
			case c == '\\' && reject:
				return "", ErrPathEscapedSlash
			default:
				out = appendEscape(out, c)
				i++
			}
		}
		last := i >= len(p)
		kind := dotSegment(out[start:])
		switch {
		case kind == hiddenDot:
			hidden = true
		case kind == dot:
			out = out[:mark]
		case kind == dotDot:
			out = out[:mark]
			if j := lastSlash(out); j >= 0 {
				out = out[:j]
			}
		case len(out) == start && !last && !opts.KeepEmptySegments:
			out = out[:mark]
		}
		if last {
			// "/a/b/.." is the directory "/a/", as RFC 3986 resolves it.
			if kind == dot || kind == dotDot {
				out = append(out, '/')
			}
			break
		}
		i++ // the slash
	}
	if hidden {
		return "", ErrPathDotSegment
	}
	return string(out), nil
}

// ForwardPath is the path the upstream receives for the canonical path p
// that matched r: r's rewrite applied (UpstreamPath). It fails with
// ErrRewriteDotSegment when the rewrite joins text into a dot segment,
// hidden or not.
func (r *Route) ForwardPath(p string) (string, error) {
	return r.ForwardPathWith(p, nil)
}

// ForwardPathWith is ForwardPath with concat joining a prefix rewrite to
// the rest of the path: the proxy's fast path joins them in memory reused
// from request to request. nil concat is +.
func (r *Route) ForwardPathWith(p string, concat func(x, y string) string) (string, error) {
	var up string
	if r.RegexRewrite == nil && r.RewriteEnabled && r.Kind == router.Prefix {
		rest := p[min(len(r.Prefix), len(p)):]
		switch {
		case r.Rewrite == r.Prefix && strings.HasPrefix(p, r.Prefix):
			// Emissary's default rewrite on a Mapping whose prefix is "/"
			// (and any rewrite to the prefix itself) leaves the path as it
			// is; a case-insensitive match still gets the rewrite's case.
			up = p
		case concat != nil:
			up = concat(r.Rewrite, rest)
		default:
			up = r.Rewrite + rest
		}
	} else {
		up = r.UpstreamPath(p)
	}
	if up != p && hasDotSegment(up) {
		return "", ErrRewriteDotSegment
	}
	return up, nil
}

// hasDotSegment reports whether any segment of p is, or hides, a dot
// segment; "%2E" counts as a dot, since the upstream decodes it.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.ContainsAny(seg, ".%") && dotSegment(seg) != notDot {
			return true
		}
	}
	return false
}

// WirePath returns the path of u as the client escaped it. url.Parse keeps
// that text in RawPath whenever it differs from Go's own escaping of Path;
// EscapedPath alone would re-escape Path when RawPath holds a byte Go would
// have escaped, turning a client's "%2F" into "/" behind our back.
func WirePath(u *url.URL) string {
	if u.RawPath != "" {
		if p, err := url.PathUnescape(u.RawPath); err == nil && p == u.Path {
			return u.RawPath
		}
	}
	return u.EscapedPath()
}

type segKind uint8

const (
	notDot    segKind = iota
	dot               // "."
	dotDot            // ".."
	hiddenDot         // a piece of the segment is "." or ".." (see ErrPathDotSegment)
)

// dotSegment classifies one segment. Pieces are what a lenient server may
// see as segments: split at "\", %2F and %5C, and cut at the first ";" (path
// parameters).
func dotSegment[S ~string | ~[]byte](seg S) segKind {
	switch dotCount(seg) {
	case 1:
		return dot
	case 2:
		return dotDot
	}
	start := 0
	for start <= len(seg) {
		end, next := len(seg), len(seg)+1
		for j := start; j < len(seg); j++ {
			if seg[j] == '\\' {
				end, next = j, j+1
				break
			}
			if seg[j] == '%' && j+2 < len(seg) && isEscapedSlash(seg[j+1], seg[j+2]) {
				end, next = j, j+3
				break
			}
		}
		piece := seg[start:end]
		for j := 0; j < len(piece); j++ {
			if piece[j] == ';' {
				piece = piece[:j]
				break
			}
		}
		if dotCount(piece) > 0 {
			return hiddenDot
		}
		start = next
	}
	return notDot
}

// dotCount returns 1 for ".", 2 for "..", else 0, a dot being "." or "%2E".
func dotCount[S ~string | ~[]byte](s S) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
		case s[i] == '%' && i+2 < len(s) && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E'):
			i += 2
		default:
			return 0
		}
		n++
	}
	if n > 2 {
		return 0
	}
	return n
}

func isEscapedSlash(hi, lo byte) bool {
	return (hi == '2' && (lo == 'f' || lo == 'F')) || (hi == '5' && (lo == 'c' || lo == 'C'))
}

func lastSlash(b []byte) int {
	for j := len(b) - 1; j >= 0; j-- {
		if b[j] == '/' {
			return j
		}
	}
	return -1
}

func appendEscape(b []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, '%', hex[c>>4], hex[c&15])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unreserved are RFC 3986's unreserved characters, whose escapes are
// decoded; pathByte are the bytes a path segment holds raw: unreserved,
// sub-delims, ":" and "@" (pchar without pct-encoded); plainByte are those
// but ".", which isCanonical can pass over without a thought. Read-only.
var unreserved, pathByte, plainByte = func() (u, p, q [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		u[c] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0
		p[c] = u[c] || strings.IndexByte("!$&'()*+,;=:@", b) >= 0
		q[c] = p[c] && b != '.'
	}
	return u, p, q
}()
