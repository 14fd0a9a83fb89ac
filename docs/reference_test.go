package docs

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// tableFields returns the fields documented in the first table after the
// heading "## title": field name (the first cell, without backticks) → the
// whole row.
func tableFields(t *testing.T, doc, title string) map[string]string {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("no section %q", title)
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
		title string
		typ   reflect.Type
	}{
		{"Mapping", reflect.TypeFor[annotations.Mapping]()},
		{"RateLimit", reflect.TypeFor[annotations.RateLimit]()},
		{"Host", reflect.TypeFor[annotations.Host]()}, // and HSTS, its hsts row
	} {
		documented := tableFields(t, doc, c.title)
		wire := wireFields(c.typ)
		for name, nested := range wire {
			row, ok := documented[name]
			if !ok {
				t.Errorf("%s field %q is not documented in docs/annotations.md", c.title, name)
				continue
			}
			for _, n := range nested {
				if !strings.Contains(row, n) {
					t.Errorf("%s field %q: its sub-field %q is not mentioned in its row", c.title, name, n)
				}
			}
		}
		for name := range documented {
			if _, ok := wire[name]; !ok {
				t.Errorf("docs/annotations.md documents %s field %q, which the parser does not know", c.title, name)
			}
		}
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
