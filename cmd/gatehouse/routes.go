package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

func routesCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("routes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths fileList
	fs.Var(&paths, "f", "manifest file (repeatable)")
	var d pipelineFlags
	d.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse routes -f FILE... [flags]\n\nPrints the compiled route table in evaluation order, one route a line, then the hosts\nHost documents give TLS, one a line, with the certificate each is served and what is\nwrong with it. Problems go to stderr; exits 1 when any Service's annotations are rejected.\n\nflags:")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	paths = append(paths, rest...)
	opts, err := d.options()
	if err != nil || len(paths) == 0 {
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse routes:", err)
		}
		fs.Usage()
		return 2
	}
	_, snap, findings, err := compileFiles(paths, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse routes: %v\n", err)
		return 2
	}
	for _, f := range findings {
		fmt.Fprintln(stderr, f.String())
	}
	if err := snapshot.WriteRoutes(stdout, snap); err != nil {
		fmt.Fprintf(stderr, "gatehouse routes: %v\n", err)
		return 1
	}
	if err := writeHosts(stdout, snap.EdgeTLS().Hosts(), time.Now()); err != nil {
		fmt.Fprintf(stderr, "gatehouse routes: %v\n", err)
		return 1
	}
	if hasErrors(findings) {
		return 1
	}
	return 0
}

// Certificate flags: what is wrong with what a host serves, in the words
// routes, explain and validate all use (text and JSON alike).
const (
	flagNoCert   = "NO CERTIFICATE" // none of its own: the default certificate, if any
	flagLastGood = "LAST GOOD"      // the Secret is unusable; an earlier certificate is served
	flagExpired  = "EXPIRED"
	flagEarly    = "NOT YET VALID"
	flagMismatch = "NAME MISMATCH" // the certificate does not cover the hostname
)

// certFlags lists what is wrong with what h serves at now, nil when
// nothing is. Validity is judged here rather than read from h.Problem: the
// build states a problem only about what it could not do better than
// (an expired last good certificate says nothing), and now is the
// command's clock.
func certFlags(h *snapshot.HostTLS, now time.Time) []string {
	c := h.Cert
	if c == nil {
		return []string{flagNoCert}
	}
	var out []string
	if c.LastGood {
		out = append(out, flagLastGood)
	}
	switch {
	case now.After(c.NotAfter):
		out = append(out, flagExpired)
	case now.Before(c.NotBefore):
		out = append(out, flagEarly)
	}
	if !c.Covers {
		out = append(out, flagMismatch)
	}
	return out
}

// certFault says, as the build's warnings do, why the certificate h
// serves should not be served at now; "" when it may.
func certFault(h *snapshot.HostTLS, now time.Time) string {
	c := h.Cert
	if c == nil {
		return ""
	}
	switch {
	case now.After(c.NotAfter):
		return "the certificate expired at " + c.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(c.NotBefore):
		return "the certificate is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	case !c.Covers:
		return fmt.Sprintf("the certificate is for %s, not %q", strings.Join(certNames(c, 0), ", "), h.Hostname)
	}
	return ""
}

// certNames are the names a certificate is for: its DNS names (the first
// max of them when max > 0, and how many more), else its subject.
func certNames(c *snapshot.CertInfo, max int) []string {
	if len(c.DNSNames) == 0 {
		return []string{c.Subject}
	}
	if max <= 0 || len(c.DNSNames) <= max {
		return c.DNSNames
	}
	return append(c.DNSNames[:max:max], "+"+strconv.Itoa(len(c.DNSNames)-max)+" more")
}

// hostStatus is the flags of h, or "ok", with the build's reason when a
// flag alone does not say it (no certificate, the last good one, or a
// problem no flag names).
func hostStatus(h *snapshot.HostTLS, flags []string) string {
	s := strings.Join(flags, ", ")
	if s == "" {
		s = "ok"
	}
	if h.Problem != "" && (len(flags) == 0 || flags[0] == flagNoCert || flags[0] == flagLastGood) {
		s += ": " + h.Problem
	}
	return s
}

func tlsVersion(v uint16) string {
	if v == tls.VersionTLS13 {
		return "v1.3"
	}
	return "v1.2"
}

// writeHosts prints, after the route table, the hosts with edge TLS in
// the order the build decided them, one a line: who declared the Host,
// the certificate served (names, SHA-256 prefix, end of validity), the
// policy, and a status of certFlags. Nothing when no Host serves.
func writeHosts(w io.Writer, hosts []*snapshot.HostTLS, now time.Time) error {
	if len(hosts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOSTNAME\tOWNER\tSECRET\tCERTIFICATE\tSHA256\tNOT AFTER\tPLAIN HTTP\tHSTS\tMIN TLS\tCLIENT CA\tSTATUS")
	for _, h := range hosts {
		cert, sum, notAfter := "-", "-", "-"
		if c := h.Cert; c != nil {
			cert = strings.Join(certNames(c, 2), ",")
			sum = c.SHA256[:min(16, len(c.SHA256))]
			notAfter = c.NotAfter.UTC().Format(time.DateOnly)
		}
		clientCA := "-"
		if h.ClientCA != "" {
			clientCA = h.ClientCA + " (" + h.ClientCert + ")"
		}
		fmt.Fprintf(tw, "%s\t%s Host %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Hostname, h.Service, h.Name, h.Secret,
			cert, sum, notAfter, h.Insecure, orDash(h.HSTS), tlsVersion(h.MinVersion), clientCA, hostStatus(h, certFlags(h, now)))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// hostJSON is a host with edge TLS as explain -o json reports it.
type hostJSON struct {
	Hostname  string `json:"hostname"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// Host is the name of the Host document, Annotation the key it is in.
	Host       string `json:"host"`
	Annotation string `json:"annotation"`
	Secret     string `json:"secret"`
	// Certificate is what handshakes for the host get; null when it has
	// none of its own (the gateway's default certificate, if any).
	Certificate    *certJSON `json:"certificate"`
	Insecure       string    `json:"insecure"`
	HSTS           string    `json:"hsts,omitempty"`
	MinTLSVersion  string    `json:"min_tls_version"`
	ClientCASecret string    `json:"client_ca_secret,omitempty"`
	ClientCert     string    `json:"client_cert,omitempty"`
	// Flags are certFlags' words; empty when all is well.
	Flags   []string `json:"flags"`
	Problem string   `json:"problem,omitempty"`
}

type certJSON struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	DNSNames  []string  `json:"dns_names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"`
	LastGood  bool      `json:"last_good"`
	Covers    bool      `json:"covers"`
}

func describeHost(h *snapshot.HostTLS, now time.Time) *hostJSON {
	out := &hostJSON{
		Hostname: h.Hostname, Namespace: h.Namespace, Service: h.Service, Host: h.Name, Annotation: h.Annotation,
		Secret: h.Secret, Insecure: h.Insecure, HSTS: h.HSTS, MinTLSVersion: tlsVersion(h.MinVersion),
		ClientCASecret: h.ClientCA, ClientCert: h.ClientCert, Flags: certFlags(h, now), Problem: h.Problem,
	}
	if out.Flags == nil {
		out.Flags = []string{}
	}
	if c := h.Cert; c != nil {
		names := c.DNSNames
		if names == nil {
			names = []string{}
		}
		out.Certificate = &certJSON{Subject: c.Subject, Issuer: c.Issuer, DNSNames: names, NotBefore: c.NotBefore.UTC(),
			NotAfter: c.NotAfter.UTC(), SHA256: c.SHA256, LastGood: c.LastGood, Covers: c.Covers}
	}
	return out
}
