package docs

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// tableFields returns the fields documented in the first table after the
// heading ("## Mapping", "### jwt"): field name (the first cell, without
// backticks) → the whole row.
func tableFields(t *testing.T, doc, heading string) map[string]string {
	t.Helper()
	title := strings.TrimLeft(heading, "# ")
	_, section, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no section %q", heading)
	}
	rows := map[string]string{}
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if name == "field" || strings.HasPrefix(name, "---") {
			continue
		}
		if _, dup := rows[name]; dup {
			t.Errorf("%s: %q documented twice", title, name)
		}
		rows[name] = line
	}
	return rows
}

// wireFields returns the YAML names of a wire type's fields, and for fields
// of struct type (or lists of them) the names of their own fields.
func wireFields(typ reflect.Type) map[string][]string {
	out := map[string][]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		var nested []string
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			for j := range ft.NumField() {
				if n, _, _ := strings.Cut(ft.Field(j).Tag.Get("json"), ","); n != "" && n != "-" {
					nested = append(nested, n)
				}
			}
		}
		out[name] = nested
	}
	return out
}

func TestReferenceMatchesTypes(t *testing.T) {
	data, err := os.ReadFile("annotations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, c := range []struct {
		heading string
		typ     reflect.Type
		// own names the fields whose sub-fields have a table of their
		// own (checked by its own entry) instead of being listed in the
		// field's row.
		own []string
	}{
		{"## Mapping", reflect.TypeFor[annotations.Mapping](), nil},
		{"## RateLimit", reflect.TypeFor[annotations.RateLimit](), nil},
		{"## Host", reflect.TypeFor[annotations.Host](), nil}, // and HSTS, its hsts row
		{"## Auth", reflect.TypeFor[annotations.Auth](), []string{"jwt", "api_key", "external"}},
		{"### jwt", reflect.TypeFor[annotations.JWTAuth](), nil},
		{"### api_key", reflect.TypeFor[annotations.APIKeyAuth](), nil},
		{"### external", reflect.TypeFor[annotations.ExternalAuth](), nil},
	} {
		documented := tableFields(t, doc, c.heading)
		wire := wireFields(c.typ)
		title := strings.TrimLeft(c.heading, "# ")
		for name, nested := range wire {
			row, ok := documented[name]
			if !ok {
				t.Errorf("%s field %q is not documented in docs/annotations.md", title, name)
				continue
			}
			if slices.Contains(c.own, name) {
				if !strings.Contains(row, "(#"+name+")") {
					t.Errorf("%s field %q: its row does not link to its table, ### %s", title, name, name)
				}
				continue
			}
			for _, n := range nested {
				if !strings.Contains(row, n) {
					t.Errorf("%s field %q: its sub-field %q is not mentioned in its row", title, name, n)
				}
			}
		}
		for name := range documented {
			if _, ok := wire[name]; !ok {
				t.Errorf("docs/annotations.md documents %s field %q, which the parser does not know", title, name)
			}
		}
	}
}

// TestReferenceAuthExampleParses keeps the Auth section's example valid:
// its first YAML block is a whole annotation.
func TestReferenceAuthExampleParses(t *testing.T) {
	data, err := os.ReadFile("annotations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "\n## Auth\n")
	_, rest, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("no example in the Auth section")
	}
	block, _, _ := strings.Cut(rest, "```")
	cfg, problems := annotations.Parse(block, annotations.Options{Namespace: "shop"})
	if cfg == nil || len(problems) > 0 || len(cfg.Auths) != 3 {
		t.Errorf("the Auth example has problems:\n%v", problems)
	}
}

// TestReferenceExampleParses keeps the page's example valid.
func TestReferenceExampleParses(t *testing.T) {
	data, err := os.ReadFile("annotations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "## Example\n\n```yaml\n")
	manifest, _, _ := strings.Cut(rest, "```")
	_, block, ok := strings.Cut(manifest, "gatehouse.dev/config: |\n")
	if !ok {
		t.Fatal("no annotation in the example")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if !strings.HasPrefix(l, "      ") {
			break
		}
		lines = append(lines, strings.TrimPrefix(l, "      "))
	}
	cfg, problems := annotations.Parse(strings.Join(lines, "\n"), annotations.Options{Namespace: "default"})
	if cfg == nil || len(problems) > 0 {
		t.Errorf("the reference example has problems:\n%v", problems)
	}
}
