package kube

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// trimSecret is the informer's transform for Secrets: what the gateway
// keeps of one (snapshot.TrimTLSSecret). A Secret of another type (never
// sent: the Client asks the API server for kubernetes.io/tls only) keeps
// no data, and the loop never builds with it.
func trimSecret(sec *corev1.Secret) *corev1.Secret { return snapshot.TrimTLSSecret(sec) }

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
