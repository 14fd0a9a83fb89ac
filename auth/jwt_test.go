package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var defaultJWT = JWTSettings{Issuer: "https://issuer.example", Audiences: []string{"api", "other"}}

// TestJWTAccepts: tokens of every accepted algorithm pass and name their
// subject; the Authorization header is removed.
func TestJWTAccepts(t *testing.T) {
	makeKeys(t)
	j := NewJWT(defaultJWT, keySet(t, rsa1, es256, es384, ed1))
	ps := testKey{"rsa1", jose.PS256, rsa1.priv}
	for _, k := range []testKey{rsa1, es256, es384, ed1, ps} {
		t.Run(string(k.alg), func(t *testing.T) {
			res, d := j.Authenticate(bearerReq("Bearer "+sign(t, k, claims(nil))), t0)
			if d != nil {
				t.Fatalf("denied: %d %s", d.Status, d.Body)
			}
			want := Result{Consumer: "alice", Remove: []string{"Authorization"}}
			if !reflect.DeepEqual(res, want) {
				t.Fatalf("Result = %+v, want %+v", res, want)
			}
		})
	}
}

// TestJWTDenies runs tokens that must be refused, each with the
// description it must get. A description "" means the bare challenge of a
// request without a bearer token.
func TestJWTDenies(t *testing.T) {
	makeKeys(t)
	j := NewJWT(JWTSettings{Issuer: "https://issuer.example", Audiences: []string{"api"}, ClockSkew: 30 * time.Second}, keySet(t, rsa1, es256, ed1))
	rsaPub := rsa1.public().Key
	der, _ := x509.MarshalPKIXPublicKey(rsaPub)
	pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkPub, _ := rsa1.public().MarshalJSON()
	hs := func(secret []byte) string { return hs256(claims(nil), "rsa1", secret) }
	wrongKey := testKey{"rsa1", jose.RS256, rsa2.priv} // rsa2 claiming rsa1's kid
	b64false := signWith(t, es256, jose.ES256, "es256", claims(nil), (&jose.SignerOptions{}).WithBase64(false))

	check := func(name, auth string, status int, desc string) {
		t.Helper()
		_, d := j.Authenticate(bearerReq(auth), t0)
		if d == nil {
			t.Errorf("%s: accepted", name)
			return
		}
		checkBearerDenial(t, name, d, status, desc)
	}
	check("no header", "", 401, "")
	check("basic", "Basic YWxpY2U6c2VjcmV0", 401, "")
	check("scheme glued", "Bearerxyz", 401, "")
	check("bearer no token", "Bearer", 401, "malformed token")
	check("bearer blank token", "Bearer   ", 401, "malformed token")
	check("garbage", "Bearer a.b.c", 401, "malformed token")
	check("two parts", "Bearer abc.def", 401, "malformed token")
	check("oversized", "Bearer "+strings.Repeat("a", MaxTokenBytes+1), 401, "token too large")
	check("oversized blanks", "Bearer "+strings.Repeat(" ", 2*MaxTokenBytes)+"x", 401, "token too large")
	check("expired", "Bearer "+sign(t, rsa1, claims(map[string]any{"exp": t0.Add(-31 * time.Second).Unix()})), 401, "token expired")
	check("expired at skew", "Bearer "+sign(t, rsa1, claims(map[string]any{"exp": t0.Add(-30 * time.Second).Unix()})), 401, "token expired")
	check("no exp", "Bearer "+sign(t, rsa1, claims(map[string]any{"exp": nil})), 401, "token has no expiry")
	check("exp string", "Bearer "+sign(t, rsa1, claims(map[string]any{"exp": "tomorrow"})), 401, "malformed claims")
	check("not yet valid", "Bearer "+sign(t, rsa1, claims(map[string]any{"nbf": t0.Add(31 * time.Second).Unix()})), 401, "token not yet valid")
	check("issued in future", "Bearer "+sign(t, rsa1, claims(map[string]any{"iat": t0.Add(31 * time.Second).Unix()})), 401, "token issued in the future")
	check("wrong iss", "Bearer "+sign(t, rsa1, claims(map[string]any{"iss": "https://evil.example"})), 401, "wrong issuer")
	check("no iss", "Bearer "+sign(t, rsa1, claims(map[string]any{"iss": nil})), 401, "wrong issuer")
	check("wrong aud", "Bearer "+sign(t, rsa1, claims(map[string]any{"aud": "admin"})), 401, "wrong audience")
	check("wrong aud list", "Bearer "+sign(t, rsa1, claims(map[string]any{"aud": []string{"a", "b"}})), 401, "wrong audience")
	check("no aud", "Bearer "+sign(t, rsa1, claims(map[string]any{"aud": nil})), 401, "wrong audience")
	check("wrong key", "Bearer "+sign(t, wrongKey, claims(nil)), 401, "bad signature")
	check("unknown kid", "Bearer "+signWith(t, rsa2, jose.RS256, "rsa2", claims(nil), nil), 401, "unknown key")
	check("alg mismatch with key", "Bearer "+signWith(t, testKey{priv: rsa1.priv}, jose.PS384, "rsa1", claims(nil), nil), 401, "unsupported algorithm")
	check("ES384 under P-256 kid", "Bearer "+signWith(t, es384, jose.ES384, "es256", claims(nil), nil), 401, "unknown key")
	check("alg none", "Bearer "+unsigned(claims(nil), "none", "rsa1"), 401, "unsupported algorithm")
	check("alg None", "Bearer "+unsigned(claims(nil), "None", "rsa1"), 401, "unsupported algorithm")
	check("HS256 keyed with the PEM public key", "Bearer "+hs(pemPub), 401, "unsupported algorithm")
	check("HS256 keyed with the DER public key", "Bearer "+hs(der), 401, "unsupported algorithm")
	check("HS256 keyed with the JWK", "Bearer "+hs(jwkPub), 401, "unsupported algorithm")
	check("b64 false", "Bearer "+b64false, 401, "malformed token")
	check("JSON serialization", `Bearer {"payload":"e30","signatures":[]}`, 401, "malformed token")

	// Two Authorization headers are a malformed request (RFC 6750 3.1).
	_, d := j.Authenticate(bearerReq("Bearer "+sign(t, rsa1, claims(nil)), "Bearer "+sign(t, rsa1, claims(nil))), t0)
	if d == nil {
		t.Fatal("two Authorization headers: accepted")
	}
	checkBearerDenial(t, "two headers", d, 400, "more than one Authorization header")
}

