package router

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RegexCache keeps compiled regular expressions across [NewTable] and
// [Check] calls, so that a gateway rebuilding its table on every change
// compiles each distinct expression once, not once per build: generated
// route sets repeat the same path and header expressions across hosts and
// builds, and a *regexp.Regexp is safe to share between tables and
// goroutines. Failed compilations are kept too, with their error.
//
// Expressions are keyed by their source and by whether they fold case (a
// case-insensitive Regex path). Memory is bounded by [RegexCache.Sweep],
// which the owner calls after each build to forget what that build no
// longer uses.
//
// A RegexCache is not safe for concurrent use: one goroutine, the one that
// builds tables, owns it, and must not build two tables with it at once.
// The tables themselves share the compiled expressions safely. The zero
// value is an empty cache ready to use.
type RegexCache struct {
	m map[regexKey]*cachedRegex
}

type regexKey struct {
	src  string
	fold bool
}

type cachedRegex struct {
	regexEntry
	used bool // since the last Sweep
}

type regexEntry struct {
	re     *regexp.Regexp
	prefix string   // a literal every match starts with
	lits   []string // literals every match holds, in order, not overlapping
	err    error
}

// NewRegexCache returns an empty cache.
func NewRegexCache() *RegexCache { return &RegexCache{} }

// Sweep forgets every expression that no NewTable or Check call used since
// the previous Sweep (or since the cache was made), so that the cache holds
// what the latest builds need and not every expression ever seen. Tables
// already built keep their expressions.
func (c *RegexCache) Sweep() {
	for k, e := range c.m {
		if !e.used {
			delete(c.m, k)
			continue
		}
		e.used = false
	}
}

// compile returns src compiled to match whole inputs only, case-folded when
// fold is set, with the literal prefix every match starts with (lower-cased
// when fold is set, for the case-insensitive tree) and the literals every
// match holds, which let Match rule most inputs out without running the
// expression.
func (c *RegexCache) compile(src string, fold bool) (regexEntry, error) {
	k := regexKey{src, fold}
	e, ok := c.m[k]
	if !ok {
		e = &cachedRegex{regexEntry: compileRegex(src, fold)}
		if c.m == nil {
			c.m = make(map[regexKey]*cachedRegex)
		}
		c.m[k] = e
	}
	e.used = true
	return e.regexEntry, e.err
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
	var l literals
	l.add(parsed)
	l.flush()
	return regexEntry{re: re, prefix: b.String(), lits: l.useful()}
}

// literals collects the runs of literal text that every match of an
// expression holds in order: the literals of its top-level concatenation
// (looking into groups), cut wherever anything else comes between them. A
// rune that a case-folding literal could match in another case, and
// utf8.RuneError, which also matches any invalid byte, end a run, so that a
// byte-wise search for the runs never rules out a real match.
type literals struct {
	run  strings.Builder
	done []string
}

func (l *literals) add(re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			l.add(sub)
		}
	case syntax.OpCapture:
		l.add(re.Sub[0])
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		// Zero-width: the text on either side stays adjacent.
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		for _, r := range re.Rune {
			if r == utf8.RuneError || !utf8.ValidRune(r) || fold && unicode.SimpleFold(r) != r {
				l.flush()
				continue
			}
			l.run.WriteRune(r)
		}
	default:
		l.flush()
	}
}

// maxLiterals bounds the searches holdsInOrder makes before an expression
// runs.
const maxLiterals = 4

// useful returns the runs worth searching for, still in order: any
// subsequence of them must appear too, and so must the tail of a run, which
// ends where the run does. Leading slashes and dots go, because
// strings.Index looks for a run's first byte and these abound in paths and
// hosts; single bytes go, because they rule out almost nothing; and of the
// rest the longest few stay.
func (l *literals) useful() []string {
	var out []string
	for _, lit := range l.done {
		if lit = strings.TrimLeft(lit, "/."); len(lit) > 1 {
			out = append(out, lit)
		}
	}
	for len(out) > maxLiterals {
		shortest := 0
		for i, lit := range out {
			if len(lit) < len(out[shortest]) {
				shortest = i
			}
		}
		out = slices.Delete(out, shortest, shortest+1)
	}
	return out
}

func (l *literals) flush() {
	if l.run.Len() > 0 {
		l.done = append(l.done, l.run.String())
		l.run.Reset()
	}
}

// holdsInOrder reports whether s holds every literal, in order and without
// overlap: a match of the expression they came from must.
func holdsInOrder(s string, lits []string) bool {
	for _, lit := range lits {
		i := strings.Index(s, lit)
		if i < 0 {
			return false
		}
		s = s[i+len(lit):]
	}
	return true
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
