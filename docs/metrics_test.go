package docs

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/server"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/tracing"
)

// The metrics catalogue (metrics.md) is checked against two readings of
// the gateway: its Go source, where every family is declared, and the
// /metrics page of a running gateway driven a little, which is what a
// scraper reads. Neither is enough alone: a vector has no series, and so
// no line on the page, until something happens to it (an ejection, a
// retry), and the source does not show what client_golang's collectors
// export (go_*, process_*).

// family is one metric family: from the source, the page, or the docs.
type family struct {
	name string
	// typ is counter, gauge, histogram, summary or untyped; "" when the
	// source does not say (prometheus.NewDesc).
	typ string
	// labels are the variable label names, sorted; nil when unknown (an
	// Opts built in one place and used in another).
	labels []string
	where  string // for messages: file:line, "the /metrics page", a doc row
}

// docTable returns the rows of the first table after heading, each as its
// trimmed cells, without the header and separator rows.
func docTable(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no section %q", heading)
	}
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !inTable || strings.HasPrefix(cells[0], "---") {
			inTable = true // the first row is the header
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("no table under %q", heading)
	}
	return rows
}

// catalogue reads the Series table of metrics.md: metric name (or a
// prefix pattern such as go_*) → its family.
func catalogue(t *testing.T) map[string]family {
	t.Helper()
	data, err := os.ReadFile("metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, cells := range docTable(t, string(data), "## Series") {
		if len(cells) != 5 {
			t.Errorf("metrics.md: row %q has %d cells, want 5 (metric, type, labels, meaning, bounds)", cells[0], len(cells))
			continue
		}
		name := strings.Trim(cells[0], "`")
		f := family{name: name, typ: cells[1], where: "metrics.md"}
		if !strings.HasSuffix(name, "_*") {
			labels, err := labelCell(cells[2])
			if err != nil {
				t.Errorf("metrics.md: %s: %v", name, err)
			}
			f.labels = labels
		}
		if _, dup := out[name]; dup {
			t.Errorf("metrics.md lists %s twice", name)
		}
		out[name] = f
	}
	return out
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// labelCell reads a labels cell: "—" for none, else `a`, `b`.
func labelCell(cell string) ([]string, error) {
	if cell == "—" || cell == "" {
		return []string{}, nil
	}
	var labels []string
	for _, l := range strings.Split(cell, ",") {
		l = strings.Trim(strings.TrimSpace(l), "`")
		if !labelName.MatchString(l) {
			return nil, fmt.Errorf("labels cell %q: want `a`, `b` or —", cell)
		}
		labels = append(labels, l)
	}
	slices.Sort(labels)
	return labels, nil
}

// compareCatalogue says where the docs and the gateway disagree: a family
// the source declares or the page shows that no row lists, a row nothing
// exports, and a listed family whose type or labels differ. A row named
// prefix_* stands for every family of that prefix (client_golang's own)
// and is checked for existence only.
func compareCatalogue(docs, declared, scraped map[string]family) []string {
	var problems []string
	covered := func(name string) (family, bool) {
		if f, ok := docs[name]; ok {
			return f, true
		}
		for pattern, f := range docs {
			if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(name, prefix) {
				return f, true
			}
		}
		return family{}, false
	}
	exported := map[string][]family{}
	for _, m := range []map[string]family{declared, scraped} {
		for name, f := range m {
			exported[name] = append(exported[name], f)
		}
	}
	for _, name := range sortedKeys(exported) {
		row, ok := covered(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s) is exported but docs/metrics.md does not list it", name, exported[name][0].where))
			continue
		}
		if row.name != name {
			continue // a prefix_* row
		}
		for _, f := range exported[name] {
			if f.typ != "" && f.typ != row.typ {
				problems = append(problems, fmt.Sprintf("%s is a %s (%s); docs/metrics.md says %s", name, f.typ, f.where, row.typ))
			}
			if f.labels != nil && row.labels != nil && !slices.Equal(f.labels, row.labels) {
				problems = append(problems, fmt.Sprintf("%s has labels %v (%s); docs/metrics.md says %v", name, f.labels, f.where, row.labels))
			}
		}
	}
	for _, name := range sortedKeys(docs) {
		prefix, pattern := strings.CutSuffix(name, "*")
		found := false
		for e := range exported {
			if e == name || pattern && strings.HasPrefix(e, prefix) {
				found = true
				break
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("docs/metrics.md lists %s, which the gateway does not export", name))
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestMetricsCatalogue: metrics.md lists exactly the families the gateway
// exports, with their types and labels.
func TestMetricsCatalogue(t *testing.T) {
	docs := catalogue(t)
	declared, problems := declaredFamilies(moduleSource(t))
	for _, p := range problems {
		t.Error(p)
	}
	scraped := scrapeGateway(t)
	for _, p := range compareCatalogue(docs, declared, scraped) {
		t.Error(p)
	}
	// The scrape must keep doing its share: every declared family shows
	// on the page, except those whose series need events this test does
	// not cause (quiet). A family that stops showing means the drive
	// below no longer reaches it, or the gateway no longer exports it.
	quiet := []string{
		"gatehouse_breaker_state",            // a breaker changing state
		"gatehouse_upstream_retries_total",   // a retry
		"gatehouse_upstream_ejections_total", // an ejection
		"gatehouse_upstream_overflows_total", // a circuit_breakers refusal
		"gatehouse_mirrored_requests_total",  // a shadow Mapping's copy
	}
	for _, name := range sortedKeys(declared) {
		_, seen := scraped[name]
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			for s := range scraped {
				seen = seen || strings.HasPrefix(s, prefix)
			}
		}
		switch {
		case slices.Contains(quiet, name) && seen:
			t.Errorf("%s now shows on the page: take it off the quiet list", name)
		case !slices.Contains(quiet, name) && !seen:
			t.Errorf("%s is declared (%s) but did not show on the /metrics page: drive it in scrapeGateway, or list it as quiet", name, declared[name].where)
		}
	}
	for _, name := range quiet {
		if _, ok := declared[name]; !ok {
			t.Errorf("the quiet list names %s, which the source no longer declares", name)
		}
	}
}

// TestCompareCatalogueFails: the comparison notices each kind of drift, so
// TestMetricsCatalogue cannot pass by comparing nothing.
func TestCompareCatalogueFails(t *testing.T) {
	docs := map[string]family{
		"gatehouse_a_total": {name: "gatehouse_a_total", typ: "counter", labels: []string{"route"}},
		"go_*":              {name: "go_*"},
	}
	exported := map[string]family{
		"gatehouse_a_total": {name: "gatehouse_a_total", typ: "counter", labels: []string{"route"}, where: "a.go:1"},
		"go_goroutines":     {name: "go_goroutines", typ: "gauge", labels: []string{}, where: "page"},
	}
	if p := compareCatalogue(docs, exported, nil); len(p) != 0 {
		t.Fatalf("agreeing docs and source: %q", p)
	}
	check := func(what string, docs, declared, scraped map[string]family, want string) {
		t.Helper()
		p := compareCatalogue(docs, declared, scraped)
		if len(p) != 1 || !strings.Contains(p[0], want) {
			t.Errorf("%s: problems %q, want one mentioning %q", what, p, want)
		}
	}
	with := func(m map[string]family, f family) map[string]family {
		out := map[string]family{f.name: f}
		for k, v := range m {
			if k != f.name {
				out[k] = v
			}
		}
		return out
	}
	check("an undocumented family in the source", docs,
		with(exported, family{name: "gatehouse_new_total", typ: "counter", where: "new.go:1"}), nil, "gatehouse_new_total (new.go:1) is exported")
	check("an undocumented family on the page", docs, exported,
		map[string]family{"gatehouse_new_total": {name: "gatehouse_new_total", where: "page"}}, "gatehouse_new_total (page) is exported")
	check("a documented family that is gone", with(docs, family{name: "gatehouse_gone_total", typ: "counter", labels: []string{}}),
		exported, nil, "lists gatehouse_gone_total")
	check("a documented prefix that is gone", with(docs, family{name: "process_*"}), exported, nil, "lists process_*")
	check("a wrong type", with(docs, family{name: "gatehouse_a_total", typ: "gauge", labels: []string{"route"}}),
		exported, nil, "docs/metrics.md says gauge")
	check("a missing label", docs,
		with(exported, family{name: "gatehouse_a_total", typ: "counter", labels: []string{"route", "status"}, where: "a.go:1"}), nil, "has labels [route status]")
}

// moduleSource parses the gateway's Go source once: every non-test file
// of the module but the tools and tests around it (e2e, hack, docs) and
// directories go build ignores.
var moduleSource = func() func(t *testing.T) *source {
	once := sync.OnceValues(func() (*source, error) { return parseTree("..") })
	return func(t *testing.T) *source {
		t.Helper()
		src, err := once()
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
}()

// source is parsed Go files, by directory relative to the module root.
type source struct {
	fset *token.FileSet
	dirs map[string][]*ast.File
}

func parseTree(root string) (*source, error) {
	src := &source{fset: token.NewFileSet(), dirs: map[string][]*ast.File{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "e2e" || name == "hack" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(src.fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		src.dirs[filepath.ToSlash(rel)] = append(src.dirs[filepath.ToSlash(rel)], f)
		return nil
	})
	return src, err
}

func (s *source) pos(p token.Pos) string {
	pos := s.fset.Position(p)
	return fmt.Sprintf("%s:%d", strings.TrimPrefix(filepath.ToSlash(pos.Filename), "../"), pos.Line)
}

const (
	promPath       = "github.com/prometheus/client_golang/prometheus"
	collectorsPath = "github.com/prometheus/client_golang/prometheus/collectors"
)

// optsTypes are client_golang's options structs and the type of metric
// each declares ("" for Opts, shared by all).
var optsTypes = map[string]string{
	"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram",
	"SummaryOpts": "summary", "UntypedOpts": "untyped", "Opts": "",
}

// declaredFamilies finds every metric family the source declares: an Opts
// literal of client_golang (its Namespace, Subsystem and Name), with the
// labels of the New…Vec call it is passed to; a prometheus.NewDesc; and
// client_golang's Go and process collectors, as go_* and process_*.
// Problems are declarations it cannot read, such as a name that is not a
// string literal: a family it missed would go unchecked.
func declaredFamilies(src *source) (map[string]family, []string) {
	out := map[string]family{}
	var problems []string
	add := func(f family) {
		if old, ok := out[f.name]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is declared again (first at %s)", f.where, f.name, old.where))
			return
		}
		out[f.name] = f
	}
	for _, dir := range sortedKeys(src.dirs) {
		for _, file := range src.dirs[dir] {
			prom, coll := importName(file, promPath), importName(file, collectorsPath)
			if prom == "" && coll == "" {
				continue
			}
			inCall := map[*ast.CompositeLit]bool{}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					pkg, fn := selector(n.Fun)
					switch {
					case pkg == coll && fn == "NewGoCollector":
						add(family{name: "go_*", where: src.pos(n.Pos())})
					case pkg == coll && fn == "NewProcessCollector":
						add(family{name: "process_*", where: src.pos(n.Pos())})
					case pkg == prom && fn == "NewDesc" && len(n.Args) == 4:
						f := family{where: src.pos(n.Pos())}
						var err error
						if f.name, err = stringLit(n.Args[0]); err != nil {
							problems = append(problems, fmt.Sprintf("%s: NewDesc's name: %v", f.where, err))
							return true
						}
						if f.labels, err = stringList(n.Args[2]); err != nil {
							problems = append(problems, fmt.Sprintf("%s: %s's labels: %v", f.where, f.name, err))
						}
						add(f)
					case pkg == prom && strings.HasPrefix(fn, "New") && len(n.Args) > 0:
						lit, ok := n.Args[0].(*ast.CompositeLit)
						if !ok {
							return true
						}
						if _, isOpts := optsTypes[optsType(lit, prom)]; !isOpts {
							return true
						}
						inCall[lit] = true
						f, err := readOpts(src, lit, prom)
						if err != nil {
							problems = append(problems, err.Error())
							return true
						}
						if strings.HasSuffix(fn, "Vec") && len(n.Args) > 1 {
							if f.labels, err = stringList(n.Args[1]); err != nil {
								problems = append(problems, fmt.Sprintf("%s: %s's labels: %v", f.where, f.name, err))
							}
						} else if !strings.HasSuffix(fn, "Vec") {
							f.labels = []string{}
						}
						add(f)
					}
				case *ast.CompositeLit:
					// Opts made apart from the call that uses them: the
					// name and type are known, the labels are not.
					if _, isOpts := optsTypes[optsType(n, prom)]; isOpts && !inCall[n] {
						f, err := readOpts(src, n, prom)
						if err != nil {
							problems = append(problems, err.Error())
							return true
						}
						add(f)
					}
				}
				return true
			})
		}
	}
	return out, problems
}

