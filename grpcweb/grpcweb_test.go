package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// msg is a gRPC message frame holding payload.
func msg(payload string) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// trailers is a trailer frame holding lines, written here by hand as the
// spec has it, not with the code under test.
func trailers(lines ...string) []byte {
	var payload string
	for _, l := range lines {
		payload += l + "\r\n"
	}
	b := []byte{0x80, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// segments decodes a text answer as a client must: padded base64 segments
// one after another, each quantum on its own.
func segments(t *testing.T, s string) []byte {
	t.Helper()
	b, err := refDecode(s)
	if err != nil {
		t.Fatalf("answer is not padded base64 segments: %v\n%q", err, s)
	}
	return b
}

// refDecode is the plain reading of a text body: drop line breaks, then
// decode quantum by quantum with the standard library, each quantum as
// the last of a text, which is where StdEncoding allows padding.
func refDecode(s string) ([]byte, error) {
	s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
	if len(s)%4 != 0 {
		return nil, errors.New("not a whole number of quanta")
	}
	var out []byte
	for i := 0; i < len(s); i += 4 {
		q, err := base64.StdEncoding.DecodeString(s[i : i+4])
		if err != nil {
			return nil, err
		}
		out = append(out, q...)
	}
	return out, nil
}

func TestIs(t *testing.T) {
	check := func(ct string, ok, text bool) {
		t.Helper()
		r := httptest.NewRequest("POST", "/svc.S/M", nil)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if gotOK, gotText := Is(r); gotOK != ok || gotText != text {
			t.Errorf("Is(%q) = %v, %v; want %v, %v", ct, gotOK, gotText, ok, text)
		}
	}
	check("application/grpc-web", true, false)
	check("application/grpc-web+proto", true, false)
	check("application/grpc-web+json", true, false)
	check("application/grpc-web-text", true, true)
	check("application/grpc-web-text+proto", true, true)
	check("Application/GRPC-Web-Text+Proto", true, true)
	check("application/grpc-web+proto; charset=utf-8", true, false)
	check(" application/grpc-web ", true, false)
	check("application/grpc", false, false)
	check("application/grpc+proto", false, false)
	check("application/grpc-web+", false, false)
	check("application/grpc-web+pro to", false, false)
	check("application/grpc-web-text-base64", false, false)
	check("application/grpc-webx", false, false)
	check("application/grpc-web-textx", false, false)
	check("application/json", false, false)
	check("", false, false)
}

func TestStatusFromHTTP(t *testing.T) {
	// doc/http-grpc-status-mapping.md, row by row.
	want := map[int]int{
		400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 431: 13, 502: 14, 503: 14, 504: 14,
		200: 2, 204: 2, 301: 2, 405: 2, 413: 2, 499: 2, 500: 2, 0: 2,
	}
	for code, status := range want {
		if got := StatusFromHTTP(code); got != status {
			t.Errorf("StatusFromHTTP(%d) = %d, want %d", code, got, status)
		}
	}
}

func TestTranslateRequestBinary(t *testing.T) {
	body := cat(msg("hello"))
	r := httptest.NewRequest("POST", "/svc.S/M", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/grpc-web+proto")
	r.Header.Set("Accept-Encoding", "gzip, br")
	r.Header.Set("X-Grpc-Web", "1")
	r.Header.Set("Grpc-Timeout", "5S")
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", fmt.Sprint(len(body)))

	_, out, _ := Translate(httptest.NewRecorder(), r)
	if out == r {
		t.Fatal("out is r; r must stay as it is")
	}
	for k, want := range map[string]string{
		"Content-Type":    "application/grpc+proto",
		"Te":              "trailers",
		"Accept-Encoding": "",
		"X-Grpc-Web":      "1",
		"Grpc-Timeout":    "5S",
		"Content-Length":  fmt.Sprint(len(body)),
	} {
		if got := out.Header.Get(k); got != want {
			t.Errorf("out %s = %q, want %q", k, got, want)
		}
	}
	if out.ContentLength != int64(len(body)) {
		t.Errorf("out.ContentLength = %d, want %d (the binary body does not change)", out.ContentLength, len(body))
	}
	if got := r.Header.Get("Content-Type"); got != "application/grpc-web+proto" {
		t.Errorf("r's Content-Type changed to %q", got)
	}
	if r.Header.Get("Accept-Encoding") == "" || r.Header.Get("Te") != "" {
		t.Errorf("r's header changed: %v", r.Header)
	}
	got, _ := io.ReadAll(out.Body)
	if !bytes.Equal(got, body) {
		t.Errorf("body = %q, want %q", got, body)
	}
	// A later Add must not write into the writer's arrays.
	out.Header.Add("Te", "x")
	out.Header.Add("Content-Type", "y")
	if _, out2, _ := Translate(httptest.NewRecorder(), r); out2.Header.Get("Te") != "trailers" {
		t.Error("second translation sees the first one's header")
	}
}

func TestTranslateRequestText(t *testing.T) {
	want := cat(msg("abc"), msg(""), msg("hello, world"))
	// Two padded segments, as a client that flushes may send.
	text := base64.StdEncoding.EncodeToString(want[:7]) + base64.StdEncoding.EncodeToString(want[7:])
	if !strings.Contains(text[:len(text)-4], "=") {
		t.Fatalf("test input %q has no padding inside", text)
	}
	r := httptest.NewRequest("POST", "/svc.S/M", strings.NewReader(text))
	r.Header.Set("Content-Type", "application/grpc-web-text")
	r.Header.Set("Accept", "application/grpc-web-text")
	r.Header.Set("Content-Length", fmt.Sprint(len(text)))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(text)), nil }

	_, out, _ := Translate(httptest.NewRecorder(), r)
	if got := out.Header.Get("Content-Type"); got != "application/grpc" {
		t.Errorf("Content-Type = %q, want application/grpc", got)
	}
	if _, ok := out.Header["Content-Length"]; ok || out.ContentLength != -1 {
		t.Errorf("Content-Length %q, ContentLength %d: want none and -1", out.Header.Get("Content-Length"), out.ContentLength)
	}
	if out.GetBody != nil {
		t.Error("GetBody kept: it would give the base64 body again")
	}
	got, err := io.ReadAll(out.Body)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("body = %q, %v; want %q", got, err, want)
	}
}

