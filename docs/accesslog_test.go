package docs

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The access log schema (accesslog.md) is checked against the code that
// writes the line, proxy's accessLine: the keys passed to its methods, in
// the order they are written, and the values of exchange.reason.

// accessField is one key of the access line.
type accessField struct {
	typ string // string or integer; "" when the source does not say
	// begin marks the keys accessLine.begin writes, first; the others
	// come in the order of pos.
	begin bool
	pos   token.Pos
}

// accessMethods are accessLine's writers and the JSON type each writes.
// begin writes the keys every slog line has (found in its literals); end
// writes none.
var accessMethods = map[string]string{"str": "string", "int": "integer", "begin": "", "end": ""}

// jsonKey finds "key": in the JSON text a literal holds, and whether a
// string follows.
var jsonKey = regexp.MustCompile(`"([a-z_]+)":("?)`)

// accessKeys finds every key proxy's access line can have: those of
// accessLine's begin (from its JSON text), those passed to its writers
// wherever an accessLine is made, and any "key": text written beside them.
// Problems are uses it cannot read: a key that is not a literal, a writer
// it does not know the type of.
func accessKeys(src *source) (map[string]accessField, []string) {
	out := map[string]accessField{}
	var problems []string
	inBegin := false
	add := func(key, typ string, pos token.Pos) {
		if old, ok := out[key]; ok {
			if old.typ != typ && old.typ != "" && typ != "" {
				problems = append(problems, fmt.Sprintf("%s: access key %s written as %s here and %s at %s", src.pos(pos), key, typ, old.typ, src.pos(old.pos)))
			}
			if pos > old.pos {
				return
			}
		}
		out[key] = accessField{typ: typ, begin: inBegin, pos: pos}
	}
	literalKeys := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				text, _ := strconv.Unquote(lit.Value)
				for _, m := range jsonKey.FindAllStringSubmatch(text, -1) {
					typ := ""
					if m[2] != "" {
						typ = "string"
					}
					add(m[1], typ, lit.Pos())
				}
			}
			return true
		})
	}
	for _, file := range src.dirs["proxy"] {
		for _, decl := range file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			if fn.Recv != nil && receiverType(fn.Recv) == "accessLine" {
				if fn.Name.Name == "begin" {
					inBegin = true
					literalKeys(fn.Body)
					inBegin = false
				}
				continue
			}
			lines := accessLineVars(fn.Body)
			if len(lines) == 0 {
				continue
			}
			literalKeys(fn.Body)
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				v, method := selector(call.Fun)
				if !lines[v] {
					return true
				}
				typ, known := accessMethods[method]
				switch {
				case !known:
					problems = append(problems, fmt.Sprintf("%s: accessLine.%s: add the JSON type it writes to accessMethods", src.pos(call.Pos()), method))
				case method == "begin" || method == "end":
				case len(call.Args) == 0:
					problems = append(problems, fmt.Sprintf("%s: accessLine.%s without a key", src.pos(call.Pos()), method))
				default:
					key, err := stringLit(call.Args[0])
					if err != nil {
						problems = append(problems, fmt.Sprintf("%s: an access key: %v", src.pos(call.Pos()), err))
						return true
					}
					add(key, typ, call.Pos())
				}
				return true
			})
		}
	}
	return out, problems
}

func receiverType(recv *ast.FieldList) string {
	if len(recv.List) != 1 {
		return ""
	}
	t := recv.List[0].Type
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// accessLineVars names the variables of body that hold an accessLine
// (a := accessLine{…}, var a accessLine).
func accessLineVars(body *ast.BlockStmt) map[string]bool {
	vars := map[string]bool{}
	isLine := func(e ast.Expr) bool {
		if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
			e = u.X
		}
		if lit, ok := e.(*ast.CompositeLit); ok {
			e = lit.Type
		}
		id, ok := e.(*ast.Ident)
		return ok && id.Name == "accessLine"
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) != len(n.Rhs) {
				return true
			}
			for i, rhs := range n.Rhs {
				if id, ok := n.Lhs[i].(*ast.Ident); ok && isLine(rhs) {
					vars[id.Name] = true
				}
			}
		case *ast.ValueSpec:
			if n.Type != nil && isLine(n.Type) {
				for _, id := range n.Names {
					vars[id.Name] = true
				}
			}
		}
		return true
	})
	return vars
}

// accessReasons finds the values proxy gives exchange.reason: string
// literals, and a variable set from a function call, whose string
// results (literals or constants) it follows into the function.
func accessReasons(src *source) (map[string]string, []string) {
	out := map[string]string{} // value → where
	var problems []string
	for _, file := range src.dirs["proxy"] {
		for _, decl := range file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
					return true
				}
				if sel, ok := as.Lhs[0].(*ast.SelectorExpr); !ok || sel.Sel.Name != "reason" {
					return true
				}
				where := src.pos(as.Pos())
				if v, err := stringLit(as.Rhs[0]); err == nil {
					out[v] = where
					return true
				}
				values, err := followVar(src, fn.Body, as.Rhs[0])
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: the access log's reason: %v", where, err))
					return true
				}
				for _, v := range values {
					out[v] = where
				}
				return true
			})
		}
	}
	return out, problems
}

