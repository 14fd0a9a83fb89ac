package auth

import (
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// countingKeys counts the keys handed out for verification... and how
// often a signature was actually checked, through a key that records
// being used.
func TestTokenCache(t *testing.T) {
	makeKeys(t)
	cache := NewTokenCache(0, time.Minute)
	s := defaultJWT
	s.Cache, s.CacheScope = cache, "ns/auth"
	set := keySet(t, es256)
	j := NewJWT(s, set)
	tok := sign(t, es256, claims(nil))
	r := bearerReq("Bearer " + tok)
	if _, d := j.Authenticate(r, t0); d != nil {
		t.Fatalf("first: %s", d.Body)
	}
	if cache.Len() != 1 {
		t.Fatalf("not cached: %d entries", cache.Len())
	}
	// A hit still checks the claims: the token expires on time.
	if _, d := j.Authenticate(r, t0.Add(2*time.Hour)); d != denyExpired {
		t.Errorf("a cached token past its expiry: %v", d)
	}
	// Past the TTL the signature is checked again (and still good).
	if _, d := j.Authenticate(r, t0.Add(2*time.Minute)); d != nil {
		t.Errorf("after the TTL: %s", d.Body)
	}
	// The key rotated out of the set: the cached token is refused.
	rotated := NewJWT(s, keySet(t, ed1))
	if _, d := rotated.Authenticate(r, t0); d == nil {
		t.Errorf("a cached token was accepted after its key left the key set")
	}
	// A token forged to look like a cached one (same claims, bad
	// signature) is not a hit: it hashes differently.
	forged := tok[:strings.LastIndexByte(tok, '.')+1] + "AAAA"
	if _, d := j.Authenticate(bearerReq("Bearer "+forged), t0); d == nil {
		t.Errorf("a forged signature was accepted")
	}
	// Another Auth with other keys does not see this Auth's entries.
	other := s
	other.CacheScope = "ns/other"
	if _, d := NewJWT(other, keySet(t, ed1)).Authenticate(r, t0); d == nil {
		t.Errorf("another scope accepted the token")
	}
	// Bounded: full means cleared.
	small := NewTokenCache(2, time.Minute)
	for i := range 5 {
		small.put("s", strings.Repeat("x", i+1), []byte("{}"), "", set.Keys("", t0)[0].Key, t0)
	}
	if small.Len() > 2 {
		t.Errorf("%d entries in a cache of 2", small.Len())
	}
	small.put("s", strings.Repeat("x", MaxCachedToken+1), []byte("{}"), "", set.Keys("", t0)[0].Key, t0)
	if _, ok := small.get("s", strings.Repeat("x", MaxCachedToken+1), t0, func(string, uintptr) bool { return true }); ok {
		t.Errorf("an oversized token was cached")
	}
	if keyIdentity(jose.JSONWebKey{}) != 0 || keyIdentity(nil) != 0 {
		t.Errorf("keyIdentity of a non-key")
	}
}

// BenchmarkJWTCached is BenchmarkJWT's ES256 case when the token was seen
// before: a hash and the claims instead of a signature check.
func BenchmarkJWTCached(b *testing.B) {
	makeKeys(b)
	s := defaultJWT
	s.Cache, s.CacheScope = NewTokenCache(0, time.Hour), "bench"
	j := NewJWT(s, keySet(b, es256))
	r := bearerReq("Bearer " + sign(b, es256, claims(nil)))
	b.ReportAllocs()
	for b.Loop() {
		if _, d := j.Authenticate(r, t0); d != nil {
			b.Fatal(string(d.Body))
		}
	}
}
