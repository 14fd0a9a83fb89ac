package router

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
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

// CriteriaKey returns a canonical encoding of r's match criteria as
// [NewTable] normalises them: host and host-regex flag, path, kind, case
// folding, method and method-regex flag, precedence, and the header and
// query conditions as multisets. It leaves out what does not decide which
// requests match: ID, Group, Weight, Tenant and Value.
//
// For any two routes a and b that NewTable accepts, CriteriaKey(a) equals
// CriteriaKey(b) if and only if a and b have the match criteria the members
// of one weighted group need, so a caller that puts routes into groups by
// this key never has a group rejected for its criteria (the weights must
// still add up to 100). For example, {Method: "get", Headers: [B present,
// A: "1"]} and {Method: "GET", Headers: [A: "1", b present]} have one key.
//
// The key is for comparing and hashing, not for reading: every field is
// prefixed by its length, so no text a user writes can make two different
// criteria encode alike. It returns the error NewTable would report for the
// route (without the *RouteError around it) when r is invalid. Expressions
// are compiled through cache, so a caller that also checks or builds the
// routes compiles each once; nil means a cache of its own.
func CriteriaKey[T any](r *Route[T], cache *RegexCache) (string, error) {
	if cache == nil {
		cache = NewRegexCache()
	}
	_, norm, err := compile(r, cache)
	if err != nil {
		return "", err
	}
	return criteriaKey(&norm), nil
}

// criteriaKey encodes exactly what criteriaDiff compares, in a normalised
// route; condition lists in the order compareHeader sorts them.
func criteriaKey[T any](r *Route[T]) string {
	b := make([]byte, 0, 64)
	b = appendString(b, r.Host)
	b = appendBool(b, r.HostRegex)
	b = appendString(b, r.Path)
	b = appendString(b, r.Kind.String())
	b = appendBool(b, r.CaseInsensitive)
	b = appendString(b, r.Method)
	b = appendBool(b, r.MethodRegex)
	b = appendString(b, strconv.Itoa(r.Precedence))
	headers := slices.SortedFunc(slices.Values(r.Headers), compareHeader)
	b = appendString(b, strconv.Itoa(len(headers)))
	for _, hm := range headers {
		b = appendCond(b, hm.Name, hm.Value, hm.Present, hm.Regex)
	}
	query := slices.SortedFunc(slices.Values(r.Query), compareQuery)
	b = appendString(b, strconv.Itoa(len(query)))
	for _, qm := range query {
		b = appendCond(b, qm.Name, qm.Value, qm.Present, qm.Regex)
	}
	return string(b)
}

func appendCond(b []byte, name, value string, present, regex bool) []byte {
	b = appendString(b, name)
	b = appendString(b, value)
	b = appendBool(b, present)
	return appendBool(b, regex)
}

// appendString appends s prefixed by its decimal length and a colon: the
// length says where s ends, whatever bytes it holds.
func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, '1')
	}
	return append(b, '0')
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
