package proxy

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// LogWriter is where a gateway's log lines go: the operational log (through
// Write, as an slog handler's output) and the access log (through line).
// Access lines are buffered and written every interval, or when the buffer
// fills: one write system call per line cost as much as the rest of the
// line's work together (hack/bench, access log on). Envoy buffers its
// access log the same way (for a second by default). Any other write
// flushes at once, after what was buffered, so the lines of both logs keep
// their order and never interleave. Close flushes what is left.
type LogWriter struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	err    error
	stop   chan struct{}
	once   sync.Once
	closed bool
}

// NewLogWriter buffers access lines for w, flushing every interval.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{bw: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.mu.Lock()
				if l.bw.Buffered() > 0 {
					l.err = l.bw.Flush()
				}
				l.mu.Unlock()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

// Write writes p, and everything buffered before it, now.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.bw.Write(p)
	if err == nil {
		err = l.bw.Flush()
	}
	return n, err
}

// line buffers one access line (ending in a newline).
func (l *LogWriter) line(p []byte) {
	l.mu.Lock()
	if _, err := l.bw.Write(p); err != nil {
		l.err = err
	}
	l.mu.Unlock()
}

// Close flushes and stops the flushing goroutine; later writes still work,
// unbuffered.
func (l *LogWriter) Close() error {
	l.once.Do(func() { close(l.stop) })
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bw.Flush()
}

// accessLine builds one access log line with the fields and layout of
// slog's JSON handler (the schema in docs/accesslog.md), appended to b:
// what a log pipeline parses does not change with the engine.
type accessLine struct{ b []byte }

func (a *accessLine) begin(now time.Time) {
	a.b = append(a.b, `{"time":"`...)
	a.b = now.AppendFormat(a.b, time.RFC3339Nano)
	a.b = append(a.b, `","level":"INFO","msg":"request"`...)
}

func (a *accessLine) str(key, v string) {
	a.b = append(a.b, ',', '"')
	a.b = append(a.b, key...)
	a.b = append(a.b, '"', ':')
	a.b = appendJSONString(a.b, v)
}

func (a *accessLine) int(key string, v int64) {
	a.b = append(a.b, ',', '"')
	a.b = append(a.b, key...)
	a.b = append(a.b, '"', ':')
	a.b = strconv.AppendInt(a.b, v, 10)
}

func (a *accessLine) end() { a.b = append(a.b, '}', '\n') }

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as JSON, as slog's handler does: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced,
// and U+2028 and U+2029 escaped for JavaScript readers. Paths and hosts
// come from clients: nothing in them can end the string or the line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
