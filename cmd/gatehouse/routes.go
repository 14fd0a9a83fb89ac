package main

import (
	"encoding/json"
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
	output := fs.String("o", "text", `output format: "text" or "json"`)
	admin := fs.String("admin", "", "instead of reading files, ask the running gateway whose admin listener is at this address (serve's --admin: HOST:PORT or a URL)")
	var d pipelineFlags
	d.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse routes -f FILE... [flags]\n       gatehouse routes --admin ADDRESS [-o json]\n\nPrints the compiled route table in evaluation order, one route a line, then the hosts\nHost documents give TLS, one a line, with the certificate each is served and what is\nwrong with it. Problems go to stderr; exits 1 when any Service's annotations are rejected.\nWith --admin, prints what a running gateway serves, in the same formats.\n\nflags:")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	paths = append(paths, rest...)
	if *output != "text" && *output != "json" {
		fs.Usage()
		return 2
	}
	if *admin != "" {
		if err := adminOnly(fs, *admin, len(paths)); err != nil {
			fmt.Fprintln(stderr, "gatehouse routes:", err)
			return 2
		}
		var list snapshot.RouteListing
		if err := adminGet(*admin, "/api/routes", nil, &list); err != nil {
			fmt.Fprintln(stderr, "gatehouse routes:", err)
			return 1
		}
		if err := writeRouteListing(stdout, list, *output); err != nil {
			fmt.Fprintln(stderr, "gatehouse routes:", err)
			return 1
		}
		return 0
	}
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
	if err := writeRouteListing(stdout, snapshot.ListRoutes(snap, time.Now()), *output); err != nil {
		fmt.Fprintf(stderr, "gatehouse routes: %v\n", err)
		return 1
	}
	if hasErrors(findings) {
		return 1
	}
	return 0
}

// writeRouteListing prints list as routes does, whether it came from
// files or from a gateway: in text the route table, then the hosts with
// edge TLS when there are any; in JSON the listing, as the admin API's
// GET /api/routes serves it.
func writeRouteListing(w io.Writer, list snapshot.RouteListing, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if err := snapshot.WriteRouteRows(w, list.Routes); err != nil {
		return err
	}
	return writeHostRows(w, list.Hosts)
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
		return fmt.Sprintf("the certificate is for %s, not %q", strings.Join(certNames(c.DNSNames, c.Subject, 0), ", "), h.Hostname)
	}
	return ""
}

// certNames are the names a certificate is for: its DNS names (the first
// max of them when max > 0, and how many more), else its subject.
func certNames(dns []string, subject string, max int) []string {
	if len(dns) == 0 {
		return []string{subject}
	}
	if max <= 0 || len(dns) <= max {
		return dns
	}
	return append(dns[:max:max], "+"+strconv.Itoa(len(dns)-max)+" more")
}

// hostStatus is the flags of h, or "ok", with the build's reason when a
// flag alone does not say it (no certificate, the last good one, or a
// problem no flag names).
func hostStatus(h *snapshot.HostRow) string {
	s := strings.Join(h.Flags, ", ")
	if s == "" {
		s = "ok"
	}
	if h.Problem != "" && (len(h.Flags) == 0 || h.Flags[0] == snapshot.CertNone || h.Flags[0] == snapshot.CertLastGood) {
		s += ": " + h.Problem
	}
	return s
}

// writeHostRows prints, after the route table, the hosts with edge TLS,
// one a line: who declared the Host, the certificate served (names,
// SHA-256 prefix, end of validity), the policy, and a status of the
// certificate's flags. Nothing when no Host serves.
func writeHostRows(w io.Writer, hosts []*snapshot.HostRow) error {
	if len(hosts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOSTNAME\tOWNER\tSECRET\tCERTIFICATE\tSHA256\tNOT AFTER\tPLAIN HTTP\tHSTS\tMIN TLS\tCLIENT CA\tSTATUS")
	for _, h := range hosts {
		cert, sum, notAfter := "-", "-", "-"
		if c := h.Certificate; c != nil {
			cert = strings.Join(certNames(c.DNSNames, c.Subject, 2), ",")
			sum = c.SHA256[:min(16, len(c.SHA256))]
			notAfter = c.NotAfter.UTC().Format(time.DateOnly)
		}
		clientCA := "-"
		if h.ClientCASecret != "" {
			clientCA = h.ClientCASecret + " (" + h.ClientCert + ")"
		}
		fmt.Fprintf(tw, "%s\t%s Host %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Hostname, h.Service, h.Host, h.Secret,
			cert, sum, notAfter, h.Insecure, orDash(h.HSTS), h.MinTLSVersion, clientCA, hostStatus(h))
	}
	return tw.Flush()
}

// writeHosts is writeHostRows of hosts judged at now.
func writeHosts(w io.Writer, hosts []*snapshot.HostTLS, now time.Time) error {
	return writeHostRows(w, snapshot.HostRows(hosts, now))
}

// describeHost is h as explain and routes show it.
func describeHost(h *snapshot.HostTLS, now time.Time) *snapshot.HostRow {
	return snapshot.DescribeHost(h, now)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
