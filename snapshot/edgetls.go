package snapshot

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// EdgeTLS is what the gateway's TLS listener serves, as of one snapshot:
// for each hostname a Host document attached a certificate to, the
// certificate and the host's policy (plain HTTP, HSTS, minimum version,
// client certificates). It is immutable; the zero value and nil serve
// nothing.
type EdgeTLS struct {
	exact map[string]*HostTLS // hostname → its Host
	wild  map[string]*HostTLS // "example.com" → the Host of "*.example.com"
	// owners are the exact hosts a namespace owns and who may serve them
	// (tenancy.owners): a wildcard certificate never answers for an exact
	// host of a namespace other than its own.
	owners map[string][]string
	hosts  []*HostTLS // every Host, in the order they were decided
}

// HostTLS is one hostname's edge TLS: a Host document resolved against the
// Secrets of a build. Immutable once published.
type HostTLS struct {
	Hostname   string // exact, or "*." and a domain
	Namespace  string
	Service    string // namespace/name of the Service whose annotation declares it
	Annotation string // the annotation key
	Name       string // the Host document's name
	Secret     string // tls_secret
	ClientCA   string // client_ca_secret; "" when no client certificate is asked for
	// ClientCert is annotations.ClientCertRequired or ClientCertOptional
	// when ClientCA is set.
	ClientCert string
	Insecure   string // annotations.InsecureRedirect, InsecureRoute or InsecureReject
	// HSTS is the Strict-Transport-Security value answers over TLS carry;
	// "" for none.
	HSTS       string
	MinVersion uint16

	// Cert describes the certificate being served; nil when there is none
	// (handshakes for the name then get the default certificate, or are
	// refused when the gateway has none).
	Cert *CertInfo
	// Problem says why the Secret's current contents are not what is
	// served (a last good certificate, or none), or what is wrong with
	// what is; "" when all is well.
	Problem string

	cert      *tls.Certificate
	clientCAs *x509.CertPool // non-nil whenever ClientCA is set: empty refuses every client
	id        string         // identifies the policy and material, across builds

	once   sync.Once
	config *tls.Config
}

// withHSTS is a copy of h with another Strict-Transport-Security value
// (its TLS configuration made afresh when first asked for).
func (h *HostTLS) withHSTS(v string) *HostTLS {
	return &HostTLS{Hostname: h.Hostname, Namespace: h.Namespace, Service: h.Service, Annotation: h.Annotation, Name: h.Name,
		Secret: h.Secret, ClientCA: h.ClientCA, ClientCert: h.ClientCert, Insecure: h.Insecure, HSTS: v, MinVersion: h.MinVersion,
		Cert: h.Cert, Problem: h.Problem, cert: h.cert, clientCAs: h.clientCAs, id: h.id + "\x00hsts=" + v}
}

// CertInfo describes a served certificate, for routes, explain and logs.
type CertInfo struct {
	Subject   string
	Issuer    string
	DNSNames  []string
	NotBefore time.Time
	NotAfter  time.Time
	SHA256    string // of the leaf, hex
	// LastGood is set when the certificate comes from an earlier version
	// of the Secret, the current one being unusable.
	LastGood bool
	// Covers says whether the certificate is valid for the hostname.
	Covers bool
}

// Expired reports whether the certificate is outside its validity at now.
func (c *CertInfo) Expired(now time.Time) bool {
	return c != nil && (now.After(c.NotAfter) || now.Before(c.NotBefore))
}

// EdgeTLS is s.Edge, nil-safe: what the TLS listener serves.
func (s *Snapshot) EdgeTLS() *EdgeTLS {
	if s == nil {
		return nil
	}
	return s.Edge
}

// Lookup returns the Host that serves name (a TLS server name or a
// request's host, without port, any case), or nil. An exact Host wins;
// then a wildcard one label up, unless name is an exact host another
// namespace owns.
func (e *EdgeTLS) Lookup(name string) *HostTLS {
	if e == nil || name == "" {
		return nil
	}
	name = strings.TrimSuffix(lowerASCII(name), ".")
	if h := e.exact[name]; h != nil {
		return h
	}
	if len(e.wild) == 0 {
		return nil
	}
	i := strings.IndexByte(name, '.')
	if i <= 0 || name[0] == '*' {
		return nil
	}
	h := e.wild[name[i+1:]]
	if h == nil {
		return nil
	}
	if allowed, owned := e.owners[name]; owned && !slices.Contains(allowed, h.Namespace) {
		return nil
	}
	return h
}

