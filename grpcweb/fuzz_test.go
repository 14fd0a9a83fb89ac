package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/h1"
)

// FuzzDecoder holds the text request decoder to two references: where
// base64.StdEncoding accepts a body, the decoder gives the same bytes; and
// in all cases it agrees with refDecode, the plain quantum-by-quantum
// reading of padded segments. How the text arrives (cut at split) and how
// much the reader asks for at once (psize) never matter, the source is
// never asked for more than the decoder's buffer, and a Read never
// returns more than asked.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{"", "YWJj", "YQ==", "YWI=YQ==", "YW\r\nJj", "Y===", "YQ=j", "YWJ", "AAAAAAU=aGVsbG8=", "\n\n", "YR==", "YWJj\r\n"} {
		f.Add([]byte(s), uint16(1), uint8(3))
	}
	f.Fuzz(func(t *testing.T, text []byte, split uint16, psize uint8) {
		at := int(split) % (len(text) + 1)
		src := &source{pieces: []string{string(text[:at]), string(text[at:])}}
		got, err := decodeAll(newDecoder(src), int(psize)+1)
		if src.maxRead > decodeBuffer {
			t.Fatalf("asked the source for %d bytes", src.maxRead)
		}
		if err != nil && !errors.Is(err, ErrInvalidText) {
			t.Fatalf("error %v is neither nil nor ErrInvalidText", err)
		}
		if std, stdErr := base64.StdEncoding.DecodeString(string(text)); stdErr == nil {
			if err != nil || !bytes.Equal(got, std) {
				t.Fatalf("StdEncoding decodes %q to %q; decoder gives %q, %v", text, std, got, err)
			}
		}
		ref, refErr := refDecode(string(text))
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: decoder error %v, reference error %v", text, err, refErr)
		}
		if err == nil && !bytes.Equal(got, ref) {
			t.Fatalf("%q: decoder %q, reference %q", text, got, ref)
		}
	})
}

// FuzzContentType: the Content-Type parser never accepts what it could
// not write back, and what it writes back parses to the same form.
func FuzzContentType(f *testing.F) {
	for _, s := range []string{"application/grpc-web", "application/grpc-web-text+proto; charset=utf-8", "APPLICATION/GRPC-WEB+JSON", "application/grpc-web+", "application/grpc+proto", "application/grpc-web-text-base64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header["Content-Type"] = []string{ct}
		ok, text := Is(r)
		form, fok := parseWeb(ct)
		if ok != fok || text != form.text {
			t.Fatalf("Is %v %v, parseWeb %+v %v", ok, text, form, fok)
		}
		if !ok {
			return
		}
		for _, c := range form.codec {
			if c >= 'A' && c <= 'Z' || c > 0x7f || !h1.IsToken(string(c)) {
				t.Fatalf("codec %q", form.codec)
			}
		}
		back := webContentType(form.text, form.codec)
		if g, ok := parseWeb(back); !ok || g != form {
			t.Fatalf("%q parses to %+v; written back %q parses to %+v, %v", ct, form, back, g, ok)
		}
		if codec, ok := parseGRPC(grpcContentType(form.codec)); !ok || codec != form.codec {
			t.Fatalf("gRPC type for %+v parses to %q, %v", form, codec, ok)
		}
	})
}

// FuzzTrailerFrame feeds the answer whatever status, message and trailer
// an upstream could send, and parses the frame as a client does: its
// length is right, its first line is a numeric grpc-status, and every
// line is a lower-case token, ": ", and a value without CR or LF, so no
// upstream value can add a line of its own.
func FuzzTrailerFrame(f *testing.F) {
	f.Add("0", "ok", "X-Key", "value", false)
	f.Add("13", "a\r\nb", "Bad Key", "v\r\ngrpc-status: 0", true)
	f.Add("x", "", "", "", false)
	f.Fuzz(func(t *testing.T, status, message, key, value string, inHead bool) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Content-Type", "application/grpc-web")
		ww, _, finish := Translate(rec, r)
		h := ww.Header()
		h.Set("Content-Type", "application/grpc")
		if inHead {
			h["Grpc-Status"] = []string{status}
			h["Grpc-Message"] = []string{message}
		}
		ww.WriteHeader(200)
		if !inHead {
			h[http.TrailerPrefix+"Grpc-Status"] = []string{status}
			h[http.TrailerPrefix+"Grpc-Message"] = []string{message}
		}
		h[http.TrailerPrefix+key] = []string{value}
		finish()

		b := rec.Body.Bytes()
		if len(b) < 5 || b[0] != 0x80 || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5 {
			t.Fatalf("bad frame head: % x", b[:min(len(b), 5)])
		}
		payload := string(b[5:])
		if !strings.HasSuffix(payload, "\r\n") {
			t.Fatalf("payload %q does not end a line", payload)
		}
		lines := strings.Split(strings.TrimSuffix(payload, "\r\n"), "\r\n")
		for i, l := range lines {
			k, v, ok := strings.Cut(l, ": ")
			if !ok || !h1.IsToken(k) || strings.ToLower(k) != k || strings.ContainsAny(v, "\r\n") {
				t.Fatalf("line %d %q of %q", i, l, payload)
			}
			if i == 0 {
				if k != "grpc-status" {
					t.Fatalf("first line %q", l)
				}
				if _, ok := statusValue(v); !ok {
					t.Fatalf("status %q", v)
				}
			} else if k == "grpc-status" {
				t.Fatalf("a second grpc-status in %q", payload)
			}
		}
		if len(payload) > maxTrailerFrame+len("grpc-status: 0123456789\r\n") {
			t.Fatalf("payload of %d bytes", len(payload))
		}
	})
}
