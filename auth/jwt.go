package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenBytes bounds a bearer token, checked before anything parses it.
// Real access tokens are well under 4 KiB; the bound keeps the base64 and
// JSON work one request can cause small.
const MaxTokenBytes = 8 << 10

// maxVerifyTries bounds the signature checks one token costs. A token
// without a kid (or a key set that repeats one) is tried against each
// key that fits its algorithm; without a bound, a kid-less token against a
// large set would cost one RSA or ECDSA verification per key.
const maxVerifyTries = 8

// minRSABits and maxRSABits bound the RSA keys a token may be verified
// with: below 2048 bits a key is breakable; above 8192 a verification
// costs more than any issuer has reason to ask of us.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// Algorithms are the JWS algorithms a token may be signed with: public-key
// signatures only. "none" would need no key at all, and HS256/384/512 are
// keyed with a shared secret: a verifier that accepts them while holding
// only public keys can be fooled into using a public key (known to
// everyone) as the HMAC secret, the classic algorithm-confusion attack.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA,
}

// JWTSettings are a route's JWT requirements. The zero value accepts any
// unexpired token signed by a key of the KeySource, whatever its issuer
// and audience, names the consumer by "sub" and sets no headers.
type JWTSettings struct {
	// Issuer is the "iss" a token must carry, compared exactly; "" accepts
	// any issuer (the key set is then all that ties a token to an issuer).
	Issuer string
	// Audiences lists the "aud" values the route accepts: a token passes
	// when its "aud" (a string or an array) holds one of them. Empty
	// accepts any audience, or none.
	Audiences []string
	// ClockSkew is the leeway for "exp", "nbf" and "iat", for issuers whose
	// clocks disagree with ours. Negative values count as zero.
	ClockSkew time.Duration
	// ClaimsToHeaders maps a claim to the header that carries its value
	// upstream. Only string, number and boolean claims are copied (numbers
	// as written in the token); a claim that is missing, of another type,
	// longer than MaxClaimHeaderBytes or holding a control character is
	// skipped, and its header removed from the request, so that the client
	// cannot supply it.
	ClaimsToHeaders map[string]string
	// ConsumerClaim is the claim naming the consumer; "" means "sub". A
	// string or number claim; any other value (or none) leaves the
	// Result's Consumer "", as does a value longer than
	// MaxClaimHeaderBytes or holding a control character.
	ConsumerClaim string
	// ForwardToken keeps the Authorization header on the upstream request;
	// by default it is removed, so the upstream never sees the credential.
	ForwardToken bool
	// Cache, when set, spares tokens seen before their signature check
	// (TokenCache); CacheScope names this Auth within it, and must differ
	// between Auths of different key sets.
	Cache      *TokenCache
	CacheScope string
}

