package grpcweb

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// The writer gets what ReverseProxy makes of the upstream's answer: the
// head copied into Header() and WriteHeader; the body in writes, each
// flushed when the answer has no length, as gRPC answers over HTTP/2 have
// none; then the trailers, set in Header() after the body, under the keys
// a "Trailer" field announced in the head when the upstream's trailers are
// the ones it announced, or else under http.TrailerPrefix keys. A gRPC
// server over HTTP/2 announces nothing, so the prefixed keys are the usual
// case. A trailers-only answer (PROTOCOL-HTTP2.md: one HEADERS frame and
// no body, as a gRPC server sends an immediate error) arrives as a head
// carrying grpc-status.
//
// The header map is the underlying writer's own (no copy): it is fixed up
// at WriteHeader and the trailers are taken out of it by finish.

// maxTrailerFrame bounds the payload of the trailer frame. The HTTP/2
// transport accepts trailers as large as its header list limit (10 MiB by
// default); a browser needs a status and a little metadata, and proxy's
// answer heads are held to 64 KiB as well. grpc-status always goes in;
// fields that would go past the bound are dropped.
const maxTrailerFrame = 64 << 10

// maxMessage bounds how much of a non-gRPC answer's text/plain body
// becomes grpc-message: enough for an error sentence, never a page.
const maxMessage = 512

// maxAnnounced bounds the keys of a "Trailer" field the writer remembers;
// trailers announced past it are still found when ReverseProxy sets them
// under http.TrailerPrefix keys, which it does when the upstream's
// trailers differ from the announced ones.
const maxAnnounced = 32

// entityFields describe the body of an answer that is not gRPC, which
// the client never gets: its encoding, its range, its identity.
var entityFields = [...]string{"Content-Encoding", "Content-Range", "Content-Disposition", "Content-Location", "Etag", "Last-Modified"}

var errFinished = errors.New("grpcweb: write after finish")

// writer is the gRPC-Web side of one exchange; see Translate. It holds the
// translated request too, so that a translation is one allocation (two for
// the text form). Like any ResponseWriter, not safe for concurrent use.
type writer struct {
	w     http.ResponseWriter
	codec string   // the request's codec, for answers that name none
	enc   *encoder // non-nil: the answer is base64 text

	wrote, done bool
	grpc        bool // the answer is gRPC (200, application/grpc): its body goes through
	code        int  // the answer's HTTP status
	// head holds the status fields found in the answer's head: a
	// trailers-only answer, or an intermediary's error that carries one.
	head statusFields
	// announced are the keys of the head's "Trailer" field, each with the
	// number of values it had in the head: values past those are trailers.
	announced []announced
	annBuf    [4]announced
	plain     bool   // an answer that is not gRPC has a text/plain body
	msg       []byte // its start, for grpc-message

	respType    [1]string // the answer's Content-Type value
	reqType, te [1]string // the request's
	fieldBuf    [4]field
	frame       [192]byte // the trailer frame, when it fits
	out         http.Request
}

type statusFields struct{ status, message, details []string }

type announced struct {
	key string
	n   int
}

// field is a trailer other than the status fields.
type field struct {
	key    string
	values []string
}

func (w *writer) Header() http.Header { return w.w.Header() }

// Unwrap lets http.ResponseController reach the underlying writer's
// deadlines; Flush stays here, since the text form must flush its
// encoder first.
func (w *writer) Unwrap() http.ResponseWriter { return w.w }

