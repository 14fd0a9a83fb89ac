package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/files"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d pipelineFlags
	d.register(fs)
	output := fs.String("o", "text", `output format: "text" (FILE:LINE:COL: message) or "json" (one array of problems)`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse validate [flags] FILE...\n\nChecks Kubernetes manifests offline with the gateway's own parser and compiler and prints\nevery problem as FILE:LINE:COL: message. Exits 1 when anything is wrong, 0 otherwise.\nA Host's certificate that is missing from the files' Secrets, unusable, expired, not yet\nvalid or not for its hostname is a warning, which alone does not fail.\n\nflags:")
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	opts, err := d.options()
	if err != nil || (*output != "text" && *output != "json") || len(paths) == 0 {
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse validate:", err)
		}
		fs.Usage()
		return 2
	}
	_, _, findings, err := compileFiles(paths, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse validate: %v\n", err)
		return 2
	}
	if *output == "json" {
		if findings == nil {
			findings = []files.Finding{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		_ = enc.Encode(findings)
	} else {
		for _, f := range findings {
			fmt.Fprintln(stdout, f.String())
		}
	}
	if hasErrors(findings) {
		return 1
	}
	return 0
}
