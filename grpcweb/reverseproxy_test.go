package grpcweb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// These tests put Translate where the gateway does: an HTTP/1.1 client
// (a browser), a handler that translates and hands over to
// httputil.ReverseProxy, and an upstream speaking HTTP/2 without TLS, as
// gRPC servers do behind a gateway, sending real HTTP/2 trailers.

// h2cUpstream starts an upstream speaking HTTP/2 with prior knowledge.
func h2cUpstream(t *testing.T, h http.HandlerFunc) *url.URL {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	u, _ := url.Parse(s.URL)
	return u
}

// gateway starts the translating front for upstream.
func gateway(t *testing.T, upstream *url.URL) *httptest.Server {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(upstream) },
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := Is(r); !ok {
			http.Error(w, "not gRPC-Web", http.StatusUnsupportedMediaType)
			return
		}
		ww, out, finish := Translate(w, r)
		rp.ServeHTTP(ww, out)
		finish()
	}))
	t.Cleanup(s.Close)
	return s
}

// call sends a gRPC-Web request to the gateway, over HTTP/1.1.
func call(t *testing.T, ctx context.Context, gw *httptest.Server, ct string, body io.Reader) *http.Response {
	t.Helper()
	res, err := do(ctx, gw, ct, body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func do(ctx context.Context, gw *httptest.Server, ct string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", gw.URL+"/svc.S/M", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ct)
	if strings.Contains(ct, "-text") {
		req.Header.Set("Accept", "application/grpc-web-text")
	}
	req.Header.Set("X-Grpc-Web", "1")
	res, err := gw.Client().Do(req)
	if err != nil {
		return nil, err
	}
	if res.ProtoMajor != 1 {
		res.Body.Close()
		return nil, fmt.Errorf("client spoke HTTP/%d, want 1.1 as a browser's XHR may", res.ProtoMajor)
	}
	return res, nil
}

// readFrame reads one frame of a gRPC-Web body.
func readFrame(r io.Reader) (flag byte, payload []byte, err error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, binary.BigEndian.Uint32(head[1:]))
	_, err = io.ReadFull(r, payload)
	return head[0], payload, err
}

// grpcUpstream checks the request is gRPC, as a gRPC server would, and
// then runs answer.
func grpcUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, reqBody []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "application/grpc+proto" || r.Header.Get("Te") != "trailers" {
			t.Errorf("upstream got HTTP/%d, Content-Type %q, Te %q", r.ProtoMajor, r.Header.Get("Content-Type"), r.Header.Get("Te"))
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream reading the request: %v", err)
		}
		answer(w, r, b)
	}
}

func TestProxyUnary(t *testing.T) {
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text+proto"} {
		for _, announce := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/announced=%v", ct, announce), func(t *testing.T) {
				up := h2cUpstream(t, grpcUpstream(t, func(w http.ResponseWriter, r *http.Request, req []byte) {
					w.Header().Set("Content-Type", "application/grpc+proto")
					w.Header().Set("X-Head", "h")
					if announce {
						w.Header().Set("Trailer", "Grpc-Status, Grpc-Message, X-Trail")
					}
					w.WriteHeader(200)
					// Echo the request's message: it arrived as sent.
					w.Write(req)
					if announce {
						w.Header().Set("Grpc-Status", "0")
						w.Header().Set("Grpc-Message", "done")
						w.Header().Set("X-Trail", "t")
					} else {
						w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
						w.Header().Set(http.TrailerPrefix+"Grpc-Message", "done")
						w.Header().Set(http.TrailerPrefix+"X-Trail", "t")
					}
				}))
				gw := gateway(t, up)
				var reqBody io.Reader = bytes.NewReader(msg("ping"))
				if strings.Contains(ct, "-text") {
					reqBody = strings.NewReader(base64.StdEncoding.EncodeToString(msg("ping")))
				}
				res := call(t, t.Context(), gw, ct, reqBody)
				b, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				checkHead(t, res, ct)
				if res.Header.Get("X-Head") != "h" {
					t.Error("header metadata lost")
				}
				if strings.Contains(ct, "-text") {
					b = segments(t, string(b))
				}
				want := cat(msg("ping"), trailers("grpc-status: 0", "grpc-message: done", "x-trail: t"))
				if !bytes.Equal(b, want) {
					t.Errorf("body\n got %q\nwant %q", b, want)
				}
			})
		}
	}
}