// checkBearerDenial checks a Denial's status and RFC 6750 challenge.
func checkBearerDenial(t *testing.T, name string, d *Denial, status int, desc string) {
	t.Helper()
	want := `Bearer realm="gatehouse"`
	code := "invalid_token"
	if status == 400 {
		code = "invalid_request"
	}
	if desc != "" {
		want += `, error="` + code + `", error_description="` + desc + `"`
	}
	if d.Status != status || d.Header.Get("WWW-Authenticate") != want {
		t.Errorf("%s: %d %q, want %d %q", name, d.Status, d.Header.Get("WWW-Authenticate"), status, want)
	}
}

// TestJWTBearerScheme: the scheme is case-insensitive (RFC 9110 11.1).
func TestJWTBearerScheme(t *testing.T) {
	makeKeys(t)
	j := NewJWT(defaultJWT, keySet(t, es256))
	tok := sign(t, es256, claims(nil))
	for _, a := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR   " + tok + " "} {
		if _, d := j.Authenticate(bearerReq(a), t0); d != nil {
			t.Errorf("%.12q…: denied: %s", a, d.Body)
		}
	}
}

// TestJWTTime walks a token's life: refused before nbf - skew, accepted
// from there to exp + skew (exclusive), refused after.
func TestJWTTime(t *testing.T) {
	makeKeys(t)
	skew := 10 * time.Second
	j := NewJWT(JWTSettings{ClockSkew: skew}, keySet(t, ed1))
	tok := "Bearer " + sign(t, ed1, claims(map[string]any{"iat": nil, "nbf": t0.Unix(), "exp": t0.Add(time.Minute).Unix()}))
	for _, tc := range []struct {
		at time.Duration
		ok bool
	}{
		{-skew - time.Second, false}, {-skew, true}, {0, true}, {time.Minute, true},
		{time.Minute + skew - time.Nanosecond, true}, {time.Minute + skew, false},
	} {
		_, d := j.Authenticate(bearerReq(tok), t0.Add(tc.at))
		if (d == nil) != tc.ok {
			t.Errorf("at t0%+v: accepted = %v, want %v", tc.at, d == nil, tc.ok)
		}
	}
	// A negative skew counts as none.
	j = NewJWT(JWTSettings{ClockSkew: -time.Hour}, keySet(t, ed1))
	if _, d := j.Authenticate(bearerReq(tok), t0.Add(30*time.Second)); d != nil {
		t.Errorf("negative skew: denied: %s", d.Body)
	}
}

