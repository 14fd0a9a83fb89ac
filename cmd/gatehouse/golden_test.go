package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden runs every manifest under testdata/golden through validate,
// routes and explain, and compares the transcript with the .golden file
// beside it. A manifest's leading comments steer the run:
//
//	# args: --compat=emissary --ambassador-id=blue   flags for all three commands
//	# explain: GET http://shop.example.com/x -H 'X-A: b'   one explain -o json each
//
// Refresh with: go test ./cmd/gatehouse -run TestGolden -update
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/golden/*/*.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, file := range cases {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "testdata/golden/"), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			var explains [][]string
			for _, line := range strings.Split(string(data), "\n") {
				if !strings.HasPrefix(line, "#") {
					break
				}
				if a, ok := strings.CutPrefix(line, "# args:"); ok {
					args = append(args, strings.Fields(a)...)
				}
				if e, ok := strings.CutPrefix(line, "# explain:"); ok {
					explains = append(explains, splitShell(strings.TrimSpace(e)))
				}
			}
			var out bytes.Buffer
			step := func(cmd []string) {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), cmd, &stdout, &stderr)
				fmt.Fprintf(&out, "$ gatehouse %s\n%s", strings.Join(cmd, " "), stdout.String())
				if stderr.Len() > 0 {
					fmt.Fprintf(&out, "(stderr)\n%s", stderr.String())
				}
				fmt.Fprintf(&out, "(exit %d)\n\n", code)
			}
			step(append(append([]string{"validate"}, args...), file))
			step(append(append([]string{"routes"}, args...), "-f", file))
			for _, e := range explains {
				step(append(append(append([]string{"explain", "-o", "json"}, args...), "-f", file), e...))
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// splitShell splits a command line on spaces, keeping 'single-quoted' parts
// together, which is all the golden headers need.
func splitShell(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote = !inQuote
			have = true
		case r == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
