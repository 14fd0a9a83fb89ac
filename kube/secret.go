package kube

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxSecretData bounds what the cache keeps of one Secret: the values of
// its kept keys (see trimSecret) together. A Secret over it is kept with
// no data at all (Data nil), so the snapshot builder can tell a Mapping's
// owner that the Secret is too large rather than that it is missing.
//
// Why 256 KiB and not more: the API server already refuses a Secret whose
// data passes 1 MiB (corev1.MaxSecretSize), so a bound of 1 MiB would never
// act. What a Mapping needs is a PEM CA bundle and a certificate chain with
// its key, a few KB each; even a whole public CA bundle (Debian's: 144
// roots, 215 KB) fits. Any tenant can create TLS Secrets and every replica
// caches all of them, so this is the most one Secret costs each replica;
// how many Secrets there are is bounded only by the cluster's
// ResourceQuotas (count/secrets).
const MaxSecretData = 256 << 10

// caKey is where a TLS Secret holds the CA bundle that verifies its peer,
// as cert-manager writes it (corev1 has constants for the other two keys
// only).
const caKey = "ca.crt"

// trimSecret keeps of a Secret what the gateway reads: its identity, its
// type and the data keys ca.crt, tls.crt and tls.key. Labels, annotations
// (kubectl's last-applied-configuration holds the whole Secret again, data
// included), managedFields, owners and every other data key go: a key
// nobody reads is key material the gateway's memory should not hold. The
// values are kept as decoded (the protobuf decoder copies them out of the
// response), so they pin nothing else.
//
// A Secret of another type (never sent: the Client asks the API server for
// kubernetes.io/tls only) keeps no data, and the loop never builds with
// it. trimSecret is idempotent, as the cache requires: a Secret without
// data keeps none, so one dropped for its size stays dropped.
func trimSecret(sec *corev1.Secret) *corev1.Secret {
	out := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            sec.Name,
			Namespace:       sec.Namespace,
			UID:             sec.UID,
			ResourceVersion: sec.ResourceVersion,
		},
		Type: sec.Type,
	}
	if sec.Type != corev1.SecretTypeTLS || sec.Data == nil {
		return out
	}
	size := 0
	for _, k := range [...]string{caKey, corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		size += len(sec.Data[k])
	}
	if size > MaxSecretData {
		return out
	}
	// Non-nil even when none of the keys is there: nil means too large.
	out.Data = make(map[string][]byte, 3)
	for _, k := range [...]string{caKey, corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if v, ok := sec.Data[k]; ok {
			out.Data[k] = v
		}
	}
	return out
}

// isTLSSecret says whether obj is a Secret the loop builds with.
func isTLSSecret(obj any) bool {
	sec, ok := obj.(*corev1.Secret)
	return ok && sec.Type == corev1.SecretTypeTLS
}

// secretChanged is serviceChanged for trimmed Secrets: relists deliver the
// same resourceVersion, and a change to a label or annotation (cert-manager
// stamps its own) leaves what the gateway reads alone.
func secretChanged(old, cur *corev1.Secret) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	if !isTLSSecret(old) && !isTLSSecret(cur) {
		return false
	}
	return old.UID != cur.UID || old.Type != cur.Type ||
		(old.Data == nil) != (cur.Data == nil) ||
		!maps.EqualFunc(old.Data, cur.Data, bytes.Equal)
}