// TestJWTZeroSettings: no issuer and no audiences accept any of either.
func TestJWTZeroSettings(t *testing.T) {
	makeKeys(t)
	j := NewJWT(JWTSettings{}, keySet(t, es256))
	tok := sign(t, es256, claims(map[string]any{"iss": nil, "aud": nil}))
	if _, d := j.Authenticate(bearerReq("Bearer "+tok), t0); d != nil {
		t.Fatalf("denied: %s", d.Body)
	}
}

// TestJWTAudienceArray: an "aud" array passes with one accepted value.
func TestJWTAudienceArray(t *testing.T) {
	makeKeys(t)
	j := NewJWT(defaultJWT, keySet(t, es256))
	tok := sign(t, es256, claims(map[string]any{"aud": []string{"x", "other"}}))
	if _, d := j.Authenticate(bearerReq("Bearer "+tok), t0); d != nil {
		t.Fatalf("denied: %s", d.Body)
	}
}

// TestJWTNoEcho: no Denial holds the token, or a claim value.
func TestJWTNoEcho(t *testing.T) {
	makeKeys(t)
	j := NewJWT(defaultJWT, keySet(t, es256))
	secretish := "s3cr3t-claim-value"
	for _, c := range []map[string]any{
		{"iss": secretish}, {"aud": secretish}, {"exp": t0.Add(-time.Hour).Unix(), "sub": secretish},
	} {
		tok := sign(t, es256, claims(c))
		_, d := j.Authenticate(bearerReq("Bearer "+tok), t0)
		if d == nil {
			t.Fatalf("%v: accepted", c)
		}
		all := string(d.Body) + strings.Join(d.Header.Values("WWW-Authenticate"), "")
		for _, part := range append(strings.Split(tok, "."), secretish) {
			if strings.Contains(all, part) {
				t.Errorf("%v: denial echoes %q", c, part)
			}
		}
	}
}

