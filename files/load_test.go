package files

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const twoServices = `# leading comment
apiVersion: v1
kind: Service
metadata:
  name: users
  namespace: team-a
  annotations:
    other: "x"
    gatehouse.dev/config: |

      kind: Mapping
      name: users
spec:
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ignored
---
apiVersion: v1
kind: Service
metadata:
  name: json-style
  annotations:
    gatehouse.dev/config: "kind: Mapping\nname: x\n"
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: users-abc
  namespace: team-a
  labels:
    kubernetes.io/service-name: users
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
`

func TestParse(t *testing.T) {
	m, problems := Parse("f.yaml", []byte(twoServices))
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(m.Services) != 2 || len(m.Slices) != 1 {
		t.Fatalf("got %d services, %d slices; want 2 and 1", len(m.Services), len(m.Slices))
	}
	if got := m.Services[1].Object.Namespace; got != "default" {
		t.Errorf("namespace defaults to %q, want default", got)
	}
	if m.Lookup("team-a/users") != m.Services[0] || m.Lookup("team-a/none") != nil {
		t.Errorf("Lookup by namespace/name")
	}

	check := func(svc *Service, line, col int, want Pos, wantExact bool) {
		t.Helper()
		got, exact := svc.Locate("gatehouse.dev/config", line, col)
		if got != want || exact != wantExact {
			t.Errorf("Locate(%d, %d) = %v exact=%v, want %v exact=%v", line, col, got, exact, want, wantExact)
		}
	}
	// The literal block starts on line 10 ("|" on line 9); its indentation is 6.
	check(m.Services[0], 1, 1, Pos{10, 7}, true)
	check(m.Services[0], 3, 7, Pos{12, 13}, true)
	// A quoted annotation has no line structure in the file.
	check(m.Services[1], 2, 1, Pos{27, 27}, false)
}

func TestParseProblems(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      string
	}{
		{"syntax", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n", "f.yaml:"},
		{"not a mapping", "- a\n- b\n", "f.yaml:1:1: a manifest document must be a mapping"},
		{"bad service", "apiVersion: v1\nkind: Service\nmetadata:\n  name: 3\nspec:\n  ports: 7\n", "f.yaml:1:1: decoding Service"},
	} {
		_, problems := Parse("f.yaml", []byte(c.src))
		if len(problems) != 1 || !strings.HasPrefix(problems[0].Error(), c.want) {
			t.Errorf("%s: problems %v, want one starting with %q", c.name, problems, c.want)
		}
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, problems := Parse("f.yaml", []byte("a: b\nc: d\n  e: f\n"))
	if len(problems) != 1 || problems[0].Pos.Line != 3 || !strings.Contains(problems[0].Message, "YAML syntax error") {
		t.Fatalf("problems %v, want a syntax error on line 3", problems)
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n"
	}
	write("a.yaml", svc("a"))
	write("notes.txt", "ignored")

	var mu sync.Mutex
	var loads [][]string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Dir{Path: dir, Interval: time.Millisecond}.Watch(ctx, func(m *Manifests, _ []Problem) {
			var names []string
			for _, s := range m.Services {
				names = append(names, s.Object.Name)
			}
			mu.Lock()
			loads = append(loads, names)
			mu.Unlock()
		}, func(err error) { t.Error(err) })
	}()
	waitLoads := func(n int) [][]string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := append([][]string(nil), loads...)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %d loads, want %d", len(got), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if got := waitLoads(1); strings.Join(got[0], ",") != "a" {
		t.Fatalf("first load %v", got[0])
	}
	write("b.yml", svc("b"))
	if got := waitLoads(2); strings.Join(got[1], ",") != "a,b" {
		t.Fatalf("second load %v", got[1])
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(loads) != 2 {
		t.Errorf("unchanged files were reloaded: %d loads", len(loads))
	}
}
