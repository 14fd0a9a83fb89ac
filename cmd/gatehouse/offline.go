package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/annotations"
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
	hash := keyHasher(&opts)
	for _, name := range paths {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, nil, err
		}
		m, problems := files.ParseWith(name, data, files.Options{Emissary: opts.Emissary, HashKey: hash})
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
	findings = append(findings, servedCertFindings(all, opts, snap.EdgeTLS().Hosts(), findings, time.Now())...)
	files.SortFindings(findings)
	return all, snap, findings, nil
}

// servedCertFindings are warnings, at each Host's tls_secret, about
// certificates served although at now they are expired, not yet valid or
// for another name, when the build has not said so already: the build
// warns about the certificate a Secret holds, and about one it serves for
// want of a better, as of its own clock; not about a last good
// certificate it serves instead of an unusable Secret, nor about one that
// went bad between its clock and now.
func servedCertFindings(m *files.Manifests, opts snapshot.Options, hosts []*snapshot.HostTLS, have []files.Finding, now time.Time) []files.Finding {
	var out []files.Finding
	for _, h := range hosts {
		fault := certFault(h, now)
		if fault == "" || (h.Problem != "" && !h.Cert.LastGood) {
			continue
		}
		if h.Cert.LastGood {
			fault += " (the last good certificate, served while the Secret's is unusable)"
		}
		p := annotations.Problem{Pos: hostFieldPos(m, opts, h, "tls_secret"), Path: fmt.Sprintf("Host %q.tls_secret", h.Name), Message: fault, Warning: true}
		for _, f := range m.Locate(h.Service, h.Annotation, annotations.Problems{p}) {
			if !slices.Contains(have, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// hostFieldPos is where field of the Host document h comes from was
// written, inside its annotation; the annotation's start when it cannot
// be found. Builds keep no positions for accepted Hosts, so the
// annotation is parsed again, as the builder parses it (snapshot's
// Options.parseOptions, which is not exported).
func hostFieldPos(m *files.Manifests, opts snapshot.Options, h *snapshot.HostTLS, field string) annotations.Position {
	start := annotations.Position{Line: 1, Column: 1}
	s := m.Lookup(h.Service)
	if s == nil {
		return start
	}
	text, ok := s.Annotation(h.Annotation)
	if !ok {
		return start
	}
	po := annotations.Options{Namespace: h.Namespace}
	if h.Annotation == annotations.EmissaryKey {
		po.Dialect, po.AmbassadorID = annotations.Emissary, opts.AmbassadorID
	}
	cfg, _ := annotations.Parse(text, po)
	if cfg == nil {
		return start
	}
	for i := range cfg.Hosts {
		if x := &cfg.Hosts[i]; x.Name == h.Name && x.Hostname == h.Hostname {
			return x.FieldPos(field)
		}
	}
	return start
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