// Hosts lists every Host, in the order their Services were decided.
func (e *EdgeTLS) Hosts() []*HostTLS {
	if e == nil {
		return nil
	}
	return e.hosts
}

// Len is how many hostnames have a Host.
func (e *EdgeTLS) Len() int {
	if e == nil {
		return 0
	}
	return len(e.hosts)
}

// HasCert reports whether h serves a certificate of its own.
func (h *HostTLS) HasCert() bool { return h != nil && h.cert != nil }

// Same reports whether h and o are one host's policy, across snapshots:
// the same Host of the same namespace. A request that needs a client
// certificate is served only on a connection whose handshake was made
// for its own Host.
func (h *HostTLS) Same(o *HostTLS) bool {
	return h != nil && o != nil && h.Namespace == o.Namespace && h.Hostname == o.Hostname
}

// ServerConfig is the configuration handshakes for h are made with: base
// (the listener's protocols and defaults) with h's certificate, minimum
// version and client authentication. Built once per HostTLS.
func (h *HostTLS) ServerConfig(base *tls.Config) *tls.Config {
	h.once.Do(func() {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*h.cert}
		c.MinVersion = max(c.MinVersion, h.MinVersion)
		if h.ClientCA != "" {
			c.ClientCAs = h.clientCAs
			c.ClientAuth = tls.RequireAndVerifyClientCert
			if h.ClientCert == annotations.ClientCertOptional {
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			// A session resumed here could have been verified against
			// another Host's CA: Go binds neither tickets nor their client
			// certificates to the server name. Hosts that authenticate
			// clients make every connection prove it.
			c.SessionTicketsDisabled = true
		}
		h.config = c
	})
	return h.config
}