func TestTranslateNotGRPCWeb(t *testing.T) {
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", "application/grpc")
	w := httptest.NewRecorder()
	ww, out, finish := Translate(w, r)
	if ww != http.ResponseWriter(w) || out != r {
		t.Fatal("a request that is not gRPC-Web was changed")
	}
	finish()
	if w.Body.Len() != 0 || w.Flushed {
		t.Error("finish of a request that is not gRPC-Web wrote")
	}
}

// answer runs an upstream's answer, as ReverseProxy hands it on, through
// Translate for a request with content type ct (and Accept accept), and
// returns what the client got.
func answer(t *testing.T, ct, accept string, upstream func(w http.ResponseWriter)) *http.Response {
	t.Helper()
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", ct)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	ww, _, finish := Translate(rec, r)
	upstream(ww)
	finish()
	finish() // a second call does nothing
	return rec.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkHead checks what every answer's head must be: 200, the gRPC-Web
// content type, no length, no status fields, no trailers.
func checkHead(t *testing.T, res *http.Response, ct string) {
	t.Helper()
	if res.StatusCode != 200 {
		t.Errorf("status %d, want 200", res.StatusCode)
	}
	if got := res.Header.Get("Content-Type"); got != ct {
		t.Errorf("Content-Type %q, want %q", got, ct)
	}
	for _, k := range []string{"Content-Length", "Trailer", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("head has %s: %q", k, v)
		}
	}
	if len(res.Trailer) != 0 {
		t.Errorf("HTTP trailers sent: %v", res.Trailer)
	}
}

