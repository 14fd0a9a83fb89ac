package router

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// checkGroup reports the first problem of a weighted group: a weight out of
// range, a total other than 100, or a member whose match criteria differ
// from the first member's. members are input indices in ID order; valid
// says which routes compiled (a broken member has its own error already, and
// its normalised copy is not there to compare).
func checkGroup[T any](in, norm []Route[T], valid []bool, members []int) error {
	sum := 0
	for _, i := range members {
		if w := in[i].Weight; w < 0 || w > 100 {
			return fmt.Errorf("route %q has weight %d, want 0 to 100", in[i].ID, w)
		}
		sum += in[i].Weight
	}
	if sum != 100 {
		parts := make([]string, len(members))
		for k, i := range members {
			parts[k] = fmt.Sprintf("%q=%d", in[i].ID, in[i].Weight)
		}
		return fmt.Errorf("weights add up to %d, want 100 (%s)", sum, strings.Join(parts, ", "))
	}
	var first *Route[T]
	for _, i := range members {
		if !valid[i] {
			continue
		}
		if first == nil {
			first = &norm[i]
			continue
		}
		if field := criteriaDiff(first, &norm[i]); field != "" {
			return fmt.Errorf("route %q differs from %q in %s; members of a group need identical match criteria", norm[i].ID, first.ID, field)
		}
	}
	return nil
}

// criteriaDiff names the first match criterion in which two normalised
// routes differ, or returns "". Condition lists compare as sets: their order
// does not change what matches.
func criteriaDiff[T any](a, b *Route[T]) string {
	switch {
	case a.Host != b.Host:
		return "host"
	case a.HostRegex != b.HostRegex:
		return "host regex flag"
	case a.Path != b.Path:
		return "path"
	case a.Kind != b.Kind:
		return "path kind"
	case a.CaseInsensitive != b.CaseInsensitive:
		return "case sensitivity"
	case a.Method != b.Method:
		return "method"
	case a.MethodRegex != b.MethodRegex:
		return "method regex flag"
	case !sameSet(a.Headers, b.Headers, compareHeader):
		return "headers"
	case !sameSet(a.Query, b.Query, compareQuery):
		return "query"
	case a.Precedence != b.Precedence:
		return "precedence"
	}
	return ""
}

func sameSet[E comparable](a, b []E, compare func(E, E) int) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, compare)
	slices.SortFunc(b, compare)
	return slices.Equal(a, b)
}

func compareHeader(a, b HeaderMatch) int {
	return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value),
		boolCompare(a.Present, b.Present), boolCompare(a.Regex, b.Regex))
}

func compareQuery(a, b QueryMatch) int {
	return compareHeader(HeaderMatch(a), HeaderMatch(b))
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
