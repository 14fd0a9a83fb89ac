package files

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// A jsonIndex lists every value of a JSON text with the key or index it sits
// under. The strict decoder names a problem by byte offset (type errors) or
// by field path (unknown fields); the index turns either into a path of keys
// and indices, which nodeAt then follows through the YAML node tree to a
// line and column.
type jsonIndex struct {
	data   []byte
	values []jsonValue       // in document order; values[0] is the root
	paths  map[string]int    // decoder-style path → first value with it, built on first use
	segs   map[int][]pathSeg // cache of path(i)
}

type jsonValue struct {
	parent     int // index in values; -1 for the root
	seg        pathSeg
	start, end int // the value's bytes in data
}

// pathSeg is one step of a path: a mapping key or a list index.
type pathSeg struct {
	key   string
	index int // -1 for a key
}

func keySeg(k string) pathSeg { return pathSeg{key: k, index: -1} }

// indexJSON indexes data, which must be one JSON value; ok is false when it
// is not (it always is when it comes from sigs.k8s.io/yaml, but nothing
// here may panic on what a user wrote).
func indexJSON(data []byte) (idx *jsonIndex, ok bool) {
	x := &jsonIndexer{data: data}
	x.value(-1, pathSeg{index: -1})
	x.space()
	if x.bad || x.pos != len(data) {
		return nil, false
	}
	return &jsonIndex{data: data, values: x.values}, true
}

type jsonIndexer struct {
	data   []byte
	pos    int
	values []jsonValue
	bad    bool
}

func (x *jsonIndexer) space() {
	for x.pos < len(x.data) {
		switch x.data[x.pos] {
		case ' ', '\t', '\n', '\r':
			x.pos++
		default:
			return
		}
	}
}

func (x *jsonIndexer) peek() byte {
	if x.pos < len(x.data) {
		return x.data[x.pos]
	}
	return 0
}

func (x *jsonIndexer) value(parent int, seg pathSeg) {
	x.space()
	if x.pos >= len(x.data) {
		x.bad = true
		return
	}
	me := len(x.values)
	x.values = append(x.values, jsonValue{parent: parent, seg: seg, start: x.pos})
	switch x.data[x.pos] {
	case '{':
		x.pos++
		x.space()
		if x.peek() == '}' {
			x.pos++
			break
		}
		for !x.bad {
			x.space()
			key, ok := x.str()
			x.space()
			if !ok || x.peek() != ':' {
				x.bad = true
				break
			}
			x.pos++
			x.value(me, keySeg(key))
			x.space()
			if x.peek() == ',' {
				x.pos++
				continue
			}
			if x.peek() != '}' {
				x.bad = true
			}
			x.pos++
			break
		}
	case '[':
		x.pos++
		x.space()
		if x.peek() == ']' {
			x.pos++
			break
		}
		for i := 0; !x.bad; i++ {
			x.value(me, pathSeg{index: i})
			x.space()
			if x.peek() == ',' {
				x.pos++
				continue
			}
			if x.peek() != ']' {
				x.bad = true
			}
			x.pos++
			break
		}
	case '"':
		if _, ok := x.str(); !ok {
			x.bad = true
		}
	default:
		start := x.pos
		for x.pos < len(x.data) && strings.IndexByte(",]} \t\r\n", x.data[x.pos]) < 0 {
			x.pos++
		}
		if x.pos == start {
			x.bad = true
		}
	}
	x.values[me].end = x.pos
}

// str reads a JSON string and returns its value.
func (x *jsonIndexer) str() (string, bool) {
	if x.peek() != '"' {
		return "", false
	}
	start := x.pos
	escaped := false
	for x.pos++; x.pos < len(x.data); x.pos++ {
		switch x.data[x.pos] {
		case '\\':
			escaped = true
			x.pos++
		case '"':
			x.pos++
			raw := x.data[start:x.pos]
			if !escaped {
				return string(raw[1 : len(raw)-1]), true
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return "", false
}

// headEnd is the offset the decoder reports for a type error in value i: the
// end of a scalar, or just past the opening bracket of a mapping or list.
func (idx *jsonIndex) headEnd(i int) int {
	v := idx.values[i]
	if c := idx.data[v.start]; c == '{' || c == '[' {
		return v.start + 1
	}
	return v.end
}

// path is the keys and indices from the root to value i.
func (idx *jsonIndex) path(i int) []pathSeg {
	if p, ok := idx.segs[i]; ok {
		return p
	}
	var p []pathSeg
	for j := i; j > 0; j = idx.values[j].parent {
		p = append(p, idx.values[j].seg)
	}
	for l, r := 0, len(p)-1; l < r; l, r = l+1, r-1 {
		p[l], p[r] = p[r], p[l]
	}
	if idx.segs == nil {
		idx.segs = map[int][]pathSeg{}
	}
	idx.segs[i] = p
	return p
}

// decoderPath writes a path the way sigs.k8s.io/json's strict errors do:
// keys joined by dots, indices in brackets.
func decoderPath(p []pathSeg) string {
	var b strings.Builder
	for _, s := range p {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// byDecoderPath finds the value a strict error names, or -1.
func (idx *jsonIndex) byDecoderPath(p string) int {
	if idx.paths == nil {
		idx.paths = make(map[string]int, len(idx.values))
		for i := range idx.values {
			s := decoderPath(idx.path(i))
			if _, seen := idx.paths[s]; !seen {
				idx.paths[s] = i
			}
		}
	}
	if i, ok := idx.paths[p]; ok {
		return i
	}
	return -1
}

// forTypeError finds the value a type error is about, or -1. The offset is
// exact for errors the decoder raises itself; a custom UnmarshalJSON (such
// as IntOrString's or Time's) decodes a copy of the value, so its offset is
// relative to that copy. Field, the struct fields leading there without map
// keys or indices, tells the two apart and finds the value in the second case.
func (idx *jsonIndex) forTypeError(offset int64, field string) int {
	var want []string
	if field != "" {
		want = strings.Split(field, ".")
	}
	for i := range idx.values {
		if int64(idx.headEnd(i)) == offset && idx.fieldsMatch(i, want, subsequence) {
			return i
		}
	}
	for _, m := range []fieldMatch{exactly, sameLast} {
		for i := range idx.values {
			if idx.fieldsMatch(i, want, m) {
				return i
			}
		}
	}
	return -1
}

type fieldMatch int

const (
	exactly     fieldMatch = iota // value i's keys are want
	subsequence                   // they hold want in order (map keys are not in want)
	sameLast                      // and also end with want's last key
)

func (idx *jsonIndex) fieldsMatch(i int, want []string, m fieldMatch) bool {
	var keys []string
	for _, s := range idx.path(i) {
		if s.index < 0 {
			keys = append(keys, s.key)
		}
	}
	if m == exactly || len(want) == 0 {
		return slices.Equal(keys, want)
	}
	if m == sameLast && (len(keys) == 0 || keys[len(keys)-1] != want[len(want)-1]) {
		return false
	}
	j := 0
	for _, k := range keys {
		if j < len(want) && k == want[j] {
			j++
		}
	}
	return j == len(want)
}

// withNull returns data with value i replaced by null, which every Go type
// accepts, so the decoder can go on to the next problem.
func (idx *jsonIndex) withNull(i int) []byte {
	v := idx.values[i]
	out := make([]byte, 0, len(idx.data)-(v.end-v.start)+4)
	out = append(out, idx.data[:v.start]...)
	out = append(out, "null"...)
	return append(out, idx.data[v.end:]...)
}
