// Package files reads Kubernetes manifests (Services, EndpointSlices,
// Namespaces and Secrets of type kubernetes.io/tls) from files, so the
// gateway can run without a cluster and the CLI can check manifests
// offline. It keeps enough of the YAML structure to translate a
// position inside a Service's annotation into a position in the file itself,
// and checks every object of a kind it knows against that kind's Kubernetes
// schema, so that a misspelt field or an annotation under the wrong key is
// reported at its line and column instead of being silently ignored.
package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	sigsyaml "sigs.k8s.io/yaml"

	yaml "go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// Pos is a 1-based line and column in a file.
type Pos struct {
	Line   int
	Column int
}

// Problem is something wrong with a manifest file itself (not with an
// annotation): YAML syntax, or a Kubernetes object that does not fit its
// schema or holds routing configuration where nothing reads it.
type Problem struct {
	File    string
	Pos     Pos
	Message string
	// Path is the object and field, as in Service "users".metadata.annotation;
	// empty for problems with the file as a whole.
	Path string
	// Warning marks what does not make validate fail: what Emissary
	// accepts and ignores, with --compat=emissary.
	Warning bool

	// undecodable marks a value the object cannot be decoded with.
	undecodable bool
}

func (p Problem) Error() string {
	sev, path := "", ""
	if p.Warning {
		sev = "warning: "
	}
	if p.Path != "" {
		path = p.Path + ": "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s%s", p.File, p.Pos.Line, p.Pos.Column, sev, path, p.Message)
}

// Options say how manifests are read. The zero value reads them as the
// gateway does by default (native mode).
type Options struct {
	// Emissary is --compat=emissary: getambassador.io/config is read too,
	// so what Emissary itself accepts and ignores about it is a warning,
	// not an error.
	Emissary bool
	// HashKey hashes the API keys of gatehouse.dev/api-keys Secrets as
	// they are read (snapshot.TrimSecret); nil keeps none.
	HashKey func([]byte) [32]byte
}

// Service is a Service read from a file, with where its annotations sit.
type Service struct {
	Object *corev1.Service
	File   string
	Pos    Pos // the document's first line

	// annotationValues maps an annotation key to the YAML node of its value,
	// so positions inside the annotation can be translated into the file.
	annotationValues map[string]*yaml.Node
	// lines is the file's text split in lines, used to find a block scalar's
	// indentation.
	lines []string
}

// Manifests is everything one or more files hold that the gateway cares about.
type Manifests struct {
	Services  []*Service
	Slices    []*discoveryv1.EndpointSlice
	SliceRefs []Pos // where each slice came from, parallel to Slices
	// Namespaces matter for their grant annotations (annotations.GrantKey).
	Namespaces []*corev1.Namespace
	// Secrets are those of type kubernetes.io/tls, trimmed as
	// snapshot.Input.Secrets says (see readSecret).
	Secrets []*corev1.Secret
}

// Append adds what o holds to m, so every reader that merges files (a
// directory, -f given twice) merges every kind.
func (m *Manifests) Append(o *Manifests) {
	m.Services = append(m.Services, o.Services...)
	m.Slices = append(m.Slices, o.Slices...)
	m.SliceRefs = append(m.SliceRefs, o.SliceRefs...)
	m.Namespaces = append(m.Namespaces, o.Namespaces...)
	m.Secrets = append(m.Secrets, o.Secrets...)
}

// Parse reads the multi-document YAML (or JSON) in data in native mode; see
// ParseWith.
func Parse(file string, data []byte) (*Manifests, []Problem) {
	return ParseWith(file, data, Options{})
}

// ParseWith reads the multi-document YAML (or JSON) in data. Services,
// EndpointSlices, Namespaces and Secrets of type kubernetes.io/tls are
// returned; documents of other kinds (a Deployment in a single-manifest
// app, an Opaque Secret) are only checked. Problems are reported per
// document; a bad document does not hide the good ones.
//
// Every document of a kind in checkedKinds is checked against its
// Kubernetes schema and for routing annotations in the wrong place. Those
// findings do not keep a Service, EndpointSlice or Namespace from being
// read: the API server would refuse an unknown field under kubectl's strict
// validation, but serve --from-dir must never take routes down over what it
// can still read, so it reads what it can and reports the rest. Only a value
// the object cannot be decoded with at all (a string where a list belongs)
// leaves it out, as the API server would.
func ParseWith(file string, data []byte, opts Options) (*Manifests, []Problem) {
	m := &Manifests{}
	var problems []Problem
	lines := strings.Split(string(data), "\n")
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The decoder cannot resynchronise after a syntax error, so
			// what follows in the file is unknown.
			problems = append(problems, Problem{File: file, Pos: syntaxErrorPos(err), Message: syntaxErrorMessage(err)})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
				continue
			}
			problems = append(problems, Problem{File: file, Pos: Pos{root.Line, root.Column}, Message: "a manifest document must be a mapping"})
			continue
		}
		kind := scalarAt(root, "kind")
		apiVersion := scalarAt(root, "apiVersion")
		at := Pos{root.Line, root.Column}
		var checked []Problem
		if newObj, ok := checkedKinds[typeKey{apiVersion, kind}]; ok {
			checked = checkObject(file, root, kind, newObj, opts)
		} else if p, ok := kindCase(file, root, apiVersion, kind); ok {
			checked = []Problem{p}
		}
		problems = append(problems, checked...)
		// undecodable says why an object the gateway reads is left out, or
		// reports the decoder's own error when the check found no reason.
		undecodable := func(err error) {
			for i := range checked {
				if checked[i].undecodable {
					problems[len(problems)-len(checked)+i].Message += fmt.Sprintf(" (so the %s is not read)", kind)
					return
				}
			}
			problems = append(problems, Problem{File: file, Pos: at, Message: fmt.Sprintf("decoding %s: %v", kind, err)})
		}
		switch {
		case kind == "Service" && apiVersion == "v1":
			svc, err := decodeObject[corev1.Service](root)
			if err != nil {
				undecodable(err)
				continue
			}
			if svc.Namespace == "" {
				svc.Namespace = "default"
			}
			s := &Service{Object: svc, File: file, Pos: at, lines: lines, annotationValues: map[string]*yaml.Node{}}
			if meta := valueAt(root, "metadata"); meta != nil {
				if ann := valueAt(meta, "annotations"); ann != nil && ann.Kind == yaml.MappingNode {
					for i := 0; i+1 < len(ann.Content); i += 2 {
						s.annotationValues[ann.Content[i].Value] = ann.Content[i+1]
					}
				}
			}
			m.Services = append(m.Services, s)
		case kind == "EndpointSlice" && apiVersion == "discovery.k8s.io/v1":
			slice, err := decodeObject[discoveryv1.EndpointSlice](root)
			if err != nil {
				undecodable(err)
				continue
			}
			if slice.Namespace == "" {
				slice.Namespace = "default"
			}
			m.Slices = append(m.Slices, slice)
			m.SliceRefs = append(m.SliceRefs, at)
		case kind == "Namespace" && apiVersion == "v1":
			ns, err := decodeObject[corev1.Namespace](root)
			if err != nil {
				undecodable(err)
				continue
			}
			m.Namespaces = append(m.Namespaces, ns)
			// A value the builder cannot parse grants, delegates or allows
			// nothing; say so where it is written.
			for _, k := range snapshot.NamespaceKeys() {
				v, ok := ns.Annotations[k]
				if !ok {
					continue
				}
				if err := snapshot.CheckNamespaceAnnotation(k, v); err != nil {
					pos := at
					if n := valueAt(valueAt(valueAt(root, "metadata"), "annotations"), k); n != nil {
						pos = Pos{n.Line, n.Column}
					}
					problems = append(problems, Problem{File: file, Pos: pos, Message: fmt.Sprintf("Namespace %s: %v", ns.Name, err)})
				}
			}
		case kind == "Secret" && apiVersion == "v1":
			sec, p, err := readSecret(file, root, at, opts.HashKey)
			switch {
			case err != nil:
				undecodable(err)
			case p != nil:
				problems = append(problems, *p)
			case sec != nil:
				m.Secrets = append(m.Secrets, sec)
			}
		}
	}
	clampLines(problems, data)
	return m, problems
}

