package auth

import (
	"net/http"
	"testing"
)

// BenchmarkJWT: one request with a valid token, per algorithm: the
// signature check dominates.
func BenchmarkJWT(b *testing.B) {
	makeKeys(b)
	set := keySet(b, rsa1, es256, ed1)
	withClaims := defaultJWT
	withClaims.ClaimsToHeaders = map[string]string{"email": "X-Email", "sub": "X-Sub"}
	for _, bc := range []struct {
		name string
		key  testKey
		s    JWTSettings
	}{
		{"ES256", es256, defaultJWT},
		{"RS256", rsa1, defaultJWT},
		{"EdDSA", ed1, defaultJWT},
		{"ES256+claims", es256, withClaims},
	} {
		b.Run(bc.name, func(b *testing.B) {
			j := NewJWT(bc.s, set)
			r := bearerReq("Bearer " + sign(b, bc.key, claims(map[string]any{"email": "a@example.com"})))
			b.ReportAllocs()
			for b.Loop() {
				if _, d := j.Authenticate(r, t0); d != nil {
					b.Fatal(string(d.Body))
				}
			}
		})
	}
}

// BenchmarkJWTRefused: what a flood of bad tokens costs: one that does
// not parse, and one whose kid is unknown (no signature check).
func BenchmarkJWTRefused(b *testing.B) {
	makeKeys(b)
	j := NewJWT(defaultJWT, keySet(b, es256))
	for name, auth := range map[string]string{
		"malformed":   "Bearer not-a-jwt",
		"unknown-kid": "Bearer " + sign(b, ed1, claims(nil)),
	} {
		b.Run(name, func(b *testing.B) {
			r := bearerReq(auth)
			b.ReportAllocs()
			for b.Loop() {
				if _, d := j.Authenticate(r, t0); d == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// BenchmarkAPIKey: a known key and an unknown one, among 10,000 keys.
func BenchmarkAPIKey(b *testing.B) {
	h, _ := NewKeyHasher()
	table := KeyTable{}
	for i := range 10000 {
		table[h.SumString("key-"+string(rune(i)))] = "c"
	}
	table[h.SumString("gh_0123456789abcdef0123456789abcdef")] = "alice"
	a := NewAPIKeys(APIKeySettings{}, h, table)
	for name, key := range map[string]string{"known": "gh_0123456789abcdef0123456789abcdef", "unknown": "gh_0123456789abcdef0123456789abcdeX"} {
		b.Run(name, func(b *testing.B) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.Header.Set("X-Api-Key", key)
			b.ReportAllocs()
			for b.Loop() {
				a.Authenticate(r)
			}
		})
	}
}
