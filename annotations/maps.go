package annotations

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// keyRule is what the names of a map field look like.
type keyRule struct {
	what     string // "header", "query parameter", ...: names problems
	foldCase bool   // names compare case-insensitively, as HTTP header names do
	// problem says what is wrong with a name, or returns "".
	problem func(name string) string
}

// keyRuleFor returns the rule for the map field at rel.
func keyRuleFor(rel string) keyRule {
	switch rel {
	case "query_parameters", "regex_query_parameters":
		return keyRule{what: "query parameter", problem: queryNameProblem}
	case "add_request_headers":
		return keyRule{what: "header", foldCase: true, problem: func(name string) string { return headerChangeProblem(name, true, "added") }}
	case "add_response_headers":
		return keyRule{what: "header", foldCase: true, problem: func(name string) string { return headerChangeProblem(name, false, "added") }}
	}
	return keyRule{what: "header", foldCase: true, problem: headerNameProblem}
}

// decodeEntries walks a mapping from names to values: it checks each name
// against rule, reports duplicates, records where each value was written and
// calls value for it. want describes the values for a message.
func (p *parser) decodeEntries(n *yaml.Node, rel string, rule keyRule, want string, value func(k, val *yaml.Node, erel string) bool) bool {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, p.path(rel), fmt.Sprintf("expected a mapping of %s name to %s, got %s", rule.what, want, describe(n)))
		return false
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !isStringScalar(k) {
			p.errorAt(k, p.path(rel), rule.what+" names must be plain strings, got "+describe(k))
			ok = false
			continue
		}
		name := k.Value
		erel := join(rel, name)
		id := name
		if rule.foldCase {
			id = strings.ToLower(name)
		}
		if first, dup := seen[id]; dup {
			msg := fmt.Sprintf("duplicate %s %q", rule.what, name)
			if first.Value != name {
				msg = fmt.Sprintf("duplicate %s %q: %s names are case-insensitive and %q was written first", rule.what, name, rule.what, first.Value)
			}
			p.errorSee(k, first, p.path(erel), msg)
			ok = false
			continue
		}
		seen[id] = k
		if msg := rule.problem(name); msg != "" {
			p.errorAt(k, p.path(erel), msg)
			ok = false
		}
		if !isNull(val) {
			p.record(erel, val)
		}
		if !value(k, val, erel) {
			ok = false
		}
	}
	return ok
}

// decodeConditions decodes header or query parameter conditions: name →
// exact value, or true for "present".
func (p *parser) decodeConditions(n *yaml.Node, v reflect.Value, rel string) bool {
	rule := keyRuleFor(rel)
	conds := make(map[string]HeaderValue, len(n.Content)/2)
	ok := p.decodeEntries(n, rel, rule, "value", func(k, val *yaml.Node, erel string) bool {
		hv, good := p.decodeCondition(k, val, erel, rule.what)
		if good {
			conds[k.Value] = hv
		}
		return good
	})
	v.Set(reflect.ValueOf(conds))
	return ok
}

func (p *parser) decodeCondition(k, n *yaml.Node, rel, what string) (HeaderValue, bool) {
	const want = "a string to match exactly, or true to require presence"
	path := p.path(rel)
	if b, ok := plainBool(n); ok {
		if b {
			return HeaderValue{Present: true}, true
		}
		p.errorAt(n, path, "false is not supported: use true to require presence; absence is not supported yet")
		return HeaderValue{}, false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!null":
			p.errorAt(k, path, "missing value: write "+want)
			return HeaderValue{}, false
		case "!!int", "!!float":
			p.errorAt(n, path, fmt.Sprintf("expected %s, got %s; quote it: %q", want, describe(n), n.Value))
			return HeaderValue{}, false
		}
		if isStringScalar(n) {
			if b, ok := yaml11Bool(n); ok && p.opts.Dialect == Emissary {
				// Emissary may have read this as a presence check; which
				// was meant cannot be known, so the text wins, as it
				// does in YAML 1.2, and the user is told.
				msg := fmt.Sprintf("Emissary's YAML 1.1 reader takes unquoted %s as the boolean %t, not as text; Gatehouse matches the value %q: quote it to keep this meaning", n.Value, b, n.Value)
				if b {
					msg += ", or write true to require only that the " + what + " is present"
				}
				p.warnAt(n, path, msg)
			}
			return HeaderValue{Value: n.Value}, true
		}
	}
	p.errorAt(n, path, fmt.Sprintf("expected %s, got %s", want, describe(n)))
	return HeaderValue{}, false
}

// decodeRegexConditions decodes regex_headers and regex_query_parameters:
// name → an RE2 expression the whole value must match.
func (p *parser) decodeRegexConditions(n *yaml.Node, v reflect.Value, rel string) bool {
	conds := make(map[string]string, len(n.Content)/2)
	ok := p.decodeEntries(n, rel, keyRuleFor(rel), "regular expression", func(k, val *yaml.Node, erel string) bool {
		path := p.path(erel)
		if isNull(val) {
			p.errorAt(k, path, "missing value: write a regular expression the whole value must match")
			return false
		}
		s, good := p.decodeString(val, path)
		if !good {
			return false
		}
		if _, msg := compileRegexp(s); msg != "" {
			p.errorAt(val, path, msg)
			return false
		}
		conds[k.Value] = s
		return true
	})
	v.Set(reflect.ValueOf(conds))
	return ok
}

// decodeAddedHeaders decodes add_request_headers and add_response_headers:
// name → value, or name → {value, append}.
func (p *parser) decodeAddedHeaders(n *yaml.Node, v reflect.Value, rel string) bool {
	added := make(map[string]AddedHeader, len(n.Content)/2)
	ok := p.decodeEntries(n, rel, keyRuleFor(rel), "value", func(k, val *yaml.Node, erel string) bool {
		ah, good := p.decodeAddedHeader(k, val, erel)
		if good {
			added[k.Value] = ah
		}
		return good
	})
	v.Set(reflect.ValueOf(added))
	return ok
}

func (p *parser) decodeAddedHeader(k, n *yaml.Node, rel string) (AddedHeader, bool) {
	const want = "a header value, or {value: ..., append: false}"
	path := p.path(rel)
	var ah AddedHeader
	valueNode, valuePath := n, path
	switch {
	case isNull(n):
		p.errorAt(k, path, "missing value: write "+want)
		return ah, false
	case n.Kind == yaml.MappingNode:
		sl := p.decodeFields(n, reflect.ValueOf(&ah).Elem(), rel, nil)
		if len(sl.failed) > 0 {
			return ah, false
		}
		loc, ok := sl.written("value")
		if !ok {
			p.errorAt(n, path, `missing required field "value"`)
			return ah, false
		}
		valueNode, valuePath = loc.value, p.path(join(rel, "value"))
	case isStringScalar(n):
		ah.Value = n.Value
	default:
		msg := fmt.Sprintf("expected %s, got %s", want, describe(n))
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			msg += fmt.Sprintf("; quote it: %q", n.Value)
		}
		p.errorAt(n, path, msg)
		return ah, false
	}
	if strings.ContainsAny(ah.Value, "\r\n\x00") {
		p.errorAt(valueNode, valuePath, "a header value must not contain CR, LF or NUL characters")
		return ah, false
	}
	return ah, true
}
