package annotations

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Every regular expression in an annotation is compiled here, at parse
// time: in Emissary a bad one passes its checks and then makes Envoy reject
// the whole configuration.

// compileRegexp compiles an RE2 expression (prefix_regex, host_regex,
// method_regex, regex_headers, regex_query_parameters, regex_rewrite). It
// returns the expression, or a message for the user saying what is wrong.
func compileRegexp(pattern string) (*regexp.Regexp, string) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, explainRegexp(pattern, err)
	}
	return re, ""
}

// explainRegexp turns a regexp compile error into a message that names the
// Perl/PCRE features users reach for and RE2 lacks.
func explainRegexp(pattern string, err error) string {
	const unsupported = "is not supported by RE2 (Go regexp)"
	for _, c := range []struct{ syntax, name string }{
		{"(?<=", "look-behind"},
		{"(?<!", "negative look-behind"},
		{"(?=", "look-ahead"},
		{"(?!", "negative look-ahead"},
	} {
		if strings.Contains(pattern, c.syntax) {
			return fmt.Sprintf("invalid regular expression: %s %q %s", c.name, c.syntax, unsupported)
		}
	}
	for i := 0; i+1 < len(pattern); i++ {
		if pattern[i] != '\\' {
			continue
		}
		if d := pattern[i+1]; d >= '1' && d <= '9' {
			return fmt.Sprintf("invalid regular expression: back-reference %q %s", pattern[i:i+2], unsupported)
		}
		i++ // skip the escaped character, so \\1 is not a back-reference
	}
	return "invalid regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// substitutionProblem checks a regex_rewrite substitution against its
// pattern (nil when the pattern did not compile). Substitutions use Go's
// regexp.Expand syntax ($1, ${1}, ${name}, $$); every group referred to must
// exist, since Expand would silently put nothing there.
func substitutionProblem(re *regexp.Regexp, sub string) string {
	for i := 0; i+1 < len(sub); i++ {
		if sub[i] == '\\' && sub[i+1] >= '0' && sub[i+1] <= '9' {
			return fmt.Sprintf(`Envoy-style group reference %q is not supported; write "${%c}"`, sub[i:i+2], sub[i+1])
		}
	}
	return groupProblem(re, sub)
}

// groupProblem checks that every group a Go substitution refers to exists
// in re (nil when the pattern did not compile).
func groupProblem(re *regexp.Regexp, sub string) string {
	if re == nil {
		return ""
	}
	for rest := sub; ; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			return ""
		}
		rest = rest[i+1:]
		if strings.HasPrefix(rest, "$") {
			rest = rest[1:]
			continue
		}
		name, num, after, ok := expandRef(rest)
		if !ok {
			if strings.HasPrefix(rest, "{") {
				return `"${" is not followed by a group name or number and "}"; write "$$" for a literal "$"`
			}
			continue // a "$" not followed by a name is kept as text
		}
		rest = after
		switch {
		case num > re.NumSubexp():
			return fmt.Sprintf("refers to group %d, but the pattern has %s", num, groupCount(re.NumSubexp()))
		case num < 0 && re.SubexpIndex(name) < 0:
			msg := fmt.Sprintf("refers to group %q, but the pattern has no group of that name", name)
			if lead := leadingDigits(name); lead != "" {
				msg += fmt.Sprintf(`; "$%s" means the group named %q: write "${%s}%s" for group %s followed by text`, name, name, lead, name[len(lead):], lead)
			}
			return msg
		}
	}
}

// translateEnvoySubstitution turns a substitution in Envoy's syntax (RE2's
// rewrite strings: \0 to \9 for groups, \\ for a backslash, everything
// else literal) into Go's regexp.Expand syntax, or says what Envoy would
// trip over (RE2 stops rewriting at a bad escape, cutting the path short).
// A "$" is literal to Envoy, so it becomes "$$".
func translateEnvoySubstitution(sub string) (string, string) {
	if !strings.ContainsAny(sub, `\$`) {
		return sub, ""
	}
	var b strings.Builder
	b.Grow(len(sub) + 8)
	for i := 0; i < len(sub); i++ {
		switch c := sub[i]; {
		case c == '$':
			b.WriteString("$$")
		case c != '\\':
			b.WriteByte(c)
		case i+1 == len(sub):
			return "", `a "\" at the end must be written "\\" (Envoy's substitution syntax)`
		case sub[i+1] >= '0' && sub[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(sub[i+1])
			b.WriteByte('}')
			i++
		case sub[i+1] == '\\':
			b.WriteByte('\\')
			i++
		default:
			r, _ := utf8.DecodeRuneInString(sub[i+1:])
			return "", fmt.Sprintf(`%q is not allowed: in Envoy's substitution syntax "\" is followed by a group number (\1) or another "\"`, `\`+string(r))
		}
	}
	return b.String(), ""
}

// dollarReference reports whether sub holds what Go or Perl would read as a
// group reference: "$" followed by a digit or "{".
func dollarReference(sub string) bool {
	for i := 0; i+1 < len(sub); i++ {
		if sub[i] == '$' && (sub[i+1] >= '0' && sub[i+1] <= '9' || sub[i+1] == '{') {
			return true
		}
	}
	return false
}

func groupCount(n int) string {
	if n == 1 {
		return "1 group"
	}
	return strconv.Itoa(n) + " groups"
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == len(s) {
		return ""
	}
	return s[:i]
}

// expandRef reads a group reference after a "$" exactly as regexp.Expand
// does: a name of letters, digits and '_', optionally in braces; a name of
// only digits (without a leading zero) is a group number, otherwise num is
// -1. ok is false when there is no reference, and Expand keeps the "$".
func expandRef(s string) (name string, num int, rest string, ok bool) {
	brace := strings.HasPrefix(s, "{")
	if brace {
		s = s[1:]
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return "", 0, "", false
	}
	name = s[:i]
	if brace {
		if i >= len(s) || s[i] != '}' {
			return "", 0, "", false
		}
		i++
	}
	num = 0
	for j := 0; j < len(name); j++ {
		if name[j] < '0' || name[j] > '9' || num >= 1e8 {
			num = -1
			break
		}
		num = num*10 + int(name[j]-'0')
	}
	if name[0] == '0' && len(name) > 1 {
		num = -1
	}
	return name, num, s[i:], true
}
