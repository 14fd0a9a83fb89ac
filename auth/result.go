package auth

import (
	"net/http"
	"net/textproto"
)

// Realm is the realm every challenge names.
const Realm = "gatehouse"

// Result is what a method that lets a request through says about it.
//
// The proxy applies it to the request it sends upstream: it deletes the
// headers in Remove and the query parameter RemoveQuery, and sets each
// header in Set, replacing whatever the client sent under that name. Set
// and Remove never name the same header, so the order does not matter.
// Slices in a Result may be shared between requests: read them, do not
// modify them.
type Result struct {
	// Consumer is who the request is for, as the method identified it; ""
	// when the method names nobody (an external service that sent no
	// consumer header, a JWT without the consumer claim).
	Consumer string
	// Set lists headers (canonical name, value) to set on the request sent
	// upstream: claims, or the external service's answer headers.
	Set [][2]string
	// Remove lists request headers (canonical names) to delete before the
	// request goes upstream: credentials that are not forwarded, and headers
	// the method would have set but had no value for, so that a client
	// cannot supply its own.
	Remove []string
	// RemoveQuery is a query parameter to delete before the request goes
	// upstream (the API key's), or "" for none. It is the unescaped name:
	// delete every parameter whose name unescapes to it, as the key was
	// looked for.
	RemoveQuery string
}

// Denial is an answer the gateway gives itself instead of forwarding the
// request. Its Status is never a 5xx (a failure to authenticate is the
// client's problem or a refusal, not the gateway's error) and nothing in it
// echoes the credential the client sent.
//
// A Denial may be shared by all requests refused for the same reason, so
// that refusing a flood of bad credentials allocates nothing: copy Header
// and Body out, never modify them.
type Denial struct {
	Status int
	Header http.Header
	Body   []byte
}

// plainDenial is a text/plain Denial with one challenge header.
func plainDenial(status int, challenge, body string) *Denial {
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	if challenge != "" {
		h["Www-Authenticate"] = []string{challenge}
	}
	return &Denial{Status: status, Header: h, Body: []byte(body + "\n")}
}

// MaxClaimHeaderBytes bounds a value a JWT claim may put in a header, and a
// consumer name: 1 KiB is far beyond a user name or a tenant id, and the
// limit keeps a token's issuer from filling the upstream's header budget.
const MaxClaimHeaderBytes = 1 << 10

// validValue reports whether s may be sent as a header value: no control
// characters but tab (CR, LF and NUL would split or truncate the header;
// Go's client refuses the others, failing the whole request), at most max
// bytes (max < 0: no limit).
func validValue(s string, max int) bool {
	if max >= 0 && len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validName reports whether s is a header field name (an RFC 9110 token).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c < 0x80 && isTokenPunct[c]:
		default:
			return false
		}
	}
	return true
}

var isTokenPunct = [128]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
}

// hopHeaders are the headers that describe one connection or the framing of
// one message (RFC 9110 section 7.6.1, plus Proxy-Connection and
// Keep-Alive, which clients still send): never copied from one message to
// another, and never set from a claim or an answer.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Content-Length":      true,
	"Host":                true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// checkSetHeader says what is wrong with a header name a setting wants to
// set on upstream requests, or "" when nothing is.
func checkSetHeader(name string) string {
	if !validName(name) {
		return "not a valid header name"
	}
	if hopHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
		return "describes the connection or the message framing; it cannot be set"
	}
	return ""
}
