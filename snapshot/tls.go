package snapshot

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/router"
)

// UpstreamTLS is a route's upstream_tls, as written: which Secrets of its
// namespace verify the upstream and authenticate the gateway to it, and
// the server name. The certificates themselves are resolved at every build
// from the Secrets of that moment (TLSClient), so a renewed Secret is used
// without the Mapping changing.
type UpstreamTLS struct {
	Namespace    string
	CASecret     string // "" means the system roots
	ClientSecret string // "" means no client certificate
	ServerName   string
}

// key identifies the setting across routes: routes with the same one share
// a TLSClient (and the proxy a transport).
func (u *UpstreamTLS) key() string {
	return u.Namespace + "\x00" + u.CASecret + "\x00" + u.ClientSecret + "\x00" + u.ServerName
}

// TLSClient is an UpstreamTLS resolved against the Secrets: the client
// configuration to reach the upstream with, or why there is none (a
// Secret missing or unreadable), in which case requests fail closed (502)
// rather than fall back to anything weaker.
type TLSClient struct {
	Config *tls.Config
	Err    error
	// ID changes whenever what the configuration was built from changes
	// (the Secrets' contents), so a transport keyed by it is replaced when
	// a certificate is renewed and kept otherwise.
	ID string
}

// Secret data keys, as cert-manager and kubectl create secret tls write them.
const (
	secretCA   = "ca.crt"
	secretCert = corev1.TLSCertKey
	secretKey  = corev1.TLSPrivateKeyKey
)

// MaxSecretData bounds what the gateway keeps of one Secret: the values of
// its kept keys (TrimTLSSecret) together. A Secret over it is kept with no
// data at all (Data nil), so the builder can tell a Mapping's owner that
// the Secret is too large rather than that it is missing.
//
// Why 256 KiB and not more: the API server already refuses a Secret whose
// data passes 1 MiB (corev1.MaxSecretSize), so a bound of 1 MiB would never
// act. What a Mapping needs is a PEM CA bundle and a certificate chain with
// its key, a few KB each; even a whole public CA bundle (Debian's: 144
// roots, 215 KB) fits. Any tenant can create TLS Secrets and every replica
// caches all of them, so this is the most one Secret costs each replica;
// how many Secrets there are is bounded only by the cluster's
// ResourceQuotas (count/secrets).
const MaxSecretData = 256 << 10

// TrimTLSSecret is what the gateway keeps of a Secret, from the cluster
// (kube) or a file (files) alike: its identity, its type and the data keys
// ca.crt, tls.crt and tls.key. Labels, annotations (kubectl's
// last-applied-configuration holds the whole Secret again, data included),
// managedFields, owners and every other data key go: a key nobody reads is
// key material the gateway's memory should not hold. A Secret of another
// type keeps no data. Data is nil when the kept keys pass MaxSecretData and
// non-nil otherwise, even when none is there. Idempotent, as an informer's
// transform must be: a Secret without data keeps none, so one dropped for
// its size stays dropped.
func TrimTLSSecret(sec *corev1.Secret) *corev1.Secret {
	out := bareSecret(sec)
	if sec.Type != corev1.SecretTypeTLS || sec.Data == nil {
		return out
	}
	keys := [...]string{secretCA, secretCert, secretKey}
	size := 0
	for _, k := range keys {
		size += len(sec.Data[k])
	}
	if size > MaxSecretData {
		return out
	}
	out.Data = make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := sec.Data[k]; ok {
			out.Data[k] = v
		}
	}
	return out
}

// resolveUpstreamTLS builds the TLS clients the routes need from secrets.
func resolveUpstreamTLS(routes []router.Route[*Route], extra []*Route, secrets []*corev1.Secret) map[string]*TLSClient {
	var byName map[string]*corev1.Secret
	out := map[string]*TLSClient{}
	for i := range len(routes) + 1 {
		group := extra // the routes to auth services, after the table's
		if i < len(routes) {
			group = append([]*Route{routes[i].Value}, shadowRoutes(routes[i].Value)...)
		}
		for _, rt := range group {
			u := rt.TLS
			if u == nil {
				continue
			}
			k := u.key()
			if _, done := out[k]; done {
				continue
			}
			if byName == nil {
				byName = make(map[string]*corev1.Secret, len(secrets))
				for _, s := range secrets {
					if s.Type == corev1.SecretTypeTLS {
						byName[s.Namespace+"/"+s.Name] = s
					}
				}
			}
			out[k] = newTLSClient(u, byName)
		}
	}
	return out
}

func shadowRoutes(rt *Route) []*Route {
	var out []*Route
	for _, s := range rt.Shadows {
		out = append(out, s.Route)
	}
	return out
}

func newTLSClient(u *UpstreamTLS, secrets map[string]*corev1.Secret) *TLSClient {
	cfg := &tls.Config{ServerName: u.ServerName, MinVersion: tls.VersionTLS12}
	id := sha256.New()
	fmt.Fprintf(id, "%q", u.key())
	if u.CASecret != "" {
		s, ok := secrets[u.Namespace+"/"+u.CASecret]
		if !ok {
			return &TLSClient{Err: fmt.Errorf("upstream_tls: Secret %s/%s (type kubernetes.io/tls) not found", u.Namespace, u.CASecret)}
		}
		if s.Data == nil {
			return &TLSClient{Err: tooLarge(u.Namespace, u.CASecret)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.Data[secretCA]) {
			return &TLSClient{Err: fmt.Errorf("upstream_tls: Secret %s/%s has no PEM certificate in %s", u.Namespace, u.CASecret, secretCA)}
		}
		cfg.RootCAs = pool
		id.Write(s.Data[secretCA])
	}
	if u.ClientSecret != "" {
		s, ok := secrets[u.Namespace+"/"+u.ClientSecret]
		if !ok {
			return &TLSClient{Err: fmt.Errorf("upstream_tls: Secret %s/%s (type kubernetes.io/tls) not found", u.Namespace, u.ClientSecret)}
		}
		if s.Data == nil {
			return &TLSClient{Err: tooLarge(u.Namespace, u.ClientSecret)}
		}
		cert, err := tls.X509KeyPair(s.Data[secretCert], s.Data[secretKey])
		if err != nil {
			return &TLSClient{Err: fmt.Errorf("upstream_tls: Secret %s/%s: %w", u.Namespace, u.ClientSecret, err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
		id.Write(s.Data[secretCert])
		id.Write(s.Data[secretKey])
	}
	return &TLSClient{Config: cfg, ID: hex.EncodeToString(id.Sum(nil))}
}

// TLSClient returns how rt reaches its upstream over TLS: nil when it
// sets no upstream_tls (the system roots and the target's own name).
func (s *Snapshot) TLSClient(rt *Route) *TLSClient {
	if rt.TLS == nil || s == nil {
		return nil
	}
	if c, ok := s.TLS[rt.TLS.key()]; ok {
		return c
	}
	return &TLSClient{Err: fmt.Errorf("upstream_tls: not resolved in this snapshot")}
}

// tooLarge is the problem of a Secret the gateway kept without its data:
// what it keeps of one is bounded (MaxSecretData), so a tenant cannot
// make every replica hold megabytes per Secret.
func tooLarge(ns, name string) error {
	return fmt.Errorf("upstream_tls: Secret %s/%s holds more certificate data than the gateway keeps (256 KiB)", ns, name)
}
