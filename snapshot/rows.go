package snapshot

import (
	"crypto/tls"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// A snapshot as `gatehouse routes` shows it, as data: the rows of the
// route table and of the hosts with edge TLS. The CLI formats them as text
// or JSON whether it compiled files itself or fetched them from a running
// gateway's admin API (GET /api/routes), so the two cannot tell different
// stories.

// RouteListing is everything routes prints: the route table in evaluation
// order, then the hosts Host documents give TLS, in the order the build
// decided them.
type RouteListing struct {
	Routes []RouteRow `json:"routes"`
	Hosts  []*HostRow `json:"hosts"`
}

// ListRoutes is s's listing, certificates judged at now (HostRow.Flags).
func ListRoutes(s *Snapshot, now time.Time) RouteListing {
	return RouteListing{Routes: RouteRows(s), Hosts: HostRows(s.EdgeTLS().Hosts(), now)}
}

// RouteRow is one route of the table. Lists are empty, never null, so a
// row decoded from JSON encodes as it was.
type RouteRow struct {
	Mapping string `json:"mapping"`
	// Host is the host a request must be for, "" for any: exact,
	// "*.suffix", or with HostRegex an RE2 expression.
	Host      string `json:"host"`
	HostRegex bool   `json:"host_regex"`
	// Kind ("prefix", "exact" or "regex") says how Path is compared with
	// the request's path, ignoring case when CaseInsensitive.
	Kind            string `json:"kind"`
	Path            string `json:"path"`
	CaseInsensitive bool   `json:"case_insensitive"`
	// Precedence, Method (an RE2 expression with MethodRegex), Headers and
	// Query are the rest of the match; zero values ask nothing.
	Precedence  int              `json:"precedence"`
	Method      string           `json:"method"`
	MethodRegex bool             `json:"method_regex"`
	Headers     []MatchCondition `json:"headers"`
	Query       []MatchCondition `json:"query"`
	// Upstream is where requests go: a URL, or "redirect HOST".
	Upstream string `json:"upstream"`
	// Rewrite replaces the matched path: a prefix or path, or
	// "s|regex|substitution|"; "" forwards the path as sent (and for
	// redirects, which forward nothing). HostRewrite replaces the Host
	// header; "" keeps the client's.
	Rewrite     string `json:"rewrite"`
	HostRewrite string `json:"host_rewrite"`
	// Weight is the route's share (percent) of its canary group, nil
	// outside one.
	Weight     *int     `json:"weight"`
	RateLimits []string `json:"rate_limits"`
	// Options are the route's settings that differ from the defaults, in
	// routes' words ("timeout=5s", "auth=users (jwt)").
	Options []string `json:"options"`
}

// MatchCondition is a header or query condition of a route: the first
// value must equal Value, or match it whole as an RE2 expression with
// Regex; with Present, the header or parameter need only be there.
type MatchCondition struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Present bool   `json:"present"`
	Regex   bool   `json:"regex"`
}

// RouteRows are the rows of s's route table in evaluation order.
func RouteRows(s *Snapshot) []RouteRow {
	routes := s.Table.Routes()
	out := make([]RouteRow, 0, len(routes))
	for _, r := range routes {
		rt := r.Value
		row := RouteRow{
			Mapping: rt.Mapping, Host: r.Host, HostRegex: r.HostRegex,
			Kind: r.Kind.String(), Path: r.Path, CaseInsensitive: r.CaseInsensitive,
			Precedence: r.Precedence, Method: r.Method, MethodRegex: r.MethodRegex,
			Headers: make([]MatchCondition, 0, len(r.Headers)), Query: make([]MatchCondition, 0, len(r.Query)),
			Upstream: upstreamOf(rt), HostRewrite: rt.HostRewrite,
			RateLimits: append([]string{}, rt.RateLimits...), Options: append([]string{}, options(rt)...),
		}
		// Values are redacted here, so the text, JSON and diagnostics
		// renderings of a row all show the same (shownValue).
		for _, h := range r.Headers {
			row.Headers = append(row.Headers, MatchCondition{Name: h.Name, Value: shownValue(h.Name, h.Value), Present: h.Present, Regex: h.Regex})
		}
		for _, q := range r.Query {
			row.Query = append(row.Query, MatchCondition{Name: q.Name, Value: shownValue(q.Name, q.Value), Present: q.Present, Regex: q.Regex})
		}
		switch {
		case rt.Redirect != nil:
		case rt.RegexRewrite != nil:
			row.Rewrite = "s|" + rt.RegexRewrite.String() + "|" + rt.Substitution + "|"
		case rt.RewriteEnabled:
			row.Rewrite = rt.Rewrite
		}
		if r.Group != "" {
			w := r.Weight
			row.Weight = &w
		}
		out = append(out, row)
	}
	return out
}

// HostText is the row's host as routes writes it: "*" for any host, "~"
// before a regular expression.
func (r RouteRow) HostText() string {
	switch {
	case r.Host == "":
		return "*"
	case r.HostRegex:
		return "~" + r.Host
	}
	return r.Host
}

// MatchText is the row's path match: kind, path, and whether case counts.
func (r RouteRow) MatchText() string {
	if r.CaseInsensitive {
		return r.Kind + " " + r.Path + " (any case)"
	}
	return r.Kind + " " + r.Path
}

