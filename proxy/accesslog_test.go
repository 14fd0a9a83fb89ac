package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// TestAccessLineIsSlogJSON: the access line is byte for byte what slog's
// JSON handler writes for the same record, so the schema log pipelines
// parse did not change with the encoder.
func TestAccessLineIsSlogJSON(t *testing.T) {
	now := time.Date(2026, 12, 6, 5, 25, 0, 624045909, time.UTC)
	hostile := "/a\"b\\c\n\x00\x7f\xff\u2028é"
	var a accessLine
	a.begin(now)
	a.str("request_id", "r1")
	a.str("path", hostile)
	a.int("status", 404)
	a.int("bytes", -1)
	a.end()

	var want bytes.Buffer
	h := slog.NewJSONHandler(&want, nil)
	r := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("request_id", "r1"), slog.String("path", hostile), slog.Int("status", 404), slog.Int64("bytes", -1))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if string(a.b) != want.String() {
		t.Errorf("access line\n%s\nslog\n%s", a.b, want.String())
	}
}

// FuzzAppendJSONString: any string a client sends comes back out of the
// JSON intact (as valid UTF-8), on one line.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "/plain", "a\"b\\c", "\n\r\t\x00\x1f", "\xff\xfe", "\u2028\u2029", "é€😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		if bytes.ContainsAny(b, "\n\r") {
			t.Fatalf("a line break in %q", b)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want && utf8.ValidString(s) {
			t.Fatalf("%q came back as %q", s, got)
		}
	})
}

// TestLogWriterKeepsOrder: buffered access lines are written before a
// later operational line, and Close writes what is left.
func TestLogWriterKeepsOrder(t *testing.T) {
	var out syncBuffer
	l := NewLogWriter(&out, time.Hour)
	l.line([]byte("access 1\n"))
	l.line([]byte("access 2\n"))
	if out.String() != "" {
		t.Fatalf("written before a flush: %q", out.String())
	}
	l.Write([]byte("operational\n"))
	l.line([]byte("access 3\n"))
	l.Close()
	if got := out.String(); got != "access 1\naccess 2\noperational\naccess 3\n" {
		t.Errorf("got %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
