package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// What the JWT row's Auth document expects of a token, and what the
// token it sends says.
const (
	benchIssuer   = "https://bench.example/"
	benchAudience = "bench"
	benchKeyID    = "bench"
	// benchConsumer is the token's subject and the API key's consumer
	// name, so that both rows name one consumer.
	benchConsumer = "bench"
)

// credentials are what the authenticated rows' wrk sends and what their
// manifests hold to accept it, made for one run: nothing outside the
// run's temporary directory and wrk's command line ever sees them.
type credentials struct {
	jwks   []byte // a JSON Web Key Set holding the public half of the signing key
	token  string // a JWT that key signed, valid for a day from the run's start
	apiKey string // 64 hex digits
}

// newCredentials makes an ECDSA P-256 key, the key set of its public
// half, one ES256 token it signs (iss, aud, sub, iat now, exp a day on)
// and a random API key. The token is the same for every request, as one
// client's would be; the gateway keeps no cache of verified tokens, so
// each request still pays for a signature check.
func newCredentials(now time.Time) (credentials, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, fmt.Errorf("making the JWT signing key: %w", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: benchKeyID, Algorithm: string(jose.ES256), Use: "sig"}}}
	jwks, err := json.Marshal(set)
	if err != nil {
		return credentials{}, fmt.Errorf("writing the JWKS: %w", err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), benchKeyID))
	if err != nil {
		return credentials{}, fmt.Errorf("making the JWT signer: %w", err)
	}
	token, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer:   benchIssuer,
		Audience: jwt.Audience{benchAudience},
		Subject:  benchConsumer,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(24 * time.Hour)),
	}).Serialize()
	if err != nil {
		return credentials{}, fmt.Errorf("signing the JWT: %w", err)
	}
	var key [32]byte
	rand.Read(key[:]) // never fails (crypto/rand crashes the program first)
	return credentials{jwks: jwks, token: token, apiKey: hex.EncodeToString(key[:])}, nil
}

// headers are the request headers wrk and the readiness probe send to a
// row of variant v, as "Name: value" lines (wrk's -H): a credential for
// the JWT and API key rows, none otherwise. The external auth row needs
// none: its auth service lets every request through.
func (cr credentials) headers(v variant) []string {
	switch v {
	case withJWT:
		return []string{"Authorization: Bearer " + cr.token}
	case withAPIKey:
		return []string{"X-Api-Key: " + cr.apiKey}
	}
	return nil
}
