package router

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// maxHostLen is the longest DNS name; longer request hosts cannot be valid,
// and the bound sizes the buffer that lower-cases a host for a host regex.
const maxHostLen = 253

// normaliseHost validates a route host and returns its lower-case form.
// IPv6 literals may be bracketed; the brackets are dropped because Match
// strips them from the request host along with the port.
func normaliseHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	lower := strings.ToLower(h)
	if strings.HasPrefix(lower, "[") && strings.HasSuffix(lower, "]") {
		lower = lower[1 : len(lower)-1]
		if strings.IndexByte(lower, ':') < 0 {
			return "", fmt.Errorf("invalid host %q: brackets are only for IPv6 addresses", h)
		}
	}
	if strings.IndexByte(lower, ':') >= 0 {
		if strings.Count(lower, ":") == 1 || strings.Contains(lower, "]:") {
			return "", fmt.Errorf("invalid host %q: remove the port, request ports are ignored", h)
		}
		a, err := netip.ParseAddr(lower)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("invalid host %q: not an IPv6 address without zone", h)
		}
		return lower, nil
	}
	name := lower
	if rest, ok := strings.CutPrefix(lower, "*."); ok {
		name = rest
	}
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("invalid host %q: %w", h, err)
	}
	return lower, nil
}

// checkDNSName accepts lower-case dotted labels of letters, digits, '-' and
// '_' (underscores appear in real service names even though RFC 1123
// forbids them).
func checkDNSName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > maxHostLen {
		return fmt.Errorf("longer than %d bytes", maxHostLen)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q longer than 63 bytes", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return errors.New(`"*" is only allowed as a whole first label ("*.example.com")`)
				}
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

// cutPort returns h up to its last colon, if any: the host of "host:port"
// when the host holds no colon itself.
func cutPort(h string) string {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
	}
	return h
}

// stripPort returns the host part of a Host header: "[::1]:8080" → "::1",
// "a.example.com:80" → "a.example.com". A bare IPv6 address (more than one
// colon, no brackets) is returned whole.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

// hostTable maps lower-case host keys (exact hosts, or ".example.com" for
// "*.example.com") to buckets. It is an open-addressing hash table rather
// than a Go map so that a lookup can hash and compare the request host as if
// it were lower-cased, in place: no copy, no buffer to clear, one pass over
// the bytes for the common all-lower-case host.
type hostTable struct {
	slots []hostSlot // length a power of two, at most half full; nil when empty
	seed  uint64     // random per table, so colliding hosts cannot be crafted
}

type hostSlot struct {
	hash uint64
	key  string
	b    *bucket // nil marks an empty slot
}

// newHostTable freezes the buckets New collected into a table.
func newHostTable(m map[string]*bucket, seed uint64) hostTable {
	if len(m) == 0 {
		return hostTable{}
	}
	size := 8
	for size < 2*len(m) {
		size *= 2
	}
	h := hostTable{slots: make([]hostSlot, size), seed: seed}
	mask := uint64(size - 1)
	for key, b := range m {
		hash, _ := foldHash(key, seed)
		i := hash & mask
		for h.slots[i].b != nil {
			i = (i + 1) & mask
		}
		h.slots[i] = hostSlot{hash: hash, key: key, b: b}
	}
	return h
}

// get returns the bucket of host compared ASCII case-insensitively, or nil.
func (h *hostTable) get(host string) *bucket {
	if h.slots == nil {
		return nil
	}
	hash, _ := foldHash(host, h.seed)
	return h.find(host, hash)
}

// find is get with the host's foldHash already computed.
func (h *hostTable) find(host string, hash uint64) *bucket {
	if h.slots == nil {
		return nil
	}
	mask := uint64(len(h.slots) - 1)
	for i := hash & mask; ; i = (i + 1) & mask {
		s := &h.slots[i]
		if s.b == nil {
			return nil
		}
		if s.hash == hash && equalFold(host, s.key) {
			return s.b
		}
	}
}

// each calls f for every key in an unspecified order.
func (h *hostTable) each(f func(key string, b *bucket)) {
	for i := range h.slots {
		if s := &h.slots[i]; s.b != nil {
			f(s.key, s.b)
		}
	}
}

