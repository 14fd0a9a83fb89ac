package annotations

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The typed decoding is done here rather than by the YAML library so that
// every mistake gets its own position and a message written for people:
// the library stops at the first type error, drops unknown keys, accepts
// duplicate keys into structs and converts "yes" or 0x10 silently.

// field is one wire field of a document type, found through its json tag.
type field struct {
	name     string // json name, as written in YAML
	goName   string
	index    int
	validate string
}

type fieldTable struct {
	typ    reflect.Type
	fields []field
}

// fieldsOf returns the wire fields of a struct type, computed once per Parse.
func (p *parser) fieldsOf(t reflect.Type) []field {
	for _, tb := range p.tables {
		if tb.typ == t {
			return tb.fields
		}
	}
	fs := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, goName: sf.Name, index: i, validate: sf.Tag.Get("validate")})
	}
	p.tables = append(p.tables, fieldTable{typ: t, fields: fs})
	return fs
}

func fieldNamed(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

// flatHint answers the CRD-shaped documents people copy from Emissary.
func flatHint(name string) string {
	switch name {
	case "spec":
		return " (documents are flat: write the spec fields at the top level)"
	case "metadata":
		return " (documents are flat: write name at the top level)"
	}
	return ""
}

// decodeDocument decodes the top-level mapping of d into v (a Mapping or
// RateLimit) and records where each field was written.
func (p *parser) decodeDocument(d *document, v reflect.Value) {
	fs := p.fieldsOf(v.Type())
	seen := make(map[string]*yaml.Node, len(d.root.Content)/2)
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		k, val := d.root.Content[i], d.root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorAt(k, d.prefix, "field names must be plain strings, got "+describe(k))
			continue
		}
		name := k.Value
		path := d.prefix + "." + name
		if first, dup := seen[name]; dup {
			p.errorAt(k, path, fmt.Sprintf("duplicate field %q (first at line %d)", name, first.Line))
			continue
		}
		seen[name] = k
		f, ok := fieldNamed(fs, name)
		if !ok {
			hint := flatHint(name)
			if hint == "" {
				hint = p.didYouMean(name, fieldNames(fs))
			}
			p.errorAt(k, path, fmt.Sprintf("unknown field %q%s", name, hint))
			continue
		}
		d.fields[name] = fieldLoc{key: k, value: val}
		if !p.decodeValue(val, v.Field(f.index), path) {
			d.failed[name] = true
		}
	}
}

var headersType = reflect.TypeFor[map[string]HeaderValue]()

// decodeValue decodes n into v, reporting problems under path. A null leaves
// v unset, which is how YAML spells "not set". It reports success.
func (p *parser) decodeValue(n *yaml.Node, v reflect.Value, path string) bool {
	if isNull(n) {
		return true
	}
	if v.Type() == headersType {
		return p.decodeHeaders(n, v, path)
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := p.decodeString(n, path)
		v.SetString(s)
		return ok
	case reflect.Bool:
		b, ok := p.decodeBool(n, path)
		v.SetBool(b)
		return ok
	case reflect.Int:
		i, ok := p.decodeInt(n, path)
		v.SetInt(int64(i))
		return ok
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if !p.decodeValue(n, elem.Elem(), path) {
			return false
		}
		v.Set(elem)
		return true
	case reflect.Slice:
		return p.decodeList(n, v, path)
	}
	// Only reachable if a field of a new type is added to types.go.
	p.errorAt(n, path, fmt.Sprintf("internal error: no decoder for %s", v.Type()))
	return false
}

func (p *parser) decodeString(n *yaml.Node, path string) (string, bool) {
	if isStringScalar(n) {
		return n.Value, true
	}
	msg := "expected a string, got " + describe(n)
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool", "!!null":
			msg += fmt.Sprintf("; quote it: %q", n.Value)
		}
	}
	p.errorAt(n, path, msg)
	return "", false
}

// plainBool recognises true and false in any case (True, TRUE, tRuE) when
// written without quotes; the YAML library only resolves three spellings.
func plainBool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" && (n.ShortTag() != "!!str" || quoted(n)) {
		return false, false
	}
	switch {
	case strings.EqualFold(n.Value, "true"):
		return true, true
	case strings.EqualFold(n.Value, "false"):
		return false, true
	}
	return false, false
}

func quoted(n *yaml.Node) bool {
	return n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0
}