// importName is the name file uses for the package at path, "" when it
// does not import it.
func importName(file *ast.File, path string) string {
	for _, imp := range file.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

// selector splits pkg.Name; "" for anything else.
func selector(e ast.Expr) (pkg, name string) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return "", ""
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return "", ""
	}
	return id.Name, sel.Sel.Name
}

// optsType is T of a prom.T{…} literal, "" for other literals.
func optsType(lit *ast.CompositeLit, prom string) string {
	if prom == "" {
		return ""
	}
	if pkg, name := selector(lit.Type); pkg == prom {
		return name
	}
	return "-"
}

func readOpts(src *source, lit *ast.CompositeLit, prom string) (family, error) {
	f := family{typ: optsTypes[optsType(lit, prom)], where: src.pos(lit.Pos())}
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			return f, fmt.Errorf("%s: an Opts literal without field names", f.where)
		}
		key, _ := kv.Key.(*ast.Ident)
		if key == nil || key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name" {
			continue
		}
		v, err := stringLit(kv.Value)
		if err != nil {
			return f, fmt.Errorf("%s: Opts.%s: %v", f.where, key.Name, err)
		}
		parts[key.Name] = v
	}
	if parts["Name"] == "" {
		return f, fmt.Errorf("%s: an Opts literal without a Name", f.where)
	}
	f.name = prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"])
	return f, nil
}

