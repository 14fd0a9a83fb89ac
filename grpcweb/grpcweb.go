// Package grpcweb lets a route serve browsers from a plain gRPC upstream:
// it turns a gRPC-Web request into the gRPC request the upstream expects
// and the upstream's gRPC answer into the gRPC-Web answer the browser can
// read (grpc/grpc doc/PROTOCOL-WEB.md).
//
// The two protocols frame messages alike (a flag byte, a 4-byte big-endian
// length, the message). They differ where browsers fall short: a browser
// cannot read HTTP trailers, so gRPC-Web carries the gRPC status and
// trailing metadata as a last frame of the body, flag byte 0x80, whose
// payload is "key: value\r\n" lines; and some clients can only handle
// text, so gRPC-Web has a base64 form (application/grpc-web-text) of both
// directions.
//
// Translate sits between the proxy and the client's ResponseWriter. It
// comes after routing (only routes that enable gRPC-Web translate) and
// after CORS preflights are answered (a preflight is not gRPC-Web), and
// before anything the gateway may answer itself (a rate limit, an open
// breaker), so that the browser gets those as gRPC statuses too. finish
// comes after the upstream call, unless the call panicked.
package grpcweb

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// Media types of the two protocols; a codec ("+proto", "+json") may follow.
const (
	grpcType = "application/grpc"
	webType  = "application/grpc-web"
	textTag  = "-text"
)

// form is what a gRPC-Web Content-Type says about the body.
type form struct {
	text  bool   // base64 text (application/grpc-web-text)
	codec string // "proto", "json"…, lower case; "" when none is named
}

// Is reports whether r is a gRPC-Web request (Content-Type
// application/grpc-web or application/grpc-web-text, each optionally with
// "+codec", parameters ignored), and whether its body is the base64 text
// form. The method is not looked at: the upstream answers a gRPC call that
// is not a POST as it sees fit.
func Is(r *http.Request) (ok, text bool) {
	f, ok := parseWeb(first(r.Header["Content-Type"]))
	return ok, f.text
}

// parseWeb parses a gRPC-Web media type. Anything else is not gRPC-Web,
// including application/grpc-web-text-base64, which PROTOCOL-WEB.md
// mentions but no client or proxy sends or accepts, and a codec that is not
// an HTTP token, which could not be written back into a Content-Type.
func parseWeb(v string) (form, bool) {
	v = mediaType(v)
	if !hasPrefixFold(v, webType) {
		return form{}, false
	}
	var f form
	rest := v[len(webType):]
	if hasPrefixFold(rest, textTag) {
		f.text, rest = true, rest[len(textTag):]
	}
	if rest == "" {
		return f, true
	}
	if rest[0] != '+' || !h1.IsToken(rest[1:]) {
		return form{}, false
	}
	f.codec = strings.ToLower(rest[1:]) // no allocation when already lower case, as clients send it
	return f, true
}

// parseGRPC parses a gRPC media type, returning its codec.
func parseGRPC(v string) (codec string, ok bool) {
	v = mediaType(v)
	if !hasPrefixFold(v, grpcType) {
		return "", false
	}
	rest := v[len(grpcType):]
	if rest == "" {
		return "", true
	}
	if rest[0] != '+' || !h1.IsToken(rest[1:]) {
		return "", false // application/grpc-web… among others
	}
	return strings.ToLower(rest[1:]), true
}

// mediaType is v without parameters and surrounding white space.
func mediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.Trim(v, " \t")
}

// acceptsText reports whether an Accept field asks for the text form:
// PROTOCOL-WEB.md has clients ask for a text answer with
// "Accept: application/grpc-web-text", and grpc-web's JavaScript client
// sends it along with a text body.
func acceptsText(values []string) bool {
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			if f, ok := parseWeb(elem); ok && f.text {
				return true
			}
		}
	}
	return false
}

// grpcContentType is the Content-Type of the request to the upstream.
// The common ones are constants, so that translating does not allocate.
func grpcContentType(codec string) string {
	switch codec {
	case "":
		return grpcType
	case "proto":
		return grpcType + "+proto"
	case "json":
		return grpcType + "+json"
	}
	return grpcType + "+" + codec
}