// followVar returns the non-empty strings a variable of body can hold when
// it is set from a call (why := g.Enter(wait)): what the functions of that
// name in the module return.
func followVar(src *source, body *ast.BlockStmt, e ast.Expr) ([]string, error) {
	id, ok := e.(*ast.Ident)
	if !ok {
		return nil, fmt.Errorf("neither a string literal nor a variable; teach docs/accesslog_test.go to read it")
	}
	var callee string
	ast.Inspect(body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		if lhs, ok := as.Lhs[0].(*ast.Ident); ok && lhs.Name == id.Name {
			if call, ok := as.Rhs[0].(*ast.CallExpr); ok {
				switch f := call.Fun.(type) {
				case *ast.SelectorExpr:
					callee = f.Sel.Name
				case *ast.Ident:
					callee = f.Name
				}
			}
		}
		return true
	})
	if callee == "" {
		return nil, fmt.Errorf("%s is not set from a function call; teach docs/accesslog_test.go to read it", id.Name)
	}
	var values []string
	found := false
	for _, dir := range sortedKeys(src.dirs) {
		consts := stringConsts(src.dirs[dir])
		for _, file := range src.dirs[dir] {
			for _, decl := range file.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Name.Name != callee || fn.Body == nil {
					continue
				}
				found = true
				var err error
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if _, ok := n.(*ast.FuncLit); ok {
						return false
					}
					ret, ok := n.(*ast.ReturnStmt)
					if !ok || len(ret.Results) == 0 {
						return true
					}
					v, lerr := stringLit(ret.Results[0])
					if lerr != nil {
						c, isIdent := ret.Results[0].(*ast.Ident)
						isConst := false
						if isIdent {
							v, isConst = consts[c.Name]
						}
						if !isConst {
							err = fmt.Errorf("%s returns something other than a string literal or constant", src.pos(ret.Pos()))
							return true
						}
					}
					if v != "" {
						values = append(values, v)
					}
					return true
				})
				if err != nil {
					return nil, err
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is set by %s, which this test cannot find", id.Name, callee)
	}
	return values, nil
}

// stringConsts are a package's string constants written as literals.
func stringConsts(files []*ast.File) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if v, err := stringLit(vs.Values[i]); err == nil {
							out[name.Name] = v
						}
					}
				}
			}
		}
	}
	return out
}

// compareSets says where a documented set and the code's differ, and where
// a documented type differs from the code's (values "" are not compared).
func compareSets(what string, documented, found map[string]string) []string {
	var problems []string
	for _, k := range sortedKeys(found) {
		d, ok := documented[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("the code writes %s %q, which docs/accesslog.md does not list", what, k))
		case found[k] != "" && d != found[k]:
			problems = append(problems, fmt.Sprintf("the code writes %s %q as %s; docs/accesslog.md says %s", what, k, found[k], d))
		}
	}
	for _, k := range sortedKeys(documented) {
		if _, ok := found[k]; !ok {
			problems = append(problems, fmt.Sprintf("docs/accesslog.md lists %s %q, which the code never writes", what, k))
		}
	}
	return problems
}

