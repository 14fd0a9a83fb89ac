package annotations

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"
	"go.yaml.in/yaml/v3"
)

// Limits on one annotation. Kubernetes caps all annotations of an object at
// 256 KiB together, so a bigger value can only come from a bypassed API server
// or a test; 1000 documents is far beyond any real Service.
const (
	maxBytes     = 256 << 10
	maxDocuments = 1000
)

// Options for Parse.
type Options struct {
	Namespace string // the Service's namespace; used to qualify bare service names
}

// Parse parses a whole annotation value (a multi-document YAML stream). It
// reports every problem it can find in one pass, sorted by position. It
// returns a non-nil *Config only when there are no errors (warnings allowed).
//
// The returned Config holds what was written, with two normalisations: Host is
// lower case and Method upper case. Defaults (rewrite "/", timeout 3000 ms,
// key policy, burst = rate) are left for the compiler to apply; Service is
// kept as written (ParseServiceRef with the same namespace gives its parts).
// Parse is safe for concurrent use.
func Parse(src string, opts Options) (*Config, Problems) {
	p := parser{src: src, opts: opts, validate: sharedValidator()}
	p.run()
	sortProblems(p.problems)
	if p.problems.HasErrors() {
		return nil, p.problems
	}
	return p.config(), p.problems
}

// parser holds the state of one Parse call.
type parser struct {
	src      string
	opts     Options
	validate *validator.Validate
	problems Problems
	docs     []*document

	// complete is false when reading stopped early (syntax error, limit), so
	// a reference to a RateLimit may point into the unread rest.
	complete bool

	lines     lineIndex // of src, built on first use
	tables    []fieldTable
	suggested int // candidates compared for did-you-mean so far
}

// document is one non-empty YAML document and what was decoded from it.
type document struct {
	index  int        // 1-based among non-empty documents
	root   *yaml.Node // the top-level mapping
	kind   string     // KindMapping or KindRateLimit; "" when unknown
	prefix string     // path of the document in problems

	fields map[string]fieldLoc // top-level fields as written, by name
	failed map[string]bool     // fields whose value could not be decoded

	mapping   *Mapping
	rateLimit *RateLimit
}

// fieldLoc is where a field was written: its key and its value.
type fieldLoc struct {
	key, value *yaml.Node
}

// streamPos remembers where the last successfully read document was, to find
// where the document with a syntax error starts.
type streamPos struct {
	docLine  int // line of the document (its "---" when written)
	lastLine int // line of the last node in it
}

func (p *parser) run() {
	if len(p.src) > maxBytes {
		p.problems = append(p.problems, Problem{
			Pos:     Position{Line: 1, Column: 1},
			Message: fmt.Sprintf("annotation is %d bytes; at most %d (256 KiB) are allowed", len(p.src), maxBytes),
		})
		return
	}
	// Bad characters are found up front because the YAML library reports
	// them without a position; the documents before the one holding the
	// character are still read.
	text := p.src
	charOff, charMsg := findBadChar(p.src)
	if charMsg != "" {
		text = p.src[:p.documentStartBefore(charOff)]
	}
	p.complete = p.readStream(text) && charMsg == ""
	if charMsg != "" {
		p.problems = append(p.problems, Problem{Pos: p.lineIndex().position(p.src, charOff), Message: charMsg})
	}
	p.crossCheck()
}

// readStream reads the documents of text one by one and reports whether it
// reached the end.
func (p *parser) readStream(text string) bool {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var last streamPos
	n := 0
	for {
		var doc yaml.Node
		err := decodeNext(dec, &doc)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			p.syntaxProblem(text, err, last)
			return false
		}
		last = streamPos{docLine: doc.Line, lastLine: lastNodeLine(&doc)}
		if len(doc.Content) == 0 || isEmptyDocument(doc.Content[0]) {
			continue
		}
		n++
		if n > maxDocuments {
			p.errorAt(doc.Content[0], fmt.Sprintf("document %d", n),
				fmt.Sprintf("more than %d documents in one annotation", maxDocuments))
			return false
		}
		p.document(doc.Content[0], n)
	}
}

// decodeNext reads the next document. A panic inside the YAML library is
// turned into an error: the input is untrusted and one bad annotation must
// not take the controller or webhook down.
func decodeNext(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML library failed: %v", r)
		}
	}()
	return dec.Decode(doc)
}

// isEmptyDocument reports whether a document holds nothing but comments or
// whitespace, which the YAML library represents as an empty null scalar.
func isEmptyDocument(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.ShortTag() == "!!null" && n.Style == 0
}

func lastNodeLine(n *yaml.Node) int {
	for len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
	}
	return n.Line
}

var kinds = []string{KindMapping, KindRateLimit}