// Conditions are the row's match conditions beyond host and path, in
// routes' words: precedence, method, then header and query conditions.
func (r RouteRow) Conditions() []string {
	var conds []string
	if r.Precedence != 0 {
		conds = append(conds, "precedence="+strconv.Itoa(r.Precedence))
	}
	if r.Method != "" {
		op := "="
		if r.MethodRegex {
			op = "~"
		}
		conds = append(conds, "method"+op+r.Method)
	}
	for _, h := range r.Headers {
		conds = append(conds, condition("header ", h.Name, h.Value, h.Present, h.Regex))
	}
	for _, q := range r.Query {
		conds = append(conds, condition("query ", q.Name, q.Value, q.Present, q.Regex))
	}
	return conds
}

// WriteRouteRows prints rows as a table, one route a line, "-" in a
// column with nothing to say.
func WriteRouteRows(w io.Writer, rows []RouteRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAPPING\tHOST\tMATCH\tCONDITIONS\tUPSTREAM\tREWRITE\tWEIGHT\tLIMITS\tOPTIONS")
	for _, r := range rows {
		rewrite := orDash(r.Rewrite)
		if r.HostRewrite != "" {
			rewrite += " host=" + r.HostRewrite
		}
		weight := "-"
		if r.Weight != nil {
			weight = strconv.Itoa(*r.Weight) + "%"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Mapping, r.HostText(), r.MatchText(), orDash(strings.Join(r.Conditions(), " ")),
			r.Upstream, rewrite, weight, orDash(strings.Join(r.RateLimits, ",")), orDash(strings.Join(r.Options, " ")))
	}
	return tw.Flush()
}

// What is wrong with the certificate a host serves, in the words routes,
// explain and validate use, text and JSON alike (HostRow.Flags).
const (
	// CertNone: the host has no certificate of its own; handshakes for it
	// get the gateway's default certificate, if any.
	CertNone = "NO CERTIFICATE"
	// CertLastGood: the Secret is unusable; an earlier certificate is
	// served.
	CertLastGood    = "LAST GOOD"
	CertExpired     = "EXPIRED"
	CertNotYetValid = "NOT YET VALID"
	// CertNameMismatch: the certificate does not cover the hostname.
	CertNameMismatch = "NAME MISMATCH"
)

// HostRow is a host with edge TLS: who declared it, the certificate it
// serves and its policy. Its JSON is the "host" of explain -o json's
// "tls".
type HostRow struct {
	Hostname  string `json:"hostname"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// Host is the name of the Host document, Annotation the key it is in.
	Host       string `json:"host"`
	Annotation string `json:"annotation"`
	Secret     string `json:"secret"`
	// Certificate is what handshakes for the host get; nil when it has
	// none of its own (the gateway's default certificate, if any).
	Certificate    *CertRow `json:"certificate"`
	Insecure       string   `json:"insecure"`
	HSTS           string   `json:"hsts,omitempty"`
	MinTLSVersion  string   `json:"min_tls_version"`
	ClientCASecret string   `json:"client_ca_secret,omitempty"`
	ClientCert     string   `json:"client_cert,omitempty"`
	// Flags are the Cert* words that apply; empty when all is well.
	Flags   []string `json:"flags"`
	Problem string   `json:"problem,omitempty"`
}

// CertRow describes a served certificate (CertInfo), its times in UTC.
type CertRow struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	DNSNames  []string  `json:"dns_names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"`
	LastGood  bool      `json:"last_good"`
	Covers    bool      `json:"covers"`
}

// HostRows describes hosts in their order, certificates judged at now.
func HostRows(hosts []*HostTLS, now time.Time) []*HostRow {
	out := make([]*HostRow, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, DescribeHost(h, now))
	}
	return out
}

// DescribeHost is h as a row, its certificate judged at now.
func DescribeHost(h *HostTLS, now time.Time) *HostRow {
	out := &HostRow{
		Hostname: h.Hostname, Namespace: h.Namespace, Service: h.Service, Host: h.Name, Annotation: h.Annotation,
		Secret: h.Secret, Insecure: h.Insecure, HSTS: h.HSTS, MinTLSVersion: tlsVersionName(h.MinVersion),
		ClientCASecret: h.ClientCA, ClientCert: h.ClientCert, Flags: certFlags(h, now), Problem: h.Problem,
	}
	if c := h.Cert; c != nil {
		out.Certificate = &CertRow{Subject: c.Subject, Issuer: c.Issuer, DNSNames: append([]string{}, c.DNSNames...),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), SHA256: c.SHA256, LastGood: c.LastGood, Covers: c.Covers}
	}
	return out
}

// certFlags lists what is wrong with what h serves at now. Validity is
// judged here rather than read from h.Problem: the build states a problem
// only about what it could not do better than (an expired last good
// certificate says nothing), and now is the caller's clock.
func certFlags(h *HostTLS, now time.Time) []string {
	out := []string{}
	c := h.Cert
	if c == nil {
		return append(out, CertNone)
	}
	if c.LastGood {
		out = append(out, CertLastGood)
	}
	switch {
	case now.After(c.NotAfter):
		out = append(out, CertExpired)
	case now.Before(c.NotBefore):
		out = append(out, CertNotYetValid)
	}
	if !c.Covers {
		out = append(out, CertNameMismatch)
	}
	return out
}

// tlsVersionName is how routes and explain write a minimum TLS version.
func tlsVersionName(v uint16) string {
	if v == tls.VersionTLS13 {
		return "v1.3"
	}
	return "v1.2"
}
