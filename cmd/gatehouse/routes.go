package main

import (
	"flag"
	"fmt"
	"io"

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
		fmt.Fprintln(stderr, "usage: gatehouse routes -f FILE... [flags]\n\nPrints the compiled route table in evaluation order, one route a line.\nProblems go to stderr; exits 1 when any Service's annotations are rejected.\n\nflags:")
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
	if hasErrors(findings) {
		return 1
	}
	return 0
}
