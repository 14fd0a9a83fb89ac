package annotations

import (
	"fmt"
	"reflect"
	"slices"
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

// notHere lists keys that are not fields of a struct where it is being
// decoded: with a reason, the key is reported as unknown with that reason;
// with none, the caller reads the key itself.
type notHere []struct{ name, reason string }

func (nh notHere) find(name string) (string, bool) {
	for _, e := range nh {
		if e.name == name {
			return e.reason, true
		}
	}
	return "", false
}

var corsType = reflect.TypeFor[CORS]()

// decodeFields decodes the mapping n into the struct v field by field and
// returns where each field was written. rel is the path of v relative to the
// document's fields.
func (p *parser) decodeFields(n *yaml.Node, v reflect.Value, rel string, except notHere) *structLoc {
	fs := p.fieldsOf(v.Type())
	sl := &structLoc{node: n, rel: rel, fields: make(map[string]fieldLoc, len(n.Content)/2), failed: make(map[string]bool)}
	p.cur.structs[rel] = sl
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !p.fieldKey(k, p.path(rel), seen) {
			continue
		}
		name := k.Value
		frel := join(rel, name)
		reason, excepted := except.find(name)
		if excepted && reason == "" {
			continue
		}
		f, ok := fieldNamed(fs, name)
		if !ok || excepted {
			p.unknownField(k, v.Type(), frel, fs, except, reason)
			continue
		}
		sl.fields[name] = fieldLoc{key: k, value: val}
		var good bool
		if fv := v.Field(f.index); v.Type() == corsType && fv.Kind() == reflect.Slice && isStringScalar(val) {
			good = p.decodeCommaList(val, fv, frel)
		} else {
			good = p.decodeValue(val, fv, frel)
		}
		if !good {
			sl.failed[name] = true
		}
	}
	return sl
}

// fieldKey checks that k is a plain key not seen before in its mapping,
// whose path in problems is base.
func (p *parser) fieldKey(k *yaml.Node, base string, seen map[string]*yaml.Node) bool {
	if k.Kind != yaml.ScalarNode {
		p.errorAt(k, base, "field names must be plain strings, got "+describe(k))
		return false
	}
	if first, dup := seen[k.Value]; dup {
		p.errorSee(k, first, base+"."+k.Value, fmt.Sprintf("duplicate field %q", k.Value))
		return false
	}
	seen[k.Value] = k
	return true
}

// unknownField reports a key that is not a field of t: an error in the
// native dialect; a warning in the Emissary dialect, where Emissary would
// drop it without a word.
func (p *parser) unknownField(k *yaml.Node, t reflect.Type, frel string, fs []field, except notHere, reason string) {
	name := k.Value
	path := p.path(frel)
	emissaryField := ignoredByGatehouse(t, name)
	if p.opts.Dialect == Emissary && emissaryField && reason == "" {
		if msg := refusedEmissaryField(t, name); msg != "" {
			p.errorAt(k, path, msg)
			return
		}
		p.warnAt(k, path, "ignored: Gatehouse does not implement "+name+emissaryFieldHint(t, name))
		return
	}
	msg := fmt.Sprintf("unknown field %q", name)
	switch {
	case reason != "":
		msg += ": " + reason
	case emissaryField:
		msg += ": an Emissary field that Gatehouse does not implement"
	case frel == name && flatHint(name) != "" && p.opts.Dialect == Native:
		msg += flatHint(name)
	case t == hostType && hostFieldHint(name) != "":
		msg += fmt.Sprintf(" (did you mean %q?)", hostFieldHint(name))
	case authFieldHint(t, name) != "":
		msg += authFieldHint(t, name)
	default:
		candidates := make([]string, 0, len(fs))
		for _, f := range fs {
			if _, out := except.find(f.name); !out {
				candidates = append(candidates, f.name)
			}
		}
		msg += p.didYouMean(name, candidates)
	}
	if p.opts.Dialect == Emissary {
		p.warnAt(k, path, msg+"; Emissary drops unknown fields, and so does Gatehouse")
		return
	}
	p.errorAt(k, path, msg)
}

var (
	headersType      = reflect.TypeFor[map[string]HeaderValue]()
	regexMapType     = reflect.TypeFor[map[string]string]()
	addedHeadersType = reflect.TypeFor[map[string]AddedHeader]()
	labelsType       = reflect.TypeFor[map[string][]LabelGroup]()
)