// WriteHeader reads the answer's head and writes the client's: always 200
// (a gRPC-Web client reads the status from the trailer frame, and some,
// such as grpc-web's JavaScript client, turn any other HTTP status into a
// status of their own without reading the body), the gRPC-Web
// Content-Type, no length (the body changes), no trailers.
func (w *writer) WriteHeader(code int) {
	if w.wrote || w.done || code < http.StatusOK {
		// 1xx: no gRPC-Web client has a use for an interim answer, and it
		// must not be taken for the head.
		return
	}
	w.wrote, w.code = true, code
	h := w.w.Header()
	ct := first(h["Content-Type"])
	codec, isGRPC := parseGRPC(ct)
	w.grpc = isGRPC && code == http.StatusOK
	if !w.grpc || codec == "" {
		codec = w.codec
	}
	// A status in the head goes to the trailer frame only. Sending it in
	// the head as well, as a trailers-only gRPC answer does, breaks
	// clients: nice-grpc-web fails a call whose trailer frame follows a
	// status in the head ("Received non-empty trailer after trailers-only
	// response"), connect-es fails one with grpc-status 0 in the head and
	// anything in the body, and grpc-web's stream reports an error twice.
	// Every client reads the frame: it is how a normal answer ends.
	w.head = statusFields{h["Grpc-Status"], h["Grpc-Message"], h["Grpc-Status-Details-Bin"]}
	delete(h, "Grpc-Status")
	delete(h, "Grpc-Message")
	delete(h, "Grpc-Status-Details-Bin")
	for _, v := range h["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.Trim(k, " \t"); k != "" && len(w.announced) < maxAnnounced {
				k = http.CanonicalHeaderKey(k)
				w.announced = append(w.announced, announced{key: k, n: len(h[k])})
			}
		}
	}
	// Without an announcement net/http sends no trailers; finish removes
	// the http.TrailerPrefix keys, the other way to have it send some.
	delete(h, "Trailer")
	delete(h, "Content-Length")
	if !w.grpc {
		w.plain = strings.EqualFold(mediaType(ct), "text/plain")
		for _, k := range entityFields {
			delete(h, k)
		}
	}
	w.respType[0] = webContentType(w.enc != nil, codec)
	h["Content-Type"] = w.respType[:1:1]
	w.w.WriteHeader(http.StatusOK)
}

// Write passes a gRPC answer's body on, base64-encoded in the text form.
// The body of any other answer is not gRPC framing and is dropped, but
// for the start of a text/plain one, kept for grpc-message.
func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.grpc {
		if w.plain && len(w.msg) < maxMessage {
			if w.msg == nil {
				w.msg = make([]byte, 0, maxMessage)
			}
			w.msg = append(w.msg, p[:min(len(p), maxMessage-len(w.msg))]...)
		}
		return len(p), nil
	}
	if w.enc != nil {
		if err := w.enc.write(w.w, p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return w.w.Write(p)
}

// Flush sends what was written so far; in the text form it first ends
// the base64 written so far with its padding, so the client can decode
// all it has.
func (w *writer) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the underlying writer's error, for
// http.ResponseController.
func (w *writer) FlushError() error {
	if !w.wrote {
		return nil // nothing to flush, and the head is not known yet
	}
	if w.enc != nil {
		if err := w.enc.pad(w.w); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.w).Flush()
}

// finish ends the answer with the trailer frame; see Translate. Errors
// writing it are the client's going away, which the caller learns from
// the request's context as for any other answer.
func (w *writer) finish() {
	if w.done {
		return
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK) // nothing was answered: no gRPC answer, so UNKNOWN
	}
	frame := w.trailerFrame()
	if w.enc != nil {
		if w.enc.write(w.w, frame) == nil {
			_ = w.enc.pad(w.w)
		}
	} else {
		_, _ = w.w.Write(frame)
	}
	w.done = true
	_ = http.NewResponseController(w.w).Flush()
}