// accessDoc reads accesslog.md: its fields (key → type) in order, its
// reasons, and its example line.
func accessDoc(t *testing.T) (fields map[string]string, order []string, reasons map[string]string, example string) {
	t.Helper()
	data, err := os.ReadFile("accesslog.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	fields = map[string]string{}
	for _, cells := range docTable(t, doc, "## Fields") {
		key := strings.Trim(cells[0], "`")
		if _, dup := fields[key]; dup {
			t.Errorf("accesslog.md lists field %s twice", key)
		}
		fields[key] = cells[1]
		order = append(order, key)
	}
	reasons = map[string]string{}
	for _, cells := range docTable(t, doc, "## Reasons") {
		reasons[strings.Trim(cells[0], "`")] = ""
	}
	_, rest, _ := strings.Cut(doc, "```json\n")
	example, _, _ = strings.Cut(rest, "\n```")
	return fields, order, reasons, example
}

// TestAccessLogSchema: accesslog.md lists exactly the keys the access line
// can have, with their types and in their order, and exactly the reasons
// the gateway gives; its example is a line the gateway could write.
func TestAccessLogSchema(t *testing.T) {
	src := moduleSource(t)
	fields, order, reasons, example := accessDoc(t)
	keys, problems := accessKeys(src)
	values, more := accessReasons(src)
	for _, p := range append(problems, more...) {
		t.Error(p)
	}
	if len(keys) < 10 || len(values) < 5 {
		t.Fatalf("found %d keys and %d reasons in proxy: is the source read right?", len(keys), len(values))
	}
	types := map[string]string{}
	for k, f := range keys {
		types[k] = f.typ
	}
	for _, p := range compareSets("the key", fields, types) {
		t.Error(p)
	}
	found := map[string]string{}
	for v := range values {
		found[v] = ""
	}
	for _, p := range compareSets("the reason", reasons, found) {
		t.Error(p)
	}

	written := sortedKeys(keys)
	slices.SortFunc(written, func(a, b string) int {
		if keys[a].begin != keys[b].begin {
			if keys[a].begin {
				return -1
			}
			return 1
		}
		return int(keys[a].pos) - int(keys[b].pos)
	})
	var documented []string
	for _, k := range order {
		if _, ok := keys[k]; ok {
			documented = append(documented, k)
		}
	}
	if !slices.Equal(written, documented) {
		t.Errorf("the line's keys come in the order\n%v\ndocs/accesslog.md lists them as\n%v", written, documented)
	}

	var line map[string]any
	if err := json.Unmarshal([]byte(example), &line); err != nil {
		t.Fatalf("the example line: %v", err)
	}
	for k, v := range line {
		want := map[string]string{"string": "string", "float64": "integer"}[fmt.Sprintf("%T", v)]
		if typ, ok := fields[k]; !ok || typ != want {
			t.Errorf("the example's %s (%T) is not a documented %s field", k, v, want)
		}
	}
	for _, k := range []string{"time", "level", "msg", "request_id", "status"} {
		if _, ok := line[k]; !ok {
			t.Errorf("the example lacks %s, which every line has", k)
		}
	}
}

// TestAccessLogSchemaFails: the comparison notices a key or reason the
// code has and the docs lack, the reverse, and a wrong type.
func TestAccessLogSchemaFails(t *testing.T) {
	docs := map[string]string{"status": "integer", "path": "string"}
	for _, c := range []struct {
		what  string
		found map[string]string
		want  string
	}{
		{"an undocumented key", map[string]string{"status": "integer", "path": "string", "tenant": "string"}, `writes the key "tenant"`},
		{"a documented key gone", map[string]string{"status": "integer"}, `lists the key "path"`},
		{"a wrong type", map[string]string{"status": "string", "path": "string"}, `"status" as string`},
	} {
		p := compareSets("the key", docs, c.found)
		if len(p) != 1 || !strings.Contains(p[0], c.want) {
			t.Errorf("%s: problems %q, want one mentioning %q", c.what, p, c.want)
		}
	}
	if p := compareSets("the key", docs, map[string]string{"status": "integer", "path": ""}); len(p) != 0 {
		t.Errorf("agreeing sets: %q", p)
	}
}

// TestAccessReadersReadEveryForm: the source readers find keys and reasons
// in each form the proxy writes them, follow a reason set from a call to
// the constants it returns, and refuse what they cannot read.
func TestAccessReadersReadEveryForm(t *testing.T) {
	src := &source{fset: token.NewFileSet(), dirs: map[string][]*ast.File{}}
	for dir, code := range map[string]string{
		"proxy": `package proxy

type accessLine struct{ b []byte }

func (a *accessLine) begin() { a.b = append(a.b, ` + "`" + `{"time":"x","level":"INFO"` + "`" + `...) }

func log(ex *exchange, g *upstream.Gate, key string) {
	a := accessLine{}
	a.begin()
	a.str("path", "/")
	a.int("status", 200)
	a.bool("cached", true)
	a.str(key, "x")
	a.end()
	ex.reason = "rate limited"
	if why := g.Enter(0); why != "" {
		ex.reason = why
	}
}
`,
		"upstream": `package upstream

const Full = "overflow"

func (g *Gate) Enter(wait int) string {
	if wait < 0 {
		return Full
	}
	if wait > 9 {
		return "pending_timeout"
	}
	return ""
}
`,
	} {
		f, err := parser.ParseFile(src.fset, dir+".go", code, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		src.dirs[dir] = []*ast.File{f}
	}
	keys, problems := accessKeys(src)
	var got []string
	for _, k := range sortedKeys(keys) {
		got = append(got, k+":"+keys[k].typ)
	}
	if s, want := strings.Join(got, " "), "level:string path:string status:integer time:string"; s != want {
		t.Errorf("keys %s, want %s", s, want)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "accessLine.bool") || !strings.Contains(problems[1], "not a string literal") {
		t.Errorf("problems %q, want the unknown writer and the key that is not a literal", problems)
	}
	reasons, problems := accessReasons(src)
	if s := strings.Join(sortedKeys(reasons), ","); s != "overflow,pending_timeout,rate limited" || len(problems) != 0 {
		t.Errorf("reasons %s, problems %q", s, problems)
	}
}