// TestProxyServerStreaming checks each message reaches the client before
// the upstream sends the next: the flushes go all the way.
func TestProxyServerStreaming(t *testing.T) {
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text+proto"} {
		t.Run(ct, func(t *testing.T) {
			const n = 4
			next := make(chan struct{})
			up := h2cUpstream(t, grpcUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				w.Header().Set("Content-Type", "application/grpc+proto")
				w.WriteHeader(200)
				for i := range n {
					w.Write(msg(fmt.Sprintf("message %d of %d", i, n)))
					w.(http.Flusher).Flush()
					select {
					case <-next: // the client has it
					case <-r.Context().Done():
						return
					}
				}
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			}))
			gw := gateway(t, up)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var req io.Reader = bytes.NewReader(msg("subscribe"))
			if strings.Contains(ct, "-text") {
				req = strings.NewReader(base64.StdEncoding.EncodeToString(msg("subscribe")))
			}
			res := call(t, ctx, gw, ct, req)
			checkHead(t, res, ct)
			var body io.Reader = res.Body
			if strings.Contains(ct, "-text") {
				// The client decodes as the text comes: each flush must
				// have left whole quanta.
				body = newDecoder(res.Body)
			}
			for i := range n {
				flag, p, err := readFrame(body)
				if err != nil {
					t.Fatalf("message %d: %v (was it flushed?)", i, err)
				}
				if want := fmt.Sprintf("message %d of %d", i, n); flag != 0 || string(p) != want {
					t.Fatalf("frame %d = %#x %q, want a message %q", i, flag, p, want)
				}
				next <- struct{}{}
			}
			flag, p, err := readFrame(body)
			if err != nil || flag != 0x80 || string(p) != "grpc-status: 0\r\n" {
				t.Fatalf("last frame %#x %q, %v; want the trailers", flag, p, err)
			}
			if rest, err := io.ReadAll(body); len(rest) != 0 || err != nil {
				t.Errorf("after the trailer frame: %q, %v", rest, err)
			}
			if len(res.Trailer) != 0 {
				t.Errorf("HTTP trailers: %v", res.Trailer)
			}
		})
	}
}

func TestProxyTrailersOnly(t *testing.T) {
	up := h2cUpstream(t, grpcUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		// As a gRPC server answers an immediate error: one HEADERS frame.
		w.Header().Set("Content-Type", "application/grpc+proto")
		w.Header().Set("Grpc-Status", "7")
		w.Header().Set("Grpc-Message", "not yours")
		w.WriteHeader(200)
	}))
	gw := gateway(t, up)
	res := call(t, t.Context(), gw, "application/grpc-web+proto", bytes.NewReader(msg("x")))
	b, _ := io.ReadAll(res.Body)
	checkHead(t, res, "application/grpc-web+proto")
	if want := trailers("grpc-status: 7", "grpc-message: not yours"); !bytes.Equal(b, want) {
		t.Errorf("body\n got %q\nwant %q", b, want)
	}
}

func TestProxyNotGRPC(t *testing.T) {
	up := h2cUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance until 10:00", http.StatusServiceUnavailable)
	})
	gw := gateway(t, up)
	res := call(t, t.Context(), gw, "application/grpc-web-text", strings.NewReader(base64.StdEncoding.EncodeToString(msg("x"))))
	b, _ := io.ReadAll(res.Body)
	checkHead(t, res, "application/grpc-web-text")
	if got, want := segments(t, string(b)), trailers("grpc-status: 14", "grpc-message: maintenance until 10:00"); !bytes.Equal(got, want) {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	gw := gateway(t, &url.URL{Scheme: "http", Host: "127.0.0.1:1"}) // nothing listens there
	res := call(t, t.Context(), gw, "application/grpc-web+proto", bytes.NewReader(msg("x")))
	b, _ := io.ReadAll(res.Body)
	checkHead(t, res, "application/grpc-web+proto")
	// ReverseProxy's default error handler answers 502 with no body.
	if want := trailers("grpc-status: 14", "grpc-message: not a gRPC answer: HTTP 502 Bad Gateway"); !bytes.Equal(b, want) {
		t.Errorf("body\n got %q\nwant %q", b, want)
	}
}

// TestProxyTextRequestStreamed sends a text body in pieces cut at awkward
// places, padded segments among them, while the upstream reads it: the
// decoded bytes reach the upstream as the pieces arrive.
func TestProxyTextRequestStreamed(t *testing.T) {
	got := make(chan []byte, 16)
	up := h2cUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				got <- bytes.Clone(buf[:n])
			}
			if err != nil {
				break
			}
		}
		close(got)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
	})
	gw := gateway(t, up)
	pr, pw := io.Pipe()
	type result struct {
		res *http.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := do(t.Context(), gw, "application/grpc-web-text", pr)
		if err == nil {
			io.ReadAll(res.Body)
			res.Body.Close()
		}
		done <- result{res, err}
	}()
	m1, m2 := msg("first"), msg("second!")
	pieces := []string{
		base64.StdEncoding.EncodeToString(m1)[:3], // inside a quantum
		base64.StdEncoding.EncodeToString(m1)[3:], // the rest, padded: a segment ends
		base64.StdEncoding.EncodeToString(m2[:4]), // a padded segment
		base64.StdEncoding.EncodeToString(m2[4:]),
	}
	var want, have []byte
	timeout := time.After(10 * time.Second)
	for i, p := range pieces {
		if _, err := io.WriteString(pw, p); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 1:
			want = m1
		case 3:
			want = cat(m1, m2)
		default:
			continue
		}
		for len(have) < len(want) {
			select {
			case b := <-got:
				have = append(have, b...)
			case <-timeout:
				t.Fatalf("after piece %d the upstream has %q, want %q", i, have, want)
			}
		}
		if !bytes.Equal(have, want) {
			t.Fatalf("after piece %d the upstream has %q, want %q", i, have, want)
		}
	}
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if ct := r.res.Header.Get("Content-Type"); ct != "application/grpc-web-text" {
		t.Errorf("Content-Type %q", ct)
	}
}
