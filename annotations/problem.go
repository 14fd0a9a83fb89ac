package annotations

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong (or, with Warning, doubtful) in an annotation.
//
// Lines are counted as the YAML library counts them: LF, CRLF and a lone CR
// each end a line (as do the rare NEL, LS and PS characters); columns count
// characters, not bytes, starting at 1.
type Problem struct {
	Pos     Position // 1-based line/column inside the annotation string
	Path    string   // field path, e.g. `Mapping "users".headers.x-env`; `document 2` for a whole document
	Message string   // e.g. `unknown field "prefx" (did you mean "prefix"?)`
	Warning bool     // soft issue; does not make the annotation invalid
	// Related is the other place the message refers to, such as the first
	// of two duplicate keys; nil when there is none. Like Pos it is inside
	// the annotation string, which is why messages never spell out a line
	// number: a caller that translates Pos into a manifest file translates
	// Related the same way.
	Related *Position
}

// Error formats the problem as
// `line 4, column 3: Mapping "users".prefx: unknown field "prefx" (did you mean "prefix"?)`;
// warnings carry "warning: " after the position, and a Related position is
// appended as ` (see line 2, column 1)`.
func (p Problem) Error() string {
	var b strings.Builder
	b.Grow(len(p.Path) + len(p.Message) + 70)
	b.WriteString("line ")
	b.WriteString(strconv.Itoa(p.Pos.Line))
	b.WriteString(", column ")
	b.WriteString(strconv.Itoa(p.Pos.Column))
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Related != nil {
		b.WriteString(" (see line ")
		b.WriteString(strconv.Itoa(p.Related.Line))
		b.WriteString(", column ")
		b.WriteString(strconv.Itoa(p.Related.Column))
		b.WriteString(")")
	}
	return b.String()
}

// Problems is a list of problems, sorted by position when it comes from Parse.
type Problems []Problem

// Error lists every problem, one per line.
func (ps Problems) Error() string {
	if len(ps) == 0 {
		return "no problems"
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any problem is an error rather than a warning.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if !p.Warning {
			return true
		}
	}
	return false
}

// sortProblems orders by position; problems at the same position keep the
// order in which they were found, which is deterministic.
func sortProblems(ps Problems) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
}
