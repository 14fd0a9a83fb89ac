package annotations

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The YAML library reports a syntax error as "yaml: line N: message", where N
// is the line at which the enclosing construct started, counted from 0 for
// parser errors and from 1 for scanner errors, and no column at all. This
// file recovers a useful position: the first line at which a prefix of the
// broken document fails with the same message is where the text stops making
// sense to a reader too.

// maxSearchBytes bounds the prefix re-parsing of one syntax error to about
// two parses of the largest annotation.
const maxSearchBytes = 2 * maxBytes

// lineIndex holds the byte offset at which each line starts. Lines break where
// the YAML library breaks them (LF, CRLF, CR, NEL, LS, PS), so positions
// computed here agree with node positions.
type lineIndex []int

func newLineIndex(s string) lineIndex {
	li := lineIndex{0}
	for i := 0; i < len(s); {
		switch n := lineBreakLen(s, i); {
		case n > 0:
			i += n
			li = append(li, i)
		default:
			i++
		}
	}
	return li
}

// lineBreakLen returns the length of the line break at s[i], or 0.
func lineBreakLen(s string, i int) int {
	switch {
	case s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n':
		return 2
	case s[i] == '\r' || s[i] == '\n':
		return 1
	case strings.HasPrefix(s[i:], "\u0085"):
		return 2
	case strings.HasPrefix(s[i:], "\u2028"), strings.HasPrefix(s[i:], "\u2029"):
		return 3
	}
	return 0
}

func (p *parser) lineIndex() lineIndex {
	if p.lines == nil {
		p.lines = newLineIndex(p.src)
	}
	return p.lines
}

// lineOf returns the 1-based line holding byte offset off.
func (li lineIndex) lineOf(off int) int {
	return sort.Search(len(li), func(i int) bool { return li[i] > off })
}

// bom is the byte order mark the YAML library skips without counting a
// column for it.
const bom = "\ufeff"

func (li lineIndex) position(s string, off int) Position {
	l := li.lineOf(off)
	start := li[l-1]
	if l == 1 && strings.HasPrefix(s, bom) && off >= len(bom) {
		start = len(bom)
	}
	return Position{Line: l, Column: utf8.RuneCountInString(s[start:off]) + 1}
}

// text returns line l of s without its line break; s may be a prefix of the
// string the index was built for.
func (li lineIndex) text(s string, l int) string {
	if l < 1 || l > len(li) || li[l-1] > len(s) {
		return ""
	}
	end := len(s)
	if l < len(li) {
		end = min(li[l], end)
	}
	line := s[li[l-1]:end]
	if l == 1 {
		line = strings.TrimPrefix(line, bom)
	}
	for _, br := range []string{"\r\n", "\n", "\r", "\u0085", "\u2028", "\u2029"} {
		if strings.HasSuffix(line, br) {
			return line[:len(line)-len(br)]
		}
	}
	return line
}

// findBadChar returns the offset of the first byte that is not UTF-8 or a
// character YAML forbids, with a message; the message is "" when there is
// none. The YAML library reports these without any position.
func findBadChar(s string) (int, string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return i, fmt.Sprintf("invalid UTF-8 byte 0x%02X; an annotation must be UTF-8 text", s[i])
		case !yamlAllowed(r):
			return i, fmt.Sprintf("character %U is not allowed in YAML", r)
		}
		i += size
	}
	return 0, ""
}

// yamlAllowed is YAML 1.2's c-printable, as the library enforces it.
func yamlAllowed(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r >= 0x20 && r <= 0x7E, r == 0x85:
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
	default:
		return false
	}
	return true
}

func isMarkerLine(line string) bool {
	if !strings.HasPrefix(line, "---") && !strings.HasPrefix(line, "...") {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t'
}

// documentStartBefore returns the offset of the document marker line at or
// before off, or 0: the point up to which the stream can be read safely.
func (p *parser) documentStartBefore(off int) int {
	li := p.lineIndex()
	for l := li.lineOf(off); l >= 1; l-- {
		if isMarkerLine(li.text(p.src, l)) {
			return li[l-1]
		}
	}
	return 0
}

// failingDocStart returns the first line of the document after last.
func (p *parser) failingDocStart(text string, last streamPos, lastLine int) int {
	if last.docLine == 0 {
		return 1
	}
	li := p.lineIndex()
	for l := max(last.docLine+1, last.lastLine); l <= lastLine; l++ {
		if isMarkerLine(li.text(text, l)) {
			return l
		}
	}
	return min(last.lastLine+1, lastLine)
}

// splitYAMLError separates "yaml: line N: message" into N (0 when absent)
// and the message.
func splitYAMLError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return n, m
			}
		}
	}
	return 0, msg
}

// isParserProblem reports whether msg comes from the library's parser, whose
// line numbers are 0-based, rather than its scanner.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"did not find expected '-' indicator",
		"did not find expected <document start>",
		"did not find expected <stream-start>",
		"did not find expected key",
		"did not find expected node content",
		"found duplicate %TAG directive",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// syntaxProblem reports the error that stopped reading text; last is the
