package annotations

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
	"go.yaml.in/yaml/v3"
)

// sharedValidator is built once: validator.New costs about 35 µs and 250
// allocations, more than parsing a typical annotation, and a Validate is
// safe for concurrent use. It holds no configuration that changes after
// construction.
var sharedValidator = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Problems name fields as the user wrote them, not as Go spells them.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	return v
})

// validateTags runs the `validate` tags of types.go over a decoded struct
// and turns each failure into a Problem at the field, or at the struct when
// the field is missing.
func (p *parser) validateTags(sl *structLoc, v any) {
	err := p.validate.Struct(v)
	if err == nil {
		return
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		p.errorAt(sl.node, p.path(sl.rel), "internal error validating the document: "+err.Error())
		return
	}
	fs := p.fieldsOf(reflect.TypeOf(v).Elem())
	for _, fe := range verrs {
		// The validator also descends into nested structs; those were
		// checked, with their own positions, when they were decoded.
		if strings.Count(fe.Namespace(), ".") != 1 {
			continue
		}
		name := fe.Field()
		if sl.failed[name] {
			continue // a decoding problem was already reported here
		}
		f, _ := fieldNamed(fs, name)
		loc, present := sl.fields[name]
		path := p.path(join(sl.rel, name))
		at := sl.node
		if present {
			at = loc.value
		}
		switch tag := fe.Tag(); {
		case tag == "required" || tag == "required_if":
			when := requiredWhen(fs, fe)
			switch {
			case !present:
				p.errorAt(sl.node, p.path(sl.rel), fmt.Sprintf("missing required field %q%s", name, when))
			case isNull(loc.value):
				p.errorAt(loc.key, path, fmt.Sprintf("missing value for required field %q%s", name, when))
			default:
				p.errorAt(loc.value, path, zeroValueMessage(f, fe))
			}
		case tag == "oneof":
			p.errorAt(at, path, oneOfMessage(fe.Param(), fe.Value()))
		case tag == "min":
			p.errorAt(at, path, minMessage(fe.Param(), fe.Value()))
		case tag == "max":
			p.errorAt(at, path, fmt.Sprintf("must be at most %s; got %v", fe.Param(), fe.Value()))
		default:
			p.errorAt(at, path, fmt.Sprintf("fails the %q check", fe.ActualTag()))
		}
	}
}

// requiredWhen explains a required_if, e.g. " (required when key is header)".
func requiredWhen(fs []field, fe validator.FieldError) string {
	if fe.Tag() != "required_if" {
		return ""
	}
	goName, value, _ := strings.Cut(fe.Param(), " ")
	for _, f := range fs {
		if f.goName == goName {
			return fmt.Sprintf(" (required when %s is %s)", f.name, value)
		}
	}
	return ""
}

// zeroValueMessage explains a required field that was written with its zero
// value, using the field's other rules when there are any: "rate: 0" reads
// better as "must be at least 1" than as "missing".
func zeroValueMessage(f field, fe validator.FieldError) string {
	for _, rule := range strings.Split(f.validate, ",") {
		name, param, _ := strings.Cut(rule, "=")
		switch name {
		case "oneof":
			return oneOfMessage(param, fe.Value())
		case "min":
			return minMessage(param, fe.Value())
		}
	}
	if fe.Kind() == reflect.String {
		return "must not be empty"
	}
	return "must not be zero"
}

// oneOfMessage quotes what was written only when it is a string, so that
// redirect_response_code: 200 reads "got 200"; a did-you-mean between
// numbers would only guess, so strings alone get one.
func oneOfMessage(param string, got any) string {
	allowed := strings.Fields(param)
	if s, ok := got.(string); ok {
		return fmt.Sprintf("must be one of %s; got %q%s", strings.Join(allowed, ", "), s, didYouMean(s, allowed))
	}
	return fmt.Sprintf("must be one of %s; got %v", strings.Join(allowed, ", "), got)
}

func minMessage(param string, got any) string {
	if param == "0" {
		return fmt.Sprintf("must not be negative; got %v", got)
	}
	return fmt.Sprintf("must be at least %s; got %v", param, got)
}

// checkCommon checks apiVersion (native documents) and the name.
func (p *parser) checkCommon(d *document, apiVersion, name string) {
	if n, ok := d.usable("apiVersion"); ok && apiVersion != APIVersion && p.opts.Dialect == Native {
		msg := fmt.Sprintf("unsupported apiVersion %q; the only apiVersion is %q", apiVersion, APIVersion)
		if strings.HasPrefix(apiVersion, "getambassador.io/") || strings.HasPrefix(apiVersion, "ambassador/") {
			msg += " (Emissary documents belong in the getambassador.io/config annotation)"
		}
		p.errorAt(n, d.prefix+".apiVersion", msg)
	}
	if d.nameNode == nil || name == "" {
		return
	}
	msg := dnsLabelProblem(name)
	if p.opts.Dialect == Emissary {
		msg = emissaryNameProblem(d.kind, name)
	}
	if msg != "" {
		p.errorAt(d.nameNode, d.namePath, fmt.Sprintf("%q %s", name, msg))
	}
}

