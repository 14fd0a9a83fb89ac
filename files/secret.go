package files

import (
	"slices"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// readSecret returns what the gateway keeps of a Secret document, as kube
// keeps it of one from the cluster (snapshot.TrimSecret): only a Secret of
// a type in snapshot.SecretTypes, and of a TLS one only its identity, its
// type and the data keys ca.crt, tls.crt and tls.key; API keys hashed with
// hash. It returns nil for a Secret of another type (which nothing reads:
// skipped like any kind the gateway does not read) and, with a problem,
// for a TLS Secret the API server would refuse for lacking tls.crt or
// tls.key.
//
// data is base64 and stringData plain text, as kubectl writes them;
// stringData wins where both name a key, as it does on the API server.
// Nothing else is kept, labels and annotations included: another key may
// be a private key nothing here reads.
func readSecret(file string, root *yaml.Node, at Pos, hash func([]byte) [32]byte) (*corev1.Secret, *Problem, error) {
	// Read from the document, not decoded: a Secret of another type is
	// never decoded, so a problem with its data is reported once, by the
	// schema check, and not again as a reason it is not read.
	typ := corev1.SecretType(scalarAt(root, "type"))
	if !slices.Contains(snapshot.SecretTypes, typ) {
		return nil, nil, nil
	}
	sec, err := decodeObject[corev1.Secret](root)
	if err != nil {
		return nil, nil, err
	}
	data := func(k string) ([]byte, bool) {
		if v, ok := sec.StringData[k]; ok {
			return []byte(v), true
		}
		v, ok := sec.Data[k]
		return v, ok
	}
	_, hasCert := data(corev1.TLSCertKey)
	_, hasKey := data(corev1.TLSPrivateKeyKey)
	if typ == corev1.SecretTypeTLS && (!hasCert || !hasKey) {
		pos := at
		if d := valueAt(root, "data"); d != nil {
			pos = Pos{d.Line, d.Column}
		}
		return nil, &Problem{File: file, Pos: pos, Path: objectLabel("Secret", root) + ".data",
			Message: "a Secret of type kubernetes.io/tls must have data keys tls.crt and tls.key (the API server refuses it without them; write them empty for a CA bundle alone), so the Secret is not read"}, nil
	}
	// stringData wins where both name a key, as on the API server; then
	// the same trim and bound as a Secret from the cluster.
	merged := *sec
	merged.Data = make(map[string][]byte, len(sec.Data)+len(sec.StringData))
	for k, v := range sec.Data {
		merged.Data[k] = v
	}
	for k, v := range sec.StringData {
		merged.Data[k] = []byte(v)
	}
	out := snapshot.TrimSecret(&merged, hash)
	if out.Namespace == "" {
		out.Namespace = "default"
	}
	return out, nil, nil
}
