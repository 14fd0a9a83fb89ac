package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// An object's schema is checked the way the API server decodes it when
// kubectl asks for strict field validation, its default since Kubernetes
// 1.27: YAML becomes JSON as kubectl converts it (sigs.k8s.io/yaml, so
// "yes" is a boolean), and JSON is decoded into the typed struct with
// sigs.k8s.io/json's strict decoder (case-sensitive field names, unknown
// fields refused). Those are errors whatever the dialect, since the API
// server refuses the object. What the decoder reports by path or byte
// offset is placed through the YAML node tree, which knows lines and columns.

type typeKey struct{ apiVersion, kind string }

// checkedKinds are the kinds whose schema is checked: the four the gateway
// reads (of Secrets, those of type kubernetes.io/tls) and those an
// onboarding manifest or the install manifest puts beside them. Every other
// kind (CRDs above all, whose schema is not known here) is left alone.
var checkedKinds = map[typeKey]func() any{
	{"v1", "Service"}:                        func() any { return new(corev1.Service) },
	{"v1", "Namespace"}:                      func() any { return new(corev1.Namespace) },
	{"discovery.k8s.io/v1", "EndpointSlice"}: func() any { return new(discoveryv1.EndpointSlice) },

	{"apps/v1", "Deployment"}:                              func() any { return new(appsv1.Deployment) },
	{"apps/v1", "StatefulSet"}:                             func() any { return new(appsv1.StatefulSet) },
	{"apps/v1", "DaemonSet"}:                               func() any { return new(appsv1.DaemonSet) },
	{"v1", "ConfigMap"}:                                    func() any { return new(corev1.ConfigMap) },
	{"v1", "Secret"}:                                       func() any { return new(corev1.Secret) },
	{"v1", "ServiceAccount"}:                               func() any { return new(corev1.ServiceAccount) },
	{"batch/v1", "Job"}:                                    func() any { return new(batchv1.Job) },
	{"batch/v1", "CronJob"}:                                func() any { return new(batchv1.CronJob) },
	{"policy/v1", "PodDisruptionBudget"}:                   func() any { return new(policyv1.PodDisruptionBudget) },
	{"autoscaling/v2", "HorizontalPodAutoscaler"}:          func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	{"networking.k8s.io/v1", "Ingress"}:                    func() any { return new(networkingv1.Ingress) },
	{"networking.k8s.io/v1", "NetworkPolicy"}:              func() any { return new(networkingv1.NetworkPolicy) },
	{"rbac.authorization.k8s.io/v1", "Role"}:               func() any { return new(rbacv1.Role) },
	{"rbac.authorization.k8s.io/v1", "RoleBinding"}:        func() any { return new(rbacv1.RoleBinding) },
	{"rbac.authorization.k8s.io/v1", "ClusterRole"}:        func() any { return new(rbacv1.ClusterRole) },
	{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"}: func() any { return new(rbacv1.ClusterRoleBinding) },
	{"admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"}: func() any {
		return new(admissionregistrationv1.ValidatingWebhookConfiguration)
	},
}

// maxDecodeErrors bounds the decoding passes over one document: each pass
// finds one type error (the decoder reports only its first), so a document
// that is mostly wrong must not cost a pass per value.
const maxDecodeErrors = 20

// objectCheck collects the problems of one document.
type objectCheck struct {
	file     string
	root     *yaml.Node
	kind     string
	label    string // how paths start: Service "users"
	objType  reflect.Type
	problems []Problem
}

// checkObject checks a document of a kind in checkedKinds. Problems that
// keep the object from decoding at all are marked (Problem.undecodable), so
// the caller can say there what it does with such an object.
func checkObject(file string, root *yaml.Node, kind string, newObj func() any, opts Options) []Problem {
	c := &objectCheck{file: file, root: root, kind: kind, label: objectLabel(kind, root), objType: reflect.TypeOf(newObj())}
	c.duplicates(root, nil)
	notes := routingKeyNotes(root, kind, opts)
	unknown := c.schema(newObj)

	for _, n := range notes {
		full := append(n.path[:len(n.path):len(n.path)], keySeg(n.key.Value))
		inside := false
		for _, u := range unknown {
			// An unknown field was reported already, and under one
			// (metadata.annotation, say) it is the mistake: the keys
			// below it only follow from it.
			if len(full) >= len(u) && slices.Equal(full[:len(u)], u) {
				inside = true
				break
			}
		}
		if !inside {
			c.add(n.key, full, n.message(kind), n.warning)
		}
	}
	slices.SortStableFunc(c.problems, func(a, b Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
	return c.problems
}

func (c *objectCheck) add(at *yaml.Node, path []pathSeg, msg string, warning bool) {
	p := c.label
	if fp := fieldPath(c.objType, path); fp != "" {
		if !strings.HasPrefix(fp, "[") {
			p += "."
		}
		p += fp
	}
	c.problems = append(c.problems, Problem{File: c.file, Pos: Pos{at.Line, at.Column}, Path: p, Message: msg, Warning: warning})
}

// schema decodes the object strictly and reports type errors and unknown
// fields. It returns the paths of the unknown fields, below which nothing
// more needs saying.
func (c *objectCheck) schema(newObj func() any) (unknown [][]pathSeg) {
	raw, err := yaml.Marshal(c.root)
	if err == nil {
		raw, err = sigsyaml.YAMLToJSON(raw)
	}
	if err != nil {
		c.decodeFailed(c.root, nil, fmt.Sprintf("decoding %s: %v", c.kind, err))
		return nil
	}
	idx, ok := indexJSON(raw)
	if !ok {
		c.decodeFailed(c.root, nil, fmt.Sprintf("decoding %s: not a JSON value", c.kind))
		return nil
	}
	objType := c.objType
	for range maxDecodeErrors {
		strictErrs, err := kjson.UnmarshalStrict(idx.data, newObj(), kjson.DisallowUnknownFields)
		if err == nil {
			return c.unknownFields(idx, objType, strictErrs)
		}
		i, undecodable := -1, true
		var msg string
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			i = idx.forTypeError(te.Offset, te.Field)
			if i >= 0 {
				msg, undecodable = c.typeMessage(idx, i, objType, te)
			}
		} else {
			// A custom decoder (Quantity, Time, IntOrString...) refused
			// a value, and says neither where nor which.
			i, msg = findInvalid(idx, objType)
		}
		if i < 0 {
			c.decodeFailed(c.root, nil, fmt.Sprintf("decoding %s: %v", c.kind, err))
			return nil
		}
		path := idx.path(i)
		_, val, _ := nodeAt(c.root, path)
		if undecodable {
			c.decodeFailed(val, path, msg)
		} else {
			c.add(val, path, msg, false)
		}
		// Null is accepted by every Go type: decoding again goes on to
		// the next problem.
		if idx, ok = indexJSON(idx.withNull(i)); !ok {
			return nil
		}
	}
	return nil
}

func (c *objectCheck) decodeFailed(at *yaml.Node, path []pathSeg, msg string) {
	c.add(at, path, msg, false)
	c.problems[len(c.problems)-1].undecodable = true
}

func (c *objectCheck) unknownFields(idx *jsonIndex, objType reflect.Type, errs []error) (unknown [][]pathSeg) {
	for _, err := range errs {
		var fe kjson.FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "unknown field") {
			c.add(c.root, nil, err.Error(), false)
			continue
		}
		i := idx.byDecoderPath(fe.FieldPath())
		if i <= 0 {
			c.add(c.root, nil, err.Error(), false)
			continue
		}
		path := idx.path(i)
		key, val, full := nodeAt(c.root, path)
		at := val
		if full && key != nil {
			at = key
		}
		name := path[len(path)-1].key
		unknown = append(unknown, path)
		if rk, exact, ok := classifyKey(name); ok && full && key != nil {
			c.add(at, path, keyNote{key: key, rk: rk, exact: exact}.unknownField(), false)
			continue
		}
		msg := fmt.Sprintf("unknown field %q", name)
		if t := typeAt(objType, path[:len(path)-1]); t != nil {
			msg += didYouMean(name, fieldNames(t))
		}
		c.add(at, path, msg, false)
	}
	return unknown
}

// typeMessage says what value i should have been. undecodable is false for
// a YAML 1.1 scalar (yes, 1.0) where a string belongs: kubectl sends it as a
// boolean or number, which the API server refuses, but the gateway's own
// reading converts it to the string (see decodeObject).
func (c *objectCheck) typeMessage(idx *jsonIndex, i int, objType reflect.Type, te *json.UnmarshalTypeError) (msg string, undecodable bool) {
	want := ""
	if t := typeAt(objType, idx.path(i)); t != nil {
		want = describeType(t)
	} else if te.Type != nil {
		want = describeType(te.Type)
	}
	got := te.Value
	switch {
	case got == "string":
		got = "a string"
	case got == "bool":
		got = "a boolean"
	case got == "array":
		got = "a list"
	case got == "object":
		got = "a mapping"
	case strings.HasPrefix(got, "number"):
		got = "a number"
	}
	msg = fmt.Sprintf("expected %s, got %s", want, got)
	if _, val, _ := nodeAt(c.root, idx.path(i)); want == "a string" && val.Kind == yaml.ScalarNode && val.Style == 0 {
		// kubectl reads YAML 1.1, where yes, on and 1.0 are not strings.
		return msg + fmt.Sprintf(`; quote it ("%s") to make it a string`, val.Value), false
	}
	return msg, true
}

// findInvalid finds the value a custom decoder refused: the one value whose
// type has its own decoder and which, decoded alone, fails. It returns -1
// when there is none.
func findInvalid(idx *jsonIndex, objType reflect.Type) (int, string) {
	unmarshaler := reflect.TypeFor[json.Unmarshaler]()
	for i := range idx.values {
		t := typeAt(objType, idx.path(i))
		if t == nil || !reflect.PointerTo(t).Implements(unmarshaler) && !isBytes(t) {
			continue
		}
		v := idx.values[i]
		raw := idx.data[v.start:v.end]
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, reflect.New(t).Interface()); err != nil {
			return i, fmt.Sprintf("invalid value %s: %v", raw, err)
		}
	}
	return -1, ""
}

