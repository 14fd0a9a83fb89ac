package files

import (
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// Finding is a problem placed in a file: FILE:LINE:COL: message.
type Finding struct {
	File    string `json:"file"`
	Pos     Pos    `json:"-"`
	Message string `json:"message"`
	Warning bool   `json:"warning"`
	// Path is the field path inside the annotation, Annotation its key.
	// For problems with the manifest itself Annotation is empty and Path
	// names the object and field (Service "users".metadata.annotation), or
	// is empty too when the problem is with the file as a whole.
	Path       string `json:"path,omitempty"`
	Annotation string `json:"annotation,omitempty"`
}

// MarshalJSON flattens the position, for CI tools reading validate -o json.
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	return json.Marshal(struct {
		plain
		Line   int `json:"line"`
		Column int `json:"column"`
	}{plain(f), f.Pos.Line, f.Pos.Column})
}

func (f Finding) String() string {
	sev := ""
	if f.Warning {
		sev = "warning: "
	}
	path := ""
	if f.Path != "" {
		path = f.Path + ": "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s%s", f.File, f.Pos.Line, f.Pos.Column, sev, path, f.Message)
}

// FileFindings turns manifest-level problems into Findings.
func FileFindings(problems []Problem) []Finding {
	out := make([]Finding, 0, len(problems))
	for _, p := range problems {
		out = append(out, Finding{File: p.File, Pos: p.Pos, Message: p.Message, Path: p.Path, Warning: p.Warning})
	}
	return out
}

// ServiceObjects returns the Services as API objects, in file order.
func (m *Manifests) ServiceObjects() []*corev1.Service {
	out := make([]*corev1.Service, 0, len(m.Services))
	for _, s := range m.Services {
		out = append(out, s.Object)
	}
	return out
}

// Lookup finds a Service by "namespace/name".
func (m *Manifests) Lookup(key string) *Service {
	for _, s := range m.Services {
		if s.Object.Namespace+"/"+s.Object.Name == key {
			return s
		}
	}
	return nil
}

// Locate places the problems of service's annotation key (positions relative
// to the annotation string) in its file.
func (m *Manifests) Locate(service, key string, problems annotations.Problems) []Finding {
	s := m.Lookup(service)
	if s == nil {
		return nil
	}
	out := make([]Finding, 0, len(problems))
	for _, p := range problems {
		pos, exact := s.Locate(key, p.Pos.Line, p.Pos.Column)
		msg := p.Message
		if p.Related != nil {
			// The other place the message means, in the file's own terms.
			rel, relExact := s.Locate(key, p.Related.Line, p.Related.Column)
			if relExact {
				msg = fmt.Sprintf("%s (see line %d, column %d)", msg, rel.Line, rel.Column)
			} else {
				msg = fmt.Sprintf("%s (see annotation line %d, column %d)", msg, p.Related.Line, p.Related.Column)
			}
		}
		if !exact {
			msg = fmt.Sprintf("%s (annotation line %d, column %d)", msg, p.Pos.Line, p.Pos.Column)
		}
		out = append(out, Finding{File: s.File, Pos: pos, Message: msg, Warning: p.Warning, Path: p.Path, Annotation: key})
	}
	return out
}

// SortFindings orders findings by file and position, the order a reader
// fixes them in.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Column < b.Pos.Column
	})
}

// EmissaryHints points at getambassador.io/config annotations, which are
// read only with --compat=emissary: without the hint they would be ignored
// without a word.
func (m *Manifests) EmissaryHints() []Finding {
	var out []Finding
	for _, s := range m.Services {
		v := s.annotationValues[annotations.EmissaryKey]
		if v == nil {
			continue
		}
		out = append(out, Finding{File: s.File, Pos: Pos{v.Line, v.Column}, Warning: true, Annotation: annotations.EmissaryKey,
			Message: "getambassador.io/config is ignored; run with --compat=emissary to read Emissary annotations"})
	}
	return out
}
