package files

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Documents the cases below start from; their lines are numbered so the
// expected positions can be read off: svc's metadata is line 3, its name
// line 4, and what a case appends starts on line 5.
const (
	svc    = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
	ns     = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n"
	deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"
	slice  = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: e\naddressType: IPv4\n"
)

type mode bool

const (
	native mode = false
	compat mode = true
)

func (m mode) String() string {
	if m == compat {
		return "compat"
	}
	return "native"
}

func TestObjectChecks(t *testing.T) {
	// want is "LINE:COL error|warning substring", one per problem, in
	// file order; no want means the document is clean.
	check := func(m mode, src string, want ...string) {
		t.Helper()
		_, problems := ParseWith("f.yaml", []byte(src), Options{Emissary: bool(m)})
		if len(problems) != len(want) {
			t.Errorf("%v %q:\ngot %d problems, want %d:\n%s", m, src, len(problems), len(want), dump(problems))
			return
		}
		for i, w := range want {
			pos, rest, _ := strings.Cut(w, " ")
			sev, msg, _ := strings.Cut(rest, " ")
			p := problems[i]
			got := p.Error()
			if !strings.HasPrefix(got, "f.yaml:"+pos+": ") || !strings.Contains(got, msg) || p.Warning != (sev == "warning") {
				t.Errorf("%v %q:\ngot  %s (warning=%v)\nwant f.yaml:%s: %s containing %q", m, src, got, p.Warning, pos, sev, msg)
			}
		}
	}

	// Unknown fields, with a suggestion where one is close.
	check(native, svc+"  annotation:\n    gatehouse.dev/config: x\n", `5:3 error Service "s".metadata.annotation: unknown field "annotation" (did you mean "annotations"?)`)
	check(compat, svc+"  annotation:\n    getambassador.io/config: x\n", `5:3 error unknown field "annotation" (did you mean "annotations"?)`)
	check(native, svc+"  Annotations: {a: b}\n", `5:3 error unknown field "Annotations" (did you mean "annotations"?)`)
	check(native, svc+"spec:\n  port: 80\n", `6:3 error Service "s".spec.port: unknown field "port" (did you mean "ports"?)`)
	check(native, svc+"spec:\n  ports:\n  - port: 80\n    target_port: 8080\n", `8:5 error spec.ports[0].target_port: unknown field "target_port" (did you mean "targetPort"?)`)
	check(native, svc+"metdata: {}\n", `5:1 error Service "s".metdata: unknown field "metdata" (did you mean "metadata"?)`)
	check(native, svc+"spec:\n  frobnicate: true\n", `6:3 error unknown field "frobnicate"`)
	check(native, deploy+"spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        imagePullpolicy: Always\n",
		`10:9 error Deployment "d".spec.template.spec.containers[0].imagePullpolicy: unknown field "imagePullpolicy" (did you mean "imagePullPolicy"?)`)
	check(native, slice+"endpoints:\n- address: [10.0.0.1]\n", `7:3 error EndpointSlice "e".endpoints[0].address: unknown field "address" (did you mean "addresses"?)`)
	check(native, ns+"spec:\n  finalizer: [x]\n", `6:3 error unknown field "finalizer" (did you mean "finalizers"?)`)

	// Routing configuration where nothing reads it.
	check(native, svc+"  labels:\n    gatehouse.dev/config: x\n", `6:5 error Service "s".metadata.labels[gatehouse.dev/config]: "gatehouse.dev/config" is a label, not an annotation`)
	check(compat, svc+"  labels:\n    gatehouse.dev/config: x\n", `6:5 error is a label, not an annotation`)
	check(native, svc+"  gatehouse.dev/config: |\n    kind: Mapping\n", `5:3 error Service "s".metadata[gatehouse.dev/config]: unknown field "gatehouse.dev/config": "gatehouse.dev/config" is an annotation; put it under metadata.annotations of a Service`)
	check(native, svc+"spec:\n  gatehouse.dev/config: x\n", `6:3 error spec[gatehouse.dev/config]: unknown field "gatehouse.dev/config"`)
	check(native, svc+"gatehouse.dev/config: x\n", `5:1 error unknown field "gatehouse.dev/config": "gatehouse.dev/config" is an annotation`)
	check(native, svc+"  annotations:\n    gatehouse.dev/configs: x\n", `6:5 error metadata.annotations[gatehouse.dev/configs]: annotation "gatehouse.dev/configs" (did you mean "gatehouse.dev/config"?) is not read by the gateway`)
	check(compat, svc+"  annotations:\n    gatehouse.dev/configs: x\n", `6:5 error (did you mean "gatehouse.dev/config"?)`)
	check(native, svc+"  annotations:\n    gatehouse.io/config: x\n", `6:5 error (did you mean "gatehouse.dev/config"?)`)
	check(native, svc+"  annotations:\n    Gatehouse.dev/config: x\n", `6:5 error (did you mean "gatehouse.dev/config"?)`)
	check(native, svc+"  annotations:\n    gatehouse.dev/conifg: x\n", `6:5 error (did you mean "gatehouse.dev/config"?)`)

	// Emissary's key: what Emissary accepts and ignores is a warning with
	// --compat=emissary and an error otherwise; the schema is the schema.
	check(native, svc+"  annotations:\n    getambassador.io/configs: x\n", `6:5 error annotation "getambassador.io/configs" (did you mean "getambassador.io/config"?) is not read by Emissary or the gateway`)
	check(compat, svc+"  annotations:\n    getambassador.io/configs: x\n", `6:5 warning (did you mean "getambassador.io/config"?)`)
	check(compat, svc+"  annotations:\n    ambassador.io/config: x\n", `6:5 warning (did you mean "getambassador.io/config"?)`)
	check(native, svc+"  labels:\n    getambassador.io/config: x\n", `6:5 error "getambassador.io/config" is a label, not an annotation: Emissary`)
	check(compat, svc+"  labels:\n    getambassador.io/config: x\n", `6:5 warning is a label, not an annotation`)
	check(compat, svc+"spec:\n  getambassador.io/config: x\n", `6:3 error unknown field "getambassador.io/config"`)
	check(compat, svc+"  annotations:\n    getambassador.io/config: x\n")
	check(native, svc+"  annotations:\n    getambassador.io/config: x\n") // EmissaryHints says it is ignored

	// The kind decides where a key is read.
	check(native, svc+"  annotations:\n    gatehouse.dev/allow-routes-from: a\n", `6:5 error annotation "gatehouse.dev/allow-routes-from" is not read on a Service: the gateway reads "gatehouse.dev/allow-routes-from" only from a Namespace`)
	check(native, ns+"  annotations:\n    gatehouse.dev/config: x\n", `6:5 error is not read on a Namespace: the gateway reads "gatehouse.dev/config" only from a Service`)
	check(native, ns+"  annotations:\n    gatehouse.dev/allow-route-from: a\n", `6:5 error (did you mean "gatehouse.dev/allow-routes-from"?)`)
	check(native, ns+"  labels:\n    gatehouse.dev/allow-routes-from: team-a\n", `6:5 error "gatehouse.dev/allow-routes-from" is a label, not an annotation`)
	check(native, deploy+"spec:\n  template:\n    metadata:\n      annotations:\n        gatehouse.dev/config: x\n", `9:9 error Deployment "d".spec.template.metadata.annotations[gatehouse.dev/config]: "gatehouse.dev/config" on a Pod template is not read`)
	check(native, deploy+"  annotations:\n    gatehouse.dev/config: x\n", `6:5 error is not read on a Deployment`)
	check(native, deploy+"  annotations:\n    getambassador.io/config: x\n") // which kinds Emissary reads is its business

	// Keys that only look a little like ours are left alone.
	check(native, svc+"  annotations:\n    a8r.io/owner: x\n    gatehouse.dev/something-else: x\n    getambassador.io/ambassador-id: x\n  labels:\n    app.kubernetes.io/name: x\n")
	check(native, ns+"  annotations:\n    gatehouse.dev/allow-routes-from: a\n    gatehouse.dev/delegate-hosts-to: b\n")

	// Wrong types. A value the object cannot be decoded with keeps the
	// gateway from reading it; a YAML 1.1 scalar in a string field does
	// not (the gateway reads it as the string), but kubectl refuses it.
	check(native, svc+"spec: ports\n", `5:7 error Service "s".spec: expected a mapping, got a string (so the Service is not read)`)
	check(native, svc+"  annotations: \"gatehouse.dev/config: x\"\n", `5:16 error metadata.annotations: expected a mapping, got a string (so the Service is not read)`)
	check(native, svc+"spec:\n  ports: 80\n", `6:10 error spec.ports: expected a list, got a number (so the Service is not read)`)
	check(native, svc+"spec:\n  ports:\n  - port: http\n", `7:11 error spec.ports[0].port: expected an integer, got a string (so the Service is not read)`)
	check(native, svc+"spec:\n  ports:\n  - port: 80\n    targetPort: {a: 1}\n", `8:17 error spec.ports[0].targetPort: expected an integer or a string, got a mapping (so the Service is not read)`)
	check(native, svc+"spec:\n  selector:\n    app: yes\n", `7:10 error spec.selector[app]: expected a string, got a boolean; quote it ("yes") to make it a string`)
	check(native, svc+"spec:\n  ports: 80\n  selector: [a]\n", `6:10 error expected a list, got a number (so the Service is not read)`, `7:13 error spec.selector: expected a mapping, got a list`)
	check(native, deploy+"spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        resources: {requests: {cpu: lots}}\n",
		`10:37 error spec.template.spec.containers[0].resources.requests[cpu]: invalid value "lots": quantities must match`)
	check(native, slice+"endpoints: 10.0.0.1\n", `6:12 error EndpointSlice "e".endpoints: expected a list, got a string (so the EndpointSlice is not read)`)

	// Duplicate keys: kubectl refuses them.
	check(native, svc+"  name: t\n", `5:3 error Service "s".metadata.name: duplicate key "name" (first at line 4)`)
	check(native, svc+"  annotations:\n    gatehouse.dev/config: a\n    gatehouse.dev/config: b\n", `7:5 error metadata.annotations[gatehouse.dev/config]: duplicate key "gatehouse.dev/config" (first at line 6)`)

	// A kind spelled in the wrong case is not that kind.
	check(native, "apiVersion: v1\nkind: service\nmetadata:\n  name: s\n", `2:7 error kind: unknown kind "service" (did you mean "Service"?)`)

	// Kinds not checked are left alone, whatever they hold.
	check(native, "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: m\nspec:\n  prefx: /\n")
	check(native, "apiVersion: v1\nkind: List\nitems: []\nspec: {a: b}\n")
	check(native, "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: k\nspec:\n  template: {}\n")

	// JSON documents have positions too.
	check(native, `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j", "annotation": {}}}`+"\n", `1:67 error unknown field "annotation"`)
	// Through anchors and merge keys, the position is where the value is
	// written.
	check(native, "base: &b\n  frob: 1\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - &p {port: 80, prot: x}\n  - *p\n",
		`9:19 error spec.ports[0].prot: unknown field "prot"`, `9:19 error spec.ports[1].prot: unknown field "prot"`)
}

