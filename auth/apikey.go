package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
)

// MaxAPIKeyBytes bounds an API key: generated keys are 32 to 64 characters,
// and a longer value is refused before it is hashed.
const MaxAPIKeyBytes = 512

// DefaultAPIKeyHeader is the header APIKeySettings names when it names
// neither a header nor a query parameter.
const DefaultAPIKeyHeader = "X-Api-Key"

// KeyHasher keys an HMAC-SHA256 with a secret made at start, so that the
// gateway keeps only a hash of each API key. Kubernetes Secrets hold the
// keys in plain form; the gateway's memory, heap dumps and core files need
// not: the snapshot compiler hashes each key into a KeyTable and drops it,
// and a request's key is hashed and looked up. Without the secret, which
// lives only in this process, a table's hashes cannot even be checked
// against guessed keys.
//
// Why a fast keyed hash and not a password hash such as bcrypt or argon2:
// those are slow on purpose, to make guessing low-entropy passwords from a
// stolen hash expensive. API keys are long random strings (128 bits and
// up), which no amount of guessing finds, so the slowness would buy
// nothing, and at tens of milliseconds per request it would make every
// request slow and hand attackers a cheap way to burn the gateway's CPU.
// HMAC-SHA256 costs under a microsecond.
//
// Comparing keys by looking up their HMAC in a map leaks nothing through
// timing: how long a lookup takes depends on the hash, which an attacker
// cannot steer toward a stored one without the secret, not on how much of
// a real key a guess matched.
//
// A KeyHasher's sums are only meaningful to the tables built with the same
// KeyHasher: make one per process and use it for every table. The zero
// value is ready to use (it makes its secret on first use); a KeyHasher is
// safe for concurrent use and must not be copied.
type KeyHasher struct {
	once   sync.Once
	secret [32]byte
	pool   sync.Pool // of *macState
}

// macState is one HMAC, reused, with room to copy a key string into, so
// that summing a key allocates nothing.
type macState struct {
	mac hash.Hash
	buf [MaxAPIKeyBytes]byte
	sum [sha256.Size]byte
}

// NewKeyHasher returns a KeyHasher with a fresh random secret. The error is
// always nil: crypto/rand cannot fail (since Go 1.24 a broken source of
// randomness ends the program); it is there for a source that can.
func NewKeyHasher() (*KeyHasher, error) {
	h := &KeyHasher{}
	h.init()
	return h, nil
}

func (h *KeyHasher) init() {
	h.once.Do(func() {
		rand.Read(h.secret[:]) // never fails (crypto/rand crashes the program first)
		h.pool.New = func() any { return &macState{mac: hmac.New(sha256.New, h.secret[:])} }
	})
}

// Sum returns the keyed hash of key.
func (h *KeyHasher) Sum(key []byte) [32]byte {
	h.init()
	st := h.pool.Get().(*macState)
	st.mac.Reset()
	st.mac.Write(key)
	return h.finish(st)
}

// SumString is Sum for a key held in a string (a header value), without
// copying it to the heap.
func (h *KeyHasher) SumString(key string) [32]byte {
	h.init()
	st := h.pool.Get().(*macState)
	st.mac.Reset()
	for key != "" {
		n := copy(st.buf[:], key)
		st.mac.Write(st.buf[:n])
		clear(st.buf[:n]) // the pooled buffer outlives the request: keep no key in it
		key = key[n:]
	}
	return h.finish(st)
}

func (h *KeyHasher) finish(st *macState) [32]byte {
	st.mac.Sum(st.sum[:0])
	out := st.sum
	h.pool.Put(st)
	return out
}

// KeyLookup finds the consumer whose API key has a given KeyHasher sum.
type KeyLookup interface {
	Consumer(sum [32]byte) (name string, ok bool)
}

// KeyTable is a KeyLookup held in a map: consumer names by key sum. A nil
// KeyTable knows no keys.
type KeyTable map[[32]byte]string

var _ KeyLookup = KeyTable(nil)

