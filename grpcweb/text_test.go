package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// source is a request body handing out its text in the pieces given, and
// recording the largest read it was asked for.
type source struct {
	pieces  []string
	maxRead int
	err     error // returned after the pieces; nil means io.EOF
}

func (s *source) Read(p []byte) (int, error) {
	s.maxRead = max(s.maxRead, len(p))
	for len(s.pieces) > 0 && s.pieces[0] == "" {
		s.pieces = s.pieces[1:]
	}
	if len(s.pieces) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	n := copy(p, s.pieces[0])
	s.pieces[0] = s.pieces[0][n:]
	return n, nil
}

func (s *source) Close() error { return nil }

// decodeAll reads d with reads of size psize.
func decodeAll(d io.Reader, psize int) ([]byte, error) {
	var out []byte
	p := make([]byte, psize)
	for {
		n, err := d.Read(p)
		if n > len(p) {
			panic("read more than asked")
		}
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestDecoder(t *testing.T) {
	check := func(in, want string) {
		t.Helper()
		for _, psize := range []int{1, 2, 3, 4, 5, 512, 8192} {
			got, err := decodeAll(newDecoder(&source{pieces: []string{in}}), psize)
			if err != nil || string(got) != want {
				t.Errorf("decode %q (reads of %d) = %q, %v; want %q", in, psize, got, err, want)
			}
		}
	}
	check("", "")
	check("YWJj", "abc")
	check("YQ==", "a")
	check("YWI=", "ab")
	check("YQ==YQ==", "aa")                // padded segments one after another
	check("YWI=YWJjYQ==YWJj", "ababcaabc") // segments of different lengths
	check("YW\r\nJj\nYQ=\r\n=", "abca")    // line breaks anywhere, as encoding/base64 allows
	check("YR==", "a")                     // non-zero trailing bits: StdEncoding is not Strict
	check(strings.Repeat("YWJj", 5000)+"YQ==", strings.Repeat("abc", 5000)+"a")

	bad := func(in string) {
		t.Helper()
		for _, psize := range []int{1, 4096} {
			_, err := decodeAll(newDecoder(&source{pieces: []string{in}}), psize)
			if !errors.Is(err, ErrInvalidText) {
				t.Errorf("decode %q (reads of %d): %v, want ErrInvalidText", in, psize, err)
			}
		}
	}
	bad("YWJ")            // ends inside a quantum
	bad("YQ")             // unpadded end: padding is mandatory (Envoy's filter says so too)
	bad("YQ=")            // half the padding
	bad("Y===")           // too much padding
	bad("=YWJ")           // padding first
	bad("YQ=j")           // padding inside
	bad("YW!j")           // not the alphabet
	bad("YW-_")           // the URL alphabet is not base64 here
	bad("YWJj YWJj")      // spaces are not skipped: encoding/base64 does not skip them
	bad("YWJjYQ==Y")      // a segment then a stray character
	bad("YWJjYQ==\r\nYQ") // the same after a line break
}

func TestDecoderTrailingLineBreak(t *testing.T) {
	// Line breaks are skipped wherever they are, the end included.
	got, err := decodeAll(newDecoder(&source{pieces: []string{"YWJjYQ==\r\n"}}), 16)
	if err != nil || string(got) != "abca" {
		t.Errorf("got %q, %v", got, err)
	}
}

// TestDecoderSplits cuts a text at every place, and one byte at a time:
// what comes out never depends on how the text arrives.
func TestDecoderSplits(t *testing.T) {
	want := cat(msg("hello"), msg(""), msg("a message long enough to cross a quantum or two"), trailers("k: v"))
	var text string
	for _, seg := range [][]byte{want[:1], want[1:5], want[5:6], want[6:20], want[20:]} {
		text += base64.StdEncoding.EncodeToString(seg)
	}
	text = text[:10] + "\r\n" + text[10:]
	for i := 0; i <= len(text); i++ {
		for _, psize := range []int{1, 3, 7, 64} {
			got, err := decodeAll(newDecoder(&source{pieces: []string{text[:i], text[i:]}}), psize)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("split at %d, reads of %d: %q, %v", i, psize, got, err)
			}
		}
	}
	r := io.NopCloser(iotest.OneByteReader(strings.NewReader(text)))
	if got, err := decodeAll(newDecoder(r), 5); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("one byte at a time: %q, %v", got, err)
	}
	if err := iotest.TestReader(newDecoder(io.NopCloser(strings.NewReader(text))), want); err != nil {
		t.Error(err)
	}
}

