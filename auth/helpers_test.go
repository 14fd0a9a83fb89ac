package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testKey is a private key, its kid and the algorithm it signs with.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
}

func (k testKey) public() jose.JSONWebKey {
	jk := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Use: "sig"}
	return jk.Public()
}

// Keys are made once per test binary: RSA generation is slow under -race.
var (
	keysOnce                      sync.Once
	rsa1, rsa2, es256, es384, ed1 testKey
)

func makeKeys(tb testing.TB) {
	tb.Helper()
	keysOnce.Do(func() {
		r1, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		r2, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		e256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		e384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
		rsa1 = testKey{"rsa1", jose.RS256, r1}
		rsa2 = testKey{"rsa2", jose.RS256, r2}
		es256 = testKey{"es256", jose.ES256, e256}
		es384 = testKey{"es384", jose.ES384, e384}
		ed1 = testKey{"ed1", jose.EdDSA, edPriv}
	})
}

// jwksJSON is the public key set of ks, as an issuer publishes it.
func jwksJSON(tb testing.TB, ks ...testKey) []byte {
	tb.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range ks {
		set.Keys = append(set.Keys, k.public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func keySet(tb testing.TB, ks ...testKey) *KeySet {
	tb.Helper()
	s, err := ParseJWKS(jwksJSON(tb, ks...))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// claims are a token's claims; the standard ones are valid at t0 for an
// hour, for issuer "https://issuer.example" and audience "api".
func claims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": "https://issuer.example",
		"aud": "api",
		"sub": "alice",
		"iat": t0.Add(-time.Minute).Unix(),
		"nbf": t0.Add(-time.Minute).Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign makes a compact JWS of c signed by k with k's algorithm and kid.
func sign(tb testing.TB, k testKey, c map[string]any) string {
	tb.Helper()
	return signWith(tb, k, k.alg, k.kid, c, nil)
}

func signWith(tb testing.TB, k testKey, alg jose.SignatureAlgorithm, kid string, c map[string]any, o *jose.SignerOptions) string {
	tb.Helper()
	if o == nil {
		o = &jose.SignerOptions{}
	}
	o.WithType("JWT")
	if kid != "" {
		o.WithHeader(jose.HeaderKey("kid"), kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k.priv}, o)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func bearerReq(auth ...string) *http.Request {
	r, _ := http.NewRequest("GET", "https://app.example/orders", nil)
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	return r
}

// keysFunc is a KeySource made of a function.
type keysFunc func(kid string, now time.Time) []jose.JSONWebKey

func (f keysFunc) Keys(kid string, now time.Time) []jose.JSONWebKey { return f(kid, now) }
