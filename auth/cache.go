package auth

import (
	"crypto/sha256"
	"reflect"
	"sync"
	"time"
)

// TokenCache remembers tokens a JWT verified, so that a client sending
// the same token again (clients do, until it expires) costs a hash and a
// claims check instead of a signature verification: ES256 and RS256
// verifications cost 40 to 80 µs each (BenchmarkJWT), more than the rest
// of a proxied request many times over. Envoy's jwt_authn keeps such a
// cache too.
//
// What a hit skips is only the signature check, and only while the key
// that verified the token is still in its Auth's key set (a key rotated
// out makes its tokens verify again, and fail); the claims (expiry, not
// before, issuer, audience) are checked on every request as they are on a
// miss. Entries live at most TTL. Memory is bounded: at most Max entries
// of tokens of at most MaxCachedToken bytes, shared by every Auth of the
// process; when full it is cleared, not searched. Only verified tokens
// enter it, so a flood of forged ones cannot fill it, and a tenant minting
// valid tokens for its own Auth can at most evict others' entries, which
// costs them verifications, never acceptance. Safe for concurrent use.
type TokenCache struct {
	max int
	ttl time.Duration

	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedToken
}

// Defaults of NewTokenCache's arguments.
const (
	DefaultCachedTokens = 4096
	DefaultCacheTTL     = 5 * time.Minute
	// MaxCachedToken is the largest token cached; longer ones verify
	// every time.
	MaxCachedToken = 2048
)

type cachedToken struct {
	payload []byte
	kid     string
	key     uintptr // identity of the key that verified it (keyIdentity)
	at      time.Time
}

// NewTokenCache returns a cache of at most max tokens (0:
// DefaultCachedTokens), each kept at most ttl (0: DefaultCacheTTL).
func NewTokenCache(max int, ttl time.Duration) *TokenCache {
	if max <= 0 {
		max = DefaultCachedTokens
	}
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &TokenCache{max: max, ttl: ttl, m: map[[sha256.Size]byte]cachedToken{}}
}

// sum names a token within scope (an Auth): the same token sent to two
// Auths is verified by each.
func sum(scope, tok string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(tok))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// get returns the payload of a token verified in scope, if it was within
// TTL at now and stillValid says its key is still one the Auth trusts.
func (c *TokenCache) get(scope, tok string, now time.Time, stillValid func(kid string, key uintptr) bool) ([]byte, bool) {
	if c == nil || len(tok) > MaxCachedToken {
		return nil, false
	}
	k := sum(scope, tok)
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) > c.ttl || now.Before(e.at) || !stillValid(e.kid, e.key) {
		return nil, false
	}
	return e.payload, true
}

// put remembers a token scope verified at now with key (of kid).
func (c *TokenCache) put(scope, tok string, payload []byte, kid string, key any, now time.Time) {
	if c == nil || len(tok) > MaxCachedToken {
		return
	}
	id := keyIdentity(key)
	if id == 0 {
		return
	}
	k := sum(scope, tok)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = cachedToken{payload: payload, kid: kid, key: id, at: now}
}

// Len is how many tokens are cached.
func (c *TokenCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// keyIdentity is the address of a public key's value (the pointer of
// *rsa.PublicKey and *ecdsa.PublicKey, the array of ed25519.PublicKey),
// 0 for anything else: the same key object of the same key set, not an
// equal key from another fetch, which is verified afresh.
func keyIdentity(key any) uintptr {
	v := reflect.ValueOf(key)
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice:
		return v.Pointer()
	}
	return 0
}
