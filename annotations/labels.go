package annotations

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Emissary's rate-limit labels are read only so that annotations carrying
// them parse, and so that a mistake in them is still pointed out: Gatehouse
// does not call an external rate-limit service (see Mapping.Labels).

// Label kinds, as Emissary names its label specifiers.
const (
	labelSourceCluster      = "source_cluster"
	labelDestinationCluster = "destination_cluster"
	labelRequestHeaders     = "request_headers"
	labelRemoteAddress      = "remote_address"
	labelGenericKey         = "generic_key"
)

var labelKinds = []string{labelSourceCluster, labelDestinationCluster, labelRequestHeaders, labelRemoteAddress, labelGenericKey}

// The bodies of the one-key label specifiers, decoded like any other struct
// so that they get the same checks and messages.
type (
	fixedLabel struct {
		Key string `json:"key" validate:"required"`
	}
	requestHeadersLabel struct {
		Key              string `json:"key" validate:"required"`
		HeaderName       string `json:"header_name" validate:"required"`
		OmitIfNotPresent bool   `json:"omit_if_not_present,omitempty"`
	}
	genericKeyLabel struct {
		Key   string `json:"key,omitempty"`
		Value string `json:"value" validate:"required"`
	}
	// customHeaderLabel is Ambassador v1's {label-name: {header: ...}}.
	customHeaderLabel struct {
		Header           string `json:"header" validate:"required"`
		OmitIfNotPresent bool   `json:"omit_if_not_present,omitempty"`
	}
)

const labelGroupShape = "a label group is a mapping with one key, the group's name: {name: [label, ...]}"

// decodeLabels decodes {domain: [{group: [label, ...]}, ...]}. In the
// Emissary dialect its problems are warnings: labels are never enforced, so
// a form Gatehouse does not model must not cost the Mapping it sits in.
func (p *parser) decodeLabels(n *yaml.Node, v reflect.Value, rel string) bool {
	before := len(p.problems)
	ok := p.decodeLabelDomains(n, v, rel)
	if p.opts.Dialect == Emissary {
		for i := before; i < len(p.problems); i++ {
			p.problems[i].Warning = true
		}
		return true
	}
	return ok
}

func (p *parser) decodeLabelDomains(n *yaml.Node, v reflect.Value, rel string) bool {
	rule := keyRule{what: "domain", problem: func(name string) string {
		if name == "" {
			return "a domain name must not be empty"
		}
		return ""
	}}
	labels := make(map[string][]LabelGroup, len(n.Content)/2)
	ok := p.decodeEntries(n, rel, rule, "a list of label groups", func(k, val *yaml.Node, drel string) bool {
		groups, good := p.decodeLabelGroups(k, val, drel)
		if good {
			labels[k.Value] = groups
		}
		return good
	})
	v.Set(reflect.ValueOf(labels))
	return ok
}

func (p *parser) decodeLabelGroups(k, n *yaml.Node, rel string) ([]LabelGroup, bool) {
	path := p.path(rel)
	switch {
	case isNull(n):
		p.errorAt(k, path, "missing value: write a list of label groups, "+labelGroupShape)
		return nil, false
	case n.Kind != yaml.SequenceNode:
		p.errorAt(n, path, "expected a list of label groups, got "+describe(n)+"; "+labelGroupShape)
		return nil, false
	}
	groups := make([]LabelGroup, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		grel := indexed(rel, i)
		p.record(grel, item)
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			got := describe(item)
			if item.Kind == yaml.MappingNode {
				got = fmt.Sprintf("a mapping with %d keys", len(item.Content)/2)
			}
			p.errorAt(item, p.path(grel), labelGroupShape+"; got "+got)
			ok = false
			continue
		}
		nameNode, list := item.Content[0], item.Content[1]
		if !isStringScalar(nameNode) || nameNode.Value == "" {
			p.errorAt(nameNode, p.path(grel), "a label group's name must be a non-empty string, got "+describe(nameNode))
			ok = false
			continue
		}
		group, good := p.decodeLabelGroup(nameNode, list, join(grel, nameNode.Value))
		if !good {
			ok = false
			continue
		}
		groups = append(groups, group)
	}
	return groups, ok
}

func (p *parser) decodeLabelGroup(nameNode, n *yaml.Node, rel string) (LabelGroup, bool) {
	path := p.path(rel)
	if n.Kind != yaml.SequenceNode {
		where := n
		if isNull(n) {
			where = nameNode
		}
		p.errorAt(where, path, "expected a list of labels, got "+describe(n))
		return LabelGroup{}, false
	}
	p.record(rel, n)
	group := LabelGroup{Name: nameNode.Value, Labels: make([]Label, 0, len(n.Content))}
	ok := true
	for i, item := range n.Content {
		l, good := p.decodeLabel(item, indexed(rel, i))
		if !good {
			ok = false
			continue
		}
		group.Labels = append(group.Labels, l)
	}
	return group, ok
}

