package main

import (
	"flag"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// compileFiles reads manifest files and compiles them with the same builder
// the gateway runs, so offline answers are the gateway's answers. Findings
// are sorted; an error means a file could not be read.
func compileFiles(paths []string, opts snapshot.Options) (*files.Manifests, *snapshot.Snapshot, []files.Finding, error) {
	all := &files.Manifests{}
	var findings []files.Finding
	for _, name := range paths {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, nil, err
		}
		m, problems := files.ParseWith(name, data, files.Options{Emissary: opts.Emissary})
		findings = append(findings, files.FileFindings(problems)...)
		all.Append(m)
	}
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{}), opts)
	snap, reports := b.Build(manifestInput(all))
	for _, r := range reports {
		findings = append(findings, all.Locate(r.Service, r.Annotation, r.Problems)...)
	}
	if !opts.Emissary {
		findings = append(findings, all.EmissaryHints()...)
	}
	files.SortFindings(findings)
	return all, snap, findings, nil
}

// manifestInput is what manifests give a build, for serve --from-dir and
// the offline commands alike, so the two cannot differ in what they read.
func manifestInput(m *files.Manifests) snapshot.Input {
	return snapshot.Input{Services: m.ServiceObjects(), Slices: m.Slices, Namespaces: m.Namespaces, Secrets: m.Secrets}
}

func hasErrors(fs []files.Finding) bool {
	for _, f := range fs {
		if !f.Warning {
			return true
		}
	}
	return false
}

// parseInterspersed lets flags follow positional arguments, as in
// "gatehouse explain -f app.yaml GET /x -H 'A: b'".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
