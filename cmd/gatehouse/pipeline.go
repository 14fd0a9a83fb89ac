package main

import (
	"flag"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// pipelineFlags are the flags that decide how annotations are compiled,
// shared by serve and every CLI command so that `validate` answers what the
// gateway would: which annotations are read (--compat=emissary adds
// getambassador.io/config, --ambassador-id picks Emissary documents), which
// hosts outside the cluster may be upstreams, and the budgets.
type pipelineFlags struct {
	compat       string
	ambassadorID string
	external     string
	budgets      snapshot.Budgets
	paths        snapshot.PathOptions
	mergeSlashes bool
}

func (d *pipelineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.compat, "compat", "", `also read another gateway's annotations: "emissary" reads getambassador.io/config`)
	fs.StringVar(&d.ambassadorID, "ambassador-id", "default", "with --compat=emissary: take documents whose ambassador_id includes this")
	fs.StringVar(&d.external, "external-upstreams", "", "hosts outside the cluster Mappings may route to, comma-separated: an exact host, *.suffix, * for any public name, or an IP address; loopback and link-local names and addresses only when listed literally (default: none)")
	fs.Var(&d.paths.EscapedSlashes, "escaped-slashes", `what to do with %2F and %5C in request paths: "reject" (400) or "keep" (route and forward them escaped, for ids such as group%2Fproject)`)
	fs.BoolVar(&d.mergeSlashes, "merge-slashes", true, "merge empty segments (//) in request paths before routing")
	def := snapshot.DefaultBudgets()
	b := &d.budgets
	fs.IntVar(&b.MaxRoutes, "max-routes-per-service", def.MaxRoutes, "routed Mappings one Service may declare")
	fs.IntVar(&b.MaxConditions, "max-conditions-per-route", def.MaxConditions, "header and query conditions one Mapping may have")
	fs.IntVar(&b.MaxRegexes, "max-regexes-per-service", def.MaxRegexes, "distinct regular expressions one Service may use")
	fs.IntVar(&b.MaxRegexProgram, "max-regex-program", def.MaxRegexProgram, "RE2 instructions one regular expression may compile to")
	fs.IntVar(&b.MaxRegexTotal, "max-regex-total", def.MaxRegexTotal, "RE2 instructions all of one Service's regular expressions may compile to")
	fs.IntVar(&b.MaxRegexInput, "max-regex-input", def.MaxRegexInput, "bytes of a path, host, method, header or query value a regular expression is run on; a longer value does not match")
	fs.IntVar(&b.MaxPrecedence, "max-precedence", def.MaxPrecedence, "largest |precedence| a Mapping may set")
	fs.IntVar(&b.MaxRateLimits, "max-rate-limits-per-service", def.MaxRateLimits, "RateLimit policies one Service may declare")
	fs.IntVar(&b.MaxHosts, "max-hosts-per-service", def.MaxHosts, "Host documents (edge certificates) one Service may declare")
	fs.IntVar(&b.MaxAuths, "max-auths-per-service", def.MaxAuths, "Auth documents one Service may declare (each jwks_uri is fetched in the background)")
}

// options are the pipeline's options from the flags.
func (d pipelineFlags) options() (snapshot.Options, error) {
	opts := snapshot.Options{Budgets: d.budgets, Paths: d.paths}
	opts.Paths.KeepEmptySegments = !d.mergeSlashes
	switch d.compat {
	case "":
	case "emissary":
		opts.Emissary, opts.AmbassadorID = true, d.ambassadorID
	default:
		return snapshot.Options{}, fmt.Errorf("--compat: unknown value %q (known: emissary)", d.compat)
	}
	for _, v := range []int{d.budgets.MaxRoutes, d.budgets.MaxConditions, d.budgets.MaxRegexes, d.budgets.MaxRegexProgram, d.budgets.MaxRegexTotal, d.budgets.MaxRegexInput, d.budgets.MaxPrecedence, d.budgets.MaxRateLimits, d.budgets.MaxHosts, d.budgets.MaxAuths} {
		if v <= 0 {
			return snapshot.Options{}, fmt.Errorf("budgets must be positive; got %d", v)
		}
	}
	p, err := upstream.ParseExternalPolicy(d.external)
	if err != nil {
		return snapshot.Options{}, fmt.Errorf("--external-upstreams: %w", err)
	}
	opts.External = p
	return opts, nil
}
