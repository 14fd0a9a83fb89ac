package files

import (
	"encoding/base64"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// tlsKept is what the gateway should keep of a TLS Secret: identity, type
// and data (nil for none).
func tlsKept(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS}
	if data != nil {
		s.Data = map[string][]byte{}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
	}
	return s
}

func TestSecrets(t *testing.T) {
	big := strings.Repeat("x", snapshot.MaxSecretData/2+1)
	for _, c := range []struct {
		name, doc string
		want      *corev1.Secret // nil: not read
		problem   string         // a problem's text, "" for none
	}{
		{"data, base64: the three keys and nothing else", `apiVersion: v1
kind: Secret
metadata:
  name: upstream-ca
  namespace: shop
  labels: {app: web}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"ca.key":"..."}}'
type: kubernetes.io/tls
data:
  ca.crt: ` + b64("CA") + `
  tls.crt: ` + b64("CERT") + `
  tls.key: ` + b64("KEY") + `
  ca.key: ` + b64("CA KEY") + `
`, tlsKept("shop", "upstream-ca", map[string]string{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY"}), ""},

		{"stringData, in the default namespace", `apiVersion: v1
kind: Secret
metadata: {name: client}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
  tls.key: KEY
  password: hunter2
`, tlsKept("default", "client", map[string]string{"tls.crt": "-----BEGIN CERTIFICATE-----\n", "tls.key": "KEY"}), ""},

		{"stringData wins over data, as on the API server", `apiVersion: v1
kind: Secret
metadata: {name: both, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: ` + b64("OLD") + `, tls.key: ` + b64("KEY") + `}
stringData: {tls.crt: NEW, ca.crt: CA}
`, tlsKept("shop", "both", map[string]string{"ca.crt": "CA", "tls.crt": "NEW", "tls.key": "KEY"}), ""},

		{"a CA bundle alone, with the required keys empty", `apiVersion: v1
kind: Secret
metadata: {name: ca, namespace: shop}
type: kubernetes.io/tls
data: {ca.crt: ` + b64("CA") + `, tls.crt: "", tls.key: ""}
`, tlsKept("shop", "ca", map[string]string{"ca.crt": "CA", "tls.crt": "", "tls.key": ""}), ""},

		{"over the bound: kept without data", `apiVersion: v1
kind: Secret
metadata: {name: big, namespace: shop}
type: kubernetes.io/tls
stringData: {ca.crt: ` + big + `, tls.crt: ` + big + `, tls.key: ""}
`, tlsKept("shop", "big", nil), ""},

		{"Opaque: skipped", `apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
type: Opaque
data: {tls.crt: ` + b64("CERT") + `, tls.key: ` + b64("KEY") + `}
`, nil, ""},

		{"no type is Opaque: skipped", `apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
stringData: {tls.crt: CERT, tls.key: KEY}
`, nil, ""},

		{"tls without tls.key: refused, as the API server does", `apiVersion: v1
kind: Secret
metadata: {name: half, namespace: shop}
type: kubernetes.io/tls
data: {ca.crt: ` + b64("CA") + `, tls.crt: ` + b64("CERT") + `}
`, nil, `f.yaml:5:7: Secret "half".data: a Secret of type kubernetes.io/tls must have data keys tls.crt and tls.key`},

		{"tls with data that is not base64: not read", `apiVersion: v1
kind: Secret
metadata: {name: bad, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: "!!!", tls.key: ""}
`, nil, `f.yaml:5:17: Secret "bad".data[tls.crt]: invalid value "!!!": illegal base64 data at input byte 0 (so the Secret is not read)`},
	} {
		m, problems := Parse("f.yaml", []byte(c.doc))
		var got *corev1.Secret
		switch len(m.Secrets) {
		case 0:
		case 1:
			got = m.Secrets[0]
		default:
			t.Errorf("%s: %d Secrets read", c.name, len(m.Secrets))
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: read\n%+v\nwant\n%+v", c.name, got, c.want)
		}
		switch {
		case c.problem == "" && len(problems) > 0:
			t.Errorf("%s: problems %s", c.name, dump(problems))
		case c.problem != "" && (len(problems) != 1 || !strings.HasPrefix(problems[0].Error(), c.problem)):
			t.Errorf("%s: problems %s, want one starting %q", c.name, dump(problems), c.problem)
		}
	}
}

// TestDirSecrets: a directory's files are merged, Secrets included, so
// serve --from-dir builds with the Secrets of every file.
func TestDirSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", twoServices)
	write("b.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: ca, namespace: team-a}\ntype: kubernetes.io/tls\nstringData: {ca.crt: CA, tls.crt: '', tls.key: ''}\n")
	m, problems, err := Dir{Path: dir}.Load()
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: %v, problems %s", err, dump(problems))
	}
	if len(m.Services) != 2 || len(m.Slices) != 1 || len(m.SliceRefs) != 1 || len(m.Secrets) != 1 || m.Secrets[0].Name != "ca" {
		t.Errorf("Load: %d Services, %d slices (%d refs), Secrets %v; want 2, 1 (1) and team-a/ca", len(m.Services), len(m.Slices), len(m.SliceRefs), m.Secrets)
	}
}