func (p *parser) decodeBool(n *yaml.Node, path string) (bool, bool) {
	if b, ok := plainBool(n); ok {
		return b, true
	}
	msg := "expected a boolean (true or false), got " + describe(n)
	if n.Kind == yaml.ScalarNode && quoted(n) && (strings.EqualFold(n.Value, "true") || strings.EqualFold(n.Value, "false")) {
		msg += "; remove the quotes"
	}
	p.errorAt(n, path, msg)
	return false, false
}

func (p *parser) decodeInt(n *yaml.Node, path string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		digits := strings.TrimLeft(n.Value, "+-")
		switch {
		case !isDecimal(digits) || len(n.Value)-len(digits) > 1:
			p.errorAt(n, path, "expected a decimal integer, got "+n.Value)
			return 0, false
		case len(digits) > 1 && digits[0] == '0':
			p.errorAt(n, path, fmt.Sprintf("expected a decimal integer, got %s (leading zeros mean octal to some YAML readers)", n.Value))
			return 0, false
		}
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			p.errorAt(n, path, fmt.Sprintf("integer %s is out of range", n.Value))
			return 0, false
		}
		return i, true
	}
	// Integers beyond int64 are resolved as floats by the YAML library.
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && isDecimal(strings.TrimLeft(n.Value, "+-")) {
		p.errorAt(n, path, fmt.Sprintf("integer %s is out of range", n.Value))
		return 0, false
	}
	msg := "expected an integer, got " + describe(n)
	if isStringScalar(n) && quoted(n) {
		if _, err := strconv.Atoi(n.Value); err == nil {
			msg += "; remove the quotes"
		}
	}
	p.errorAt(n, path, msg)
	return 0, false
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (p *parser) decodeList(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.SequenceNode {
		msg := "expected a list, got " + describe(n)
		if isStringScalar(n) {
			msg += fmt.Sprintf("; write [%s]", n.Value)
		}
		p.errorAt(n, path, msg)
		return false
	}
	list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	ok := true
	for i, item := range n.Content {
		itemPath := path + "[" + strconv.Itoa(i) + "]"
		if isNull(item) {
			p.errorAt(item, itemPath, "expected a value, got null")
			ok = false
			continue
		}
		if !p.decodeValue(item, list.Index(i), itemPath) {
			ok = false
		}
	}
	v.Set(list)
	return ok
}

// decodeHeaders decodes header conditions: name → exact value, or true for
// "present". Names are compared case-insensitively, as HTTP does, so X-Env
// and x-env in one mapping are a duplicate.
func (p *parser) decodeHeaders(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, path, "expected a mapping of header name to value, got "+describe(n))
		return false
	}
	headers := make(map[string]HeaderValue, len(n.Content)/2)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !isStringScalar(k) {
			p.errorAt(k, path, "header names must be plain strings, got "+describe(k))
			ok = false
			continue
		}
		name := k.Value
		hpath := path + "." + name
		if first, dup := seen[strings.ToLower(name)]; dup {
			msg := fmt.Sprintf("duplicate header %q (first at line %d)", name, first.Line)
			if first.Value != name {
				msg = fmt.Sprintf("duplicate header %q: header names are case-insensitive and %q is at line %d", name, first.Value, first.Line)
			}
			p.errorAt(k, hpath, msg)
			ok = false
			continue
		}
		seen[strings.ToLower(name)] = k
		if !isToken(name) {
			p.errorAt(k, hpath, fmt.Sprintf("invalid header name %q: a header name has only %s", name, tokenRule))
			ok = false
		}
		hv, good := p.decodeHeaderValue(k, val, hpath)
		if !good {
			ok = false
			continue
		}
		headers[name] = hv
	}
	v.Set(reflect.ValueOf(headers))
	return ok
}

func (p *parser) decodeHeaderValue(k, n *yaml.Node, path string) (HeaderValue, bool) {
	const want = "a string to match exactly, or true to require presence"
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
			return HeaderValue{Value: n.Value}, true
		}
	}
	p.errorAt(n, path, fmt.Sprintf("expected %s, got %s", want, describe(n)))
	return HeaderValue{}, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isStringScalar accepts timestamps too: 2024-01-01 is text to us, and a user
// should not have to know that YAML 1.1 readers would see a date.
func isStringScalar(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp":
		return true
	}
	return false
}

// describe names a node's type and value for messages, e.g. `string "high"`.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		cut := 40
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	case "!!null":
		return "null"
	case "!!timestamp":
		return "timestamp " + v
	}
	return fmt.Sprintf("a value tagged %s", n.Tag)
}
