package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// manifest renders a Service whose annotation is a literal block. The
// annotation's line k is line 6+k of the manifest and its column c is column
// 6+c, which is how the expectations below are written.
func manifest(name, annotation string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  annotations:\n    gatehouse.dev/config: |\n", name)
	for _, l := range strings.Split(strings.TrimRight(annotation, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	b.WriteString("spec:\n  ports:\n  - port: 80\n")
	return b.String()
}

const validMapping = "kind: Mapping\nname: ok\nprefix: /ok/\nservice: ok\n"

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name     string
		manifest string
		want     []string // "LINE:COL: substring", in output order
	}{
		{"valid", manifest("ok", validMapping), nil},
		{"tab indentation",
			manifest("tab", "kind: Mapping\nname: a\nprefix: /a/\nservice: a\nheaders:\n\tx-a: b\n"),
			[]string{"12:7: tab character"}},
		{"unknown field",
			manifest("unknown", "kind: Mapping\nname: a\nprefix: /a/\nservice: a\ntimeout_msec: 5\n"),
			[]string{`11:7: Mapping "a".timeout_msec: unknown field "timeout_msec" (did you mean "timeout_ms"?)`}},
		{"wrong type",
			manifest("wrongtype", "kind: Mapping\nname: a\nprefix: /a/\nservice: a\nprecedence: high\n"),
			[]string{`11:19: Mapping "a".precedence: expected an integer`}},
		{"missing prefix",
			manifest("noprefix", "kind: Mapping\nname: a\nservice: a\n"),
			[]string{`7:7: Mapping "a": missing required field "prefix"`}},
		{"bad regex",
			manifest("regex", "kind: Mapping\nname: a\nprefix: ^/(?=a)\nprefix_regex: true\nservice: a\n"),
			[]string{`9:15: Mapping "a".prefix:`}},
		{"two errors, and a valid Service in the same file",
			manifest("two", "kind: Mapping\nname: a\nprefx: /a/\nprefix: /a/\nservice: a\nprecedence: high\n") + "---\n" + manifest("fine", validMapping),
			[]string{`9:7: Mapping "a".prefx: unknown field "prefx" (did you mean "prefix"?)`, `12:19: Mapping "a".precedence: expected an integer`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(file, []byte(c.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"validate", file}, &stdout, &stderr)
			lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
			if stdout.Len() == 0 {
				lines = nil
			}
			wantCode := 0
			if len(c.want) > 0 {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d; stderr %q", code, wantCode, stderr.String())
			}
			if len(lines) != len(c.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(c.want), stdout.String())
			}
			for i, w := range c.want {
				pos, msg, _ := strings.Cut(w, " ")
				prefix := file + ":" + pos + " "
				if !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], msg) {
					t.Errorf("line %d = %q\nwant prefix %q containing %q", i+1, lines[i], prefix, msg)
				}
			}
		})
	}
}

func TestValidateUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"validate"}, &stdout, &stderr); code != 2 {
		t.Errorf("no files: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"validate", filepath.Join(t.TempDir(), "missing.yaml")}, &stdout, &stderr); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
}

func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("../../examples/quickstart/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no quickstart files: %v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"validate"}, files...), &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Errorf("quickstart: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestValidateObject: validate checks the Kubernetes object around the
// annotation too. An annotation under the wrong key is kept by Kubernetes
// and read by nobody, so it must be an error with its position, not routes
// that silently never exist.
func TestValidateObject(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name     string
		manifest string
		want     string // "LINE:COL: path: message"
		path     string // the path in -o json
	}{
		{"annotation instead of annotations",
			strings.Replace(manifest("a", validMapping), "  annotations:", "  annotation:", 1),
			`5:3: Service "a".metadata.annotation: unknown field "annotation" (did you mean "annotations"?)`,
			`Service "a".metadata.annotation`},
		{"misspelled annotation key",
			strings.Replace(manifest("b", validMapping), "gatehouse.dev/config:", "gatehouse.dev/configs:", 1),
			`6:5: Service "b".metadata.annotations[gatehouse.dev/configs]: annotation "gatehouse.dev/configs" (did you mean "gatehouse.dev/config"?) is not read by the gateway`,
			`Service "b".metadata.annotations[gatehouse.dev/configs]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(file, []byte(c.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"validate", file}, &stdout, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1; stderr %q", code, stderr.String())
			}
			if got, want := stdout.String(), file+":"+c.want+"\n"; got != want {
				t.Errorf("output\n%s\nwant\n%s", got, want)
			}

			stdout.Reset()
			if code := run(context.Background(), []string{"validate", "-o", "json", file}, &stdout, &stderr); code != 1 {
				t.Errorf("-o json: exit code %d, want 1", code)
			}
			var findings []struct {
				Line, Column int
				Path         string
				Warning      bool
			}
			if err := json.Unmarshal(stdout.Bytes(), &findings); err != nil {
				t.Fatalf("-o json: %v\n%s", err, stdout.String())
			}
			if len(findings) != 1 {
				t.Fatalf("-o json: %+v, want one finding", findings)
			}
			f := findings[0]
			if pos := fmt.Sprintf("%d:%d: ", f.Line, f.Column); !strings.HasPrefix(c.want, pos) || f.Path != c.path || f.Warning {
				t.Errorf("-o json: %+v, want an error at %s with path %s", f, c.want, c.path)
			}
		})
	}
}

// TestObjectGoldenExpectations checks the positions the object golden's
// header promises against validate, so its .golden cannot be blessed with
// findings missing or added.
func TestObjectGoldenExpectations(t *testing.T) {
	const file = "testdata/golden/objects/invalid-object.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if f := strings.Fields(strings.TrimPrefix(line, "#")); len(f) > 0 && strings.Count(f[0], ":") == 1 && strings.Trim(f[0], "0123456789:") == "" {
			want = append(want, f[0])
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"validate", file}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		rest := strings.TrimPrefix(line, file+":")
		pos := strings.SplitN(rest, ":", 3)
		if len(pos) < 3 || strings.HasPrefix(strings.TrimSpace(pos[2]), "warning:") {
			t.Errorf("unexpected line %q", line)
			continue
		}
		got = append(got, pos[0]+":"+pos[1])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || len(want) == 0 {
		t.Errorf("validate reports errors at %v; the header promises %v\n%s", got, want, stdout.String())
	}
}