// duplicates reports a key written twice in one mapping. kubectl refuses
// them (and sigs.k8s.io/yaml would silently keep the last).
func (c *objectCheck) duplicates(n *yaml.Node, path []pathSeg) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, ch := range n.Content {
			c.duplicates(ch, path)
		}
	case yaml.SequenceNode:
		for i, ch := range n.Content {
			c.duplicates(ch, append(path[:len(path):len(path)], pathSeg{index: i}))
		}
	case yaml.MappingNode:
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			kp := append(path[:len(path):len(path)], keySeg(k.Value))
			// Merge keys (<<) may repeat; they are not fields.
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if f, dup := first[k.Value]; dup {
					c.add(k, kp, fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, f.Line), false)
				} else {
					first[k.Value] = k
				}
			}
			c.duplicates(n.Content[i+1], kp)
		}
	}
}

// nodeAt follows path from root through the YAML tree. It returns the key
// node of the last mapping step (nil after a list index) and the value node.
// When the path cannot be followed to its end it stops at the deepest node
// reached, with full false, so a position is always found.
func nodeAt(root *yaml.Node, path []pathSeg) (key, val *yaml.Node, full bool) {
	val = root
	for _, s := range path {
		n := deref(val)
		switch {
		case s.index >= 0 && n.Kind == yaml.SequenceNode && s.index < len(n.Content):
			key, val = nil, n.Content[s.index]
		case s.index < 0 && n.Kind == yaml.MappingNode:
			k, v := lookupKey(n, s.key, 0)
			if k == nil {
				return key, val, false
			}
			key, val = k, v
		default:
			return key, val, false
		}
	}
	return key, val, true
}