// Consumer returns the consumer of the key with the given sum.
func (t KeyTable) Consumer(sum [32]byte) (string, bool) {
	name, ok := t[sum]
	return name, ok
}

// APIKeySettings say where a route's requests carry their API key: a
// header or a query parameter. The zero value means the header
// DefaultAPIKeyHeader.
type APIKeySettings struct {
	// Header is the request header holding the key.
	Header string
	// Query is the query parameter holding the key, when Header is "".
	// Keys in URLs end up in access logs and browser histories; a header
	// is better where clients can send one.
	Query string
	// ForwardKey keeps the key on the upstream request; by default the
	// header or query parameter is removed, so the upstream never sees it.
	ForwardKey bool
}

// Validate reports the problems with s, one *FieldError each, joined.
func (s APIKeySettings) Validate() error {
	var p problems
	if s.Header != "" && s.Query != "" {
		p.add("Query", "give a header or a query parameter, not both")
	}
	if s.Header != "" {
		if !validName(s.Header) {
			p.add("Header", "not a valid header name")
		} else if hopHeaders[textproto.CanonicalMIMEHeaderKey(s.Header)] {
			p.add("Header", "describes the connection or the message framing; it cannot carry a key")
		}
	}
	return p.err()
}

// APIKeys checks the API key of requests. It is immutable and safe for
// concurrent use.
type APIKeys struct {
	header string // canonical; "" when the key is in the query
	query  string
	hasher *KeyHasher
	keys   KeyLookup
	res    Result // the Result without its Consumer
}

// NewAPIKeys returns an APIKeys that finds a request's key as s says,
// hashes it with h and looks the sum up in keys. If s names both a header
// and a query parameter, the header is used.
func NewAPIKeys(s APIKeySettings, h *KeyHasher, keys KeyLookup) *APIKeys {
	a := &APIKeys{hasher: h, keys: keys}
	switch {
	case s.Header != "":
		a.header = textproto.CanonicalMIMEHeaderKey(s.Header)
	case s.Query != "":
		a.query = s.Query
	default:
		a.header = DefaultAPIKeyHeader
	}
	if !s.ForwardKey {
		if a.header != "" {
			a.res.Remove = []string{a.header}
		} else {
			a.res.RemoveQuery = a.query
		}
	}
	return a
}

// Denials of API key authentication. The challenge scheme is not
// registered with IANA; it is what API gateways commonly send.
var (
	denyNoKey  = plainDenial(http.StatusUnauthorized, `ApiKey realm="`+Realm+`"`, "API key required")
	denyBadKey = plainDenial(http.StatusUnauthorized, `ApiKey realm="`+Realm+`"`, "invalid API key")
)

// Authenticate checks the API key of r. A request without one (or with an
// empty one) is told a key is required; a key that is unknown, longer than
// MaxAPIKeyBytes or given more than once is invalid. Both answers are 401.
func (a *APIKeys) Authenticate(r *http.Request) (Result, *Denial) {
	var key string
	if a.header != "" {
		switch vals := r.Header[a.header]; len(vals) {
		case 0:
		case 1:
			key = vals[0]
		default:
			return Result{}, denyBadKey
		}
	} else {
		var n int
		key, n = queryParam(r.URL.RawQuery, a.query)
		if n > 1 {
			return Result{}, denyBadKey
		}
	}
	switch {
	case key == "":
		return Result{}, denyNoKey
	case len(key) > MaxAPIKeyBytes:
		return Result{}, denyBadKey
	}
	name, ok := a.keys.Consumer(a.hasher.SumString(key))
	if !ok {
		return Result{}, denyBadKey
	}
	res := a.res
	res.Consumer = name
	return res, nil
}

// queryParam returns the value of the parameter name in a raw query,
// unescaped, and how many times the parameter occurs. It is url.ParseQuery
// for one name, without building a map; parts that do not unescape are
// skipped, as ParseQuery skips them.
func queryParam(raw, name string) (string, int) {
	var val string
	n := 0
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				continue
			}
		}
		if n++; n > 1 {
			return "", n
		}
		val = v
	}
	return val, n
}
