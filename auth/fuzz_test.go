package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzJWT runs arbitrary Authorization values through Authenticate: it
// never panics, never accepts a token whose signed part (header and
// payload) was not signed by a key of the set, never accepts anything
// against a set of other keys under the same kids, and never echoes the
// token in a Denial.
func FuzzJWT(f *testing.F) {
	makeKeys(f)
	es256b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed2, _ := ed25519.GenerateKey(rand.Reader)
	s := JWTSettings{
		Issuer: "https://issuer.example", Audiences: []string{"api"},
		ClaimsToHeaders: map[string]string{"email": "X-Email", "n": "X-N", "sub": "X-Sub"},
		ConsumerClaim:   "client_id",
	}
	right := NewJWT(s, keySet(f, rsa1, es256, ed1))
	wrong := NewJWT(s, keySet(f, testKey{"rsa1", jose.RS256, rsa2.priv}, testKey{"es256", jose.ES256, es256b}, testKey{"ed1", jose.EdDSA, ed2}))

	signed := map[string]bool{}
	add := func(tok string) {
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add("Bearer " + tok)
	}
	for _, k := range []testKey{rsa1, es256, ed1} {
		add(sign(f, k, claims(map[string]any{"email": "a@example.com", "n": 7, "client_id": "c1"})))
		add(sign(f, k, claims(map[string]any{"email": []int{1}, "n": "x\r\ny", "aud": []string{"x", "api"}})))
		add(sign(f, k, claims(map[string]any{"exp": nil})))
	}
	add(signWith(f, rsa1, jose.PS256, "rsa1", claims(nil), nil))
	add(signWith(f, es256, jose.ES256, "", claims(nil), nil))
	pub, _ := rsa1.public().MarshalJSON()
	f.Add("Bearer " + hs256(claims(nil), "rsa1", pub))
	f.Add("Bearer " + unsigned(claims(nil), "none", "rsa1"))
	f.Add("bearer  a.b.c ")
	f.Add("Basic abc")
	f.Add("Bearer e30.e30.")
	f.Add(`Bearer {"payload":"e30","protected":"eyJhbGciOiJub25lIn0","signature":""}`)

	f.Fuzz(func(t *testing.T, auth string) {
		r := bearerReq(auth)
		res, d := right.Authenticate(r, t0)
		tok, _ := bearerToken(r.Header)
		if d == nil {
			dot := strings.LastIndexByte(tok, '.')
			if dot < 0 || !signed[tok[:dot]] {
				t.Fatalf("accepted a token nobody signed: %q", tok)
			}
			for _, kv := range res.Set {
				if !validValue(kv[1], MaxClaimHeaderBytes) {
					t.Fatalf("Set %q: %q", kv[0], kv[1])
				}
			}
			if !validValue(res.Consumer, MaxClaimHeaderBytes) {
				t.Fatalf("Consumer %q", res.Consumer)
			}
		} else {
			if d.Status != 400 && d.Status != 401 {
				t.Fatalf("status %d", d.Status)
			}
			if len(tok) >= 12 && (strings.Contains(string(d.Body), tok) || strings.Contains(d.Header.Get("WWW-Authenticate"), tok)) {
				t.Fatalf("denial echoes the token")
			}
		}
		if _, d := wrong.Authenticate(r, t0); d == nil {
			t.Fatalf("accepted with the wrong keys: %q", tok)
		}
	})
}

// FuzzParseJWKS: ParseJWKS never panics, and a set it returns holds only
// usable public signature keys.
func FuzzParseJWKS(f *testing.F) {
	makeKeys(f)
	f.Add(jwksJSON(f, rsa1, es256, es384, ed1))
	priv, _ := jose.JSONWebKey{Key: es256.priv, KeyID: "p"}.MarshalJSON()
	f.Add([]byte(`{"keys":[` + string(priv) + `]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","use":"enc"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJWKS(data)
		if err != nil {
			if s != nil {
				t.Fatal("a set and an error")
			}
			return
		}
		if s.Len() == 0 {
			t.Fatal("an empty set without an error")
		}
		for _, k := range s.Keys("", t0) {
			if !k.Valid() || !k.IsPublic() {
				t.Fatalf("key %q is not a valid public key", k.KeyID)
			}
			usable := false
			for _, alg := range Algorithms {
				usable = usable || fits(&k, alg)
			}
			if !usable {
				t.Fatalf("key %q (%T, alg %q, use %q) fits no algorithm", k.KeyID, k.Key, k.Algorithm, k.Use)
			}
			if found := s.Keys(k.KeyID, t0); len(found) == 0 {
				t.Fatalf("key %q not found by its kid", k.KeyID)
			}
		}
	})
}

// FuzzQueryParam checks queryParam against url.ParseQuery.
func FuzzQueryParam(f *testing.F) {
	for _, seed := range []string{"a=1", "a=1&a=2", "a%3D=1&a=%zz", "x=1&api%5Fkey=k+1", "=&&a"} {
		f.Add(seed, "a")
	}
	f.Add("api_key=x", "api_key")
	f.Fuzz(func(t *testing.T, raw, name string) {
		checkQueryParam(t, raw, name)
	})
}