func dump(problems []Problem) string {
	var b strings.Builder
	for _, p := range problems {
		fmt.Fprintf(&b, "  %s (warning=%v)\n", p.Error(), p.Warning)
	}
	return b.String()
}

// TestObjectProblemsKeepServing pins down what --from-dir serves: object
// problems are reported, but a Service is still read unless it cannot be
// decoded at all.
func TestObjectProblemsKeepServing(t *testing.T) {
	for _, c := range []struct {
		src  string
		read bool
	}{
		{svc + "  annotations:\n    gatehouse.dev/config: x\n  labels: {gatehouse.dev/config: y}\nspec:\n  port: 80\nmetdata: {}\n", true},
		{svc + "  annotations:\n    gatehouse.dev/config: x\nspec:\n  selector: {app: yes}\n", true},
		{svc + "  annotations:\n    gatehouse.dev/config: x\n  name: t\n", true},
		{svc + "  annotations:\n    gatehouse.dev/config: x\nspec:\n  ports: 80\n", false},
	} {
		m, problems := Parse("f.yaml", []byte(c.src))
		if len(problems) == 0 {
			t.Errorf("%q: no problems", c.src)
		}
		if read := len(m.Services) == 1; read != c.read {
			t.Errorf("%q: Service read = %v, want %v; problems:\n%s", c.src, read, c.read, dump(problems))
			continue
		}
		if c.read {
			if v, ok := m.Services[0].Annotation("gatehouse.dev/config"); !ok || v != "x" {
				t.Errorf("%q: annotation = %q, %v; want the one written", c.src, v, ok)
			}
		}
	}
}