// last document read before it.
func (p *parser) syntaxProblem(text string, err error, last streamPos) {
	reported, msg := splitYAMLError(err)
	li := p.lineIndex()
	lastLine := li.lineOf(len(text))
	docStart := p.failingDocStart(text, last, lastLine)

	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		name = strings.TrimSuffix(name, "' referenced")
		pos := Position{Line: docStart, Column: 1}
		if i := strings.Index(text[li[docStart-1]:], "*"+name); i >= 0 {
			pos = li.position(text, li[docStart-1]+i)
		}
		p.add(Problem{Pos: pos, Message: fmt.Sprintf("YAML aliases (*%s) are not supported in annotations; write the value out", name)})
		return
	}

	lo := docStart
	if reported > 0 {
		lo = max(lo, reported)
		if isParserProblem(msg) {
			lo = max(lo, reported+1)
		}
	}
	lo = min(lo, lastLine)
	line := lo
	if !strings.HasPrefix(msg, "the YAML library failed") {
		line = p.errorLine(text, msg, docStart, lo, lastLine)
	}
	if tab, ok := p.tabIndent(text, line, docStart, lastLine, msg); ok {
		// The position is the tab's own, so the message need not repeat it.
		p.add(Problem{Pos: tab, Message: "tab character used for indentation; YAML allows only spaces"})
		return
	}
	pos := Position{Line: line, Column: errorColumn(li.text(text, line), msg)}
	if msg == "did not find expected alphabetic or numeric character" && strings.Contains(li.text(text, line), ": *") {
		// The scanner read "*" as the start of an alias: what people
		// meant is a wildcard host, which YAML wants quoted.
		msg += `; a value starting with "*" is read as a YAML alias: quote it ("*.example.com")`
	}
	p.add(Problem{Pos: pos, Message: msg})
}

// errorLine returns the first line from lo on such that the document up to
// and including it fails with msg. Whether a prefix fails is close enough to
// monotonic in the line for a galloping search followed by a binary one; the
// YAML library is slow (a few MB/s), so the work is bounded, after which the
// best line known to fail, or lo, is the answer.
func (p *parser) errorLine(text, msg string, docStart, lo, lastLine int) int {
	li := p.lineIndex()
	start := li[docStart-1]
	budget := maxSearchBytes
	exhausted := false
	fails := func(l int) bool {
		end := len(text)
		if l < len(li) {
			end = min(li[l], end)
		}
		chunk := text[start:end]
		if budget -= len(chunk); budget < 0 {
			exhausted = true
			return false
		}
		if err := firstError(chunk); err != nil {
			_, m := splitYAMLError(err)
			return m == msg
		}
		return false
	}
	good, bad := lo-1, 0 // the prefix through good does not fail; through bad it does
	for step := 1; bad == 0; step *= 2 {
		l := min(good+step, lastLine)
		if fails(l) {
			bad = l
		} else if exhausted || l == lastLine {
			return lo
		} else {
			good = l
		}
	}
	for bad-good > 1 {
		mid := good + (bad-good)/2
		if fails(mid) {
			bad = mid
		} else if exhausted {
			break
		} else {
			good = mid
		}
	}
	return bad
}

func firstError(s string) error {
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var doc yaml.Node
		err := decodeNext(dec, &doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// errorColumn points at the first character of the line, or at the
// character a scanner message is about when it can be found.
func errorColumn(line, msg string) int {
	if msg == "found character that cannot start any token" {
		if i := strings.IndexAny(line, "@`"); i >= 0 {
			return utf8.RuneCountInString(line[:i]) + 1
		}
	}
	i := strings.IndexFunc(line, func(r rune) bool { return r != ' ' && r != '\t' })
	if i < 0 {
		return 1
	}
	return utf8.RuneCountInString(line[:i]) + 1
}

// tabIndent finds a tab in the indentation of the error line or, failing
// that, of the broken document up to the line after the error (the whole
// document when the library itself complains about a tab).
func (p *parser) tabIndent(text string, line, docStart, lastLine int, msg string) (Position, bool) {
	li := p.lineIndex()
	// Blank lines may hold tabs, unless the library says otherwise.
	tabMessage := strings.Contains(msg, "tab")
	check := func(l int) (Position, bool) {
		lt := li.text(text, l)
		indent := len(lt) - len(strings.TrimLeft(lt, " \t"))
		if indent == len(lt) && !tabMessage {
			return Position{}, false
		}
		if i := strings.IndexByte(lt[:indent], '\t'); i >= 0 {
			return Position{Line: l, Column: i + 1}, true
		}
		return Position{}, false
	}
	if pos, ok := check(line); ok {
		return pos, true
	}
	end := min(line+1, lastLine)
	if tabMessage {
		end = lastLine
	}
	for l := docStart; l <= end; l++ {
		if pos, ok := check(l); ok {
			return pos, true
		}
	}
	return Position{}, false
}
