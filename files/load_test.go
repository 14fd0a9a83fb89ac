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
		// The value that keeps the Service from decoding, not the
		// document, is what the problem points at.
		{"bad service", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports: 7\n", `f.yaml:6:10: Service "x".spec.ports: expected a list, got a number (so the Service is not read)`},
		// A Namespace annotation the builder would read as nothing.
		{"bad allowed hosts", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    gatehouse.dev/allowed-hosts: 'shop.example.com, https://x'\n",
			`f.yaml:6:34: Namespace shop: gatehouse.dev/allowed-hosts: "https://x" is not a host or *.domain; a value that does not parse allows no host`},
		{"bad delegation", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    gatehouse.dev/delegate-hosts-to: Pay!\n",
			`f.yaml:6:38: Namespace shop: gatehouse.dev/delegate-hosts-to: "Pay!" is not a namespace name`},
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
	polls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	d := Dir{Path: dir, Interval: time.Millisecond}
	d.afterPoll = func() {
		mu.Lock()
		polls++
		mu.Unlock()
	}
	go func() {
		defer close(done)
		d.Watch(ctx, func(m *Manifests, _ []Problem) {
			var names []string
			for _, s := range m.Services {
				names = append(names, s.Object.Name)
			}
			mu.Lock()
			loads = append(loads, names)
			mu.Unlock()
		}, func(err error) { t.Error(err) })
	}()
	// waitFor polls until cond holds on (loads, polls).
	waitFor := func(what string, cond func([][]string, int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := cond(loads, polls)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; loads %v", what, loads)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the first load", func(l [][]string, _ int) bool { return len(l) == 1 })
	if got := strings.Join(loads[0], ","); got != "a" {
		t.Fatalf("first load %v", got)
	}
	write("b.yml", svc("b"))
	waitFor("a load with both files", func(l [][]string, _ int) bool {
		return len(l) > 1 && strings.Join(l[len(l)-1], ",") == "a,b"
	})
	mu.Lock()
	seen, base := len(loads), polls
	mu.Unlock()
	waitFor("ten more polls", func(_ [][]string, p int) bool { return p >= base+10 })
	mu.Lock()
	if len(loads) != seen {
		t.Errorf("unchanged files were reloaded: %v", loads[seen:])
	}
	mu.Unlock()
	cancel()
	<-done
}

func TestWatchWaitsForWritesToSettle(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var loads []int
	polls := 0
	// afterPoll runs on the watching goroutine, so the writes below land
	// between exactly the polls they are meant for.
	d := Dir{Path: dir, Interval: time.Microsecond}
	ctx, cancel := context.WithCancel(context.Background())
	d.afterPoll = func() {
		polls++
		switch polls {
		case 1:
			// A writer truncated the file and has not written it yet.
			os.WriteFile(file, nil, 0o644)
		case 2:
			// It finished before the next poll: the empty state never held still.
			os.WriteFile(file, []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n"), 0o644)
		case 4:
			cancel()
		}
	}
	d.Watch(ctx, func(m *Manifests, _ []Problem) { loads = append(loads, len(m.Services)) }, func(err error) { t.Error(err) })
	// Load 1 at start (1 Service); the empty file is never applied; the
	// rewritten file is applied once seen twice.
	if len(loads) != 2 || loads[0] != 1 || loads[1] != 1 {
		t.Errorf("loads (Services per load) = %v, want [1 1]: a half-written file must not be applied", loads)
	}
}

// TestNamespaceAnnotationsThatParse: well-formed grants, delegations and
// allowed hosts are read without a problem.
func TestNamespaceAnnotationsThatParse(t *testing.T) {
	src := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n" +
		"    gatehouse.dev/allowed-hosts: 'shop.example.com, *.shop.example.com'\n" +
		"    gatehouse.dev/delegate-hosts-to: pay, search\n" +
		"    gatehouse.dev/allow-routes-from: '*'\n"
	m, problems := Parse("f.yaml", []byte(src))
	if len(problems) != 0 || len(m.Namespaces) != 1 || len(m.Namespaces[0].Annotations) != 3 {
		t.Errorf("problems %v, namespaces %+v", problems, m.Namespaces)
	}
}