// Validate reports the problems with s, one *FieldError each, joined.
func (s JWTSettings) Validate() error {
	var p problems
	for _, a := range s.Audiences {
		if a == "" {
			p.add("Audiences", "an empty audience matches no token")
		}
	}
	seen := map[string]string{}
	for _, claim := range sortedKeys(s.ClaimsToHeaders) {
		h := s.ClaimsToHeaders[claim]
		field := "ClaimsToHeaders[" + strconv.Quote(claim) + "]"
		if reason := claimHeaderProblem(h); reason != "" {
			p.add(field, "header "+strconv.Quote(h)+": "+reason)
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(h)
		if other, dup := seen[canon]; dup {
			p.add(field, "header "+strconv.Quote(h)+" is already given claim "+strconv.Quote(other))
			continue
		}
		seen[canon] = claim
	}
	return p.err()
}

// claimHeaderProblem says what is wrong with a header a claim is to be
// copied into, or "" when nothing is.
func claimHeaderProblem(h string) string {
	if reason := checkSetHeader(h); reason != "" {
		return reason
	}
	if textproto.CanonicalMIMEHeaderKey(h) == "Authorization" {
		return "holds the token itself; use ForwardToken to keep it"
	}
	return ""
}

// KeySource gives the public keys that may verify a token.
type KeySource interface {
	// Keys returns the keys whose kid is kid, or every key when kid is "",
	// as of now. The caller only reads the slice.
	Keys(kid string, now time.Time) []jose.JSONWebKey
}

// JWT checks bearer tokens: JWS compact serializations signed with one of
// Algorithms by a key of its KeySource, whose claims satisfy its
// JWTSettings. Keys a token names itself (its jwk, jku, x5u and x5c
// headers) are never used or fetched: a token cannot vouch for itself. It
// is immutable and safe for concurrent use.
type JWT struct {
	issuer    string
	audiences []string
	skew      time.Duration
	keys      KeySource
	consumer  string        // the consumer claim
	claims    []claimHeader // sorted by claim, for a stable Set
	extra     bool          // some claim beyond the registered ones is needed
	remove    []string      // Remove when every claim header is set
	cache     *TokenCache
	scope     string
}

type claimHeader struct{ claim, header string }

// NewJWT returns a JWT that checks tokens with s against keys. Entries of
// ClaimsToHeaders that Validate refuses are left out (of claims given one
// header, the first in byte order keeps it).
func NewJWT(s JWTSettings, keys KeySource) *JWT {
	j := &JWT{
		issuer:    s.Issuer,
		audiences: slices.Clone(s.Audiences),
		skew:      max(s.ClockSkew, 0),
		keys:      keys,
		consumer:  s.ConsumerClaim,
		cache:     s.Cache,
		scope:     s.CacheScope,
	}
	if j.consumer == "" {
		j.consumer = "sub"
	}
	for _, claim := range sortedKeys(s.ClaimsToHeaders) {
		h := s.ClaimsToHeaders[claim]
		if claimHeaderProblem(h) != "" {
			continue
		}
		h = textproto.CanonicalMIMEHeaderKey(h)
		if !slices.ContainsFunc(j.claims, func(c claimHeader) bool { return c.header == h }) {
			j.claims = append(j.claims, claimHeader{claim, h})
		}
	}
	j.extra = len(j.claims) > 0 || j.consumer != "sub"
	if !s.ForwardToken {
		j.remove = []string{"Authorization"}
	}
	return j
}

// Denials of bearer authentication (RFC 6750 section 3). A request without
// a bearer token gets a challenge without an error code; a description
// never holds the token or a claim's value.
var (
	denyNoToken   = plainDenial(http.StatusUnauthorized, `Bearer realm="`+Realm+`"`, "bearer token required")
	denyTwoTokens = bearerError(http.StatusBadRequest, "invalid_request", "more than one Authorization header")
	denyTooLarge  = invalidToken("token too large")
	denyMalformed = invalidToken("malformed token")
	denyAlg       = invalidToken("unsupported algorithm")
	denyUnknown   = invalidToken("unknown key")
	denySignature = invalidToken("bad signature")
	denyClaims    = invalidToken("malformed claims")
	denyNoExpiry  = invalidToken("token has no expiry")
	denyExpired   = invalidToken("token expired")
	denyNotYet    = invalidToken("token not yet valid")
	denyIssuedFut = invalidToken("token issued in the future")
	denyIssuer    = invalidToken("wrong issuer")
	denyAudience  = invalidToken("wrong audience")
)

func bearerError(status int, code, desc string) *Denial {
	return plainDenial(status, `Bearer realm="`+Realm+`", error="`+code+`", error_description="`+desc+`"`, desc)
}

func invalidToken(desc string) *Denial {
	return bearerError(http.StatusUnauthorized, "invalid_token", desc)
}

// Authenticate checks the bearer token of r at time now.
//
// The token comes from the one Authorization header, scheme "Bearer" in
// any case. No Authorization header, or one with another scheme, is a
// request without a token (401, a bare challenge); two Authorization
// headers are a malformed request (400, invalid_request); any problem with
// the token is a 401 with error="invalid_token" and a short description.
func (j *JWT) Authenticate(r *http.Request, now time.Time) (Result, *Denial) {
	tok, d := bearerToken(r.Header)
	if d != nil {
		return Result{}, d
	}
	if payload, ok := j.cache.get(j.scope, tok, now, func(kid string, key uintptr) bool {
		for _, k := range j.keys.Keys(kid, now) {
			if keyIdentity(k.Key) == key {
				return true
			}
		}
		return false
	}); ok {
		return j.check(payload, now)
	}
	jws, err := jose.ParseSignedCompact(tok, Algorithms)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return Result{}, denyAlg
		}
		return Result{}, denyMalformed
	}
	if len(jws.Signatures) != 1 {
		return Result{}, denyMalformed
	}
	h := jws.Signatures[0].Header
	// RFC 7797's unencoded payloads are not for JWTs (RFC 7797 section 7),
	// and go-jose would verify one over the payload's decoded bytes.
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return Result{}, denyMalformed
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	var payload []byte
	tries := 0
	for _, k := range j.keys.Keys(h.KeyID, now) {
		if !fits(&k, alg) {
			continue
		}
		if tries++; tries > maxVerifyTries {
			break
		}
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			j.cache.put(j.scope, tok, p, h.KeyID, k.Key, now)
			break
		}
	}
	if payload == nil {
		if tries == 0 {
			return Result{}, denyUnknown
		}
		return Result{}, denySignature
	}
	return j.check(payload, now)
}