// foldHash hashes s case-insensitively: it sets bit 5 of every byte, which
// lower-cases ASCII letters (and merges a few other pairs of bytes, such as
// '@' and '`', which only costs a rare collision: lookups compare keys
// exactly). It mixes sixteen bytes per multiply, as wyhash does, reading the
// last, partial block as an overlapping one. It also reports whether s holds
// a colon (or a 0x1a byte, which looks the same to it): a host key holds
// none, and a request host with a colon left after cutting the port is an
// IPv6 address or malformed, and goes the slow way.
func foldHash(s string, seed uint64) (uint64, bool) {
	const k0, k1, k2 = 0x9e3779b97f4a7c15, 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	const fold = 0x20 * bytes01
	n := len(s)
	h := seed ^ uint64(n)*k0
	var w0, w1, colon uint64
	switch {
	case n > 32:
		rest := s
		for ; len(rest) > 16; rest = rest[16:] {
			a, b := le64(rest)|fold, le64(rest[8:])|fold
			colon |= colonMask(a) | colonMask(b)
			h = mum(a^h^k1, b^k2)
		}
		w0, w1 = le64(s[n-16:]), le64(s[n-8:])
	case n > 16:
		// The common host length: two blocks, no loop.
		a, b := le64(s)|fold, le64(s[8:])|fold
		colon = colonMask(a) | colonMask(b)
		h = mum(a^h^k1, b^k2)
		w0, w1 = le64(s[n-16:]), le64(s[n-8:])
	case n >= 8:
		w0, w1 = le64(s), le64(s[n-8:])
	case n >= 4:
		w0, w1 = le32(s), le32(s[n-4:])
	case n > 0:
		w0 = uint64(s[0]) | uint64(s[n>>1])<<8 | uint64(s[n-1])<<16
	}
	// Padding bytes become 0x20, which is not a colon.
	w0, w1 = w0|fold, w1|fold
	colon |= colonMask(w0) | colonMask(w1)
	return mum(w0^h^k1, w1^k2), colon != 0
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// le64 reads eight bytes of s little-endian; the compiler turns it into one
// load.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

const (
	bytes01 = 0x0101010101010101
	bytes7f = 0x7f7f7f7f7f7f7f7f
	bytes80 = 0x8080808080808080
)

// upperMask returns 0x80 in every byte of w that is an ASCII upper-case
// letter and 0 elsewhere, so w | upperMask(w)>>2 is w lower-cased. No byte
// sum below can carry into the next byte: each is at most 0x7f + 0x3f.
func upperMask(w uint64) uint64 {
	b := w & bytes7f
	atLeastA := b + 0x3f*bytes01 // 0x80 - 'A': the high bit is set from 'A' up
	pastZ := b + 0x25*bytes01    // 0x80 - ('Z'+1): set from '[' up
	return atLeastA &^ pastZ &^ w & bytes80
}

// colonMask is non-zero when some byte of w is ':' (the classic test for a
// zero byte, applied to w with ':' xored out). ':' has bit 5 set, so it
// survives foldHash's folding.
func colonMask(w uint64) uint64 {
	x := w ^ ':'*bytes01
	return (x - bytes01) &^ x & bytes80
}

func lowerWord(w uint64) uint64 { return w | upperMask(w)>>2 }

// equalFold reports whether s, ASCII lower-cased, equals the lower-case
// key. Request hosts are almost always lower case already, so it tries the
// runtime's vector comparison first, then compares eight bytes at a time
// (the last word overlapping), lower-casing the request's.
func equalFold(s, key string) bool {
	if s == key {
		return true
	}
	n := len(s)
	if n != len(key) {
		return false
	}
	if n < 8 {
		for i := 0; i < n; i++ {
			if lower(s[i]) != key[i] {
				return false
			}
		}
		return true
	}
	for i := 0; i+8 < n; i += 8 {
		if lowerWord(le64(s[i:])) != le64(key[i:]) {
			return false
		}
	}
	return lowerWord(le64(s[n-8:])) == le64(key[n-8:])
}

// trimDot removes one trailing dot: "shop.example.com." is the fully
// qualified spelling of "shop.example.com", the same host.
func trimDot(h string) string {
	if n := len(h); n > 0 && h[n-1] == '.' {
		return h[:n-1]
	}
	return h
}