// HostName is the host of a Host header (or a URL's host) without its
// port or an IPv6 literal's brackets: what Lookup takes, from the proxy
// and explain alike.
func HostName(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// lowerASCII lowercases s, allocating only when it has upper case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// unitHost is one Host document of a compiled Service.
type unitHost struct {
	src string
	h   *annotations.Host
}

// servedCert is a certificate a host served, kept so a bad renewal leaves
// it serving (Builder.certs).
type servedCert struct {
	sum  [sha256.Size]byte // of the Secret's tls.crt and tls.key
	cert *tls.Certificate
	info CertInfo
}

// edgeState is what the Builder keeps across builds for edge TLS.
type edgeState struct {
	certs map[string]*servedCert // namespace and hostname → last good
	cas   map[string]*caPool     // namespace and hostname → last good client CAs
	hosts map[string]*HostTLS    // by id: unchanged Hosts are reused, configs and all
}

type caPool struct {
	sum  [sha256.Size]byte
	pool *x509.CertPool
}

// resolveEdgeTLS builds the EdgeTLS of the Services' good configurations,
// in Build's order, against the Secrets of this build. A Secret that does
// not hold a usable certificate leaves its host on the last good one; the
// reports say so, as warnings, per Service.
func (b *Builder) resolveEdgeTLS(keys []string, services map[string]*corev1.Service, t *tenancy, secrets []*corev1.Secret, now time.Time) (*EdgeTLS, []Report) {
	if b.edge.certs == nil {
		b.edge = edgeState{certs: map[string]*servedCert{}, cas: map[string]*caPool{}, hosts: map[string]*HostTLS{}}
	}
	e := &EdgeTLS{exact: map[string]*HostTLS{}, wild: map[string]*HostTLS{}}
	var byName map[string]*corev1.Secret
	var reports []Report
	seenCert := map[string]bool{}
	seenHost := map[string]bool{}
	var subOwners map[string][]subOwner // made when a Host asks for HSTS on subdomains
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil || len(st.compiled.hosts) == 0 {
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
		ns := services[key].Namespace
		var warnings map[string]annotations.Problems
		for _, uh := range st.compiled.hosts {
			h := uh.h
			name := h.Hostname
			// Decided when the Service was accepted; checked again because
			// ownership moves when an owner's claim goes away.
			owner, may := t.mayServe(name, ns)
			if !may {
				continue
			}
			table := e.exact
			slot := name
			if h.IsWildcard() {
				table, slot = e.wild, strings.TrimPrefix(name, "*.")
			}
			if prev := table[slot]; prev != nil && (prev.Namespace == owner.namespace || ns != owner.namespace) {
				continue // the owner's Host, or the first delegate's, stays
			}
			ht, problems := b.resolveHost(ns, key, uh, byName, now)
			seenCert[ns+"/"+name] = true
			seenHost[ht.id] = true
			if h.HSTS != nil && h.HSTS.IncludeSubdomains {
				base := strings.TrimPrefix(name, "*.")
				if subOwners == nil {
					subOwners = t.subdomainOwners()
				}
				if sub, other := foreignSubdomain(subOwners, base, ns); sub != "" {
					// A copy: ht may be the cached one (kept, seen above),
					// and ownership can change back in a later build. The
					// copy is cached too, so its TLS configuration (and the
					// session tickets it issued) outlives the build.
					without := *h.HSTS
					without.IncludeSubdomains, without.Preload = false, false
					c := ht.withHSTS(hstsValue(&without))
					if same := b.edge.hosts[c.id]; same != nil && same.Problem == c.Problem && same.Annotation == c.Annotation {
						c = same
					}
					b.edge.hosts[c.id] = c
					seenHost[c.id] = true
					ht = c
					problems = append(problems, annotations.Problem{Pos: h.FieldPos("hsts"), Path: fmt.Sprintf("Host %q.hsts.include_subdomains", h.Name), Warning: true,
						Message: fmt.Sprintf("not sent: %s belongs to namespace %q, and browsers would hold it to HTTPS too; Strict-Transport-Security goes without includeSubDomains (and preload) while another namespace owns a host under %s", sub, other, base)})
				}
			}
			if prev := table[slot]; prev != nil {
				e.hosts = slices.DeleteFunc(e.hosts, func(x *HostTLS) bool { return x == prev })
			}
			table[slot] = ht
			e.hosts = append(e.hosts, ht)
			if len(problems) > 0 {
				if warnings == nil {
					warnings = map[string]annotations.Problems{}
				}
				warnings[uh.src] = append(warnings[uh.src], problems...)
			}
		}
		for _, k := range b.keys {
			if ps := warnings[k]; len(ps) > 0 {
				reports = append(reports, Report{Service: key, Annotation: k, Problems: ps, Certificates: true})
			}
		}
	}
	for k := range b.edge.certs {
		if !seenCert[k] {
			delete(b.edge.certs, k)
			delete(b.edge.cas, k)
		}
	}
	for id := range b.edge.hosts {
		if !seenHost[id] {
			delete(b.edge.hosts, id)
		}
	}
	if len(e.wild) > 0 {
		e.owners = t.owners()
	}
	return e, reports
}

// resolveHost resolves one Host against the Secrets: the certificate its
// Secret holds now when it is usable, else the last good one.
func (b *Builder) resolveHost(ns, service string, uh unitHost, secrets map[string]*corev1.Secret, now time.Time) (*HostTLS, annotations.Problems) {
	h := uh.h
	slot := ns + "/" + h.Hostname
	ht := &HostTLS{
		Hostname:   h.Hostname,
		Namespace:  ns,
		Service:    service,
		Annotation: uh.src,
		Name:       h.Name,
		Secret:     h.TLSSecret,
		ClientCA:   h.ClientCASecret,
		Insecure:   h.Insecure,
		HSTS:       hstsValue(h.HSTS),
		MinVersion: tls.VersionTLS12,
	}
	if h.MinTLSVersion == "v1.3" {
		ht.MinVersion = tls.VersionTLS13
	}
	if ht.ClientCA != "" {
		ht.ClientCert = h.ClientCert
		if ht.ClientCert == "" {
			ht.ClientCert = annotations.ClientCertRequired
		}
	}
	if ht.Insecure == "" {
		ht.Insecure = annotations.InsecureRedirect
	}
	var problems annotations.Problems
	warn := func(field, msg string) {
		problems = append(problems, annotations.Problem{Pos: h.FieldPos(field), Path: fmt.Sprintf("Host %q.%s", h.Name, field), Message: msg, Warning: true})
	}

	id := sha256.New()
	fmt.Fprintf(id, "%q %q %q %q %q %q %d %q\x00", ns, h.Hostname, service, h.Name, ht.Insecure, ht.HSTS, ht.MinVersion, ht.ClientCert)

	// The certificate.
	last := b.edge.certs[slot]
	var cur *servedCert
	var err error
	if sum, ok := pairSum(secrets[ns+"/"+h.TLSSecret]); ok && last != nil && sum == last.sum {
		// Parsed once per version of the Secret: every build resolves
		// every Host, and parsing a key costs far more than hashing it.
		cur = last
	} else {
		cur, err = loadCert(ns, h.TLSSecret, secrets, h.Hostname, now)
	}
	switch {
	case err == nil && cur.info.Covers && !cur.info.Expired(now):
		b.edge.certs[slot] = cur
	case last != nil:
		if err == nil {
			err = certFault(&cur.info, h.Hostname, now)
		}
		ht.Problem = fmt.Sprintf("%v; serving the last good certificate (%s, valid until %s)", err, last.info.SHA256[:16], last.info.NotAfter.UTC().Format(time.RFC3339))
		warn("tls_secret", ht.Problem)
		cur = &servedCert{sum: last.sum, cert: last.cert, info: last.info}
		cur.info.LastGood = true
	case err == nil:
		// Nothing better was ever served: an expired or misnamed
		// certificate is still the owner's, and clients that were told to
		// accept it can connect.
		ht.Problem = certFault(&cur.info, h.Hostname, now).Error()
		warn("tls_secret", ht.Problem)
	default:
		ht.Problem = err.Error() + "; the host has no certificate of its own (handshakes for it get the default certificate, if any)"
		warn("tls_secret", ht.Problem)
		cur = nil
	}
	if cur != nil {
		info := cur.info
		ht.Cert, ht.cert = &info, cur.cert
		id.Write(cur.sum[:])
	}

	// The client CAs: fail closed, never open. A Host that asks for client
	// certificates with no CA to check them against refuses every client.
	if ht.ClientCA != "" {
		lastCA := b.edge.cas[slot]
		var pool *x509.CertPool
		var sum [sha256.Size]byte
		var err error
		if s, ok := caSum(secrets[ns+"/"+ht.ClientCA]); ok && lastCA != nil && s == lastCA.sum {
			pool, sum = lastCA.pool, s
		} else {
			pool, sum, err = loadCA(ns, ht.ClientCA, secrets)
		}
		switch {
		case err == nil:
			b.edge.cas[slot] = &caPool{sum: sum, pool: pool}
		case lastCA != nil:
			warn("client_ca_secret", fmt.Sprintf("%v; checking client certificates against the last good CAs", err))
			pool, sum = lastCA.pool, lastCA.sum
		default:
			warn("client_ca_secret", fmt.Sprintf("%v; no client certificate can be verified, so every client is refused", err))
			pool = x509.NewCertPool()
		}
		ht.clientCAs = pool
		id.Write(sum[:])
	}
	ht.id = hex.EncodeToString(id.Sum(nil))
	if same := b.edge.hosts[ht.id]; same != nil && same.Problem == ht.Problem && same.Annotation == ht.Annotation {
		// Unchanged: keep the HostTLS, and with it the tls.Config its
		// handshakes use.
		return same, problems
	}
	b.edge.hosts[ht.id] = ht
	return ht, problems
}

// certFault says what is wrong with a certificate that parsed.
func certFault(info *CertInfo, hostname string, now time.Time) error {
	switch {
	case now.After(info.NotAfter):
		return fmt.Errorf("the certificate expired at %s", info.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(info.NotBefore):
		return fmt.Errorf("the certificate is not valid before %s", info.NotBefore.UTC().Format(time.RFC3339))
	case !info.Covers:
		return fmt.Errorf("the certificate is for %s, not %q", strings.Join(certNames(info), ", "), hostname)
	}
	return nil
}

func certNames(info *CertInfo) []string {
	if len(info.DNSNames) > 0 {
		return info.DNSNames
	}
	return []string{info.Subject}
}

// loadCert parses the certificate and key of Secret ns/name.
func loadCert(ns, name string, secrets map[string]*corev1.Secret, hostname string, now time.Time) (*servedCert, error) {
	s, ok := secrets[ns+"/"+name]
	switch {
	case !ok:
		return nil, fmt.Errorf("Secret %s/%s (type kubernetes.io/tls) not found", ns, name)
	case s.Data == nil:
		return nil, fmt.Errorf("Secret %s/%s holds more certificate data than the gateway keeps (256 KiB)", ns, name)
	}
	crt, key := s.Data[secretCert], s.Data[secretKey]
	cert, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", ns, name, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("Secret %s/%s: %w", ns, name, err)
		}
		cert.Leaf = leaf
	}
	sc := &servedCert{cert: &cert}
	sc.sum, _ = pairSum(s)
	fp := sha256.Sum256(leaf.Raw)
	sc.info = CertInfo{
		Subject:   leaf.Subject.String(),
		Issuer:    leaf.Issuer.String(),
		DNSNames:  leaf.DNSNames,
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		SHA256:    hex.EncodeToString(fp[:]),
		Covers:    covers(leaf, hostname),
	}
	return sc, nil
}

