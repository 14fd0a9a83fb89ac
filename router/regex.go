package router

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// regexCache compiles each distinct expression once per New: generated
// route sets repeat the same path and header expressions across hosts, and
// a *regexp.Regexp is safe to share between goroutines.
type regexCache struct {
	m map[regexKey]regexEntry
}

type regexKey struct {
	src  string
	fold bool
}

type regexEntry struct {
	re     *regexp.Regexp
	prefix string
	err    error
}

// compile returns src compiled to match whole inputs only, case-folded when
// fold is set, and the literal prefix every match starts with (lower-cased
// when fold is set, for the case-insensitive tree).
func (rc *regexCache) compile(src string, fold bool) (*regexp.Regexp, string, error) {
	k := regexKey{src, fold}
	e, ok := rc.m[k]
	if !ok {
		e = compileRegex(src, fold)
		if rc.m == nil {
			rc.m = make(map[regexKey]regexEntry)
		}
		rc.m[k] = e
	}
	return e.re, e.prefix, e.err
}

func compileRegex(src string, fold bool) regexEntry {
	flags, expr := syntax.Perl, "^(?:"+src+")$"
	if fold {
		flags, expr = flags|syntax.FoldCase, "^(?i:"+src+")$"
	}
	// Parse the source alone first: wrapped, ")|(" would compile into a
	// different, valid expression.
	parsed, err := syntax.Parse(src, flags)
	if err != nil {
		return regexEntry{err: err}
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return regexEntry{err: err}
	}
	var b strings.Builder
	appendPrefix(&b, parsed, fold)
	return regexEntry{re: re, prefix: b.String()}
}

// appendPrefix appends to b a literal that every match of re starts with,
// and reports whether it consumed re whole, so that what follows re in a
// concatenation may extend the prefix. Unlike (*regexp.Regexp).LiteralPrefix
// it looks past a leading "^", which Emissary users often write, and with
// fold it yields the lower-cased prefix of a case-folded expression, so a
// case-insensitive regex still sits deep in its tree.
func appendPrefix(b *strings.Builder, re *syntax.Regexp, fold bool) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true // zero-width: the literals around it stay adjacent
	case syntax.OpCapture:
		return appendPrefix(b, re.Sub[0], fold)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !appendPrefix(b, sub, fold) {
				return false
			}
		}
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			c, ok := prefixRune(r, re.Flags&syntax.FoldCase != 0, fold)
			if !ok {
				return false
			}
			b.WriteRune(c)
		}
		return true
	}
	return false
}

// prefixRune returns what a literal rune contributes to a tree key: itself
// in the case-sensitive tree, its ASCII lower case in the case-insensitive
// tree, whose walk lower-cases ASCII bytes of the request path only. A rune
// that matches case variants the walk cannot see as one byte string ends the
// prefix: "k" folds to the Kelvin sign and "s" to the long s.
func prefixRune(r rune, litFold, treeFold bool) (rune, bool) {
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return 0, false // RuneError also matches any invalid byte
	}
	if litFold && unicode.SimpleFold(r) != r {
		other := unicode.SimpleFold(r)
		if !treeFold || r >= utf8.RuneSelf || other >= utf8.RuneSelf || unicode.SimpleFold(other) != r {
			return 0, false
		}
	}
	if treeFold && r < utf8.RuneSelf {
		return rune(lower(byte(r))), true
	}
	return r, true
}
