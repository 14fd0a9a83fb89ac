package files

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// routingKey is an annotation the gateway reads and the kind of object it
// reads it from.
type routingKey struct {
	key  string
	kind string
	// emissary marks Emissary's key: with --compat=emissary, what Emissary
	// itself accepts and ignores is a warning, so a migrating cluster's
	// manifests validate as they applied before.
	emissary bool
}

// routingKeys are the annotations the gateway reads. Kubernetes keeps any
// annotation, label or (without strict validation) field, so one of these
// under the wrong key or in the wrong place is configuration nobody reads,
// and nothing else would say so.
var routingKeys = []routingKey{
	{annotations.Key, "Service", false},
	{annotations.EmissaryKey, "Service", true},
	{annotations.GrantKey, "Namespace", false},
	{snapshot.DelegateKey, "Namespace", false},
	{snapshot.HostsKey, "Namespace", false},
}

// keyNote is a routing key found where the gateway does not read it.
type keyNote struct {
	path    []pathSeg
	key     *yaml.Node
	rk      routingKey
	exact   bool // spelled right (only placed wrong)
	where   string
	warning bool
}

// message says what is wrong for a key the schema allows where it is (a
// label, an annotation of the wrong kind of object, a near-miss spelling).
func (n keyNote) message(kind string) string {
	name := fmt.Sprintf("%q", n.key.Value)
	if !n.exact {
		name += fmt.Sprintf(" (did you mean %q?)", n.rk.key)
	}
	reader, reads := "the gateway", "the gateway reads"
	if n.rk.emissary {
		reader, reads = "Emissary or the gateway", "Emissary (and the gateway with --compat=emissary) reads"
	}
	switch n.where {
	case "annotation":
		if n.rk.kind != kind {
			return fmt.Sprintf("annotation %s is not read on a %s: %s %q only from a %s", name, kind, reads, n.rk.key, n.rk.kind)
		}
		return fmt.Sprintf("annotation %s is not read by %s", name, reader)
	case "label":
		return fmt.Sprintf("%s is a label, not an annotation: %s %q only from metadata.annotations of a %s", name, reads, n.rk.key, n.rk.kind)
	case "pod template":
		return fmt.Sprintf("%s on a Pod template is not read: %s %q only from metadata.annotations of a %s", name, reads, n.rk.key, n.rk.kind)
	}
	return fmt.Sprintf("%s is not read here: %s %q only from metadata.annotations of a %s", name, reads, n.rk.key, n.rk.kind)
}

// unknownField says the same for a key the schema refuses (directly under
// metadata or spec, say), which is an error whatever the dialect.
func (n keyNote) unknownField() string {
	msg := fmt.Sprintf("unknown field %q", n.key.Value)
	if !n.exact {
		msg += fmt.Sprintf(" (did you mean %q?)", n.rk.key)
	}
	return fmt.Sprintf("%s: %q is an annotation; put it under metadata.annotations of a %s", msg, n.rk.key, n.rk.kind)
}

// routingKeyNotes finds every mapping key in an object of kind that is a
// routing key, or nearly one, anywhere but where the gateway reads it.
func routingKeyNotes(root *yaml.Node, kind string, opts Options) []keyNote {
	var notes []keyNote
	var walk func(n *yaml.Node, path []pathSeg)
	walk = func(n *yaml.Node, path []pathSeg) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(path[:len(path):len(path)], pathSeg{index: i}))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind == yaml.ScalarNode {
					if note, ok := placeKey(k, path, kind, opts); ok {
						notes = append(notes, note)
					}
				}
				walk(n.Content[i+1], append(path[:len(path):len(path)], keySeg(k.Value)))
			}
		}
		// Aliases are not followed: what they point to is checked where
		// it is written.
	}
	walk(root, nil)
	return notes
}

// placeKey decides whether key k, found at path in an object of kind, is a
// routing key in the wrong place or a near-miss of one.
func placeKey(k *yaml.Node, path []pathSeg, kind string, opts Options) (keyNote, bool) {
	rk, exact, ok := classifyKey(k.Value)
	if !ok {
		return keyNote{}, false
	}
	// Which objects Emissary reads getambassador.io/config from is
	// Emissary's business; only a Service's is checked.
	if rk.emissary && kind != "Service" {
		return keyNote{}, false
	}
	note := keyNote{path: append([]pathSeg(nil), path...), key: k, rk: rk, exact: exact, warning: rk.emissary && opts.Emissary}
	switch {
	case segsAre(path, "metadata", "annotations"):
		if exact && rk.kind == kind {
			return keyNote{}, false
		}
		note.where = "annotation"
	case segsAre(path, "metadata", "labels"):
		note.where = "label"
	case len(path) >= 3 && segsAre(path[len(path)-3:], "template", "metadata", "annotations"):
		note.where = "pod template"
	default:
		note.where = "field"
	}
	return note, true
}

func segsAre(p []pathSeg, keys ...string) bool {
	if len(p) != len(keys) {
		return false
	}
	for i, k := range keys {
		if p[i].index >= 0 || p[i].key != k {
			return false
		}
	}
	return true
}

// classifyKey says which routing key k is, or nearly is. Near means a
// different case, at most two edits (gatehouse.dev/configs), or the right
// name under a look-alike domain (gatehouse.io/config, ambassador.io/config).
// It is deliberately narrow: other gatehouse.dev/ annotations exist or will,
// and a false alarm on a valid key would teach people to ignore the check.
func classifyKey(k string) (rk routingKey, exact, ok bool) {
	best := 3
	lk := strings.ToLower(k)
	for _, r := range routingKeys {
		if k == r.key {
			return r, true, true
		}
		d := annotations.EditDistance(lk, r.key)
		if d > 2 && lookAlike(lk, r.key) {
			d = 2
		}
		if d < best {
			rk, best = r, d
		}
	}
	return rk, false, best <= 2
}

// lookAlike reports whether k (lower case) is key's name under a domain
// that starts like key's domain.
func lookAlike(k, key string) bool {
	i, j := strings.LastIndexByte(k, '/'), strings.LastIndexByte(key, '/')
	if i < 0 || j < 0 {
		return false
	}
	if foldName(k[i+1:]) != foldName(key[j+1:]) && annotations.EditDistance(k[i+1:], key[j+1:]) > 1 {
		return false
	}
	label, want := firstLabel(k[:i]), firstLabel(key[:j])
	switch {
	case label == want, annotations.EditDistance(label, want) <= 2:
		return true
	case len(label) >= 6 && (strings.Contains(want, label) || strings.Contains(label, want)):
		return true
	}
	return false
}

func firstLabel(domain string) string {
	if i := strings.IndexByte(domain, '.'); i >= 0 {
		return domain[:i]
	}
	return domain
}