func TestAnswerTrailerPrefix(t *testing.T) {
	res := answer(t, "application/grpc-web+proto", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc+proto")
		w.Header().Set("X-Meta", "head")
		w.WriteHeader(200)
		w.Write(msg("reply"))
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "")
		w.Header().Add(http.TrailerPrefix+"X-Trail", "b")
		w.Header().Add(http.TrailerPrefix+"X-Trail", "a")
		w.Header().Set(http.TrailerPrefix+"A-First", "1")
	})
	checkHead(t, res, "application/grpc-web+proto")
	if res.Header.Get("X-Meta") != "head" {
		t.Error("header metadata lost")
	}
	want := cat(msg("reply"), trailers("grpc-status: 0", "a-first: 1", "x-trail: b", "x-trail: a"))
	if got := body(t, res); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestAnswerAnnouncedTrailers(t *testing.T) {
	res := answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("X-Both", "in head")
		h.Add("Trailer", "Grpc-Status, Grpc-Message")
		h.Add("Trailer", "x-both")
		w.WriteHeader(200)
		w.Write(msg("one"))
		w.Write(msg("two"))
		h.Set("Grpc-Status", "3")
		h.Set("Grpc-Message", "bad%20argument")
		h.Add("X-Both", "in trailer")
	})
	checkHead(t, res, "application/grpc-web")
	if got := res.Header.Values("X-Both"); !slices.Equal(got, []string{"in head"}) {
		t.Errorf("X-Both in head = %q, want only the head's value", got)
	}
	want := cat(msg("one"), msg("two"), trailers("grpc-status: 3", "grpc-message: bad%20argument", "x-both: in trailer"))
	if got := body(t, res); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestAnswerTrailersOnly(t *testing.T) {
	res := answer(t, "application/grpc-web+proto", "", func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Type", "application/grpc+proto")
		h.Set("Grpc-Status", "5")
		h.Set("Grpc-Message", "no such thing")
		h.Set("Grpc-Status-Details-Bin", "CAUSBm5vIHN1Y2g")
		h.Set("X-Meta", "kept")
		w.WriteHeader(200)
	})
	checkHead(t, res, "application/grpc-web+proto")
	if res.Header.Get("X-Meta") != "kept" {
		t.Error("metadata lost")
	}
	want := trailers("grpc-status: 5", "grpc-message: no such thing", "grpc-status-details-bin: CAUSBm5vIHN1Y2g")
	if got := body(t, res); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestAnswerNotGRPC(t *testing.T) {
	check := func(name string, upstream func(w http.ResponseWriter), lines ...string) {
		t.Helper()
		res := answer(t, "application/grpc-web+proto", "", upstream)
		checkHead(t, res, "application/grpc-web+proto")
		for _, k := range []string{"Content-Encoding", "Etag"} {
			if v := res.Header.Get(k); v != "" {
				t.Errorf("%s: %s of a body the client does not get: %q", name, k, v)
			}
		}
		if got, want := body(t, res), trailers(lines...); !bytes.Equal(got, want) {
			t.Errorf("%s: body\n got %q\nwant %q", name, got, want)
		}
	}
	plain := func(code int, text string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Content-Length", fmt.Sprint(len(text)))
			w.WriteHeader(code)
			io.WriteString(w, text)
		}
	}
	check("503", plain(503, "upstream overloaded\n"), "grpc-status: 14", "grpc-message: upstream overloaded")
	check("401", plain(401, "who are you? 100%"), "grpc-status: 16", "grpc-message: who are you? 100%25")
	check("utf-8", plain(403, "interdit: accès refusé"), "grpc-status: 7", "grpc-message: interdit: acc%C3%A8s refus%C3%A9")
	check("empty body", plain(502, ""), "grpc-status: 14", "grpc-message: not a gRPC answer: HTTP 502 Bad Gateway")
	long := strings.Repeat("x", 600) + "é"
	check("long", plain(500, long), "grpc-status: 2", "grpc-message: "+strings.Repeat("x", maxMessage))
	check("cut rune", plain(500, strings.Repeat("x", maxMessage-1)+"é"), "grpc-status: 2", "grpc-message: "+strings.Repeat("x", maxMessage-1))
	check("html", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(404)
		w.Write([]byte("\x1f\x8b not text"))
	}, "grpc-status: 12", "grpc-message: not a gRPC answer: HTTP 404 Not Found")
	check("200 not gRPC", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}, "grpc-status: 2", "grpc-message: not a gRPC answer: HTTP 200 OK")
	check("gRPC content type, 503", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(503)
		w.Write(msg("not to be passed on"))
	}, "grpc-status: 14", "grpc-message: not a gRPC answer: HTTP 503 Service Unavailable")
	// grpc-status given must be used, whatever the HTTP status.
	check("status in an error's head", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Grpc-Status", "8")
		w.WriteHeader(429)
		io.WriteString(w, "slow down")
	}, "grpc-status: 8")
	check("nothing written", func(w http.ResponseWriter) {}, "grpc-status: 2", "grpc-message: not a gRPC answer: HTTP 200 OK")
}

func TestAnswerMissingOrBadStatus(t *testing.T) {
	check := func(status string, lines ...string) {
		t.Helper()
		res := answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Write(msg("m"))
			if status != "" {
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", status)
			}
		})
		if got, want := body(t, res), cat(msg("m"), trailers(lines...)); !bytes.Equal(got, want) {
			t.Errorf("grpc-status %q: body\n got %q\nwant %q", status, got, want)
		}
	}
	check("", "grpc-status: 2", "grpc-message: no grpc-status in the upstream's answer")
	check("OK", "grpc-status: 2", "grpc-message: malformed grpc-status in the upstream's answer")
	check("0\r\ngrpc-status: 7", "grpc-status: 2", "grpc-message: malformed grpc-status in the upstream's answer")
	check("12345678901", "grpc-status: 2", "grpc-message: malformed grpc-status in the upstream's answer")
	check("14", "grpc-status: 14")
}

