package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func jwkJSON(t *testing.T, k jose.JSONWebKey) string {
	t.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func setOf(keys ...string) []byte { return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`) }

// TestParseJWKS: the accepted kinds of key are kept and found by kid;
// the others are listed, each with its reason.
func TestParseJWKS(t *testing.T) {
	makeKeys(t)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	enc := rsa2.public()
	enc.KeyID, enc.Use = "enc", "enc"
	withAlg := es256.public()
	withAlg.KeyID, withAlg.Algorithm = "es-alg", "ES256"
	wrongAlg := es256.public()
	wrongAlg.KeyID, wrongAlg.Algorithm = "es-rs", "RS256"
	noUse := ed1.public()
	noUse.KeyID, noUse.Use = "ed-nouse", ""
	data := setOf(
		jwkJSON(t, rsa1.public()), jwkJSON(t, es256.public()), jwkJSON(t, es384.public()), jwkJSON(t, ed1.public()),
		jwkJSON(t, withAlg), jwkJSON(t, noUse),
		jwkJSON(t, testKey{"weak", jose.RS256, weak}.public()),
		jwkJSON(t, testKey{"p521", jose.ES512, p521}.public()),
		jwkJSON(t, enc), jwkJSON(t, wrongAlg),
		`{"kty":"OKP","crv":"X25519","kid":"x","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`,
		`{"kty":"AKP","kid":"pq"}`,
		`{"kty":"RSA","kid":"broken","n":"AQAB","e":"!!"}`,
	)
	s, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 6 || len(s.Keys("", t0)) != 6 {
		t.Errorf("Len = %d, want 6", s.Len())
	}
	for _, kid := range []string{"rsa1", "es256", "es384", "ed1", "es-alg", "ed-nouse"} {
		if ks := s.Keys(kid, t0); len(ks) != 1 || ks[0].KeyID != kid || !ks[0].IsPublic() {
			t.Errorf("Keys(%q) = %v", kid, ks)
		}
	}
	if ks := s.Keys("weak", t0); ks != nil {
		t.Errorf("Keys(weak) = %v", ks)
	}
	want := []string{
		`key 7 (kid "weak"): RSA key of 1024 bits, 2048 to 8192 accepted`,
		`key 8 (kid "p521"): curve "P-521" is not accepted (P-256, P-384, Ed25519 are)`,
		`key 9 (kid "enc"): use "enc" is not for signatures`,
		`key 10 (kid "es-rs"): alg "RS256" is not accepted for this key`,
		`key 11 (kid "x"): curve "X25519" is not accepted (P-256, P-384, Ed25519 are)`,
		`key 12 (kid "pq"): key type "AKP" is not accepted (RSA, EC, OKP are)`,
	}
	got := s.Ignored()
	if len(got) != len(want)+1 || !reflect.DeepEqual(got[:len(want)], want) || !strings.HasPrefix(got[len(want)], `key 13 (kid "broken"): malformed: `) {
		t.Errorf("Ignored =\n%s\nwant\n%s\nand key 13 malformed", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Tokens verify against the parsed set.
	j := NewJWT(JWTSettings{}, s)
	for _, k := range []testKey{rsa1, es256, es384, ed1, {"es-alg", jose.ES256, es256.priv}} {
		if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, k, claims(nil))), t0); d != nil {
			t.Errorf("%s: denied: %s", k.kid, d.Body)
		}
	}
	// A key whose alg is ES256 does not verify an ES384 token under its kid.
	if _, d := j.Authenticate(bearerReq("Bearer "+signWith(t, es384, jose.ES384, "es-alg", claims(nil), nil)), t0); d == nil {
		t.Error("es-alg: ES384 token accepted")
	}
}

// TestParseJWKSPrivate: any private or secret key material makes the set
// an error, and the error does not quote it.
func TestParseJWKSPrivate(t *testing.T) {
	makeKeys(t)
	for _, k := range []testKey{rsa1, es256, ed1} {
		priv := jwkJSON(t, jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Use: "enc"}) // even for another use
		var m map[string]any
		json.Unmarshal([]byte(priv), &m)
		_, err := ParseJWKS(setOf(jwkJSON(t, es384.public()), priv))
		if err == nil || !strings.Contains(err.Error(), "key 2 (kid "+`"`+k.kid+`"`+"): holds private") {
			t.Errorf("%s private: err = %v", k.kid, err)
		}
		if err != nil && strings.Contains(err.Error(), m["d"].(string)) {
			t.Errorf("%s private: error quotes the key", k.kid)
		}
	}
	for name, raw := range map[string]string{
		"oct":        `{"kty":"oct","kid":"h","k":"c2VjcmV0"}`,
		"oct no k":   `{"kty":"oct","kid":"h"}`,
		"stray d":    `{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","d":"AQAB"}`,
		"stray p":    `{"kty":"EC","kid":"e","crv":"P-256","p":"AQAB"}`,
		"AKP priv":   `{"kty":"AKP","kid":"m","priv":"AQAB"}`,
		"P-521 priv": `{"kty":"EC","crv":"P-521","kid":"e","d":"AQAB"}`,
	} {
		if _, err := ParseJWKS(setOf(jwkJSON(t, es384.public()), raw)); err == nil || !strings.Contains(err.Error(), "private or secret") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestParseJWKSErrors(t *testing.T) {
	makeKeys(t)
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty input", ``, "parsing key set"},
		{"not JSON", `<html>`, "parsing key set"},
		{"a key, not a set", jwkJSON(t, es256.public()), `no "keys" member`},
		{"keys null", `{"keys":null}`, `no "keys" member`},
		{"keys not a list", `{"keys":{}}`, "parsing key set"},
		{"empty set", `{"keys":[]}`, "the set is empty"},
		{"only unusable", `{"keys":[{"kty":"RSA","use":"enc"}]}`, `no usable key: key 1: use "enc"`},
		{"key not an object", `{"keys":[1]}`, "key 1: not a JWK"},
		{"oversized", `{"keys":[` + strings.Repeat(" ", MaxJWKSBytes) + `]}`, "larger than"},
	} {
		_, err := ParseJWKS([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

// TestKeySetNil: a nil KeySet is an empty KeySource.
func TestKeySetNil(t *testing.T) {
	var s *KeySet
	if s.Keys("", t0) != nil || s.Keys("a", t0) != nil || s.Len() != 0 || s.Ignored() != nil {
		t.Error("nil KeySet holds something")
	}
}