// document decodes and checks one non-empty document.
func (p *parser) document(root *yaml.Node, index int) {
	d := &document{index: index, root: root, prefix: fmt.Sprintf("document %d", index)}
	var kindKey, kindVal *yaml.Node
	if root.Kind == yaml.MappingNode {
		kindKey, kindVal = lookup(root, "kind")
	}
	if kindVal != nil && isStringScalar(kindVal) {
		if kind := suggest(kindVal.Value, kinds); kind != "" {
			d.kind = kind
			if _, nameVal := lookup(root, "name"); nameVal != nil && isStringScalar(nameVal) && nameVal.Value != "" {
				d.prefix = fmt.Sprintf("%s %q", d.kind, nameVal.Value)
			}
		}
	}
	// Aliases are refused before anything walks the tree through them, so
	// that an alias bomb costs no more than its own text.
	if n := findAnchorOrAlias(root); n != nil {
		if n.Kind == yaml.AliasNode {
			p.errorAt(n, d.prefix, fmt.Sprintf("YAML aliases (*%s) are not supported in annotations; write the value out", n.Value))
		} else {
			p.errorAt(n, d.prefix, fmt.Sprintf("YAML anchors (&%s) are not supported in annotations; write the value out", n.Anchor))
		}
		return
	}
	if root.Kind != yaml.MappingNode {
		p.errorAt(root, d.prefix, "a document must be a mapping of fields (kind: ..., name: ...), got "+describe(root))
		return
	}

	switch {
	case kindKey == nil:
		p.errorAt(root, d.prefix, `missing required field "kind" (Mapping or RateLimit)`)
		return
	case isNull(kindVal):
		p.errorAt(kindKey, d.prefix+".kind", `missing value for required field "kind" (Mapping or RateLimit)`)
		return
	case !isStringScalar(kindVal):
		p.errorAt(kindVal, d.prefix+".kind", "expected a string (Mapping or RateLimit), got "+describe(kindVal))
		return
	case d.kind == "":
		p.errorAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q; known kinds are %s", kindVal.Value, strings.Join(kinds, ", ")))
		return
	}
	// A near miss is decoded as the kind it was meant to be, so the rest of
	// the document is checked in the same pass.
	if d.kind != kindVal.Value {
		p.errorAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q (did you mean %q?)", kindVal.Value, d.kind))
	}

	d.fields = make(map[string]fieldLoc, len(root.Content)/2)
	d.failed = make(map[string]bool)
	switch d.kind {
	case KindMapping:
		m := &Mapping{Pos: nodePos(root)}
		d.mapping = m
		p.decodeDocument(d, reflect.ValueOf(m).Elem())
		p.checkMapping(d, m)
	case KindRateLimit:
		rl := &RateLimit{Pos: nodePos(root)}
		d.rateLimit = rl
		p.decodeDocument(d, reflect.ValueOf(rl).Elem())
		p.checkRateLimit(d, rl)
	}
	p.docs = append(p.docs, d)
}

// findAnchorOrAlias returns the first node that defines an anchor or is an
// alias. It never follows an alias, so it visits each node once.
func findAnchorOrAlias(n *yaml.Node) *yaml.Node {
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		return n
	}
	for _, c := range n.Content {
		if found := findAnchorOrAlias(c); found != nil {
			return found
		}
	}
	return nil
}

// lookup returns the first key named name in a mapping node and its value.
func lookup(m *yaml.Node, name string) (key, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == name {
			return k, m.Content[i+1]
		}
	}
	return nil, nil
}

func nodePos(n *yaml.Node) Position {
	return Position{Line: n.Line, Column: n.Column}
}

func (p *parser) errorAt(n *yaml.Node, path, msg string) {
	p.add(Problem{Pos: nodePos(n), Path: path, Message: msg})
}

func (p *parser) warnAt(n *yaml.Node, path, msg string) {
	p.add(Problem{Pos: nodePos(n), Path: path, Message: msg, Warning: true})
}

func (p *parser) add(pr Problem) {
	// Positions are 1-based; a zero from the YAML library would only make a
	// caller's translation into the manifest go wrong.
	pr.Pos.Line = max(pr.Pos.Line, 1)
	pr.Pos.Column = max(pr.Pos.Column, 1)
	p.problems = append(p.problems, pr)
}

// config assembles the result in document order.
func (p *parser) config() *Config {
	cfg := &Config{}
	for _, d := range p.docs {
		switch {
		case d.mapping != nil:
			cfg.Mappings = append(cfg.Mappings, *d.mapping)
		case d.rateLimit != nil:
			cfg.RateLimits = append(cfg.RateLimits, *d.rateLimit)
		}
	}
	return cfg
}