// TestJWTClaimsToHeaders: string, number and bool claims become headers
// (in claim order); the rest are skipped and their headers removed.
func TestJWTClaimsToHeaders(t *testing.T) {
	makeKeys(t)
	s := defaultJWT
	s.ClaimsToHeaders = map[string]string{
		"email": "x-user-email", "n": "X-N", "admin": "x-admin", "groups": "X-Groups",
		"crlf": "X-Crlf", "tab": "X-Tab", "big": "X-Big", "absent": "X-Absent", "float": "X-Float",
		"bad":    "Content-Length", // Validate refuses it; NewJWT drops it
		"zemail": "X-USER-EMAIL",   // so is a second claim for one header
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `ClaimsToHeaders["bad"]`) {
		t.Errorf("Validate = %v, want a problem with ClaimsToHeaders[\"bad\"]", err)
	}
	j := NewJWT(s, keySet(t, es256))
	tok := sign(t, es256, claims(map[string]any{
		"email": "a@example.com", "n": 42, "admin": true, "groups": []string{"x"},
		"crlf": "a\r\nX-Evil: 1", "tab": "a\tb", "big": strings.Repeat("b", MaxClaimHeaderBytes+1),
		"float": 1.5, "bad": "7", "zemail": "other@example.com",
	}))
	res, d := j.Authenticate(bearerReq("Bearer "+tok), t0)
	if d != nil {
		t.Fatalf("denied: %s", d.Body)
	}
	want := Result{
		Consumer: "alice",
		Set:      [][2]string{{"X-Admin", "true"}, {"X-User-Email", "a@example.com"}, {"X-Float", "1.5"}, {"X-N", "42"}, {"X-Tab", "a\tb"}},
		Remove:   []string{"Authorization", "X-Absent", "X-Big", "X-Crlf", "X-Groups"},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("Result =\n%+v\nwant\n%+v", res, want)
	}
	// The shared Remove of other requests is untouched.
	if res2, _ := j.Authenticate(bearerReq("Bearer "+sign(t, es256, claims(map[string]any{"email": "b@x", "n": 1, "admin": false, "groups": "g", "crlf": "c", "tab": "t", "big": "b", "absent": "a", "float": 2}))), t0); !reflect.DeepEqual(res2.Remove, []string{"Authorization"}) {
		t.Errorf("all claims present: Remove = %q", res2.Remove)
	}
}

// TestJWTConsumer: ConsumerClaim names the consumer; strings and numbers
// do, other values name nobody.
func TestJWTConsumer(t *testing.T) {
	makeKeys(t)
	for _, tc := range []struct {
		claim string
		value any
		want  string
	}{
		{"", "bob", "bob"}, {"client_id", "svc-1", "svc-1"}, {"uid", 1234, "1234"},
		{"uid", true, ""}, {"uid", map[string]any{"a": 1}, ""}, {"uid", "a\nb", ""}, {"uid", nil, ""},
	} {
		s := defaultJWT
		s.ConsumerClaim = tc.claim
		s.ForwardToken = true
		name := tc.claim
		if name == "" {
			name = "sub"
		}
		tok := sign(t, es256, claims(map[string]any{name: tc.value}))
		res, d := NewJWT(s, keySet(t, es256)).Authenticate(bearerReq("Bearer "+tok), t0)
		if d != nil {
			t.Fatalf("%s=%v: denied: %s", name, tc.value, d.Body)
		}
		if res.Consumer != tc.want || res.Remove != nil {
			t.Errorf("%s=%v: Consumer %q, Remove %q; want %q, none", name, tc.value, res.Consumer, res.Remove, tc.want)
		}
	}
}

// TestJWTKeySourceMisuse: a KeySource that hands out a private key, an
// HMAC secret or a key for encryption does not make tokens pass.
func TestJWTKeySourceMisuse(t *testing.T) {
	makeKeys(t)
	pubJWK, _ := rsa1.public().MarshalJSON()
	for name, k := range map[string]jose.JSONWebKey{
		"private":    {Key: rsa1.priv, KeyID: "rsa1"},
		"secret":     {Key: pubJWK, KeyID: "rsa1", Algorithm: "HS256"},
		"encryption": {Key: rsa1.public().Key, KeyID: "rsa1", Use: "enc"},
		"other alg":  {Key: rsa1.public().Key, KeyID: "rsa1", Algorithm: "RS512"},
	} {
		j := NewJWT(JWTSettings{}, keysFunc(func(string, time.Time) []jose.JSONWebKey { return []jose.JSONWebKey{k} }))
		for _, tok := range []string{sign(t, rsa1, claims(nil)), hs256(claims(nil), "rsa1", pubJWK)} {
			if _, d := j.Authenticate(bearerReq("Bearer "+tok), t0); d == nil {
				t.Errorf("%s key: accepted", name)
			}
		}
	}
}

