package kube

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
)

// isSecretOf says whether obj is a Secret of type typ: what the informer
// of that type builds with (a client that ignores the field selector, as
// the fake clientset does, sends it every type).
func isSecretOf(obj any, typ corev1.SecretType) bool {
	sec, ok := obj.(*corev1.Secret)
	return ok && sec.Type == typ
}

// secretChanged is serviceChanged for trimmed Secrets: relists deliver the
// same resourceVersion, and a change to a label or annotation (cert-manager
// stamps its own) leaves what the gateway reads alone.
func secretChanged(old, cur *corev1.Secret, typ corev1.SecretType) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	if !isSecretOf(old, typ) && !isSecretOf(cur, typ) {
		return false
	}
	return old.UID != cur.UID || old.Type != cur.Type ||
		(old.Data == nil) != (cur.Data == nil) ||
		!maps.EqualFunc(old.Data, cur.Data, bytes.Equal)
}