// bearerToken returns the token of the Authorization header, or the
// Denial for a request that has none (or too many).
func bearerToken(h http.Header) (string, *Denial) {
	vals := h["Authorization"]
	switch len(vals) {
	case 0:
		return "", denyNoToken
	case 1:
	default:
		return "", denyTwoTokens
	}
	v := vals[0]
	const scheme = "Bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", denyNoToken // another scheme: no bearer token was offered
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", denyMalformed
	}
	if rest[0] != ' ' {
		return "", denyNoToken // "Bearerx ...": a scheme of its own
	}
	if len(rest) > MaxTokenBytes+64 { // before trimming: room for stray blanks
		return "", denyTooLarge
	}
	tok := strings.Trim(rest, " \t")
	switch {
	case len(tok) > MaxTokenBytes:
		return "", denyTooLarge
	case tok == "":
		return "", denyMalformed
	}
	return tok, nil
}

// fits reports whether k may verify a token signed with alg: a public key
// of the algorithm's family and size, meant for signatures, and naming
// alg if it names an algorithm at all. Any other key (a private key, an
// HMAC secret, a key for encryption) never verifies anything here,
// whatever a KeySource returns.
func fits(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if (k.Algorithm != "" && k.Algorithm != string(alg)) || (k.Use != "" && k.Use != "sig") {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256:
			if pub == nil || pub.N == nil {
				return false
			}
			n := pub.N.BitLen()
			return n >= minRSABits && n <= maxRSABits
		}
	case *ecdsa.PublicKey:
		return pub != nil && ((alg == jose.ES256 && pub.Curve == elliptic.P256()) ||
			(alg == jose.ES384 && pub.Curve == elliptic.P384()))
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(pub) == ed25519.PublicKeySize
	}
	return false
}

// check validates the claims of a verified payload and makes the Result.
func (j *JWT) check(payload []byte, now time.Time) (Result, *Denial) {
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Result{}, denyClaims
	}
	if j.issuer != "" && c.Issuer != j.issuer {
		return Result{}, denyIssuer
	}
	if len(j.audiences) > 0 && !slices.ContainsFunc(j.audiences, c.Audience.Contains) {
		return Result{}, denyAudience
	}
	switch {
	case c.Expiry == nil:
		return Result{}, denyNoExpiry
	case !now.Add(-j.skew).Before(c.Expiry.Time()):
		return Result{}, denyExpired // RFC 7519: valid only before exp
	case c.NotBefore != nil && now.Add(j.skew).Before(c.NotBefore.Time()):
		return Result{}, denyNotYet
	case c.IssuedAt != nil && now.Add(j.skew).Before(c.IssuedAt.Time()):
		return Result{}, denyIssuedFut
	}
	res := Result{Remove: j.remove}
	if !j.extra {
		if validValue(c.Subject, MaxClaimHeaderBytes) {
			res.Consumer = c.Subject
		}
		return res, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return Result{}, denyClaims
	}
	res.Consumer, _ = claimValue(all[j.consumer], false)
	for i, ch := range j.claims {
		if v, ok := claimValue(all[ch.claim], true); ok {
			if res.Set == nil {
				res.Set = make([][2]string, 0, len(j.claims)-i)
			}
			res.Set = append(res.Set, [2]string{ch.header, v})
			continue
		}
		if len(res.Remove) == len(j.remove) {
			res.Remove = slices.Clip(j.remove) // append below must not write into j.remove
		}
		res.Remove = append(res.Remove, ch.header)
	}
	return res, nil
}

// claimValue returns a claim as header text: a string as it is, a number as
// written, a boolean (when bools) as true or false. Other types, and values
// validValue refuses, give false.
func claimValue(raw json.RawMessage, bools bool) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	var v string
	switch c := raw[0]; {
	case c == '"':
		if json.Unmarshal(raw, &v) != nil {
			return "", false
		}
	case c == '-' || ('0' <= c && c <= '9'):
		v = string(raw)
	case bools && (c == 't' || c == 'f'):
		v = string(raw) // the decoder accepted it: "true" or "false"
	default:
		return "", false
	}
	if !validValue(v, MaxClaimHeaderBytes) {
		return "", false
	}
	return v, true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
