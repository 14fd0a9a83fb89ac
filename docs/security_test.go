package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// securityTestRef finds the tests security.md cites: `pkg/TestName`,
// `pkg/FuzzName`, `pkg/BenchmarkName`, a subtest's name after it in
// brackets or quotes being prose.
var securityTestRef = regexp.MustCompile("`([a-z0-9_/]+)/((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)")

// TestSecurityTestsExist: every test the threat list names exists, so a
// rename or a deletion cannot leave a threat citing a test that no longer
// runs.
func TestSecurityTestsExist(t *testing.T) {
	doc, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := securityTestRef.FindAllStringSubmatch(string(doc), -1)
	if len(refs) < 50 {
		t.Fatalf("found %d test references in security.md; the pattern no longer matches how it cites tests", len(refs))
	}
	funcs := map[string]map[string]bool{} // package dir → test functions
	for _, r := range refs {
		dir, name := r[1], r[2]
		if funcs[dir] == nil {
			funcs[dir] = testFuncs(t, filepath.Join("..", dir))
		}
		if !funcs[dir][name] {
			t.Errorf("security.md cites %s/%s, which does not exist", dir, name)
		}
	}
}

// testFuncs lists the top-level functions of dir's _test.go files.
func testFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Errorf("no test files in %s", dir)
		return map[string]bool{}
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				out[fn.Name.Name] = true
			}
		}
	}
	return out
}
