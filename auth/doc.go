// Package auth holds the authentication methods a route can require, which
// the proxy evaluates for each request before it picks an upstream: JWT
// bearer tokens checked against a JSON Web Key Set (static, from a Secret,
// or fetched from the issuer by a Remote), API keys looked up by a keyed
// hash, and an external authorization service asked about each request.
//
// Each method answers with a Result (let the request through, naming the
// consumer and the headers to set and remove before it goes upstream) or a
// Denial (the gateway's own answer: 401, 403, or whatever 4xx or 3xx the
// external service chose; never a 5xx). The types here know nothing of
// Kubernetes or of annotations: the snapshot compiler converts what users
// write into JWTSettings, APIKeySettings and ExternalSettings, calling
// their Validate methods to report bad values, and builds the methods once
// per snapshot. Every method is immutable after construction and safe for
// concurrent use.
//
// Credentials stay out of sight: no function in this package logs a
// credential (a token, an API key, a Cookie or Authorization header) or
// returns one in an error, a Denial or a description. Denials say what was
// wrong ("token expired", "wrong audience") without echoing the token or
// its claim values, and the gateway keeps only keyed hashes of API keys
// (see KeyHasher).
package auth
