package annotations

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
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

// Dialect is the language an annotation is written in.
type Dialect uint8

const (
	// Native is the gatehouse.dev/config language: flat documents, strict
	// about every key.
	Native Dialect = iota
	// Emissary reads a getambassador.io/config annotation the way Emissary
	// does where users rely on it (flat or CRD-shaped documents, apiVersion
	// ambassador/v0 to getambassador.io/v3alpha1, ambassador_id, other kinds
	// and fields accepted), and reports as warnings what Emissary would drop
	// silently.
	Emissary
)

// String returns "native" or "emissary".
func (d Dialect) String() string {
	switch d {
	case Native:
		return "native"
	case Emissary:
		return "emissary"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// Options for Parse.
type Options struct {
	Namespace string // the Service's namespace; used to qualify bare service names
	Dialect   Dialect
	// AmbassadorID is this gateway's ambassador_id in the Emissary dialect: a
	// document is read only when its ambassador_id lists it or _automatic_.
	// "" means "default", as in Emissary.
	AmbassadorID string
}

// Parse parses a whole annotation value (a multi-document YAML stream). It
// reports every problem it can find in one pass, sorted by position. It
// returns a non-nil *Config only when there are no errors (warnings allowed).
//
// The returned Config holds what was written, with these normalisations:
//   - Host (unless HostRegex) and Hostname are lower case;
//   - Method is upper case unless MethodRegex;
//   - AllowUpgrade entries are lower case, and use_websocket: true adds
//     "websocket" to them;
//   - in the Emissary dialect, Host is cleared when Hostname is set, a port
//     written in Host is dropped, idle_timeout_ms: 0 (Envoy's "no idle
//     timeout") becomes nil, tls: true or a TLSContext name gives Service
//     the https:// scheme, the YAML 1.1 booleans yes, no, on and off are
//     read as booleans, and a regex_rewrite substitution is translated from
//     Envoy's syntax (\1) into Go's (${1});
//   - header names in AddRequestHeaders, AddResponseHeaders and the Remove
//     lists, like all other names, are kept as written;
//   - Host.Hostname is lower case, Host.Insecure defaults to redirect,
//     Host.MinTLSVersion is "v1.2" or "v1.3" (1.2, TLSv1.3... are read as
//     these), and Host.ClientCert defaults to required when a client CA is
//     set; in the Emissary dialect, Host and TLSContext documents become
//     Hosts (see docs/annotations.md for the mapping of their fields);
//   - Auths have their defaults filled (see Auth), APIKeyAuth.Header is in
//     canonical form, and in the Emissary dialect an AuthService becomes
//     a Namespaced Auth with External set.
//
// Defaults (rewrite "/", timeout 3000 ms, key policy, burst = rate) are left
// for the compiler to apply; Service is kept as written (ParseServiceRef with
// the same namespace gives its parts; with HostRedirect it is a redirect
// target, not a Service). Mapping.Positions says where each field was
// written, Host.Positions and Auth.Positions where each of their fields
// was. Documents the Emissary dialect skips (another ambassador_id, other
// kinds, no name, a TLSContext without hosts, an AuthService over gRPC or
// after the first) are not returned. Parse is safe for concurrent use.
func Parse(src string, opts Options) (*Config, Problems) {
	p := parser{src: src, opts: opts, validate: sharedValidator()}
	if opts.Dialect != Native && opts.Dialect != Emissary {
		return nil, Problems{{Pos: Position{Line: 1, Column: 1}, Message: fmt.Sprintf("internal error: unknown dialect %v", opts.Dialect)}}
	}
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
	cur      *document // the document being read

	// complete is false when reading stopped early (syntax error, limit), so
	// a reference to a RateLimit may point into the unread rest.
	complete bool

	// hostless are the names of the Emissary TLSContexts left out for
	// having no hosts, for the Hosts that link to one.
	hostless []string

	// authService is the Emissary AuthService read, the only one an
	// annotation may have; unreadAuthServices are the names of those left
	// out, for the Mappings that name one in auth.
	authService        *document
	unreadAuthServices []string

	lines     lineIndex // of src, built on first use
	tables    []fieldTable
	suggested int // candidates compared for did-you-mean so far
}

// document is one non-empty YAML document and what was decoded from it.
type document struct {
	index int        // 1-based among non-empty documents
	root  *yaml.Node // the top-level mapping
	kind  string     // KindMapping, KindRateLimit, KindHost, KindAuth (or an Emissary kind); "" when unknown
	// prefix is the path of the document in problems, fieldPrefix that of
	// its fields: the same, or prefix+".spec" for a CRD-shaped document.
	prefix, fieldPrefix string

	top      *structLoc            // the document's fields (spec's when CRD-shaped)
	structs  map[string]*structLoc // every decoded struct by relative path; "" is top
	nameNode *yaml.Node            // the name's value, nil when not written
	namePath string                // the name's path in problems
	// positions of every value written, by path relative to the fields.
	positions map[string]Position

	mapping   *Mapping
	rateLimit *RateLimit
	auth      *Auth // a native Auth, or an Emissary AuthService
	// hosts are the Hosts the document declares: one for a Host, one per
	// entry of hosts for an Emissary TLSContext.
	hosts []*hostEntry
	// context is an Emissary TLSContext's settings, which a Host of the
	// same annotation may link to; link is an Emissary Host's link.
	context *emissaryContext
	link    *contextLink
}

// structLoc is where the fields of one decoded struct were written.
type structLoc struct {
	node   *yaml.Node // the mapping holding the fields
	rel    string     // its path relative to the document's fields
	fields map[string]fieldLoc
	failed map[string]bool // fields whose value could not be decoded
}

// fieldLoc is where a field was written: its key and its value.
type fieldLoc struct {
	key, value *yaml.Node
}

// usable returns the value node of a field that was written and decoded.
// A nil structLoc (a struct that was not written) has no usable fields.
func (sl *structLoc) usable(name string) (*yaml.Node, bool) {
	if sl == nil {
		return nil, false
	}
	loc, ok := sl.fields[name]
	if !ok || sl.failed[name] || isNull(loc.value) {
		return nil, false
	}
	return loc.value, true
}

// written reports whether a field was written with a non-null value, and
// where.
func (sl *structLoc) written(name string) (fieldLoc, bool) {
	if sl == nil {
		return fieldLoc{}, false
	}
	loc, ok := sl.fields[name]
	return loc, ok && !isNull(loc.value)
}

func (d *document) usable(name string) (*yaml.Node, bool) { return d.top.usable(name) }

// path returns the path in problems of a field given relative to the
// document's fields, such as "retry_policy.num_retries".
func (p *parser) path(rel string) string {
	if rel == "" {
		return p.cur.fieldPrefix
	}
	return p.cur.fieldPrefix + "." + rel
}

// record remembers where the value of a field was written.
func (p *parser) record(rel string, n *yaml.Node) {
	p.cur.positions[rel] = nodePos(n)
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "." + name
}

func indexed(rel string, i int) string {
	return rel + "[" + strconv.Itoa(i) + "]"
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

var kinds = []string{KindMapping, KindRateLimit, KindHost, KindAuth}

// kindChoice lists the native kinds for messages.
const kindChoice = "Mapping, RateLimit, Host or Auth"

// document decodes and checks one non-empty document.
func (p *parser) document(root *yaml.Node, index int) {
	d := &document{
		index:     index,
		root:      root,
		prefix:    fmt.Sprintf("document %d", index),
		structs:   make(map[string]*structLoc),
		positions: make(map[string]Position),
	}
	p.cur = d
	if root.Kind == yaml.MappingNode {
		known := kinds
		if p.opts.Dialect == Emissary {
			known = emissaryKinds()
		}
		if _, kindVal := lookup(root, "kind"); kindVal != nil && isStringScalar(kindVal) {
			if kind := suggest(kindVal.Value, known); kind != "" {
				d.kind = kind
				if nameVal := p.documentName(root); nameVal != nil && isStringScalar(nameVal) && nameVal.Value != "" {
					d.prefix = fmt.Sprintf("%s %q", d.kind, nameVal.Value)
				}
			}
		}
	}
	d.fieldPrefix = d.prefix
	d.namePath = d.prefix + ".name"
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
	if p.opts.Dialect == Emissary {
		p.emissaryDocument(d)
		return
	}
	p.nativeDocument(d)
}

// documentName returns the value of a document's name, wherever the
// dialect keeps it, or nil.
func (p *parser) documentName(root *yaml.Node) *yaml.Node {
	if _, n := lookup(root, "name"); n != nil || p.opts.Dialect != Emissary {
		return n
	}
	if _, meta := lookup(root, "metadata"); meta != nil && meta.Kind == yaml.MappingNode {
		_, n := lookup(meta, "name")
		return n
	}
	return nil
}

func (p *parser) nativeDocument(d *document) {
	root := d.root
	kindKey, kindVal := lookup(root, "kind")
	switch {
	case kindKey == nil:
		p.errorAt(root, d.prefix, `missing required field "kind" (`+kindChoice+`)`)
		return
	case isNull(kindVal):
		p.errorAt(kindKey, d.prefix+".kind", `missing value for required field "kind" (`+kindChoice+`)`)
		return
	case !isStringScalar(kindVal):
		p.errorAt(kindVal, d.prefix+".kind", "expected a string ("+kindChoice+"), got "+describe(kindVal))
		return
	case d.kind == "":
		msg := fmt.Sprintf("unknown kind %q; known kinds are %s", kindVal.Value, strings.Join(kinds, ", "))
		switch kindVal.Value {
		case kindTLSContext:
			msg += " (TLSContext is Emissary's, read from the " + EmissaryKey + " annotation with --compat=emissary; here a Host gives a hostname its certificate)"
		case kindAuthService:
			msg += " (AuthService is Emissary's, read from the " + EmissaryKey + " annotation with --compat=emissary; here an Auth with external: {service: ...} calls an authentication service, and Mappings name it in auth)"
		}
		p.errorAt(kindVal, d.prefix+".kind", msg)
		return
	}
	// A near miss is decoded as the kind it was meant to be, so the rest of
	// the document is checked in the same pass.
	if d.kind != kindVal.Value {
		p.errorAt(kindVal, d.prefix+".kind", fmt.Sprintf("unknown kind %q (did you mean %q?)", kindVal.Value, d.kind))
	}

	switch d.kind {
	case KindMapping:
		m := &Mapping{Pos: nodePos(root)}
		d.mapping = m
		d.top = p.decodeFields(root, reflect.ValueOf(m).Elem(), "", notHere{{"ambassador_id", ""}})
		if k, _ := lookup(root, "ambassador_id"); k != nil {
			p.errorAt(k, d.prefix+".ambassador_id", "ambassador_id is only read with --compat=emissary")
		}
		if n, ok := d.usable("name"); ok {
			d.nameNode = n
		}
		p.checkMapping(d, m)
	case KindRateLimit:
		rl := &RateLimit{Pos: nodePos(root)}
		d.rateLimit = rl
		d.top = p.decodeFields(root, reflect.ValueOf(rl).Elem(), "", nil)
		if n, ok := d.usable("name"); ok {
			d.nameNode = n
		}
		p.checkRateLimit(d, rl)
	case KindHost:
		h := &Host{Pos: nodePos(root)}
		d.top = p.decodeFields(root, reflect.ValueOf(h).Elem(), "", notHere{{"ambassador_id", ""}})
		if k, _ := lookup(root, "ambassador_id"); k != nil {
			p.errorAt(k, d.prefix+".ambassador_id", "ambassador_id is only read with --compat=emissary")
		}
		if n, ok := d.usable("name"); ok {
			d.nameNode = n
		}
		p.checkHost(d, h)
	case KindAuth:
		a := &Auth{Pos: nodePos(root)}
		d.top = p.decodeFields(root, reflect.ValueOf(a).Elem(), "", notHere{{"ambassador_id", ""}})
		if k, _ := lookup(root, "ambassador_id"); k != nil {
			p.errorAt(k, d.prefix+".ambassador_id", "ambassador_id is only read with --compat=emissary")
		}
		if n, ok := d.usable("name"); ok {
			d.nameNode = n
		}
		p.checkAuth(d, a)
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

// errorSee reports an error at n that refers to another node, such as the
// first of two duplicates.
func (p *parser) errorSee(n, related *yaml.Node, path, msg string) {
	pos := nodePos(related)
	p.add(Problem{Pos: nodePos(n), Path: path, Message: msg, Related: &pos})
}

func (p *parser) warnAt(n *yaml.Node, path, msg string) {
	p.add(Problem{Pos: nodePos(n), Path: path, Message: msg, Warning: true})
}

func (p *parser) add(pr Problem) {
	// Positions are 1-based; a zero from the YAML library would only make a
	// caller's translation into the manifest go wrong.
	pr.Pos.Line = max(pr.Pos.Line, 1)
	pr.Pos.Column = max(pr.Pos.Column, 1)
	if pr.Related != nil {
		pr.Related.Line = max(pr.Related.Line, 1)
		pr.Related.Column = max(pr.Related.Column, 1)
	}
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
		case d.auth != nil:
			cfg.Auths = append(cfg.Auths, *d.auth)
		}
		for _, e := range d.hosts {
			if !e.dropped {
				cfg.Hosts = append(cfg.Hosts, *e.host)
			}
		}
	}
	return cfg
}