// lookupKey finds key in mapping m as sigs.k8s.io/yaml resolves it: the
// last of duplicate keys wins, and keys merged in with << come after those
// written out.
func lookupKey(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	for i := len(m.Content) - 2; i >= 0; i -= 2 {
		if m.Content[i].Value == key && m.Content[i].Value != "<<" {
			return m.Content[i], m.Content[i+1]
		}
	}
	if depth > 8 {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "<<" {
			continue
		}
		srcs := []*yaml.Node{m.Content[i+1]}
		if s := deref(m.Content[i+1]); s.Kind == yaml.SequenceNode {
			srcs = s.Content
		}
		for _, src := range srcs {
			if s := deref(src); s.Kind == yaml.MappingNode {
				if k, v := lookupKey(s, key, depth+1); k != nil {
					return k, v
				}
			}
		}
	}
	return nil, nil
}

// deref follows aliases and enters documents.
func deref(n *yaml.Node) *yaml.Node {
	for range 8 {
		switch {
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		default:
			return n
		}
	}
	return n
}

// objectLabel names the object in paths: Service "users", or just Service.
func objectLabel(kind string, root *yaml.Node) string {
	if name := scalarAt(valueAt(root, "metadata"), "name"); name != "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return kind
}

// fieldPath writes a path in an object of type t for people, as
// Kubernetes' own messages do: fields joined by dots, list indices and map
// keys in brackets (metadata.annotations[gatehouse.dev/config]). Past the
// type's end (under an unknown field) a key is bracketed only when it is not
// a plain name.
func fieldPath(t reflect.Type, p []pathSeg) string {
	var b strings.Builder
	for i, s := range p {
		var parent reflect.Type
		if t != nil {
			parent = typeAt(t, p[:i])
		}
		switch {
		case s.index >= 0:
			fmt.Fprintf(&b, "[%d]", s.index)
		case parent != nil && parent.Kind() == reflect.Map, !plainName(s.key):
			b.WriteString("[" + s.key + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// typeAt is the Go type of the value at path in an object of type t, or nil
// when the path leaves the type (an unknown field, say).
func typeAt(t reflect.Type, path []pathSeg) reflect.Type {
	for _, s := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case s.index >= 0 && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case s.index < 0 && t.Kind() == reflect.Map:
			t = t.Elem()
		case s.index < 0 && t.Kind() == reflect.Struct:
			f, ok := jsonField(t, s.key)
			if !ok {
				return nil
			}
			t = f
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonField finds the field encoding/json would decode key into.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, embedded := jsonName(f)
		switch {
		case embedded:
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft, ok := jsonField(ft, key); ok {
				return ft, true
			}
		case name == key:
			return f.Type, true
		}
	}
	return nil, false
}

// fieldNames lists the JSON names of a struct's fields, the candidates for
// a did-you-mean.
func fieldNames(t reflect.Type) []string {
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, embedded := jsonName(f)
		switch {
		case embedded:
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			names = append(names, fieldNames(ft)...)
		case name != "":
			names = append(names, name)
		}
	}
	return names
}

// jsonName is a field's JSON name, or embedded for a struct whose fields
// encoding/json promotes (TypeMeta's ",inline" is such a one).
func jsonName(f reflect.StructField) (name string, embedded bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, _, _ = strings.Cut(tag, ",")
	ft := f.Type
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
		return "", true
	}
	if !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, false
}

var (
	intOrStringType = reflect.TypeFor[intstr.IntOrString]()
	quantityType    = reflect.TypeFor[resource.Quantity]()
	timeType        = reflect.TypeFor[metav1.Time]()
	microTimeType   = reflect.TypeFor[metav1.MicroTime]()
	durationType    = reflect.TypeFor[metav1.Duration]()
)

// describeType says in YAML's words what a value of Go type t looks like.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case intOrStringType:
		return "an integer or a string"
	case quantityType:
		return "a quantity (such as 100m or 1Gi)"
	case timeType, microTimeType:
		return "a timestamp"
	case durationType:
		return "a duration (such as 30s)"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		if isBytes(t) {
			return "a base64 string"
		}
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a value of type " + t.String()
}

func isBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}