func (p *parser) checkRateLimit(d *document, rl *RateLimit) {
	p.validateTags(d.top, rl)
	p.checkCommon(d, rl.APIVersion, rl.Name)

	// validator's omitempty lets an explicit "burst: 0" through; writing it
	// is a mistake, since leaving burst out is how one asks for burst = rate.
	if n, ok := d.usable("burst"); ok && rl.Burst == 0 {
		p.errorAt(n, d.prefix+".burst", "must be at least 1; got 0 (leave burst out to use rate as the bucket size)")
	}
	if n, ok := d.usable("header"); ok && rl.Header != "" {
		switch {
		case !d.top.failed["key"] && (rl.Key == "" || rl.Key == KeyPolicy || rl.Key == KeyClientIP || rl.Key == KeyConsumer):
			key := rl.Key
			if key == "" {
				key = KeyPolicy + " (the default)"
			}
			p.errorAt(n, d.prefix+".header", fmt.Sprintf("header is only used with key: header; key is %s", key))
		case !isToken(rl.Header):
			p.errorAt(n, d.prefix+".header", fmt.Sprintf("invalid header name %q: a header name has only %s", rl.Header, tokenRule))
		}
	}
}

// crossCheck runs the checks that need every document: unique names,
// references from Mappings to RateLimits and Auths, and the Hosts'
// hostnames.
func (p *parser) crossCheck() {
	type named struct{ kind, name string }
	firstName := make(map[named]*yaml.Node)
	var declared []string
	for _, d := range p.docs {
		n := d.nameNode
		if n == nil || n.Value == "" {
			continue
		}
		key := named{d.kind, n.Value}
		if first, dup := firstName[key]; dup {
			p.errorSee(n, first, d.namePath, fmt.Sprintf("duplicate %s name %q", d.kind, n.Value))
			continue
		}
		firstName[key] = n
		if d.kind == KindRateLimit {
			declared = append(declared, n.Value)
		}
	}

	isDeclared := make(map[string]bool, len(declared))
	for _, name := range declared {
		isDeclared[name] = true
	}
	used := make(map[string]bool, len(declared))
	for _, d := range p.docs {
		list, ok := d.top.fields["rate_limits"]
		if d.kind != KindMapping || !ok || list.value.Kind != yaml.SequenceNode {
			continue
		}
		first := make(map[string]*yaml.Node, len(list.value.Content))
		for i, item := range list.value.Content {
			if !isStringScalar(item) {
				continue // reported while decoding
			}
			path := fmt.Sprintf("%s.rate_limits[%d]", d.prefix, i)
			if f, dup := first[item.Value]; dup {
				p.errorSee(item, f, path, fmt.Sprintf("duplicate rate limit %q", item.Value))
				continue
			}
			first[item.Value] = item
			if isDeclared[item.Value] {
				used[item.Value] = true
				continue
			}
			if !p.complete {
				continue // it may be declared in the part that was not read
			}
			msg := fmt.Sprintf("unknown RateLimit %q", item.Value)
			switch hint := p.didYouMean(item.Value, declared); {
			case hint != "":
				msg += hint
			case len(declared) == 0:
				msg += "; this annotation declares no RateLimit documents"
			case len(declared) <= 5:
				msg += "; this annotation declares " + strings.Join(declared, ", ")
			default:
				msg += fmt.Sprintf("; this annotation declares %s and %d more", strings.Join(declared[:5], ", "), len(declared)-5)
			}
			p.errorAt(item, path, msg)
		}
	}

	p.checkHostEntries()
	usedAuths := p.checkAuthReferences()

	// An unused RateLimit or Auth is dead configuration, most likely a
	// Mapping that forgot to name it. Only worth saying once the rest is
	// right. An Emissary AuthService applies to its namespace unnamed.
	if !p.complete || p.problems.HasErrors() {
		return
	}
	for _, d := range p.docs {
		n := d.nameNode
		switch {
		case n == nil:
		case d.kind == KindRateLimit && !used[n.Value]:
			p.warnAt(n, d.namePath, fmt.Sprintf("RateLimit %q is not used by any Mapping in this annotation", n.Value))
		case d.kind == KindAuth && !usedAuths[n.Value]:
			p.warnAt(n, d.namePath, fmt.Sprintf("Auth %q is not used by any Mapping in this annotation: name it in a Mapping's auth", n.Value))
		}
	}
}
