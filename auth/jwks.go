package auth

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// MaxJWKSBytes bounds a key set ParseJWKS reads: a few dozen RSA keys with
// their certificate chains fit many times over.
const MaxJWKSBytes = 256 << 10

// KeySet is a parsed JSON Web Key Set: the public signature keys it holds
// that tokens may be verified with. It is immutable and safe for concurrent
// use. A nil or zero KeySet holds no keys.
type KeySet struct {
	all     []jose.JSONWebKey
	byKID   map[string][]jose.JSONWebKey
	ignored []string
}

var _ KeySource = (*KeySet)(nil)

// Keys returns the keys whose kid is kid, or all keys when kid is "". The
// slice is the set's own: read it, do not modify it.
func (s *KeySet) Keys(kid string, _ time.Time) []jose.JSONWebKey {
	if s == nil {
		return nil
	}
	if kid == "" {
		return s.all
	}
	return s.byKID[kid]
}

// Len returns the number of keys in the set.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

// Ignored says which keys of the document were left out of the set, and
// why, one line each ("key 2 (kid \"a\"): RSA key of 1024 bits, at least
// 2048 required"): keys for encryption, of other types or curves, too
// weak, or malformed. RFC 7517 section 5 asks a reader to skip the keys it
// does not understand rather than refuse the set; the snapshot compiler
// shows these as warnings.
func (s *KeySet) Ignored() []string {
	if s == nil {
		return nil
	}
	return s.ignored
}

// ParseJWKS parses a JSON Web Key Set (RFC 7517 section 5) of at most
// MaxJWKSBytes, such as one kept in a Kubernetes Secret.
//
// It keeps the public keys meant for signatures (no "use", or "sig") that
// are RSA keys of 2048 to 8192 bits, EC keys on P-256 or P-384, or Ed25519
// keys, and whose "alg", if any, is one of Algorithms and fits the key.
// Other keys are skipped and listed by Ignored.
//
// A set holding private key material (an RSA, EC or OKP private key, or a
// symmetric "oct" key) is an error, whatever the key's use: the gateway
// needs only public keys, and a private key in a Secret it can read is a
// leak waiting to happen. So is a set with no usable key, since it would
// refuse every token.
func ParseJWKS(data []byte) (*KeySet, error) {
	return parseJWKS(data, MaxJWKSBytes)
}

// rawKey is what ParseJWKS looks at in a key before go-jose parses it. The
// private members are only checked for presence.
type rawKey struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`

	D    json.RawMessage `json:"d"`
	P    json.RawMessage `json:"p"`
	Q    json.RawMessage `json:"q"`
	DP   json.RawMessage `json:"dp"`
	DQ   json.RawMessage `json:"dq"`
	QI   json.RawMessage `json:"qi"`
	Oth  json.RawMessage `json:"oth"`
	K    json.RawMessage `json:"k"`
	Priv json.RawMessage `json:"priv"`
}

func (k *rawKey) private() bool {
	for _, m := range [...]json.RawMessage{k.D, k.P, k.Q, k.DP, k.DQ, k.QI, k.Oth, k.K, k.Priv} {
		if len(m) > 0 && string(m) != "null" {
			return true
		}
	}
	return k.Kty == "oct"
}

func parseJWKS(data []byte, maxBytes int) (*KeySet, error) {
	if len(data) > maxBytes {
		return nil, fmt.Errorf("key set of %d bytes is larger than %d", len(data), maxBytes)
	}
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing key set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JWK set: no "keys" member`)
	}
	s := &KeySet{byKID: map[string][]jose.JSONWebKey{}}
	for i, raw := range *doc.Keys {
		k, skip, err := parseKey(raw)
		name := "key " + strconv.Itoa(i+1)
		if k.KeyID != "" {
			name += " (kid " + strconv.Quote(k.KeyID) + ")"
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if skip != "" {
			s.ignored = append(s.ignored, name+": "+skip)
			continue
		}
		s.all = append(s.all, k)
	}
	if len(s.all) == 0 {
		if len(s.ignored) > 0 {
			return nil, fmt.Errorf("no usable key: %s", s.ignored[0])
		}
		return nil, errors.New("no usable key: the set is empty")
	}
	for _, k := range s.all {
		s.byKID[k.KeyID] = append(s.byKID[k.KeyID], k)
	}
	return s, nil
}

// parseKey parses one key of a set. It returns the key, or why it is
// skipped, or an error for a key that must not be in a set at all. The key
// has at least its KeyID in every case, for naming it.
func parseKey(raw json.RawMessage) (k jose.JSONWebKey, skip string, err error) {
	var rk rawKey
	if err := json.Unmarshal(raw, &rk); err != nil {
		return k, "", fmt.Errorf("not a JWK: %w", err)
	}
	k.KeyID = rk.Kid
	if rk.private() {
		return k, "", errors.New("holds private or secret key material; the set must hold public keys only")
	}
	if rk.Use != "" && rk.Use != "sig" {
		return k, "use " + strconv.Quote(rk.Use) + " is not for signatures", nil
	}
	switch {
	case rk.Kty == "RSA":
	case rk.Kty == "EC" && (rk.Crv == "P-256" || rk.Crv == "P-384"):
	case rk.Kty == "OKP" && rk.Crv == "Ed25519":
	case rk.Kty == "EC" || rk.Kty == "OKP":
		return k, "curve " + strconv.Quote(rk.Crv) + " is not accepted (P-256, P-384, Ed25519 are)", nil
	default:
		return k, "key type " + strconv.Quote(rk.Kty) + " is not accepted (RSA, EC, OKP are)", nil
	}
	if err := k.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{KeyID: rk.Kid}, "malformed: " + err.Error(), nil
	}
	if !k.Valid() || !k.IsPublic() {
		return k, "not a valid public key", nil
	}
	if rsaKey, ok := k.Key.(*rsa.PublicKey); ok {
		if n := rsaKey.N.BitLen(); n < minRSABits || n > maxRSABits {
			return k, fmt.Sprintf("RSA key of %d bits, %d to %d accepted", n, minRSABits, maxRSABits), nil
		}
	}
	if rk.Alg != "" {
		if fits(&k, jose.SignatureAlgorithm(rk.Alg)) && isAlgorithm(rk.Alg) {
			return k, "", nil
		}
		return k, "alg " + strconv.Quote(rk.Alg) + " is not accepted for this key", nil
	}
	return k, "", nil
}

func isAlgorithm(alg string) bool {
	for _, a := range Algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}