// covers reports whether leaf is valid for hostname, which may itself be a
// wildcard: then the certificate must carry that wildcard.
func covers(leaf *x509.Certificate, hostname string) bool {
	if strings.HasPrefix(hostname, "*.") {
		return slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, hostname) })
	}
	return leaf.VerifyHostname(hostname) == nil
}

// loadCA reads the CAs of Secret ns/name: ca.crt, or tls.crt when ca.crt
// is empty (a CA's own Secret, as cert-manager's CA issuers keep it).
func loadCA(ns, name string, secrets map[string]*corev1.Secret) (*x509.CertPool, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	s, ok := secrets[ns+"/"+name]
	switch {
	case !ok:
		return nil, sum, fmt.Errorf("Secret %s/%s (type kubernetes.io/tls) not found", ns, name)
	case s.Data == nil:
		return nil, sum, fmt.Errorf("Secret %s/%s holds more certificate data than the gateway keeps (256 KiB)", ns, name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM(s)) {
		return nil, sum, fmt.Errorf("Secret %s/%s has no PEM certificate in %s or %s", ns, name, secretCA, secretCert)
	}
	sum, _ = caSum(s)
	return pool, sum, nil
}

// caPEM is where a Secret keeps client CAs: ca.crt, else tls.crt.
func caPEM(s *corev1.Secret) []byte {
	if pem := s.Data[secretCA]; len(pem) > 0 {
		return pem
	}
	return s.Data[secretCert]
}

// caSum identifies the client CAs a Secret holds; false when it holds no
// data.
func caSum(s *corev1.Secret) ([sha256.Size]byte, bool) {
	if s == nil || s.Data == nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(caPEM(s)), true
}

// pairSum identifies the certificate and key a Secret holds; false when
// it holds no data.
func pairSum(s *corev1.Secret) ([sha256.Size]byte, bool) {
	var out [sha256.Size]byte
	if s == nil || s.Data == nil {
		return out, false
	}
	h := sha256.New()
	h.Write(s.Data[secretCert])
	h.Write([]byte{0})
	h.Write(s.Data[secretKey])
	h.Sum(out[:0])
	return out, true
}

// hstsValue is the Strict-Transport-Security value of h (RFC 6797).
func hstsValue(h *annotations.HSTS) string {
	if h == nil {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(h.MaxAge, 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}