func TestAnswerUnsafeTrailers(t *testing.T) {
	res := answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		h := w.Header()
		h.Set(http.TrailerPrefix+"Grpc-Status", "13")
		h.Set(http.TrailerPrefix+"Grpc-Message", "line one\r\ngrpc-status: 0\x00 50%")
		h.Set(http.TrailerPrefix+"X-Injected", "v\r\ngrpc-status: 0")
		h.Set(http.TrailerPrefix+"X-Lf", "v\n")
		h.Set(http.TrailerPrefix+"X-Del", "v\x7f")
		h.Set(http.TrailerPrefix+"X-Tab", "a\tb")
		h.Set(http.TrailerPrefix+"X-Utf8", "é")
		h[http.TrailerPrefix+"Bad Key"] = []string{"v"}
		h[http.TrailerPrefix+"Bad:Key"] = []string{"v"}
		h[http.TrailerPrefix+""] = []string{"v"}
	})
	want := trailers("grpc-status: 13", "grpc-message: line one%0D%0Agrpc-status: 0%00 50%", "x-tab: a\tb", "x-utf8: é")
	if got := body(t, res); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestAnswerTrailerFrameBound(t *testing.T) {
	big := strings.Repeat("v", maxTrailerFrame/2)
	res := answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		h := w.Header()
		h.Set(http.TrailerPrefix+"Grpc-Status", "0")
		h.Set(http.TrailerPrefix+"A", big)
		h.Set(http.TrailerPrefix+"B", big)
		h.Set(http.TrailerPrefix+"C", "small")
	})
	b := body(t, res)
	if len(b) > 5+len("grpc-status: 0\r\n")+maxTrailerFrame {
		t.Errorf("trailer frame of %d bytes, bound %d", len(b), maxTrailerFrame)
	}
	want := trailers("grpc-status: 0", "a: "+big, "c: small")
	if !bytes.Equal(b, want) {
		t.Errorf("frame is %d bytes, want %d: the first big field and the small one", len(b), len(want))
	}
	res = answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "13")
		w.Header().Set("Grpc-Message", strings.Repeat("m", maxTrailerFrame))
		w.WriteHeader(200)
	})
	if got, want := body(t, res), trailers("grpc-status: 13"); !bytes.Equal(got, want) {
		t.Errorf("oversized message: got %d bytes, want the status alone", len(got))
	}
}

// TestTrailerFrameBytes pins the frame byte for byte: flag 0x80, the
// payload's length big-endian, the lines.
func TestTrailerFrameBytes(t *testing.T) {
	res := answer(t, "application/grpc-web+proto", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "OK")
	})
	want := []byte("\x80\x00\x00\x00\x22grpc-status: 0\r\ngrpc-message: OK\r\n")
	if got := body(t, res); !bytes.Equal(got, want) {
		t.Errorf("frame\n got % x\nwant % x", got, want)
	}
}

func TestAnswerCodec(t *testing.T) {
	check := func(reqCT, accept, upstreamCT, want string) {
		t.Helper()
		res := answer(t, reqCT, accept, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", upstreamCT)
			w.Header().Set("Grpc-Status", "0")
		})
		if got := res.Header.Get("Content-Type"); got != want {
			t.Errorf("request %q, accept %q, upstream %q: Content-Type %q, want %q", reqCT, accept, upstreamCT, got, want)
		}
	}
	check("application/grpc-web", "", "application/grpc", "application/grpc-web")
	check("application/grpc-web+proto", "", "application/grpc", "application/grpc-web+proto")
	check("application/grpc-web", "", "application/grpc+proto", "application/grpc-web+proto")
	check("application/grpc-web+json", "", "application/grpc+json", "application/grpc-web+json")
	check("application/grpc-web+thrift", "", "application/grpc+Thrift", "application/grpc-web+thrift")
	check("application/grpc-web+proto", "", "text/plain", "application/grpc-web+proto")
	check("application/grpc-web-text", "application/grpc-web-text", "application/grpc+proto", "application/grpc-web-text+proto")
	check("application/grpc-web-text", "", "application/grpc", "application/grpc-web-text")
	check("application/grpc-web+proto", "application/grpc-web-text+proto;q=1", "application/grpc", "application/grpc-web-text+proto")
	check("application/grpc-web+proto", "text/html, application/grpc-web-text", "application/grpc", "application/grpc-web-text+proto")
	check("application/grpc-web+proto", "application/grpc-web", "application/grpc", "application/grpc-web+proto")
}

