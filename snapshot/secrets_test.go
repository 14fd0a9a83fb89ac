package snapshot

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimSecret(t *testing.T) {
	hash := func(b []byte) [32]byte { return sha256.Sum256(append([]byte("k"), b...)) }
	meta := metav1.ObjectMeta{Name: "s", Namespace: "ns", ResourceVersion: "7",
		Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{secret}"}}

	keys := &corev1.Secret{ObjectMeta: meta, Type: SecretTypeAPIKeys, Data: map[string][]byte{
		"alice": []byte("key-a"), "bob": []byte("key-b"), "empty": {}, "long": bytes.Repeat([]byte("k"), MaxAPIKeyBytes+1),
	}}
	out := TrimSecret(keys, hash)
	if len(out.Labels) != 0 || out.Annotations["kubectl.kubernetes.io/last-applied-configuration"] != "" {
		t.Errorf("metadata kept: %+v", out.ObjectMeta)
	}
	want := hash([]byte("key-a"))
	if !bytes.Equal(out.Data["alice"], want[:]) || len(out.Data) != 2 {
		t.Errorf("API keys: %v; want alice and bob, hashed", out.Data)
	}
	for _, v := range out.Data {
		if bytes.Contains(v, []byte("key-")) {
			t.Errorf("a key is kept in plain form")
		}
	}
	// An informer may trim what it trimmed: the hashes are not hashed again.
	if again := TrimSecret(out, hash); !bytes.Equal(again.Data["alice"], want[:]) {
		t.Errorf("trimming twice changed the hash")
	}
	if none := TrimSecret(keys, nil); none.Data != nil {
		t.Errorf("without a hash function, keys were kept: %v", none.Data)
	}
	many := &corev1.Secret{ObjectMeta: meta, Type: SecretTypeAPIKeys, Data: map[string][]byte{}}
	for i := range MaxAPIKeys + 1 {
		many.Data[fmt.Sprintf("c%d", i)] = []byte("k")
	}
	if got := TrimSecret(many, hash); got.Data != nil {
		t.Errorf("a Secret over MaxAPIKeys kept %d keys", len(got.Data))
	}

	jwks := &corev1.Secret{ObjectMeta: meta, Type: SecretTypeJWKS, Data: map[string][]byte{JWKSKey: []byte(`{"keys":[]}`), "private.json": []byte("secret")}}
	if got := TrimSecret(jwks, hash); len(got.Data) != 1 || string(got.Data[JWKSKey]) != `{"keys":[]}` {
		t.Errorf("JWKS: %v", got.Data)
	}
	big := &corev1.Secret{ObjectMeta: meta, Type: SecretTypeJWKS, Data: map[string][]byte{JWKSKey: make([]byte, MaxSecretData+1)}}
	if got := TrimSecret(big, hash); got.Data != nil {
		t.Errorf("an oversized JWKS was kept")
	}
	opaque := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("p")}}
	if got := TrimSecret(opaque, hash); got.Data != nil {
		t.Errorf("an Opaque Secret kept data")
	}
	if !validConsumer("alice") || validConsumer("") || validConsumer("a\nb") || validConsumer(strings.Repeat("a", MaxConsumerName+1)) {
		t.Errorf("validConsumer")
	}
}
