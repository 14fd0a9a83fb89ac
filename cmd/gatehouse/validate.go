package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse validate FILE...\n\nChecks Kubernetes manifests offline and prints every problem as FILE:LINE:COL: message.\nExits 1 when anything is wrong, 0 otherwise.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	all := &files.Manifests{}
	var findings []files.Finding
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse validate: %v\n", err)
			return 2
		}
		m, problems := files.Parse(name, data)
		findings = append(findings, files.FileFindings(problems)...)
		all.Services = append(all.Services, m.Services...)
		all.Slices = append(all.Slices, m.Slices...)
	}
	// The same builder the gateway runs, so validate rejects exactly what
	// serve would (cross-namespace targets, host and path takeovers too).
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{}))
	_, reports, err := b.Build(snapshot.Input{Services: all.ServiceObjects(), Slices: all.Slices})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse validate: %v\n", err)
		return 1
	}
	for _, r := range reports {
		findings = append(findings, all.Locate(r.Service, r.Problems)...)
	}
	files.SortFindings(findings)
	failed := false
	for _, f := range findings {
		fmt.Fprintln(stdout, f.String())
		failed = failed || !f.Warning
	}
	if failed {
		return 1
	}
	return 0
}
