package router

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
)

// compiled is what compile makes of a route: the conditions Match checks,
// and what NewTable needs to place the unit.
type compiled struct {
	cond
	key      string         // where the unit sits in its bucket's tree
	hostRe   *regexp.Regexp // HostRegex routes
	hostLits []string       // literals every host that hostRe matches holds, in order
}

// compile validates one route and returns its compiled form and normalised
// copy.
func compile[T any](in *Route[T], rc *RegexCache) (compiled, Route[T], error) {
	out := *in
	var c compiled
	if in.ID == "" {
		return c, out, errors.New("empty ID")
	}
	if in.HostRegex {
		if in.Host == "" {
			return c, out, errors.New("empty host regex (use an empty Host without HostRegex for any host)")
		}
		e, err := rc.compile(in.Host, false)
		if err != nil {
			return c, out, fmt.Errorf("compiling host regex %q: %w", in.Host, err)
		}
		c.hostRe, c.hostLits = e.re, e.lits
	} else {
		host, err := normaliseHost(in.Host)
		if err != nil {
			return c, out, err
		}
		out.Host = host
	}

	c.kind, c.fold = in.Kind, in.CaseInsensitive
	switch in.Kind {
	case Prefix, Exact:
		if !strings.HasPrefix(in.Path, "/") {
			return c, out, fmt.Errorf("%s path %q does not start with \"/\"", in.Kind, in.Path)
		}
		c.key = in.Path
		if c.fold {
			c.key = asciiLower(in.Path)
		}
	case Regex:
		e, err := rc.compile(in.Path, c.fold)
		if err != nil {
			return c, out, fmt.Errorf("compiling regex path %q: %w", in.Path, err)
		}
		c.re, c.key, c.lits = e.re, e.prefix, e.lits
	default:
		return c, out, fmt.Errorf("unknown path kind %d", uint8(in.Kind))
	}

	switch {
	case in.MethodRegex:
		if in.Method == "" {
			return c, out, errors.New("empty method regex (use an empty Method without MethodRegex for any method)")
		}
		e, err := rc.compile(in.Method, false)
		if err != nil {
			return c, out, fmt.Errorf("compiling method regex %q: %w", in.Method, err)
		}
		c.methodRe = e.re
	case in.Method != "":
		if !isToken(in.Method) {
			return c, out, fmt.Errorf("method %q is not an HTTP token", in.Method)
		}
		out.Method = strings.ToUpper(in.Method)
		c.method = out.Method
	}

	out.Headers = nil
	if len(in.Headers) > 0 {
		out.Headers = make([]HeaderMatch, len(in.Headers))
		c.headers = make([]paramCond, len(in.Headers))
		for i, hm := range in.Headers {
			if !isToken(hm.Name) {
				return c, out, fmt.Errorf("header %d: name %q is not an HTTP token", i, hm.Name)
			}
			hm.Name = textproto.CanonicalMIMEHeaderKey(hm.Name)
			pc, err := compileParam(hm.Name, &hm.Value, &hm.Present, &hm.Regex, rc)
			if err != nil {
				return c, out, fmt.Errorf("header %d (%s): %w", i, hm.Name, err)
			}
			out.Headers[i], c.headers[i] = hm, pc
		}
	}

	out.Query = nil
	if len(in.Query) > 0 {
		out.Query = make([]QueryMatch, len(in.Query))
		c.query = make([]paramCond, len(in.Query))
		for i, qm := range in.Query {
			if qm.Name == "" {
				return c, out, fmt.Errorf("query %d: empty name", i)
			}
			pc, err := compileParam(qm.Name, &qm.Value, &qm.Present, &qm.Regex, rc)
			if err != nil {
				return c, out, fmt.Errorf("query %d (%s): %w", i, qm.Name, err)
			}
			out.Query[i], c.query[i] = qm, pc
		}
	}
	c.regexes = c.re != nil || c.methodRe != nil
	for _, pc := range c.headers {
		c.regexes = c.regexes || pc.re != nil
	}
	for _, pc := range c.query {
		c.regexes = c.regexes || pc.re != nil
	}
	c.plain = c.kind != Regex && c.method == "" && c.methodRe == nil && c.headers == nil && c.query == nil
	return c, out, nil
}

// compileParam normalises a header or query condition in place (Present
// wins over Value and Regex) and compiles it.
func compileParam(name string, value *string, present, regex *bool, rc *RegexCache) (paramCond, error) {
	if *present {
		*value, *regex = "", false
		return paramCond{name: name, present: true}, nil
	}
	pc := paramCond{name: name, value: *value}
	if *regex {
		e, err := rc.compile(*value, false)
		if err != nil {
			return pc, fmt.Errorf("compiling regex %q: %w", *value, err)
		}
		pc.re = e.re
	}
	return pc, nil
}

// isToken reports whether s is a non-empty RFC 9110 token: anything else can
// never appear as a method or header name on the wire.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// asciiLower folds only ASCII, as the case-insensitive path walk does; it
// copies only when it must.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lower(b[j])
			}
			return string(b)
		}
	}
	return s
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
