package snapshot

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/auth"
)

// Authentication kinds of an AuthSpec.
const (
	AuthJWT      = "jwt"
	AuthAPIKey   = "api_key"
	AuthExternal = "external"
)

// AuthSpec is an Auth document as compiled: what a route requires of a
// request before the Secrets of a build resolve it (RouteAuth). Immutable.
type AuthSpec struct {
	// ID identifies it across routes and builds: the Service, annotation
	// and document it came from.
	ID        string
	Namespace string
	Service   string // namespace/name
	Name      string // the Auth document's name (an Emissary AuthService's)
	Kind      string // AuthJWT, AuthAPIKey or AuthExternal

	JWT        auth.JWTSettings
	JWKSSecret string // with JWT: a SecretTypeJWKS Secret of Namespace, or
	JWKSURI    string // an https URL

	APIKey  auth.APIKeySettings
	Secrets []string // with APIKey: SecretTypeAPIKeys Secrets of Namespace

	External auth.ExternalSettings
	// Target reaches the auth service: a route of its own, compiled and
	// bound like a Mapping's (endpoints, upstream TLS), never routed.
	Target *Route

	// Namespaced marks an Emissary AuthService: it covers the Emissary
	// Mappings of Namespace that set no bypass_auth.
	Namespaced bool
	pos        func(field string) annotations.Position
	annotation string
}

// RouteAuth is an AuthSpec resolved against the Secrets of a build: the
// authenticator a request goes through. For AuthExternal the proxy makes
// the auth.External, with its transports, from Spec.External and
// Spec.Target.
type RouteAuth struct {
	Spec    *AuthSpec
	JWT     *auth.JWT
	APIKeys *auth.APIKeys
}

// JWKSSource gives the key sets of Auth documents that name a jwks_uri:
// one auth.Remote per URL, kept across builds and fetched in the
// background (the server's; it knows the dialer and the process's
// lifetime). Retain tells it which URLs the latest build uses.
type JWKSSource interface {
	Source(url string) auth.KeySource
	Retain(urls map[string]bool)
}

// compileAuth turns an Auth document of svc into an AuthSpec; field and
// message describe what is wrong when it cannot be.
func compileAuth(svc *corev1.Service, src string, a *annotations.Auth, known func(ns string) bool, opts *Options) (*AuthSpec, string, error) {
	s := &AuthSpec{
		ID:         svc.Namespace + "/" + svc.Name + "\x00" + src + "\x00" + a.Name,
		Namespace:  svc.Namespace,
		Service:    svc.Namespace + "/" + svc.Name,
		Name:       a.Name,
		Namespaced: a.Namespaced,
		pos:        a.FieldPos,
		annotation: src,
	}
	switch {
	case a.JWT != nil:
		j := a.JWT
		s.Kind = AuthJWT
		s.JWT = auth.JWTSettings{
			Issuer:          j.Issuer,
			Audiences:       j.Audiences,
			ClaimsToHeaders: j.ClaimsToHeaders,
			ConsumerClaim:   j.ConsumerClaim,
			ForwardToken:    j.ForwardToken,
		}
		if j.ClockSkewSeconds != nil {
			s.JWT.ClockSkew = time.Duration(*j.ClockSkewSeconds) * time.Second
		}
		s.JWKSSecret, s.JWKSURI = j.JWKSSecret, j.JWKSURI
		if err := s.JWT.Validate(); err != nil {
			return nil, "jwt", err
		}
	case a.APIKey != nil:
		k := a.APIKey
		s.Kind = AuthAPIKey
		s.APIKey = auth.APIKeySettings{Header: k.Header, Query: k.Query, ForwardKey: k.ForwardKey}
		s.Secrets = k.Secrets
		if err := s.APIKey.Validate(); err != nil {
			return nil, "api_key", err
		}
	case a.External != nil:
		e := a.External
		s.Kind = AuthExternal
		s.External = auth.ExternalSettings{
			PathPrefix:             e.PathPrefix,
			FailOpen:               e.FailureMode == annotations.FailureModeAllow,
			AllowedRequestHeaders:  e.AllowedRequestHeaders,
			AllowedUpstreamHeaders: e.AllowedUpstreamHeaders,
			ConsumerHeader:         e.ConsumerHeader,
			IncludeBodyBytes:       e.IncludeBodyBytes,
		}
		if e.TimeoutMS != nil {
			s.External.Timeout = time.Duration(*e.TimeoutMS) * time.Millisecond
		}
		if err := s.External.Validate(); err != nil {
			return nil, "external", err
		}
		// The auth service is reached as a Mapping's service is: the same
		// grammar, the same resolution, the same dial guard.
		m := &annotations.Mapping{Name: "auth:" + a.Name, Prefix: "/", Service: e.Service, TimeoutMS: e.TimeoutMS}
		rt, field, err := newRoute(svc, src, m, known, opts, map[string]*regexp.Regexp{})
		if err != nil {
			if field == "service" {
				field = "external.service"
			}
			return nil, field, err
		}
		s.Target = rt
	default:
		return nil, "", fmt.Errorf("an Auth needs jwt, api_key or external")
	}
	return s, "", nil
}