func TestAnswerInterim(t *testing.T) {
	res := answer(t, "application/grpc-web", "", func(w http.ResponseWriter) {
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(103)
		clear(w.Header()) // as ReverseProxy does after an interim answer
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.WriteHeader(500) // superfluous: ignored
		w.Write(msg("m"))
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})
	checkHead(t, res, "application/grpc-web")
	if got, want := body(t, res), cat(msg("m"), trailers("grpc-status: 0")); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestWriteAfterFinish(t *testing.T) {
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", "application/grpc-web")
	ww, _, finish := Translate(httptest.NewRecorder(), r)
	finish()
	if _, err := ww.Write([]byte("late")); !errors.Is(err, errFinished) {
		t.Errorf("Write after finish: %v", err)
	}
}

// flushRecorder records what reached the client at each flush.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushed []int // body length at each flush
}

func (f *flushRecorder) Flush() {
	f.ResponseRecorder.Flush()
	f.flushed = append(f.flushed, f.Body.Len())
}

func TestTextAnswerStreaming(t *testing.T) {
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", "application/grpc-web-text")
	r.Header.Set("Accept", "application/grpc-web-text")
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	ww, _, finish := Translate(rec, r)

	ww.Header().Set("Content-Type", "application/grpc+proto")
	ww.WriteHeader(200)
	var sent []byte
	for i, n := range []int{1, 2, 3, 4, 5, 7, 8, 300} {
		m := msg(strings.Repeat(string(rune('a'+i)), n))
		// Split so that writes end inside a 3-byte group.
		ww.Write(m[:1])
		ww.Write(m[1:])
		sent = append(sent, m...)
		if i%2 == 1 {
			if err := http.NewResponseController(ww).Flush(); err != nil {
				t.Fatal(err)
			}
			// All of what was sent so far can be decoded by the client.
			got := rec.Body.String()
			if len(got)%4 != 0 {
				t.Fatalf("flush %d left %d characters, not whole quanta", i, len(got))
			}
			if dec := segments(t, got); !bytes.Equal(dec, sent) {
				t.Fatalf("after flush %d the client has %q, want %q", i, dec, sent)
			}
		}
	}
	ww.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	finish()
	res := rec.Result()
	checkHead(t, res, "application/grpc-web-text+proto")
	if want := cat(sent, trailers("grpc-status: 0")); !bytes.Equal(segments(t, rec.Body.String()), want) {
		t.Error("decoded answer differs from what was sent")
	}
	if len(rec.flushed) != 5 || rec.flushed[4] != rec.Body.Len() {
		t.Errorf("flushes at %v of %d bytes: want 4 and a last one at the end", rec.flushed, rec.Body.Len())
	}
}

// TestTextAnswerUnflushed: without flushes, the answer is one base64 text,
// padded only at its end.
func TestTextAnswerUnflushed(t *testing.T) {
	res := answer(t, "application/grpc-web-text", "", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.Write(msg("a"))
		w.Write(msg("bc"))
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})
	checkHead(t, res, "application/grpc-web-text")
	want := base64.StdEncoding.EncodeToString(cat(msg("a"), msg("bc"), trailers("grpc-status: 0")))
	if got := string(body(t, res)); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestTextAnswerNotGRPC(t *testing.T) {
	res := answer(t, "application/grpc-web-text", "application/grpc-web-text", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(503)
		io.WriteString(w, "no ready endpoints\n")
	})
	checkHead(t, res, "application/grpc-web-text")
	want := trailers("grpc-status: 14", "grpc-message: no ready endpoints")
	if got := segments(t, string(body(t, res))); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestResponseController(t *testing.T) {
	r := httptest.NewRequest("POST", "/svc.S/M", nil)
	r.Header.Set("Content-Type", "application/grpc-web")
	rec := httptest.NewRecorder()
	ww, _, _ := Translate(rec, r)
	rc := http.NewResponseController(ww)
	if err := rc.Flush(); err != nil || rec.Flushed {
		t.Errorf("flush before the head: %v, flushed %v; want nothing done", err, rec.Flushed)
	}
	ww.Header().Set("Content-Type", "application/grpc")
	ww.WriteHeader(200)
	if err := rc.Flush(); err != nil || !rec.Flushed {
		t.Errorf("Flush: %v, flushed %v", err, rec.Flushed)
	}
	// Reached through Unwrap: the recorder has no deadlines.
	if err := rc.SetWriteDeadline(time.Time{}); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("SetWriteDeadline: %v, want the recorder's ErrNotSupported", err)
	}
	if _, ok := ww.(http.Flusher); !ok {
		t.Error("not an http.Flusher")
	}
}
