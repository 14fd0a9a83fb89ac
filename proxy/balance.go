package proxy

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// balanceKey is the hash a ring_hash or maglev route picks its endpoint by
// (load_balancer: a header, a cookie or the client's address); 0 for other
// policies. A request without the key gets a random hash, as Envoy picks
// randomly when its hash policy yields nothing, except that a cookie route
// whose cookie has a ttl makes one up and sets it on the answer, so the
// client's next requests stick to the endpoint this one went to.
func (h *Handler) balanceKey(w http.ResponseWriter, r *http.Request, ex *exchange) uint64 {
	on := &ex.route.Hash
	switch {
	case on.Header != "":
		if v := firstElement(r.Header[on.Header]); v != "" {
			return upstream.HashKey(v)
		}
	case on.SourceIP:
		if c := ex.origin.client; c.IsValid() {
			a := c.Unmap().As16()
			// A view of the stack array: HashKey keeps nothing.
			return upstream.HashKey(unsafe.String(&a[0], len(a)))
		}
	case on.Cookie != nil:
		if v, ok := cookieValue(r.Header["Cookie"], on.Cookie.Name); ok {
			return upstream.HashKey(v)
		}
		if on.Cookie.Set {
			v := newCookieValue()
			w.Header().Add("Set-Cookie", balanceCookie(on.Cookie.Name, v, on.Cookie.Path, int64(on.Cookie.TTL.Seconds())))
			return upstream.HashKey(v)
		}
	default:
		return 0
	}
	return mrand.Uint64()
}

// cookieValue finds cookie name in Cookie header values without allocating
// (http.Request.Cookie parses every cookie into a new slice).
func cookieValue(fields []string, name string) (string, bool) {
	for _, f := range fields {
		for part := range strings.SplitSeq(f, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`), true
			}
		}
	}
	return "", false
}

// newCookieValue is 128 random bits: a value nobody can guess at or choose
// to aim at one endpoint.
func newCookieValue() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// balanceCookie is the Set-Cookie value of a generated balancing cookie:
// HttpOnly, since scripts have no business with it; Max-Age only for a
// positive ttl (0 is a session cookie).
func balanceCookie(name, value, path string, maxAge int64) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	if path != "" {
		b.WriteString("; Path=")
		b.WriteString(path)
	}
	if maxAge > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(maxAge, 10))
	}
	b.WriteString("; HttpOnly")
	return b.String()
}