// webContentType is the Content-Type of the answer to the client.
func webContentType(text bool, codec string) string {
	switch {
	case !text && codec == "":
		return webType
	case !text && codec == "proto":
		return webType + "+proto"
	case !text && codec == "json":
		return webType + "+json"
	case !text:
		return webType + "+" + codec
	case codec == "":
		return webType + textTag
	case codec == "proto":
		return webType + textTag + "+proto"
	}
	return webType + textTag + "+" + codec
}

// Translate prepares the gRPC-Web request r for a gRPC upstream and wraps
// w, which is to receive the upstream's gRPC answer.
//
// out is a shallow copy of r with its own header: Content-Type
// application/grpc with r's codec, "Te: trailers" (ReverseProxy forwards
// Te only when the request it is given carries it, and gRPC servers may
// refuse a request without it), no Accept-Encoding (the transport then asks
// for gzip itself and undoes it, so an upstream's whole-body compression
// can never meet the trailer frame appended to the body), and, for the text
// form, a body decoded from base64 as it is read, with no Content-Length.
// r itself is not changed.
//
// ww is the writer to give the proxy. It answers the client with HTTP 200
// and Content-Type application/grpc-web or application/grpc-web-text (with
// the upstream's codec, or else r's), the text form when r's body was text
// or its Accept field asks for it. The upstream's messages pass through as
// they come, each write base64-encoded in the text form, and each flush
// reaches the client. The gRPC status and trailers never go out as HTTP
// trailers: finish writes them as the trailer frame. An answer that is not
// gRPC (an HTTP error from the upstream or from the gateway, say 503
// text/plain) becomes a gRPC-Web answer with the grpc-status StatusFromHTTP
// gives and, as grpc-message, the start of a text/plain body.
//
// finish must be called once the proxy has returned normally (not when it
// panicked, as ReverseProxy does to abort an answer the upstream broke off:
// the client must then see a broken stream, not a status). It writes the
// trailer frame and flushes. Later calls do nothing.
//
// When r is not a gRPC-Web request (Is), Translate returns w and r as they
// are and a finish that does nothing.
func Translate(w http.ResponseWriter, r *http.Request) (ww http.ResponseWriter, out *http.Request, finish func()) {
	f, ok := parseWeb(first(r.Header["Content-Type"]))
	if !ok {
		return w, r, func() {}
	}
	t := &writer{w: w, codec: f.codec}
	t.announced = t.annBuf[:0]
	if f.text || acceptsText(r.Header["Accept"]) {
		t.enc = new(encoder)
	}

	t.out = *r
	out = &t.out
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 2)
	}
	// Header values live in the writer, which is allocated anyway; the full
	// slice expressions make a later Add copy rather than write into them.
	t.reqType[0] = grpcContentType(f.codec)
	out.Header["Content-Type"] = t.reqType[:1:1]
	t.te[0] = "trailers"
	out.Header["Te"] = t.te[:1:1]
	delete(out.Header, "Accept-Encoding")
	if f.text && r.Body != nil && r.Body != http.NoBody {
		out.Body = newDecoder(r.Body)
		out.GetBody = nil // r's body, if it could be had again, is still base64
		out.ContentLength = -1
		delete(out.Header, "Content-Length")
	}
	return t, out, t.finish
}

// gRPC status codes (grpc/grpc doc/statuscodes.md) this package produces.
const (
	codeUnknown          = 2
	codePermissionDenied = 7
	codeUnimplemented    = 12
	codeInternal         = 13
	codeUnavailable      = 14
	codeUnauthenticated  = 16
)

// StatusFromHTTP is the gRPC status code that an answer with HTTP status
// code and no grpc-status stands for, as grpc/grpc
// doc/http-grpc-status-mapping.md has clients map it: 400 and 431
// INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429, 502, 503 and 504 UNAVAILABLE, anything else (200 included: a real
// success carries grpc-status 0) UNKNOWN.
//
// The mapping is a client's reading of an intermediary's answer; the
// document says a server must not use it in reverse to choose an HTTP
// status.
func StatusFromHTTP(code int) int {
	switch code {
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge:
		return codeInternal
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codeUnavailable
	}
	return codeUnknown
}

// httpMessage is the grpc-message of a non-gRPC answer without a usable
// body.
func httpMessage(code int) string {
	return "not a gRPC answer: HTTP " + strconv.Itoa(code) + " " + http.StatusText(code)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
