package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// The text form (application/grpc-web-text) is the binary one in base64,
// but not one base64 text: PROTOCOL-WEB.md lets a sender end what it has
// with padding whenever it flushes, so a body is padded segments one after
// another ("AAAAAAU=" "gAAAAA9ncnBj…"). Every segment is a whole number of
// 4-character quanta, which is what lets both ends decode as bytes come.

// ErrInvalidText is what reading a translated text request's body fails
// with (wrapped, with where) when the client's base64 is broken: a
// character outside the standard alphabet, padding anywhere but at the end
// of a quantum, or a body that ends inside a quantum.
var ErrInvalidText = errors.New("grpcweb: request body is not valid base64")

// decodeBuffer is how much encoded text a decoder holds: its memory is
// this and a few bytes, whatever the body's length.
const decodeBuffer = 4 << 10

// decoder reads the client's text body as the binary one. Carriage returns
// and line feeds are skipped, as encoding/base64 skips them; each quantum
// is checked as base64.StdEncoding checks a text's last one, so a body is
// accepted exactly when it is padded segments StdEncoding accepts, and
// decodes to what they decode to. A Read returns what the buffered text
// decodes to without waiting for more, so a stream's messages go on as
// they come.
type decoder struct {
	src    io.ReadCloser
	buf    [decodeBuffer]byte
	r, w   int     // buf[r:w] is read but not decoded
	srcErr error   // what src returned with buf's bytes
	err    error   // sticky: the end, or why decoding stopped
	off    int64   // text consumed, for error positions
	q      [4]byte // a quantum split across reads, or broken by a line break
	nq     int
	out    [3]byte // a decoded quantum that did not fit the caller's buffer
	outR   int
	outW   int
}

func newDecoder(src io.ReadCloser) *decoder { return &decoder{src: src} }

func (d *decoder) Close() error { return d.src.Close() }

func (d *decoder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, d.out[d.outR:d.outW])
	d.outR += n
	if d.err != nil && d.outR == d.outW {
		return n, d.err
	}
	for empty := 0; n < len(p); {
		if d.r == d.w {
			if n > 0 {
				break
			}
			if d.srcErr != nil {
				return 0, d.end()
			}
			m, err := d.src.Read(d.buf[:])
			d.r, d.w, d.srcErr = 0, m, err
			if m == 0 && err == nil {
				if empty++; empty == 100 {
					return 0, io.ErrNoProgress // as bufio does with a broken reader
				}
			}
			continue
		}
		if d.nq == 0 {
			if k := d.run(len(p) - n); k > 0 {
				m, err := base64.StdEncoding.Decode(p[n:], d.buf[d.r:d.r+k])
				n += m
				if err != nil {
					var at base64.CorruptInputError
					errors.As(err, &at)
					return n, d.fail(d.off + int64(at))
				}
				d.r += k
				d.off += int64(k)
				continue
			}
		}
		// One character at a time: a quantum split across reads, broken
		// by a line break, or bigger than what is left of p.
		c := d.buf[d.r]
		d.r++
		d.off++
		if c == '\r' || c == '\n' {
			continue
		}
		d.q[d.nq] = c
		if d.nq++; d.nq < 4 {
			continue
		}
		d.nq = 0
		var q [3]byte
		m, err := base64.StdEncoding.Decode(q[:], d.q[:])
		if err != nil {
			return n, d.fail(d.off - 1)
		}
		k := copy(p[n:], q[:m])
		n += k
		if k < m {
			d.out, d.outR, d.outW = q, k, m
		}
	}
	return n, nil
}

// run returns how many of the buffered characters, whole quanta, can be
// decoded in one go into room bytes: none a line break, and padding only
// in the last quantum, since it ends a segment.
func (d *decoder) run(room int) int {
	b := d.buf[d.r:d.w]
	k := min(len(b), room/3*4) &^ 3
	if k == 0 {
		return 0
	}
	b = b[:k]
	i := k
	for _, c := range [...]byte{'\r', '\n', '='} {
		if j := bytes.IndexByte(b[:i], c); j >= 0 {
			i = j
		}
	}
	if i == k {
		return k
	}
	if b[i] != '=' {
		return i &^ 3
	}
	end := i&^3 + 4 // the end of the quantum the padding is in
	if bytes.IndexByte(b[i:end], '\r') >= 0 || bytes.IndexByte(b[i:end], '\n') >= 0 {
		return i &^ 3
	}
	return end
}

// end is what a Read returns once the source has ended, the text decoded.
func (d *decoder) end() error {
	switch {
	case d.srcErr != io.EOF:
		d.err = d.srcErr // the client's body broke: the caller judges that, not us
	case d.nq != 0:
		d.err = fmt.Errorf("%w: the body ends inside a quantum, at byte %d", ErrInvalidText, d.off)
	default:
		d.err = io.EOF
	}
	return d.err
}

func (d *decoder) fail(at int64) error {
	d.err = fmt.Errorf("%w: at byte %d", ErrInvalidText, at)
	d.outR, d.outW = 0, 0
	return d.err
}

// encoder base64-encodes an answer for the text form. Bytes that do not
// fill a 3-byte group wait (at most two) for the next write; pad writes
// them out padded, ending a segment, when the answer is flushed or over.
// So an answer written in one go is one base64 text, and one flushed as it
// goes is a padded segment per flush, which clients decode as it comes
// (grpc-web's JavaScript client decodes every whole quantum it has).
type encoder struct {
	carry [3]byte
	nc    int
	buf   [1024]byte
}

func (e *encoder) write(w io.Writer, p []byte) error {
	o := 0
	if e.nc > 0 {
		k := copy(e.carry[e.nc:], p)
		e.nc += k
		p = p[k:]
		if e.nc < 3 {
			return nil
		}
		base64.StdEncoding.Encode(e.buf[:4], e.carry[:])
		o, e.nc = 4, 0
	}
	for len(p) >= 3 {
		k := min(len(p)/3, (len(e.buf)-o)/4) * 3
		if k == 0 {
			if _, err := w.Write(e.buf[:o]); err != nil {
				return err
			}
			o = 0
			continue
		}
		base64.StdEncoding.Encode(e.buf[o:], p[:k])
		o += k / 3 * 4
		p = p[k:]
	}
	e.nc = copy(e.carry[:], p)
	if o == 0 {
		return nil
	}
	_, err := w.Write(e.buf[:o])
	return err
}

func (e *encoder) pad(w io.Writer) error {
	if e.nc == 0 {
		return nil
	}
	base64.StdEncoding.Encode(e.buf[:4], e.carry[:e.nc])
	e.nc = 0
	_, err := w.Write(e.buf[:4])
	return err
}