// decodeLabel decodes one label: a shorthand string or a one-key mapping
// naming the kind of label.
func (p *parser) decodeLabel(n *yaml.Node, rel string) (Label, bool) {
	path := p.path(rel)
	p.record(rel, n)
	const shape = `a label is a string ("remote_address", "source_cluster", "destination_cluster", or a value for generic_key) or a mapping with one key naming its kind, such as {request_headers: {key: ..., header_name: ...}}, or a label name, such as {x-user: {header: ...}}`
	if isStringScalar(n) {
		switch n.Value {
		case "":
			p.errorAt(n, path, "a label must not be empty")
			return Label{}, false
		case labelRemoteAddress, labelSourceCluster, labelDestinationCluster:
			return Label{Kind: n.Value, Key: n.Value}, true
		}
		return Label{Kind: labelGenericKey, Value: n.Value}, true
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		got := describe(n)
		if n.Kind == yaml.MappingNode {
			got = fmt.Sprintf("a mapping with %d keys", len(n.Content)/2)
		}
		p.errorAt(n, path, shape+"; got "+got)
		return Label{}, false
	}
	kindNode, body := n.Content[0], n.Content[1]
	kind := kindNode.Value
	if isStringScalar(kindNode) && kind != "" && !slices.Contains(labelKinds, kind) && body.Kind == yaml.MappingNode {
		if k, _ := lookup(body, "header"); k != nil {
			return p.decodeCustomLabel(kindNode, body, join(rel, kind))
		}
	}
	if !isStringScalar(kindNode) || !slices.Contains(labelKinds, kind) {
		p.errorAt(kindNode, path, fmt.Sprintf("unknown label kind %s; known kinds are %s%s, or a label name with {header: ...}",
			describe(kindNode), strings.Join(labelKinds, ", "), p.didYouMean(kind, labelKinds)))
		return Label{}, false
	}
	krel := join(rel, kind)
	if body.Kind != yaml.MappingNode {
		where := body
		if isNull(body) {
			where = kindNode
		}
		p.errorAt(where, p.path(krel), "expected a mapping of the label's fields, got "+describe(body))
		return Label{}, false
	}
	p.record(krel, body)
	switch kind {
	case labelRequestHeaders:
		var rh requestHeadersLabel
		if !p.decodeLabelBody(body, &rh, krel) {
			return Label{}, false
		}
		sl := p.cur.structs[krel]
		if hn, ok := sl.usable("header_name"); ok && rh.HeaderName != "" {
			if msg := headerNameProblem(rh.HeaderName); msg != "" {
				p.errorAt(hn, p.path(join(krel, "header_name")), msg)
				return Label{}, false
			}
		}
		return Label{Kind: kind, Key: rh.Key, HeaderName: rh.HeaderName, OmitIfNotPresent: rh.OmitIfNotPresent}, true
	case labelGenericKey:
		var gk genericKeyLabel
		if !p.decodeLabelBody(body, &gk, krel) {
			return Label{}, false
		}
		return Label{Kind: kind, Key: gk.Key, Value: gk.Value}, true
	}
	var fl fixedLabel
	if !p.decodeLabelBody(body, &fl, krel) {
		return Label{}, false
	}
	if fl.Key != kind {
		kn, _ := p.cur.structs[krel].usable("key")
		p.errorAt(kn, p.path(join(krel, "key")), fmt.Sprintf("the key of a %s label must be %q; got %q", kind, kind, fl.Key))
		return Label{}, false
	}
	return Label{Kind: kind, Key: kind}, true
}

// decodeCustomLabel decodes Ambassador v1's request-header label, named by
// its key: {x-user: {header: x-user, omit_if_not_present: true}}, which
// means {request_headers: {key: x-user, header_name: x-user, ...}}.
func (p *parser) decodeCustomLabel(nameNode, body *yaml.Node, rel string) (Label, bool) {
	p.record(rel, body)
	var ch customHeaderLabel
	if !p.decodeLabelBody(body, &ch, rel) {
		return Label{}, false
	}
	if hn, ok := p.cur.structs[rel].usable("header"); ok && ch.Header != "" {
		if msg := headerNameProblem(ch.Header); msg != "" {
			p.errorAt(hn, p.path(join(rel, "header")), msg)
			return Label{}, false
		}
	}
	return Label{Kind: labelRequestHeaders, Key: nameNode.Value, HeaderName: ch.Header, OmitIfNotPresent: ch.OmitIfNotPresent}, true
}

// decodeLabelBody decodes the fields of a label specifier into v and
// reports whether they were all right.
func (p *parser) decodeLabelBody(n *yaml.Node, v any, rel string) bool {
	before := len(p.problems)
	sl := p.decodeFields(n, reflect.ValueOf(v).Elem(), rel, nil)
	p.validateTags(sl, v)
	for _, pr := range p.problems[before:] {
		if !pr.Warning {
			return false
		}
	}
	return true
}
