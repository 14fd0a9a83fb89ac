package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

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
	var d pipelineFlags
	d.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse explain -f FILE... [flags] METHOD URL\n\nTells which route a request would take and what the upstream would receive.\nURL is http://host/path?query or /path?query.\n\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	opts, err := d.options()
	if err != nil || len(pos) != 2 || len(paths) == 0 || (*output != "text" && *output != "json") {
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
		}
		fs.Usage()
		return 2
	}
	req, err := http.NewRequest(strings.ToUpper(pos[0]), pos[1], nil)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	_, snap, findings, err := compileFiles(paths, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	for _, f := range findings {
		fmt.Fprintln(stderr, f.String())
	}
	e := snapshot.Explain(snap, req)
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(e)
	} else {
		writeExplanation(stdout, req, e)
	}
	// Like validate and routes: a rejected annotation fails the command,
	// while the answer still shows what the rest of the configuration does.
	if hasErrors(findings) {
		return 1
	}
	return 0
}

func writeExplanation(w io.Writer, req *http.Request, e snapshot.Explanation) {
	fmt.Fprintf(w, "%s %s%s\n", req.Method, req.Host, req.URL.RequestURI())
	if !e.Matched {
		fmt.Fprintf(w, "  no route: the gateway answers %d\n", e.Status)
		return
	}
	row := func(k, v string) { fmt.Fprintf(w, "  %-10s %s\n", k, v) }
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
	for _, g := range e.Group {
		row("group", fmt.Sprintf("%3d%% %s → %s", g.Weight, g.Mapping, g.Upstream))
	}
	for _, warn := range e.Warnings {
		row("warning", warn)
	}
}