// kindCase reports a kind that is one of checkedKinds but for its case
// (kind: service): the API server refuses it, and the gateway would skip the
// document without a word.
func kindCase(file string, root *yaml.Node, apiVersion, kind string) (Problem, bool) {
	for k := range checkedKinds {
		if k.apiVersion == apiVersion && k.kind != kind && strings.EqualFold(k.kind, kind) {
			v := valueAt(root, "kind")
			return Problem{File: file, Pos: Pos{v.Line, v.Column}, Path: "kind", Message: fmt.Sprintf("unknown kind %q (did you mean %q?)", kind, k.kind)}, true
		}
	}
	return Problem{}, false
}

// clampLines keeps every position inside the file: the YAML library's
// syntax errors may name the line after the last.
func clampLines(problems []Problem, data []byte) {
	last := bytes.Count(data, []byte("\n")) + 1
	for i := range problems {
		p := &problems[i].Pos
		p.Line = min(max(p.Line, 1), last)
		p.Column = max(p.Column, 1)
	}
}

// decodeObject converts a YAML node into a Kubernetes object through JSON,
// so field names and types follow the API's own rules. It is lenient where
// the gateway always was (field names match in any case; yes or 1.0 in a
// string field is that string) so that what served before still serves;
// checkObject reports where kubectl is stricter.
func decodeObject[T any](n *yaml.Node) (*T, error) {
	raw, err := yaml.Marshal(n)
	if err != nil {
		return nil, err
	}
	obj := new(T)
	if err := sigsyaml.Unmarshal(raw, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func valueAt(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarAt(m *yaml.Node, key string) string {
	if v := valueAt(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// Locate translates a position inside the value of annotation key into a
// position in the file. For a literal block scalar (the usual "key: |" form)
// every annotation line is a file line at a fixed indentation, so the
// translation is exact. For other styles (quoted strings with \n escapes, as
// JSON manifests have) the lines are not the file's lines; Locate then returns
// the value's own position and exact=false so the caller can also quote the
// annotation-relative position.
func (s *Service) Locate(key string, line, col int) (pos Pos, exact bool) {
	v := s.annotationValues[key]
	if v == nil {
		return s.Pos, false
	}
	if v.Style&yaml.LiteralStyle == 0 {
		return Pos{v.Line, v.Column}, false
	}
	// The header line holds "|"; content starts on the next line.
	first := v.Line + 1
	indent := blockIndent(s.lines, first)
	if line < 1 {
		line = 1
	}
	return Pos{Line: v.Line + line, Column: indent + col}, true
}

// blockIndent finds the indentation of a literal block: that of its first
// non-blank line (an explicit indentation indicator is rare enough in
// annotations that detection is the better trade).
func blockIndent(lines []string, first int) int {
	for i := first - 1; i >= 0 && i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimLeft(l, " ")
		if strings.TrimSpace(trimmed) == "" {
			continue
		}
		return len(l) - len(trimmed)
	}
	return 0
}

// Annotation returns the value of annotation key and whether it is set.
func (s *Service) Annotation(key string) (string, bool) {
	v, ok := s.Object.Annotations[key]
	return v, ok
}

func syntaxErrorPos(err error) Pos {
	var line int
	if _, scanErr := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); scanErr == nil && line > 0 {
		return Pos{line, 1}
	}
	return Pos{1, 1}
}

// syntaxErrorMessage drops the yaml library's "yaml: line N:" prefix, since
// the position is reported separately.
func syntaxErrorMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return "YAML syntax error: " + msg
}