func stringLit(e ast.Expr) (string, error) {
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		return strconv.Unquote(lit.Value)
	}
	return "", fmt.Errorf("not a string literal; write one, so docs/metrics_test.go can read it")
}

// stringList reads []string{"a", "b"} (sorted) or nil (none).
func stringList(e ast.Expr) ([]string, error) {
	if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
		return []string{}, nil
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("not a []string literal; write one, so docs/metrics_test.go can read it")
	}
	out := []string{}
	for _, el := range lit.Elts {
		s, err := stringLit(el)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// TestDeclaredFamiliesReadsEveryForm: the source reader finds each way of
// declaring a family, and refuses what it cannot read rather than skip it.
func TestDeclaredFamiliesReadsEveryForm(t *testing.T) {
	const code = `package x

import (
	p "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

var opts = p.GaugeOpts{Name: "apart"}

func f(name string) {
	p.NewCounterVec(p.CounterOpts{Name: "requests_total"}, []string{"status", "route"})
	p.NewHistogram(p.HistogramOpts{Namespace: "ns", Subsystem: "sub", Name: "seconds"})
	p.NewGaugeFunc(p.GaugeOpts{Name: "open"}, nil)
	p.NewDesc("desc_total", "help", []string{"b", "a"}, nil)
	p.NewDesc(name, "help", nil, nil)
	p.NewCounter(p.CounterOpts{Name: "x_" + name})
	collectors.NewGoCollector()
}
`
	src := &source{fset: token.NewFileSet(), dirs: map[string][]*ast.File{}}
	f, err := parser.ParseFile(src.fset, "x.go", code, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	src.dirs["x"] = []*ast.File{f}
	got, problems := declaredFamilies(src)
	want := map[string]string{
		"requests_total": "counter [route status]",
		"ns_sub_seconds": "histogram []",
		"open":           "gauge []",
		"desc_total":     " [a b]",
		"apart":          "gauge []",
		"go_*":           " []",
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s not found", name)
			continue
		}
		if s := fmt.Sprintf("%s %v", g.typ, g.labels); s != w {
			t.Errorf("%s: %q, want %q", name, s, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("found %d families, want %d: %v", len(got), len(want), sortedKeys(got))
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "NewDesc's name") || !strings.Contains(problems[1], "Opts.Name") {
		t.Errorf("problems %q, want the two names that are not literals", problems)
	}
}

// scrapeGateway runs a gateway configured as serve would be with every
// flag that adds series (--listen-tls, --ratelimit-redis, --otlp-endpoint), makes it count
// what a unit test can make happen (a proxied request, an authenticated
// consumer, a 429, a rejected annotation, a failed TLS handshake), and
// reads its /metrics page.
func scrapeGateway(t *testing.T) map[string]family {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	hasher, err := auth.NewKeyHasher()
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Config{
		Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", ListenTLS: "127.0.0.1:0",
		AllowLoopback: true, Drain: time.Second,
		// Nothing listens on port 1: every check fails and falls back to
		// the local bucket, which is what this test needs of Redis.
		RateLimitRedis: &limiter.RedisOptions{Addr: "127.0.0.1:1", FailOpen: true},
		Build:          snapshot.Options{KeyHasher: hasher},
		// Exporting adds the span counters; nothing is sampled.
		Tracing: tracing.Options{Endpoint: "http://127.0.0.1:1"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	proxyURL, adminURL := "http://"+a[0], "http://"+a[1]

	const config = `kind: Mapping
name: app
prefix: /
service: app
auth: keys
rate_limits: [per-consumer]
---
kind: Auth
name: keys
api_key:
  secrets: [partners]
---
kind: RateLimit
name: per-consumer
rate: 1
unit: minute
key: consumer
`
	host, portStr, _ := net.SplitHostPort(up.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	p32 := int32(port)
	in := snapshot.Input{
		Services: []*corev1.Service{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app", Annotations: map[string]string{annotations.Key: config}},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "broken", Annotations: map[string]string{annotations.Key: "kind: Mapping\nname: x\nprefx: /x/\n"}}},
		},
		Slices: []*discoveryv1.EndpointSlice{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app-1", Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
			Ports:      []discoveryv1.EndpointPort{{Port: &p32}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{host}}},
		}},
		Secrets: []*corev1.Secret{snapshot.TrimSecret(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "partners"}, Type: snapshot.SecretTypeAPIKeys,
			Data: map[string][]byte{"alice": []byte("key-alice")}}, hasher.Sum)},
	}
	for _, r := range s.Apply(in) {
		if r.Rejected != (r.Service == "t/broken") || r.AuthSecrets {
			t.Fatalf("unexpected report: %+v", r)
		}
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for _, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		req, _ := http.NewRequest("GET", proxyURL+"/x", nil)
		req.Header.Set("X-Api-Key", "key-alice")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET /x as alice: %d, want %d", resp.StatusCode, want)
		}
	}
	// A server name no Host covers, and no default certificate.
	conn, err := net.Dial("tcp", s.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := tls.Client(conn, &tls.Config{ServerName: "nobody.test", MinVersion: tls.VersionTLS12}).Handshake(); err == nil {
		t.Fatal("a TLS handshake for a name without a certificate succeeded")
	}
	conn.Close()

	// The handshake is counted as the server gives up on it, which may
	// be after the client did: read the page until it shows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		families, err := parseExposition(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("reading /metrics: %v", err)
		}
		if _, ok := families["gatehouse_tls_handshake_errors_total"]; ok || time.Now().After(deadline) {
			return families
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseExposition reads Prometheus's text format (what /metrics serves to
// a client that asks for nothing else): family → type and label names.
// Samples follow their family's # TYPE line; le and quantile, which
// histograms and summaries add, are not labels of the family.
func parseExposition(r io.Reader) (map[string]family, error) {
	out := map[string]family{}
	var cur *family
	labels := map[string]map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			out[name] = family{name: name, typ: typ, where: "the /metrics page"}
			f := out[name]
			cur = &f
			labels[name] = map[string]bool{}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			return nil, fmt.Errorf("line %q: no value", line)
		}
		sample := line[:end]
		if cur == nil || !sampleOf(sample, cur.name, cur.typ) {
			return nil, fmt.Errorf("sample %s outside its family's # TYPE", sample)
		}
		if line[end] == '{' {
			names, err := sampleLabels(line[end+1:])
			if err != nil {
				return nil, fmt.Errorf("line %q: %v", line, err)
			}
			for _, n := range names {
				if !(n == "le" && cur.typ == "histogram" || n == "quantile" && cur.typ == "summary") {
					labels[cur.name][n] = true
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for name, f := range out {
		f.labels = sortedKeys(labels[name])
		out[name] = f
	}
	return out, nil
}

func sampleOf(sample, fam, typ string) bool {
	if sample == fam {
		return true
	}
	switch typ {
	case "histogram":
		return sample == fam+"_bucket" || sample == fam+"_sum" || sample == fam+"_count"
	case "summary":
		return sample == fam+"_sum" || sample == fam+"_count"
	}
	return false
}

// sampleLabels reads the names of a{x="1",y="a \"b\""} from after the {.
func sampleLabels(s string) ([]string, error) {
	var names []string
	for {
		if strings.HasPrefix(s, "}") {
			return names, nil
		}
		name, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			return nil, fmt.Errorf("bad labels")
		}
		names = append(names, name)
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' {
				i++
			}
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("unterminated label value")
		}
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
}

// TestParseExposition: the page reader gets families, types and labels
// right, escapes and histograms included.
func TestParseExposition(t *testing.T) {
	page := `# HELP a_total Things.
# TYPE a_total counter
a_total{route="x,\"y\"}",status="200"} 1
a_total{route="",status="404"} 2
# TYPE lat_seconds histogram
lat_seconds_bucket{upstream="u",le="0.1"} 1
lat_seconds_bucket{upstream="u",le="+Inf"} 1
lat_seconds_sum{upstream="u"} 0.05
lat_seconds_count{upstream="u"} 1
# TYPE up gauge
up 1
`
	got, err := parseExposition(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, name := range sortedKeys(got) {
		lines = append(lines, fmt.Sprintf("%s %s %v", name, got[name].typ, got[name].labels))
	}
	if s, want := strings.Join(lines, "\n"), "a_total counter [route status]\nlat_seconds histogram [upstream]\nup gauge []"; s != want {
		t.Errorf("got\n%s\nwant\n%s", s, want)
	}
	if _, err := parseExposition(strings.NewReader("# TYPE a counter\nb 1\n")); err == nil {
		t.Error("a sample outside its family was accepted")
	}
}

// The dashboard (manifests/grafana-dashboard.json) is built on the
// catalogue: every query names documented series, and filters and groups
// by their documented labels.

var (
	seriesName = regexp.MustCompile(`\bgatehouse_[a-z_]+`)
	// gatehouse_x{a="…", b=~"…"}: a selector's matchers.
	selectorMatchers = regexp.MustCompile(`(gatehouse_[a-z_]+)\s*\{([^}]*)\}`)
	matcherName      = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// by (a, b) and without (a)
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	// label_replace(v, "dst", "replacement", "src", "regex"): dst is a
	// label the query makes.
	labelReplace = regexp.MustCompile(`"([a-zA-Z_][a-zA-Z0-9_]*)",\s*"[^"]*",\s*"[a-zA-Z_][a-zA-Z0-9_]*",\s*"[^"]*"\s*\)`)
	// label_values(gatehouse_x{…}, label), a template variable's query.
	labelValues = regexp.MustCompile(`label_values\(\s*(gatehouse_[a-z_]+)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	quoted      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// checkQuery says what in a PromQL query the catalogue does not back: a
// series it does not list (histograms by their _bucket, _sum and _count
// samples), a matcher on a label the series lacks, and a grouping by a
// label none of the query's series has. le, the labels every scrape adds
// (instance, job) and labels the query makes with label_replace may be
// grouped by too.
func checkQuery(docs map[string]family, q string) []string {
	var problems []string
	base := func(name string) (family, bool) {
		if f, ok := docs[name]; ok {
			return f, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok {
				if f, ok := docs[b]; ok && (f.typ == "histogram" || f.typ == "summary" && suffix != "_bucket") {
					return f, true
				}
			}
		}
		return family{}, false
	}
	known := map[string]bool{"le": true, "instance": true, "job": true}
	for _, name := range seriesName.FindAllString(q, -1) {
		f, ok := base(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not in docs/metrics.md", name))
			continue
		}
		for _, l := range f.labels {
			known[l] = true
		}
	}
	for _, m := range labelReplace.FindAllStringSubmatch(q, -1) {
		known[m[1]] = true
	}
	// Matchers' values (regular expressions, Grafana's ${var}) are
	// nothing to check, and could hide a brace.
	q = quoted.ReplaceAllString(q, `""`)
	for _, m := range labelValues.FindAllStringSubmatch(q, -1) {
		if f, ok := base(m[1]); ok && !slices.Contains(f.labels, m[2]) {
			problems = append(problems, fmt.Sprintf("label_values of %s: it has no label %s", m[1], m[2]))
		}
	}
	for _, m := range selectorMatchers.FindAllStringSubmatch(q, -1) {
		f, ok := base(m[1])
		if !ok {
			continue
		}
		for _, l := range matcherName.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(f.labels, l[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %s", m[1], l[1]))
			}
		}
	}
	for _, m := range grouping.FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !known[l] {
				problems = append(problems, fmt.Sprintf("grouped by %s, which none of its series has", l))
			}
		}
	}
	return problems
}

// dashboardQueries returns every PromQL query of a dashboard: the panels'
// targets (nested rows included) and the template variables', each with
// where it is.
func dashboardQueries(v any, where string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		title, _ := v["title"].(string)
		if title == "" {
			title, _ = v["name"].(string)
		}
		if title != "" {
			where += " › " + title
		}
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				out[where+"."+k] = s
				continue
			}
			dashboardQueries(x, where+"."+k, out)
		}
	case []any:
		for i, x := range v {
			dashboardQueries(x, fmt.Sprintf("%s[%d]", where, i), out)
		}
	}
}

// TestDashboardUsesTheCatalogue: the Grafana dashboard parses, is set up
// as documented (a Prometheus data source variable every query uses), and
// queries only documented series and labels.
func TestDashboardUsesTheCatalogue(t *testing.T) {
	docs := catalogue(t)
	data, err := os.ReadFile("../manifests/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int   `json:"schemaVersion"`
		Panels        []any `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("manifests/grafana-dashboard.json: %v", err)
	}
	if dash.SchemaVersion != 39 {
		t.Errorf("schemaVersion %d, want 39", dash.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["namespace"] != "query" || vars["route"] != "query" {
		t.Errorf("template variables %v: want datasource (datasource), namespace and route (query)", vars)
	}

	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	queries := map[string]string{}
	dashboardQueries(raw["panels"], "panels", queries)
	dashboardQueries(raw["templating"], "templating", queries)
	exprs := 0
	for _, where := range sortedKeys(queries) {
		q := queries[where]
		if strings.HasSuffix(where, ".expr") {
			exprs++
		}
		if !strings.Contains(q, "gatehouse_") {
			if strings.HasSuffix(where, ".expr") {
				t.Errorf("%s: %q queries no gatehouse series", where, q)
			}
			continue
		}
		for _, p := range checkQuery(docs, q) {
			t.Errorf("%s: %s", where, p)
		}
	}
	if exprs < 15 {
		t.Errorf("only %d queries found in the panels: is the dashboard read right?", exprs)
	}
	ids := map[float64]bool{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			p := p.(map[string]any)
			id, _ := p["id"].(float64)
			if ids[id] {
				t.Errorf("panel id %v used twice", id)
			}
			ids[id] = true
			if p["type"] != "row" {
				ds, _ := p["datasource"].(map[string]any)
				if ds["uid"] != "${datasource}" {
					t.Errorf("panel %q: data source %v, want uid ${datasource}", p["title"], p["datasource"])
				}
			}
			if nested, ok := p["panels"].([]any); ok {
				walk(nested)
			}
		}
	}
	walk(dash.Panels)
}

// TestCheckQueryFails: the query check notices an unknown series, a
// matcher or grouping on a label the series lacks.
func TestCheckQueryFails(t *testing.T) {
	docs := map[string]family{
		"gatehouse_requests_total":           {typ: "counter", labels: []string{"route", "status"}},
		"gatehouse_upstream_latency_seconds": {typ: "histogram", labels: []string{"upstream"}},
	}
	for _, c := range []struct{ q, want string }{
		{`sum by (route) (rate(gatehouse_requests_total{status=~"5.."}[5m]))`, ""},
		{`histogram_quantile(0.99, sum by (upstream, le) (rate(gatehouse_upstream_latency_seconds_bucket[5m])))`, ""},
		{`sum by (class) (label_replace(rate(gatehouse_requests_total[5m]), "class", "${1}xx", "status", "(.).."))`, ""},
		{`rate(gatehouse_request_total[5m])`, "gatehouse_request_total is not in"},
		{`rate(gatehouse_requests_total_bucket[5m])`, "gatehouse_requests_total_bucket is not in"},
		{`rate(gatehouse_requests_total{upstream="x"}[5m])`, "has no label upstream"},
		{`sum by (policy) (rate(gatehouse_requests_total[5m]))`, "grouped by policy"},
		{`label_values(gatehouse_requests_total{route=~"(${namespace:regex})/.*"}, route)`, ""},
		{`label_values(gatehouse_requests_total, upstream)`, "has no label upstream"},
	} {
		p := checkQuery(docs, c.q)
		switch {
		case c.want == "" && len(p) > 0:
			t.Errorf("%s: %q", c.q, p)
		case c.want != "" && (len(p) != 1 || !strings.Contains(p[0], c.want)):
			t.Errorf("%s: %q, want one problem mentioning %q", c.q, p, c.want)
		}
	}
}