// AuthFor returns how rt authenticates requests in this snapshot: its own
// Auth, or for an Emissary Mapping without bypass_auth its namespace's
// AuthService; nil when requests need no authentication.
func (s *Snapshot) AuthFor(rt *Route) *RouteAuth {
	if s == nil {
		return nil
	}
	spec := rt.Auth
	if spec == nil {
		if len(s.namespaceAuth) == 0 || rt.BypassAuth || rt.Annotation != annotations.EmissaryKey {
			return nil
		}
		spec = s.namespaceAuth[rt.Namespace()]
		if spec == nil {
			return nil
		}
	}
	return s.auths[spec.ID]
}

// Namespace is the namespace of the Service rt belongs to.
func (rt *Route) Namespace() string {
	for i := 0; i < len(rt.Service); i++ {
		if rt.Service[i] == '/' {
			return rt.Service[:i]
		}
	}
	return rt.Service
}

// authCache keeps what resolving auth parsed, by the content it came from,
// so an unchanged Secret is not parsed again at every build.
type authCache struct {
	jwks map[[sha256.Size]byte]*auth.KeySet
}

// resolveAuth resolves the AuthSpecs the snapshot's routes use against
// the Secrets of this build. A Secret that is missing or unusable leaves
// its Auth refusing every credential (never accepting one), and the
// Service is told in a warning.
func (b *Builder) resolveAuth(specs []*AuthSpec, secrets []*corev1.Secret) (map[string]*RouteAuth, []Report) {
	out := map[string]*RouteAuth{}
	if len(specs) == 0 {
		if b.opts.JWKS != nil {
			b.opts.JWKS.Retain(nil)
		}
		return out, nil
	}
	if b.authCache.jwks == nil {
		b.authCache.jwks = map[[sha256.Size]byte]*auth.KeySet{}
	}
	byName := map[string]*corev1.Secret{}
	for _, sec := range secrets {
		if sec.Type == SecretTypeJWKS || sec.Type == SecretTypeAPIKeys {
			byName[string(sec.Type)+"\x00"+sec.Namespace+"/"+sec.Name] = sec
		}
	}
	warnings := map[string]map[string]annotations.Problems{} // Service → annotation → problems
	warn := func(s *AuthSpec, field, msg string) {
		if warnings[s.Service] == nil {
			warnings[s.Service] = map[string]annotations.Problems{}
		}
		warnings[s.Service][s.annotation] = append(warnings[s.Service][s.annotation], annotations.Problem{
			Pos: s.pos(field), Path: fmt.Sprintf("Auth %q.%s", s.Name, field), Message: msg, Warning: true})
	}
	urls := map[string]bool{}
	usedJWKS := map[[sha256.Size]byte]bool{}
	for _, s := range specs {
		if _, done := out[s.ID]; done {
			continue
		}
		ra := &RouteAuth{Spec: s}
		switch s.Kind {
		case AuthJWT:
			var keys auth.KeySource = (*auth.KeySet)(nil)
			switch {
			case s.JWKSURI != "" && b.opts.JWKS != nil:
				urls[s.JWKSURI] = true
				keys = b.opts.JWKS.Source(s.JWKSURI)
			case s.JWKSSecret != "":
				sec := byName[string(SecretTypeJWKS)+"\x00"+s.Namespace+"/"+s.JWKSSecret]
				switch {
				case sec == nil:
					warn(s, "jwt.jwks_secret", fmt.Sprintf("Secret %s/%s (type %s) not found; every token is refused", s.Namespace, s.JWKSSecret, SecretTypeJWKS))
				case sec.Data == nil:
					warn(s, "jwt.jwks_secret", fmt.Sprintf("Secret %s/%s holds more than the gateway keeps (256 KiB); every token is refused", s.Namespace, s.JWKSSecret))
				default:
					sum := sha256.Sum256(sec.Data[JWKSKey])
					set, ok := b.authCache.jwks[sum]
					if !ok {
						var err error
						if set, err = auth.ParseJWKS(sec.Data[JWKSKey]); err != nil {
							warn(s, "jwt.jwks_secret", fmt.Sprintf("Secret %s/%s: %v; every token is refused", s.Namespace, s.JWKSSecret, err))
							set = nil
						}
						b.authCache.jwks[sum] = set
					}
					usedJWKS[sum] = true
					if set != nil {
						keys = set
					}
				}
			}
			settings := s.JWT
			settings.Cache, settings.CacheScope = b.tokens, s.ID
			ra.JWT = auth.NewJWT(settings, keys)
		case AuthAPIKey:
			table := auth.KeyTable{}
			for _, name := range s.Secrets {
				sec := byName[string(SecretTypeAPIKeys)+"\x00"+s.Namespace+"/"+name]
				switch {
				case sec == nil:
					warn(s, "api_key.secrets", fmt.Sprintf("Secret %s/%s (type %s) not found; its keys are refused", s.Namespace, name, SecretTypeAPIKeys))
					continue
				case sec.Data == nil:
					warn(s, "api_key.secrets", fmt.Sprintf("Secret %s/%s lists more than %d keys, or was read without a key hash; its keys are refused", s.Namespace, name, MaxAPIKeys))
					continue
				}
				consumers := make([]string, 0, len(sec.Data))
				for c := range sec.Data {
					consumers = append(consumers, c)
				}
				slices.Sort(consumers) // which consumer a repeated key names must not depend on map order
				for _, c := range consumers {
					var sum [32]byte
					if copy(sum[:], sec.Data[c]) != len(sum) {
						continue
					}
					if other, dup := table[sum]; dup {
						warn(s, "api_key.secrets", fmt.Sprintf("consumers %q and %q have the same key; it names %q", other, c, other))
						continue
					}
					table[sum] = c
				}
			}
			ra.APIKeys = auth.NewAPIKeys(s.APIKey, b.opts.KeyHasher, table)
		}
		out[s.ID] = ra
	}
	for sum := range b.authCache.jwks {
		if !usedJWKS[sum] {
			delete(b.authCache.jwks, sum)
		}
	}
	if b.opts.JWKS != nil {
		b.opts.JWKS.Retain(urls)
	}
	var reports []Report
	for _, svc := range sortedKeys(warnings) {
		for _, key := range b.keys {
			if ps := warnings[svc][key]; len(ps) > 0 {
				reports = append(reports, Report{Service: svc, Annotation: key, Problems: ps, AuthSecrets: true})
			}
		}
	}
	return out, reports
}