// decodeValue decodes n into v, reporting problems under the path of rel. A
// null leaves v unset, which is how YAML spells "not set". It reports
// success.
func (p *parser) decodeValue(n *yaml.Node, v reflect.Value, rel string) bool {
	if isNull(n) {
		return true
	}
	p.record(rel, n)
	switch v.Type() {
	case headersType:
		return p.decodeConditions(n, v, rel)
	case regexMapType:
		if rel == "jwt.claims_to_headers" {
			return p.decodeClaimsToHeaders(n, v, rel)
		}
		return p.decodeRegexConditions(n, v, rel)
	case addedHeadersType:
		return p.decodeAddedHeaders(n, v, rel)
	case labelsType:
		return p.decodeLabels(n, v, rel)
	}
	path := p.path(rel)
	switch v.Kind() {
	case reflect.String:
		if isDurationField(rel) && isNumber(n) {
			p.errorAt(n, path, fmt.Sprintf("expected a duration, got %s; write a duration such as %q", describe(n), durationExample(n.Value)))
			return false
		}
		if isTLSVersionField(rel) && isNumber(n) {
			// min_tls_version: 1.2 is how people write it; the number's
			// text is checked like any other spelling.
			v.SetString(n.Value)
			return true
		}
		s, ok := p.decodeString(n, path)
		v.SetString(s)
		return ok
	case reflect.Bool:
		b, ok := p.decodeBool(n, path)
		v.SetBool(b)
		return ok
	case reflect.Int, reflect.Int64:
		i, ok := p.decodeInt(n, path)
		v.SetInt(int64(i))
		return ok
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if !p.decodeValue(n, elem.Elem(), rel) {
			return false
		}
		v.Set(elem)
		return true
	case reflect.Slice:
		return p.decodeList(n, v, rel)
	case reflect.Struct:
		return p.decodeStruct(n, v, rel)
	}
	// Only reachable if a field of a new type is added to types.go.
	p.errorAt(n, path, fmt.Sprintf("internal error: no decoder for %s", v.Type()))
	return false
}

// decodeStruct decodes a nested struct such as retry_policy and checks its
// validate tags. Problems inside it do not fail the field that holds it:
// they are reported, and checks of its other fields still run.
func (p *parser) decodeStruct(n *yaml.Node, v reflect.Value, rel string) bool {
	if n.Kind != yaml.MappingNode {
		names := fieldNames(p.fieldsOf(v.Type()))
		p.errorAt(n, p.path(rel), fmt.Sprintf("expected a mapping with fields %s; got %s", strings.Join(names, ", "), describe(n)))
		return false
	}
	sl := p.decodeFields(n, v, rel, nil)
	p.validateTags(sl, v.Addr().Interface())
	return true
}

// decodeCommaList reads one comma-separated string as a list, as Emissary
// v2 allowed for the cors lists.
func (p *parser) decodeCommaList(n *yaml.Node, v reflect.Value, rel string) bool {
	p.record(rel, n)
	parts := strings.Split(n.Value, ",")
	list := make([]string, len(parts))
	for i, part := range parts {
		list[i] = strings.TrimSpace(part)
		if list[i] == "" {
			p.errorAt(n, p.path(rel), fmt.Sprintf("item %d of the comma-separated list %q is empty", i+1, n.Value))
			return false
		}
		p.record(indexed(rel, i), n)
	}
	v.Set(reflect.ValueOf(list))
	return true
}

// durationFields are the string fields holding a duration such as "500ms".
// A bare number there is missing its unit, which quoting would not fix.
var durationFields = []string{"retry_policy.per_try_timeout", "load_balancer.cookie.ttl"}

func isDurationField(rel string) bool { return slices.Contains(durationFields, rel) }

// tlsVersionFields are the string fields holding a TLS version, which an
// unquoted 1.2 writes as a number.
var tlsVersionFields = []string{"min_tls_version", "tls.min_tls_version", "tls.minTlsVersion"}

func isTLSVersionField(rel string) bool { return slices.Contains(tlsVersionFields, rel) }

func isNumber(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float")
}

// durationExample turns a number as written into a duration in seconds,
// such as 5 into "5s", when it can; otherwise it returns a plain example.
func durationExample(num string) string {
	whole, frac, _ := strings.Cut(num, ".")
	if isDecimal(whole) && (frac == "" && !strings.HasSuffix(num, ".") || isDecimal(frac)) && len(num) <= 20 {
		return num + "s"
	}
	return "5s"
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

// yaml11Bool recognises the YAML 1.1 booleans yes, no, on and off (in any
// case) when written without quotes. YAML 1.2, and so the YAML library,
// reads them as strings; Emissary's PyYAML reads them as booleans.
func yaml11Bool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || quoted(n) {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "yes", "on":
		return true, true
	case "no", "off":
		return false, true
	}
	return false, false
}

func (p *parser) decodeBool(n *yaml.Node, path string) (bool, bool) {
	if b, ok := plainBool(n); ok {
		return b, true
	}
	msg := "expected a boolean (true or false), got " + describe(n)
	if b, ok := yaml11Bool(n); ok {
		if p.opts.Dialect == Emissary {
			p.warnAt(n, path, fmt.Sprintf("%s is a YAML 1.1 boolean: read as %t, as Emissary does; write %t", n.Value, b, b))
			return b, true
		}
		msg += fmt.Sprintf("; write %t (%s is a boolean only to YAML 1.1 readers)", b, n.Value)
	}
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

func (p *parser) decodeList(n *yaml.Node, v reflect.Value, rel string) bool {
	if n.Kind != yaml.SequenceNode {
		msg := "expected a list, got " + describe(n)
		if isStringScalar(n) {
			msg += fmt.Sprintf("; write [%s]", n.Value)
		}
		p.errorAt(n, p.path(rel), msg)
		return false
	}
	list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	ok := true
	for i, item := range n.Content {
		itemRel := indexed(rel, i)
		if isNull(item) {
			p.errorAt(item, p.path(itemRel), "expected a value, got null")
			ok = false
			continue
		}
		if !p.decodeValue(item, list.Index(i), itemRel) {
			ok = false
		}
	}
	v.Set(list)
	return ok
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