// TestJWTVerifyBound: a kid-less token is tried against at most
// maxVerifyTries keys.
func TestJWTVerifyBound(t *testing.T) {
	makeKeys(t)
	calls := 0
	others := make([]jose.JSONWebKey, 20)
	for i := range others {
		others[i] = es384.public() // ES384 keys never verify an ES256 token
		others[i].Algorithm = ""
	}
	var wrong []jose.JSONWebKey
	for range 20 {
		wrong = append(wrong, testKey{priv: rsa2.priv}.public())
	}
	j := NewJWT(JWTSettings{}, keysFunc(func(kid string, _ time.Time) []jose.JSONWebKey {
		calls++
		return append(append(others, wrong...), rsa1.public())
	}))
	_, d := j.Authenticate(bearerReq("Bearer "+signWith(t, rsa1, jose.RS256, "", claims(nil), nil)), t0)
	if d == nil || calls != 1 {
		t.Fatalf("accepted = %v after %d lookups; want a denial, one lookup", d == nil, calls)
	}
	checkBearerDenial(t, "bound", d, 401, "bad signature")
}

func TestJWTSettingsValidate(t *testing.T) {
	err := JWTSettings{Audiences: []string{""}, ClaimsToHeaders: map[string]string{
		"a": "bad header", "b": "Transfer-Encoding", "c": "X-Ok", "d": "x-ok", "e": "authorization",
	}}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if want := []string{"Audiences", `ClaimsToHeaders["a"]`, `ClaimsToHeaders["b"]`, `ClaimsToHeaders["d"]`, `ClaimsToHeaders["e"]`}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %q, want %q", fields, want)
	}
	if err := defaultJWT.Validate(); err != nil {
		t.Errorf("defaultJWT: %v", err)
	}
}

// hs256 makes an HMAC-SHA256 JWT by hand, as an attacker would, keyed
// with secret.
func hs256(c map[string]any, kid string, secret []byte) string {
	in := seg(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + seg(c)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// unsigned makes a JWT with the given alg and no signature.
func unsigned(c map[string]any, alg, kid string) string {
	return seg(map[string]any{"alg": alg, "kid": kid}) + "." + seg(c) + "."
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestJWTClaimNames: claim names are matched exactly, as RFC 7519 asks:
// an "EXP" is not an "exp" (encoding/json would take it for one).
func TestJWTClaimNames(t *testing.T) {
	makeKeys(t)
	j := NewJWT(defaultJWT, keySet(t, es256))
	for name, c := range map[string]map[string]any{
		"EXP":      {"exp": nil, "EXP": t0.Add(time.Hour).Unix()},
		"Iss":      {"iss": nil, "Iss": "https://issuer.example"},
		"Aud only": {"aud": nil, "Aud": "api"},
	} {
		if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, es256, claims(c))), t0); d == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestJWTNilKeys: nil keys from a KeySource verify nothing and panic not.
func TestJWTNilKeys(t *testing.T) {
	makeKeys(t)
	for _, k := range []any{(*rsa.PublicKey)(nil), &rsa.PublicKey{}, (*ecdsa.PublicKey)(nil), &ecdsa.PublicKey{}, ed25519.PublicKey(nil), nil} {
		j := NewJWT(JWTSettings{}, keysFunc(func(string, time.Time) []jose.JSONWebKey { return []jose.JSONWebKey{{Key: k}} }))
		for _, tk := range []testKey{rsa1, es256, ed1} {
			if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, tk, claims(nil))), t0); d == nil {
				t.Errorf("%T key: %s token accepted", k, tk.alg)
			}
		}
	}
}