// TestInstallManifestsAreClean: the install manifest holds many kinds, some
// checked and some not; none may produce a problem.
func TestInstallManifestsAreClean(t *testing.T) {
	files, _ := filepath.Glob("../manifests/examples/*.yaml")
	files = append(files, "../manifests/gatehouse.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []mode{native, compat} {
			if _, problems := ParseWith(name, data, Options{Emissary: bool(m)}); len(problems) > 0 {
				t.Errorf("%s (%v):\n%s", name, m, dump(problems))
			}
		}
	}
}

// FuzzParseObjects: whatever the input, Parse does not panic and every
// problem points inside the input.
func FuzzParseObjects(f *testing.F) {
	for _, s := range []string{
		svc + "  annotation:\n    gatehouse.dev/config: x\n",
		svc + "spec:\n  ports:\n  - port: 80\n    targetPort: {a: 1}\n    prot: x\n  selector: {a: yes}\n",
		svc + "  labels:\n    getambassador.io/config: x\n  name: t\n",
		deploy + "spec:\n  template:\n    spec:\n      containers:\n      - resources: {requests: {cpu: lots}}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: '!!!'}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: a}\ndata: {tls.key: '!!!'}\n",
		"a: &a [*a]\n",
		"base: &b {frob: 1}\n---\napiVersion: v1\nkind: Service\nmetadata: {<<: *b, name: s}\n",
		`{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j", "annotation": {}}}`,
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
		twoServices,
	} {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile("../manifests/gatehouse.yaml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, m := range []mode{native, compat} {
			_, problems := ParseWith("f.yaml", data, Options{Emissary: bool(m)})
			for _, p := range problems {
				if p.Pos.Line < 1 || p.Pos.Line > lines || p.Pos.Column < 1 {
					t.Fatalf("%v: %s: position outside the input's %d lines", m, p.Error(), lines)
				}
			}
		}
	})
}

// TestDirOptions: serve --from-dir reads a directory with the same
// dialect as validate, so Emissary leniency reaches it too.
func TestDirOptions(t *testing.T) {
	dir := t.TempDir()
	src := svc + "  annotations:\n    getambassador.io/configs: x\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []mode{native, compat} {
		_, problems, err := Dir{Path: dir, Options: Options{Emissary: bool(m)}}.Load()
		if err != nil || len(problems) != 1 || problems[0].Warning != (m == compat) {
			t.Errorf("%v: problems %s, err %v; want one, a warning only in compat mode", m, dump(problems), err)
		}
	}
}
