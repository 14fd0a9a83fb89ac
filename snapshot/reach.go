package snapshot

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/annotations"

	"github.com/gatehouse-dev/gatehouse/router"
)

// The rules of reach: what a route may be written to compete with. The
// router already keeps other namespaces' routes off an owned host whatever
// they say; these rules deny at admission the routes written to reach
// past another namespace, so a team learns at `kubectl apply` time, with
// the owner named, rather than from traffic that never arrives:
//
//   - a wildcard or regular-expression host may not cover a host another
//     namespace owns (unless the owner delegates to this namespace);
//   - precedence orders a namespace's own routes: a route may not use a
//     positive precedence to rank ahead of another namespace's route that
//     could answer the same requests (the hosts intersect and the paths
//     overlap).
//
// Both apply to routes a Service adds or changes, never to routes it
// already serves: a Service must not be held hostage by a later claim of
// another namespace (a host claimed inside its wildcard, a route added
// below its precedence). The gateway still enforces ownership on them.

// reach is what the rules need to know of one route.
type reach struct {
	id, group string // the route's ID and its canary group (namespace + criteria)
	ns        string
	mapping   string // "namespace/name", for messages

	host    string         // exact host, "*.suffix", or "" for any host
	hostRe  *regexp.Regexp // a regex host, anchored; nil otherwise
	exact   bool           // the path must equal lit
	lit     string         // the path, or a regex path's literal prefix; lower-cased when fold
	fold    bool
	prec    int
	display string // host and path as written, for messages
}

func reachOf(r *router.Route[*Route], group string) reach {
	x := reach{id: r.ID, group: group, ns: r.Tenant, mapping: r.Value.Mapping, prec: r.Precedence, fold: r.CaseInsensitive}
	x.host = strings.ToLower(r.Host)
	if r.HostRegex {
		// Unparsable here means the router rejected it already.
		x.hostRe, _ = regexp.Compile("^(?:" + r.Host + ")$")
		x.host = ""
	}
	switch r.Kind {
	case router.Exact:
		x.exact, x.lit = true, r.Path
	case router.Prefix:
		x.lit = r.Path
	case router.Regex:
		if re, err := regexp.Compile(r.Path); err == nil {
			x.lit, _ = re.LiteralPrefix()
		}
	}
	if x.fold {
		x.lit = strings.ToLower(x.lit)
	}
	x.display = fmt.Sprintf("host %q, %s %q", hostOrAny(r.Host), r.Kind, r.Path)
	return x
}

// coversHost reports whether requests for the exact host h can reach x.
func (x *reach) coversHost(h string) bool {
	switch {
	case x.hostRe != nil:
		return x.hostRe.MatchString(h)
	case x.host == "":
		return true
	case strings.HasPrefix(x.host, "*."):
		return strings.HasSuffix(h, x.host[1:]) && len(h) > len(x.host)-1
	}
	return x.host == h
}

// hostsMeet reports whether some request host could reach both x and y;
// a regex host is assumed to meet anything but an exact host it rejects.
func hostsMeet(x, y *reach) bool {
	switch {
	case x.host == "" && x.hostRe == nil, y.host == "" && y.hostRe == nil:
		return true
	case x.hostRe == nil && !strings.HasPrefix(x.host, "*."):
		return y.coversHost(x.host)
	case y.hostRe == nil && !strings.HasPrefix(y.host, "*."):
		return x.coversHost(y.host)
	case x.hostRe != nil || y.hostRe != nil:
		return true
	}
	// Two wildcards meet when one suffix ends the other.
	return strings.HasSuffix(x.host, x.host[1:]) && (strings.HasSuffix(x.host[1:], y.host[1:]) || strings.HasSuffix(y.host[1:], x.host[1:]))
}

// pathsMeet reports whether some request path could reach both.
func pathsMeet(x, y *reach) bool {
	a, b := x.lit, y.lit
	if x.fold != y.fold {
		a, b = strings.ToLower(a), strings.ToLower(b)
	}
	switch {
	case x.exact && y.exact:
		return a == b
	case x.exact:
		return strings.HasPrefix(a, b)
	case y.exact:
		return strings.HasPrefix(b, a)
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// reachProblems applies the rules to route x of namespace ns, which the
// Service does not serve yet.
func (t *tenancy) reachProblems(x *reach) []string {
	var out []string
	if x.hostRe != nil || strings.HasPrefix(x.host, "*.") {
		for h := range t.hosts {
			if owner, ok := t.mayServe(h, x.ns); !ok && x.coversHost(h) {
				out = append(out, fmt.Sprintf("host pattern %q covers host %q, which belongs to namespace %q (claimed first by Service %s); narrow the pattern, or ask the owner to delegate (the %s annotation of Namespace %q)", hostPattern(x), h, owner.namespace, owner.service, DelegateKey, owner.namespace))
				break // one is enough to say what is wrong
			}
		}
	}
	if msg := t.outranks(x); msg != "" {
		out = append(out, msg)
	}
	return out
}

// outranks applies the precedence rule to x against every route held now,
// and says what x would rank ahead of ("" when nothing).
func (t *tenancy) outranks(x *reach) string {
	if x.prec <= 0 {
		return ""
	}
	for _, rs := range t.routes {
		for i := range rs {
			y := &rs[i]
			if y.ns == x.ns || y.prec >= x.prec || !hostsMeet(x, y) || !pathsMeet(x, y) {
				continue
			}
			return fmt.Sprintf("precedence %d would rank this route ahead of namespace %q's Mapping %s (%s, precedence %d) for the same requests; precedence orders a namespace's own routes and cannot reach past another namespace's", x.prec, y.ns, y.mapping, y.display, y.prec)
		}
	}
	return ""
}

// precedenceAfterAll re-applies the precedence rule to the routes a unit
// adds, against every route held once all of a Build's Services are
// decided. check saw only the Services decided before this one, so without
// this pass the rule would depend on Build's order: a high-precedence route
// decided first would pass, and the same routes decided the other way round
// would not (a restart, or two Services created in the same second).
func (t *tenancy) precedenceAfterAll(u *unit, served []reach) map[string]annotations.Problems {
	var problems map[string]annotations.Problems
	for i := range u.routes {
		ur := &u.routes[i]
		if ur.route.Precedence <= 0 {
			continue
		}
		x := reachOf(&ur.route, ur.group)
		if slices.ContainsFunc(served, func(s reach) bool { return s.id == x.id && s.group == x.group }) {
			continue
		}
		if msg := t.outranks(&x); msg != "" {
			if problems == nil {
				problems = map[string]annotations.Problems{}
			}
			problems[ur.src] = append(problems[ur.src], annotations.Problem{Pos: ur.m.FieldPos("precedence"), Path: mappingPath(ur.m.Name, "precedence"), Message: msg})
		}
	}
	return problems
}

func hostPattern(x *reach) string {
	if x.hostRe != nil {
		return strings.TrimSuffix(strings.TrimPrefix(x.hostRe.String(), "^(?:"), ")$")
	}
	return x.host
}
