package proxy

import (
	"net/http"
	"slices"
)

// Message framing: where one request ends and the next begins.
//
// net/http's server already refuses most ambiguous framing with a 4xx and
// closes the connection: differing duplicate Content-Length values, an
// invalid Content-Length, any Transfer-Encoding but a single "chunked"
// (501), NUL or CR in a field, whitespace before a field's colon or
// before the first field, a bad method or request target, an oversized
// head (431). It normalises the rest the way RFC 9112 allows a server to:
// identical duplicate Content-Length values become one, an obs-fold
// becomes a space (§5.2), a bare LF ends a line (§2.2), and an
// absolute-form target's host replaces the Host header (§3.2.2). The
// upstream then gets a request re-serialised by net/http's client, with
// one framing of its own.
//
// Two cases it gets wrong, and hides from a handler:
//
//   - Transfer-Encoding together with Content-Length (HTTP/1.1). net/http
//     frames the body by Transfer-Encoding, as it should, and deletes
//     Content-Length, but keeps the connection open. RFC 9112 §6.1: a
//     server MAY reject such a request or process it by Transfer-Encoding
//     alone, but "regardless, the server MUST close the connection after
//     responding to such a request": a proxy in front of the gateway may
//     have framed the same bytes by Content-Length, and whatever follows
//     on the connection is then a request smuggled past it.
//   - Transfer-Encoding on HTTP/1.0. net/http ignores it (and deletes it),
//     framing the body by Content-Length or as empty, so a chunked body
//     would be read as the next request. RFC 9112 §6.1: such a message's
//     framing is faulty and the connection MUST be closed after it.
//
// Because the header is gone by the time a handler runs, the gateway cannot
// tell these requests from well-framed ones, so it errs towards closing:
// the request is answered (framed by Transfer-Encoding, the only framing
// it has left; refusing with 400 would need the raw head, which only a
// listener below net/http sees) and the connection is closed after every
// chunked HTTP/1.1 request and every HTTP/1.0 request. A client that
// chunks its uploads, or speaks HTTP/1.0 with keep-alive, opens a new
// connection for its next request; nothing else changes. HTTP/2 has no
// such framing and is left alone.

// closeAfter reports whether the connection r came on must be closed after
// the answer, because its framing may have been ambiguous (see above).
func closeAfter(r *http.Request) bool {
	return r.ProtoMajor == 1 && (r.ProtoMinor == 0 || slices.Contains(r.TransferEncoding, "chunked"))
}

// closeConnection makes net/http close the connection after this answer. It
// must be said before the head is written. net/http checks for exactly
// "close", and then also stops trying to drain an unread request body
// before answering, which waits on a client that may never send it.
func closeConnection(h http.Header) {
	h.Set("Connection", "close")
}
