package router

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// linear is the reference the tree is checked against: every route in one
// slice, sorted by the documented order, scanned until the first match. It is
// written from the package comment, sharing no matching code with the tree.
type linear[T any] struct {
	routes []linearRoute[T]
}

type linearRoute[T any] struct {
	Route[T]
	host string // lower-case, IPv6 brackets removed
	re   *regexp.Regexp
}

// newLinear expects routes that New accepted.
func newLinear[T any](routes []Route[T]) *linear[T] {
	l := &linear[T]{}
	for _, r := range routes {
		lr := linearRoute[T]{Route: r, host: strings.Trim(asciiLower(r.Host), "[]")}
		if r.Kind == Regex {
			lr.re = regexp.MustCompile("^(?:" + r.Path + ")$")
		}
		l.routes = append(l.routes, lr)
	}
	count := func(r *Route[T]) int {
		n := len(r.Headers)
		if r.Host != "" {
			n++
		}
		if r.Method != "" {
			n++
		}
		return n
	}
	kindOrder := map[PathKind]int{Exact: 0, Prefix: 1, Regex: 2}
	sort.Slice(l.routes, func(i, j int) bool {
		a, b := &l.routes[i].Route, &l.routes[j].Route
		switch {
		case a.Precedence != b.Precedence:
			return a.Precedence > b.Precedence
		case len(a.Path) != len(b.Path):
			return len(a.Path) > len(b.Path)
		case count(a) != count(b):
			return count(a) > count(b)
		case a.Kind != b.Kind:
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.ID < b.ID
	})
	return l
}

// asciiLower folds only ASCII: DNS names are case-insensitive in ASCII only,
// and strings.ToLower would turn the Kelvin sign into "k".
// It copies only when it must, so BenchmarkLinear measures the scan.
func asciiLower(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func (l *linear[T]) match(host, method, path string, h http.Header) (*Route[T], bool) {
	reqHost := host
	if strings.HasPrefix(host, "[") {
		if end := strings.Index(host, "]"); end > 0 {
			reqHost = host[1:end]
		}
	} else if strings.Count(host, ":") == 1 {
		reqHost, _, _ = strings.Cut(host, ":")
	}
	hostOK := len(reqHost) <= 253
	reqHost = asciiLower(reqHost)

	for i := range l.routes {
		r := &l.routes[i]
		switch {
		case r.host == "":
		case !hostOK:
			continue
		case strings.HasPrefix(r.host, "*."):
			suffix := r.host[1:]
			if !strings.HasSuffix(reqHost, suffix) || len(reqHost) == len(suffix) {
				continue
			}
		case r.host != reqHost:
			continue
		}
		switch r.Kind {
		case Prefix:
			if !strings.HasPrefix(path, r.Path) {
				continue
			}
		case Exact:
			if path != r.Path {
				continue
			}
		case Regex:
			if !r.re.MatchString(path) {
				continue
			}
		}
		if r.Method != "" && strings.ToUpper(r.Method) != method {
			continue
		}
		ok := true
		for _, hm := range r.Headers {
			vals := h.Values(hm.Name)
			if len(vals) == 0 || (!hm.Present && vals[0] != hm.Value) {
				ok = false
				break
			}
		}
		if ok {
			return &r.Route, true
		}
	}
	return nil, false
}
