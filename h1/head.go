// Package h1 speaks HTTP/1.1 on plain connections for the common case, at a
// fraction of net/http's cost: a server for requests whose framing is
// unremarkable, and a pool of keep-alive connections to upstreams.
//
// The server parses strictly and claims only what it is sure of. Any
// request it does not recognise as plain (another HTTP version, a
// Transfer-Encoding, an Expect or Upgrade, a bare LF, an obs-fold, a
// duplicate Content-Length, an absolute-form target, a head over the limit,
// anything odd in a field) is not refused here: the whole connection,
// with the bytes already read, is handed to net/http, which answers it
// exactly as it would have without this package. So the fast path cannot
// frame a message differently from net/http; it can only decline to frame
// it at all. docs/benchmarks.md has the measurements behind it.
package h1

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"syscall"
)

// token reports whether c may appear in a token (RFC 9110 §5.6.2): a
// method or a field name.
func token(c byte) bool { return tokenTable[c] }

// IsToken reports whether s is an RFC 9110 token (§5.6.2): what methods,
// field names and media-type parts are made of.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return true
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// fieldValueByte reports whether c may appear in a field value as this
// package reads it: visible ASCII, space, tab and obs-text. No controls:
// NUL, CR and LF inside a value are what request smuggling is made of.
func fieldValueByte(c byte) bool { return c == '\t' || (c >= ' ' && c != 0x7f) }

// targetByte reports whether c may appear in an origin-form request target
// on the fast path: visible ASCII except '#', which no client sends.
func targetByte(c byte) bool { return c > ' ' && c < 0x7f && c != '#' }

// ValidHost accepts what may stand in a Host header (an RFC 3986 reg-name
// or IP literal, with a port): the characters net/http's own check
// allows, at most 255 of them. The fast path hands anything else to
// net/http; the proxy ignores anything else a trusted proxy claims.
func ValidHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+;=:[]%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// WriteField writes one field line; a CR or LF in a value (a handler's, a
// route's configuration) would start a line of its own, so it becomes a
// space, as net/http does.
func WriteField(bw *bufio.Writer, k, v string) {
	if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
		v = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// endOfHead returns the index just past the blank line that ends a head in
// b, searching from from, or -1. Only CRLF CRLF ends a head here; a head
// using bare LFs is never found and so goes to net/http once it is too big
// or the connection stalls, or, more usually, is declined by plainHead.
func endOfHead(b []byte, from int) int {
	if from > 3 {
		from -= 3
	} else {
		from = 0
	}
	if i := bytes.Index(b[from:], crlfcrlf); i >= 0 {
		return from + i + 4
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// bareLF reports whether b holds an LF not preceded by CR at or after
// from.
func bareLF(b []byte, from int) bool {
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return false
		}
		if from+i == 0 || b[from+i-1] != '\r' {
			return true
		}
		from += i + 1
	}
}

// trimOWS trims optional whitespace (RFC 9110 §5.6.3) from both ends.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// canonicalKey is textproto's canonical form of a field name, without an
// allocation when the name is already canonical, as clients send the
// common ones.
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// fields parses the field lines of a head (each ending in CRLF, the blank
// line excluded) into h, sharing vals as the backing array of the value
// slices. It calls each for every field, with the canonical key, so that
// the caller can pick out the ones framing depends on. It returns false
// for anything it does not accept: the caller then leaves the message to
// net/http (requests) or refuses it (responses).
func fields(s string, h http.Header, vals *[]string, each func(key, value string) bool) bool {
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 1 || s[i-1] != '\r' {
			return false
		}
		line := s[:i-1]
		s = s[i+1:]
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return false // no name, no colon, or a line starting with ':'
		}
		name := line[:colon]
		for j := 0; j < len(name); j++ {
			if !token(name[j]) {
				return false // whitespace before the colon, an obs-fold, NUL…
			}
		}
		value := trimOWS(line[colon+1:])
		for j := 0; j < len(value); j++ {
			if !fieldValueByte(value[j]) {
				return false
			}
		}
		key := canonicalKey(name)
		if each != nil && !each(key, value) {
			return false
		}
		*vals = append(*vals, value)
		n := len(*vals)
		if prev, ok := h[key]; ok {
			// A repeated field is rare; its own slice keeps it simple.
			h[key] = append(prev[:len(prev):len(prev)], value)
		} else {
			h[key] = (*vals)[n-1 : n : n]
		}
	}
	return true
}

// HasToken reports whether a comma-separated field value lists tok, in any
// case.
func HasToken(v, tok string) bool {
	for len(v) > 0 {
		var t string
		if i := strings.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, ""
		}
		if strings.EqualFold(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

// parseLength reads a Content-Length: digits only, at most 18 of them, so
// it cannot overflow.
func parseLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// plainPath reports whether a path is made only of bytes that are neither
// escaped nor escape anything: its URL needs no RawPath.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// peerGone reports, with one non-blocking peek that consumes nothing,
// whether the other end of c has closed or reset it, or (for a connection
// at rest) sent something nobody asked for. A connection it cannot look
// into is taken to be there.
func peerGone(c net.Conn) bool {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err != nil, n == 0:
			gone = true // a reset, or the end of the stream
		}
		return true
	})
	return gone || err != nil
}
