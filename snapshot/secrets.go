package snapshot

import (
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Secret types the gateway reads besides kubernetes.io/tls. Types of their
// own, rather than Opaque Secrets picked by a label, so that the API server
// filters them (a field selector on type) and no application Secret is
// ever sent to the gateway.
const (
	// SecretTypeJWKS holds a JSON Web Key Set under JWKSKey: the public
	// keys an Auth document's jwt.jwks_secret verifies tokens with.
	SecretTypeJWKS corev1.SecretType = "gatehouse.dev/jwks"
	// SecretTypeAPIKeys holds API keys, one data entry per consumer: the
	// key is the consumer's name, the value the API key.
	SecretTypeAPIKeys corev1.SecretType = "gatehouse.dev/api-keys"
)

// JWKSKey is the data key of a SecretTypeJWKS Secret.
const JWKSKey = "jwks.json"

// SecretTypes are the types of Secret the gateway reads, each listed and
// watched with its own field selector.
var SecretTypes = []corev1.SecretType{corev1.SecretTypeTLS, SecretTypeJWKS, SecretTypeAPIKeys}

// Bounds on the Secrets auth reads, for the same reason as MaxSecretData:
// any tenant can create them, and every replica keeps them.
const (
	// MaxAPIKeys is the most consumers one API key Secret may list; one
	// with more is kept without data, and its Auth refuses every key.
	MaxAPIKeys = 10_000
	// MaxAPIKeyBytes bounds one key; longer values are not keys anyone
	// sends, and are dropped.
	MaxAPIKeyBytes = 512
	// MaxConsumerName bounds a consumer's name, which labels metrics and
	// rate-limit buckets.
	MaxConsumerName = 253
)

// hashedMark is set on an API key Secret once its keys are hashed, so that
// trimming it again (informers may hand a transform an object it already
// transformed) does not hash the hashes.
const hashedMark = "gatehouse.dev/hashed"

// TrimSecret is what the gateway keeps of a Secret of any type it reads:
// TrimTLSSecret for kubernetes.io/tls; for a JWKS Secret its jwks.json up
// to MaxSecretData; for an API key Secret each consumer's key replaced by
// hash(key), so that no API key is held in the gateway's memory in a form
// a client could send (hash nil: no keys kept). Data is nil when a bound
// is passed. A Secret of any other type keeps no data. Idempotent.
func TrimSecret(sec *corev1.Secret, hash func([]byte) [32]byte) *corev1.Secret {
	switch sec.Type {
	case corev1.SecretTypeTLS:
		return TrimTLSSecret(sec)
	case SecretTypeJWKS:
		out := bareSecret(sec)
		if sec.Data == nil {
			return out
		}
		if v := sec.Data[JWKSKey]; len(v) <= MaxSecretData {
			out.Data = map[string][]byte{}
			if v != nil {
				out.Data[JWKSKey] = v
			}
		}
		return out
	case SecretTypeAPIKeys:
		if _, done := sec.Annotations[hashedMark]; done {
			return sec
		}
		out := bareSecret(sec)
		out.Annotations = map[string]string{hashedMark: ""}
		if sec.Data == nil || hash == nil || len(sec.Data) > MaxAPIKeys {
			return out
		}
		out.Data = make(map[string][]byte, len(sec.Data))
		for consumer, key := range sec.Data {
			if len(key) == 0 || len(key) > MaxAPIKeyBytes || !validConsumer(consumer) {
				continue
			}
			sum := hash(key)
			out.Data[consumer] = sum[:]
		}
		return out
	}
	return bareSecret(sec)
}

// bareSecret is a Secret's identity and type, without data.
func bareSecret(sec *corev1.Secret) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            sec.Name,
			Namespace:       sec.Namespace,
			UID:             sec.UID,
			ResourceVersion: sec.ResourceVersion,
		},
		Type: sec.Type,
	}
}

// validConsumer reports whether name can be a consumer: printable UTF-8
// of a bounded length. Names reach logs, metrics and headers.
func validConsumer(name string) bool {
	if name == "" || len(name) > MaxConsumerName || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