// trailerFrame builds the trailer frame from the answer's trailers, taking
// them out of the header map, and from the status fields of its head.
// Lines are "key: value\r\n" with lower-case keys (PROTOCOL-WEB.md): the
// status fields first, then the other trailers by key, each value on its
// own line. A key that is not a token is dropped, and so is a value with
// control characters, which could end a line early (grpc-message is
// escaped instead: its value is percent-encoded by definition).
func (w *writer) trailerFrame() []byte {
	h := w.w.Header()
	st := w.head
	fields := w.fieldBuf[:0]
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
			fields = collect(fields, &st, k[len(http.TrailerPrefix):], vv)
		}
	}
	for _, a := range w.announced {
		vv := h[a.key]
		if len(vv) <= a.n {
			continue
		}
		fields = collect(fields, &st, a.key, vv[a.n:])
		if a.n == 0 {
			delete(h, a.key)
		} else {
			h[a.key] = vv[:a.n:a.n]
		}
	}

	b := append(w.frame[:0], 0x80, 0, 0, 0, 0)
	b = append(b, "grpc-status: "...)
	status, ok := statusValue(first(st.status))
	if ok {
		b = append(b, status...)
	} else {
		b = strconv.AppendInt(b, int64(StatusFromHTTP(w.code)), 10)
	}
	b = append(b, "\r\n"...)
	limit := len(b) + maxTrailerFrame
	switch msg := first(st.message); {
	case msg != "":
		b = appendMessage(b, msg, true, limit)
	case ok:
	case !w.grpc && len(st.status) == 0:
		if s := strings.ToValidUTF8(strings.TrimSpace(string(w.msg)), ""); s != "" {
			b = appendMessage(b, s, false, limit)
		} else {
			b = appendMessage(b, httpMessage(w.code), false, limit)
		}
	case len(st.status) > 0:
		b = appendMessage(b, "malformed grpc-status in the upstream's answer", false, limit)
	default:
		b = appendMessage(b, "no grpc-status in the upstream's answer", false, limit)
	}
	if d := first(st.details); d != "" {
		b = appendField(b, "grpc-status-details-bin", d, limit)
	}
	slices.SortFunc(fields, func(x, y field) int { return compareFold(x.key, y.key) })
	for _, f := range fields {
		for _, v := range f.values {
			b = appendField(b, f.key, v, limit)
		}
	}
	binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-5))
	return b
}

// collect files one trailer: the status fields in st, where they replace
// any from the head, the others in fields.
func collect(fields []field, st *statusFields, key string, vv []string) []field {
	switch {
	case strings.EqualFold(key, "Grpc-Status"):
		st.status = vv
	case strings.EqualFold(key, "Grpc-Message"):
		st.message = vv
	case strings.EqualFold(key, "Grpc-Status-Details-Bin"):
		st.details = vv
	default:
		fields = append(fields, field{key: key, values: vv})
	}
	return fields
}

// statusValue returns v when it is a status code: digits, not too many to
// be one. Anything else is no status, which the client must not read as
// OK (grpc-web's JavaScript client reads a missing grpc-status as 0).
func statusValue(v string) (string, bool) {
	if v == "" || len(v) > 10 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return "", false
		}
	}
	return v, true
}

// appendMessage appends a grpc-message line, the value percent-encoded as
// PROTOCOL-HTTP2.md has it: bytes outside %x20-%x7E, and "%", as "%XX".
// encoded says msg comes from the upstream, encoded already: its "%"
// stay, and only what it failed to encode is. Encoding non-ASCII bytes
// lets a client's decodeURIComponent restore UTF-8 text.
func appendMessage(b []byte, msg string, encoded bool, limit int) []byte {
	const hex = "0123456789ABCDEF"
	start := len(b)
	b = append(b, "grpc-message: "...)
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c >= 0x20 && c <= 0x7e && (c != '%' || encoded) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	b = append(b, "\r\n"...)
	if len(b) > limit {
		return b[:start]
	}
	return b
}

// appendField appends a "key: value\r\n" line with key in lower case,
// unless key is not a token, value has a control character other than
// HTAB (RFC 9110 §5.5), or the line would go past limit.
func appendField(b []byte, key, value string, limit int) []byte {
	if !h1.IsToken(key) || len(b)+len(key)+len(value)+4 > limit {
		return b
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return b
		}
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// compareFold compares ASCII strings as their lower-case forms do.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return int(x) - int(y)
		}
	}
	return len(a) - len(b)
}
