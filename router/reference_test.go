package router

import (
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// linear is the reference the tree is checked against: every route in one
// slice, sorted by the documented order, scanned until the first match. It is
// written from the package comment, sharing no matching code with the tree:
// queries go through url.ParseQuery, case folding through a plain loop,
// regular expressions are compiled here.
type linear[T any] struct {
	routes []linearRoute[T]
	owners map[string][]string // lower-case owned host, IPv6 without brackets → tenants
	maxRe  int                 // the longest input a regex runs on; 0 for no bound
}

type linearRoute[T any] struct {
	Route[T]
	host      string // lower-case, IPv6 brackets removed; the expression for host regexes
	hostRe    *regexp.Regexp
	methodRe  *regexp.Regexp
	re        *regexp.Regexp
	headerRes []*regexp.Regexp // parallel to Headers; nil where not a regex
	queryRes  []*regexp.Regexp // parallel to Query
	unitID    string           // the lowest member ID of the route's group, else its ID
	members   []*Route[T]      // the group in ID order; just the route when ungrouped
	headerLen int              // Emissary's len_headers, host and method included
	queryLen  int              // Emissary's len_query
}

// emissaryLen is the length Emissary's Header.length gives one condition:
// the name, the value or "*" when there is none, and 1 for a regex.
func emissaryLen(name, value string, present, regex bool) int {
	if present {
		return len(name) + len("*")
	}
	if value == "" {
		value = "*"
	}
	if regex {
		return len(name) + len(value) + 1
	}
	return len(name) + len(value)
}

func anchored(expr string) *regexp.Regexp {
	return regexp.MustCompile("^(?:" + expr + ")$")
}

func optionalRegex(on bool, expr string) *regexp.Regexp {
	if !on {
		return nil
	}
	return anchored(expr)
}

// newLinear expects routes that New accepted.
func newLinear[T any](routes []Route[T]) *linear[T] {
	return newLinearOpts(routes, Options{})
}

// newLinearOpts expects routes and options that NewTable accepted.
func newLinearOpts[T any](routes []Route[T], opts Options) *linear[T] {
	l := &linear[T]{maxRe: opts.MaxRegexInput}
	for host, tenants := range opts.Owners {
		if l.owners == nil {
			l.owners = map[string][]string{}
		}
		host = strings.Trim(refLower(host), "[]")
		l.owners[host] = append(l.owners[host], tenants...)
	}
	groups := map[string][]*Route[T]{}
	for i := range routes {
		if g := routes[i].Group; g != "" {
			groups[g] = append(groups[g], &routes[i])
		}
	}
	for _, members := range groups {
		sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	}
	for i := range routes {
		r := routes[i]
		lr := linearRoute[T]{Route: r, unitID: r.ID, members: []*Route[T]{&routes[i]}}
		if r.Group != "" {
			lr.members = groups[r.Group]
			lr.unitID = lr.members[0].ID
		}
		if r.HostRegex {
			lr.host, lr.hostRe = r.Host, anchored(r.Host)
		} else {
			lr.host = strings.Trim(refLower(r.Host), "[]")
		}
		if r.Kind == Regex {
			if r.CaseInsensitive {
				lr.re = regexp.MustCompile("(?i)^(?:" + r.Path + ")$")
			} else {
				lr.re = anchored(r.Path)
			}
		}
		lr.methodRe = optionalRegex(r.MethodRegex, r.Method)
		for _, hm := range r.Headers {
			lr.headerRes = append(lr.headerRes, optionalRegex(hm.Regex && !hm.Present, hm.Value))
		}
		for _, qm := range r.Query {
			lr.queryRes = append(lr.queryRes, optionalRegex(qm.Regex && !qm.Present, qm.Value))
		}
		if r.Host != "" {
			lr.headerLen += emissaryLen(":authority", lr.host, false, r.HostRegex)
		}
		if r.Method != "" {
			lr.headerLen += emissaryLen(":method", r.Method, false, r.MethodRegex)
		}
		for _, hm := range r.Headers {
			lr.headerLen += emissaryLen(hm.Name, hm.Value, hm.Present, hm.Regex)
		}
		for _, qm := range r.Query {
			lr.queryLen += emissaryLen(qm.Name, qm.Value, qm.Present, qm.Regex)
		}
		l.routes = append(l.routes, lr)
	}
	kindOrder := map[PathKind]int{Exact: 0, Prefix: 1, Regex: 2}
	sort.Slice(l.routes, func(i, j int) bool {
		a, b := &l.routes[i], &l.routes[j]
		switch {
		case a.Precedence != b.Precedence:
			return a.Precedence > b.Precedence
		case len(a.Path) != len(b.Path):
			return len(a.Path) > len(b.Path)
		case a.headerLen != b.headerLen:
			return a.headerLen > b.headerLen
		case a.queryLen != b.queryLen:
			return a.queryLen > b.queryLen
		case a.Kind != b.Kind:
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		case a.unitID != b.unitID:
			return a.unitID < b.unitID
		}
		return a.ID < b.ID
	})
	return l
}

// refLower folds only ASCII: DNS names are case-insensitive in ASCII only,
// and strings.ToLower would turn the Kelvin sign into "k".
// It copies only when it must, so BenchmarkLinear measures the scan.
func refLower(s string) string {
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

// first returns the first value of key and whether there is one.
func first(vals []string) (string, bool) {
	if len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

// condHolds applies the shared Present / Value / Regex rule.
func (l *linear[T]) condHolds(v string, found, present bool, want string, re *regexp.Regexp) bool {
	switch {
	case !found:
		return false
	case present:
		return true
	case re != nil:
		return l.regexHolds(re, v)
	}
	return v == want
}

// regexHolds runs re on s unless s is longer than the bound.
func (l *linear[T]) regexHolds(re *regexp.Regexp, s string) bool {
	if l.maxRe > 0 && len(s) > l.maxRe {
		return false
	}
	return re.MatchString(s)
}

// allowed reports whether the owners of an owned host let r answer: every
// route of its unit (the group, or r alone) must belong to a listed tenant.
func allowed[T any](r *linearRoute[T], owners []string) bool {
	for _, m := range r.members {
		if !slices.Contains(owners, m.Tenant) {
			return false
		}
	}
	return true
}

// matchRoute returns the first matching route, before any weighted pick.
func (l *linear[T]) matchRoute(req *Request) (*linearRoute[T], bool) {
	host, method, path := req.Host, req.Method, req.Path
	reqHost := host
	if strings.HasPrefix(host, "[") {
		if end := strings.Index(host, "]"); end > 0 {
			reqHost = host[1:end]
		}
	} else if strings.Count(host, ":") == 1 {
		reqHost, _, _ = strings.Cut(host, ":")
	}
	// One trailing dot goes: "h." is the fully qualified spelling of "h".
	reqHost = strings.TrimSuffix(reqHost, ".")
	hostOK := len(reqHost) <= 253
	reqHost = refLower(reqHost)
	owners, owned := l.owners[reqHost]
	var query url.Values // parsed on first need, as a handler would
	for i := range l.routes {
		r := &l.routes[i]
		if owned && !allowed(r, owners) {
			continue
		}
		// The regular expressions (host, path, method) run last: the order
		// of the checks within one route cannot change whether it matches,
		// and running them first would make the reference slow.
		switch {
		case r.host == "":
		case !hostOK:
			continue
		case r.hostRe != nil:
		case strings.HasPrefix(r.host, "*."):
			suffix := r.host[1:]
			if !strings.HasSuffix(reqHost, suffix) || len(reqHost) == len(suffix) {
				continue
			}
		case r.host != reqHost:
			continue
		}
		p, rp := path, r.Path
		if r.CaseInsensitive {
			p, rp = refLower(p), refLower(rp)
		}
		switch r.Kind {
		case Prefix:
			if !strings.HasPrefix(p, rp) {
				continue
			}
		case Exact:
			if p != rp {
				continue
			}
		}
		if r.methodRe == nil && r.Method != "" && strings.ToUpper(r.Method) != method {
			continue
		}
		ok := true
		for k, hm := range r.Headers {
			v, found := first(req.Header.Values(hm.Name))
			ok = ok && l.condHolds(v, found, hm.Present, hm.Value, r.headerRes[k])
		}
		for k, qm := range r.Query {
			if query == nil {
				query, _ = url.ParseQuery(req.RawQuery)
			}
			v, found := first(query[qm.Name])
			ok = ok && l.condHolds(v, found, qm.Present, qm.Value, r.queryRes[k])
		}
		ok = ok && (r.hostRe == nil || l.regexHolds(r.hostRe, reqHost)) &&
			(r.re == nil || l.regexHolds(r.re, path)) &&
			(r.methodRe == nil || l.regexHolds(r.methodRe, method))
		if ok {
			return r, true
		}
	}
	return nil, false
}

// matchRoll picks within a group like MatchRoll: members in ID order, each
// owning the next Weight values of 0..99.
func (l *linear[T]) matchRoll(req *Request, roll uint32) (*Route[T], bool) {
	r, ok := l.matchRoute(req)
	if !ok {
		return nil, false
	}
	if r.Group == "" {
		return &r.Route, true
	}
	roll %= 100
	sum := uint32(0)
	for _, m := range r.members {
		sum += uint32(m.Weight)
		if roll < sum {
			return m, true
		}
	}
	panic("weights of group " + r.Group + " do not add up to 100")
}

func (l *linear[T]) match(req *Request) (*Route[T], bool) {
	return l.matchRoll(req, 0)
}
