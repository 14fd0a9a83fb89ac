package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// headerList is a repeatable -H 'Name: value' flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "; ") }
func (h *headerList) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	*h = append(*h, v)
	return nil
}

func explainCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths fileList
	var headers headerList
	fs.Var(&paths, "f", "manifest file (repeatable)")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable; 'Host: x' sets the host)")
	output := fs.String("o", "text", `output format: "text" or "json"`)
	admin := fs.String("admin", "", "instead of reading files, ask the running gateway whose admin listener is at this address (serve's --admin: HOST:PORT or a URL)")
	var d pipelineFlags
	d.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse explain -f FILE... [flags] METHOD URL\n       gatehouse explain --admin ADDRESS [-o json] [-H 'Name: value']... METHOD URL\n\nTells which route a request would take and what the upstream would receive.\nURL is http://host/path?query, https://host/path?query (a request over TLS: the\ncertificate and policy of the host's Host) or /path?query (plain HTTP).\nWith --admin, a running gateway answers from the configuration it serves, in the same\nformats; nothing is sent to any upstream.\n\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 || (*output != "text" && *output != "json") {
		fs.Usage()
		return 2
	}
	req, err := snapshot.ExplainRequest(pos[0], pos[1], headers)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	if *admin != "" {
		if err := adminOnly(fs, *admin, len(paths)); err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
			return 2
		}
		// The gateway reads the request as ExplainRequest just did here.
		q := url.Values{"method": {pos[0]}, "url": {pos[1]}, "header": []string(headers)}
		var rep snapshot.ExplainReport
		if err := adminGet(*admin, "/api/explain", q, &rep); err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
			return 1
		}
		if err := writeExplainReport(stdout, rep, *output); err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
			return 1
		}
		return 0
	}
	opts, err := d.options()
	if err != nil || len(paths) == 0 {
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
		}
		fs.Usage()
		return 2
	}
	_, snap, findings, err := compileFiles(paths, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	for _, f := range findings {
		fmt.Fprintln(stderr, f.String())
	}
	if err := writeExplainReport(stdout, snapshot.NewExplainReport(snap, req, time.Now()), *output); err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 1
	}
	// Like validate and routes: a rejected annotation fails the command,
	// while the answer still shows what the rest of the configuration does.
	if hasErrors(findings) {
		return 1
	}
	return 0
}

// writeExplainReport prints rep as explain does, whether it came from
// files or from a gateway: in JSON explain's document
// (snapshot.MarshalExplanation), else in words.
func writeExplainReport(w io.Writer, rep snapshot.ExplainReport, format string) error {
	if format == "json" {
		doc, err := snapshot.MarshalExplanation(rep.Explanation, rep.Edge)
		if err != nil {
			return err
		}
		_, err = w.Write(append(doc, '\n'))
		return err
	}
	writeExplanation(w, rep)
	return nil
}

func writeExplanation(w io.Writer, rep snapshot.ExplainReport) {
	e, edge := rep.Explanation, rep.Edge
	fmt.Fprintf(w, "%s %s%s\n", rep.Method, rep.Host, rep.Target)
	row := func(k, v string) { fmt.Fprintf(w, "  %-10s %s\n", k, v) }
	if edge != nil {
		writeEdge(row, edge)
		if edge.Answered {
			if e.Redirect != "" {
				row("redirect", fmt.Sprintf("%d %s", e.Status, e.Redirect))
			} else {
				row("answer", fmt.Sprintf("%d %s", e.Status, e.Reason))
			}
			return
		}
	}
	if !e.Matched {
		fmt.Fprintf(w, "  no route: the gateway answers %d\n", e.Status)
		return
	}
	row("mapping", e.Mapping)
	if e.Redirect != "" {
		row("redirect", fmt.Sprintf("%d %s", e.Status, e.Redirect))
	} else {
		row("upstream", e.Upstream)
		row("path", e.Path)
		row("host", e.Host)
	}
	if len(e.RateLimits) > 0 {
		row("limits", strings.Join(e.RateLimits, ", "))
	}
	if e.Auth != "" {
		row("auth", e.Auth)
	}
	for _, g := range e.Group {
		row("group", fmt.Sprintf("%3d%% %s → %s", g.Weight, g.Mapping, g.Upstream))
	}
	for _, warn := range e.Warnings {
		row("warning", warn)
	}
}

// writeEdge prints the Host of a request and what it does: who declared
// it, over TLS the certificate the handshake got (with its flags),
// and the policy.
func writeEdge(row func(k, v string), x *snapshot.EdgeExplanation) {
	if h := x.Host; h != nil {
		row("tls", fmt.Sprintf("%s: Host %q of Service %s, Secret %s", x.Hostname, h.Host, h.Service, h.Secret))
	} else {
		row("tls", x.Hostname+": no Host")
	}
	if x.Scheme == "https" {
		h, prefix := x.Host, ""
		if x.ServerName != "" {
			h, prefix = x.HandshakeHost, fmt.Sprintf("for TLS server name %s: ", x.ServerName)
		}
		if h != nil {
			row("cert", prefix+certSummary(h))
		} else {
			row("cert", prefix+"the gateway's default certificate, if any")
		}
	}
	row("policy", x.Policy)
}

// certSummary is one line on the certificate h serves: its names, SHA-256
// prefix, end of validity, and its flags or "ok", with the build's
// reason when there is none or it is the last good one.
func certSummary(h *snapshot.HostRow) string {
	c := h.Certificate
	if c == nil {
		return snapshot.CertNone + ": " + h.Problem
	}
	names := certNames(c.DNSNames, c.Subject, 0)
	status := "ok"
	if len(h.Flags) > 0 {
		status = strings.Join(h.Flags, ", ")
	}
	s := fmt.Sprintf("%s, sha256 %s, not after %s: %s", strings.Join(names, ","), c.SHA256[:min(16, len(c.SHA256))], c.NotAfter.Format(time.DateOnly), status)
	if c.LastGood && h.Problem != "" {
		s += " (" + h.Problem + ")"
	}
	return s
}
