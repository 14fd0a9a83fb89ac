package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// spanAttrRow finds the rows of tracing.md's attribute table: name, type.
var spanAttrRow = regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| (string|int) \\|")

// spanAttrTypes maps the attribute package's constructors to the table's
// types.
var spanAttrTypes = map[string]string{"String": "string", "Int": "int", "Int64": "int", "Bool": "bool", "Float64": "float"}

// TestSpanAttributes: the attributes tracing.md lists are exactly those
// proxy/trace.go writes (every attribute.X("key", …) call), with the same
// types.
func TestSpanAttributes(t *testing.T) {
	doc, err := os.ReadFile("tracing.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range spanAttrRow.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "../proxy/trace.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "attribute" {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("%s: attribute.%s with a key that is not a literal; the docs test cannot follow it", fset.Position(call.Pos()), sel.Sel.Name)
			return true
		}
		key, _ := strconv.Unquote(lit.Value)
		written[key] = spanAttrTypes[sel.Sel.Name]
		return true
	})
	if len(written) < 10 {
		t.Fatalf("found %d attributes in proxy/trace.go; the test no longer sees how it writes them", len(written))
	}
	for _, k := range sortedKeys(written) {
		if documented[k] == "" {
			t.Errorf("proxy/trace.go writes span attribute %s, which tracing.md does not list", k)
		} else if documented[k] != written[k] {
			t.Errorf("span attribute %s: tracing.md says %s, the code writes %s", k, documented[k], written[k])
		}
	}
	for _, k := range sortedKeys(documented) {
		if written[k] == "" {
			t.Errorf("tracing.md lists span attribute %s, which proxy/trace.go never writes", k)
		}
	}
}