// TestDecoderDoesNotWait: a Read returns what the text so far decodes to,
// without waiting for more, so a client's streamed messages go on.
func TestDecoderDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	d := newDecoder(pr)
	go io.WriteString(pw, "YWJjZA==") // "abcd", then the client waits
	got, err := io.ReadAtLeast(d, make([]byte, 64), 4)
	if err != nil || got != 4 {
		t.Fatalf("got %d bytes, %v", got, err)
	}
	// The next quantum split over two writes: nothing until it is whole.
	go func() {
		io.WriteString(pw, "Z")
		io.WriteString(pw, "mg=")
		pw.Close()
	}()
	b, err := io.ReadAll(d)
	if err != nil || string(b) != "fh" {
		t.Errorf("rest %q, %v; want fh", b, err)
	}
}

func TestDecoderErrors(t *testing.T) {
	// The client's body breaking is passed on as it is: the caller judges
	// it (a client gone, a body limit), not as bad base64.
	broken := errors.New("connection reset")
	d := newDecoder(&source{pieces: []string{"YWJj", "YW"}, err: broken})
	got, err := decodeAll(d, 64)
	if !errors.Is(err, broken) || errors.Is(err, ErrInvalidText) || string(got) != "abc" {
		t.Errorf("got %q, %v; want abc and the source's error", got, err)
	}
	// Errors are sticky.
	d = newDecoder(&source{pieces: []string{"YWJj!!!!YWJj"}})
	got, err = decodeAll(d, 64)
	if !errors.Is(err, ErrInvalidText) || string(got) != "abc" {
		t.Errorf("got %q, %v; want abc and ErrInvalidText", got, err)
	}
	if n, err2 := d.Read(make([]byte, 8)); n != 0 || err2 != err {
		t.Errorf("read after the error: %d, %v", n, err2)
	}
	if !strings.Contains(err.Error(), "byte 4") {
		t.Errorf("error %q does not say where", err)
	}
	// A reader that never makes progress is not waited on for ever.
	d = newDecoder(io.NopCloser(zeroReader{}))
	if _, err := d.Read(make([]byte, 8)); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("broken reader: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestDecoderBounded: whatever the body's length, the decoder asks its
// source for at most its buffer, and its memory is its struct.
func TestDecoderBounded(t *testing.T) {
	src := &source{pieces: []string{strings.Repeat("QUJD", 100_000)}}
	d := newDecoder(src)
	n, err := io.Copy(io.Discard, struct{ io.Reader }{d})
	if err != nil || n != 300_000 {
		t.Fatalf("decoded %d, %v", n, err)
	}
	if src.maxRead > decodeBuffer {
		t.Errorf("asked the source for %d bytes at once, more than its %d-byte buffer", src.maxRead, decodeBuffer)
	}
	allocs := testing.AllocsPerRun(10, func() {
		src := &source{pieces: []string{strings.Repeat("QUJD", 10_000)}}
		d := newDecoder(src)
		p := make([]byte, 1024)
		for {
			if _, err := d.Read(p); err != nil {
				break
			}
		}
	})
	if allocs > 5 {
		t.Errorf("%v allocations decoding 40 kB: reads must not allocate", allocs)
	}
}

// TestEncoder writes in random pieces with random flushes: the text is
// padded segments that decode to what was written, one base64 text
// between flushes, and whole quanta at every flush.
func TestEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var e encoder
		var out bytes.Buffer
		var in []byte
		var seg []byte // written since the last flush
		segStart := 0
		for range rng.IntN(20) {
			p := make([]byte, rng.IntN(3000))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if err := e.write(&out, p); err != nil {
				t.Fatal(err)
			}
			in = append(in, p...)
			seg = append(seg, p...)
			if rng.IntN(3) == 0 {
				if err := e.pad(&out); err != nil {
					t.Fatal(err)
				}
				if got, want := out.String()[segStart:], base64.StdEncoding.EncodeToString(seg); got != want {
					t.Fatalf("segment %q, want %q", got, want)
				}
				segStart, seg = out.Len(), nil
			}
		}
		e.pad(&out)
		if got, want := out.String()[segStart:], base64.StdEncoding.EncodeToString(seg); got != want {
			t.Fatalf("last segment %q, want %q", got, want)
		}
		if got, err := refDecode(out.String()); err != nil || !bytes.Equal(got, in) {
			t.Fatalf("decoded %d bytes, %v; wrote %d", len(got), err, len(in))
		}
	}
}

func TestEncoderWriteError(t *testing.T) {
	var e encoder
	broken := errors.New("client gone")
	if err := e.write(errWriter{broken}, []byte("abcdef")); !errors.Is(err, broken) {
		t.Errorf("write: %v", err)
	}
	e.write(errWriter{broken}, []byte("a"))
	if err := e.pad(errWriter{broken}); !errors.Is(err, broken) {
		t.Errorf("pad: %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
