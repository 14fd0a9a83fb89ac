package snapshot

import (
	"fmt"
	"regexp/syntax"
)

// Budgets bound what one Service's annotations may cost the gateway, so
// that no tenant can make a replica run out of memory or spend everyone's
// CPU. The platform team sets them with serve's flags; the webhook, the CLI
// and the builder apply the same values. A zero field means its default
// (see DefaultBudgets); docs/security.md has the measured worst case at the
// defaults.
type Budgets struct {
	// MaxRoutes bounds the routed Mappings of one Service, all its
	// annotations together.
	MaxRoutes int
	// MaxConditions bounds the header and query conditions of one route,
	// plain and regular-expression ones together.
	MaxConditions int
	// MaxRegexes bounds the distinct regular expressions of one Service; an
	// expression written many times counts, and is compiled, once.
	MaxRegexes int
	// MaxRegexProgram bounds one compiled expression, in RE2 instructions
	// (a+ is a few; [a-z]{100} is about a hundred). The time a match takes
	// grows with the program times the input: Go's RE2 spends up to about
	// 8 ns per instruction and input byte on patterns that defeat its fast
	// paths (measured in BenchmarkWorstRegex).
	MaxRegexProgram int
	// MaxRegexTotal bounds the instructions of one Service's expressions
	// counted at every use: one request can run each use (routes that share
	// an expression share its compiled program, not its matching time).
	MaxRegexTotal int
	// MaxRegexInput bounds the bytes an expression is run on at request
	// time (a path, host, method, header or query value); a longer input
	// does not match that condition.
	MaxRegexInput int
	// MaxPrecedence bounds |precedence|. Precedence orders routes that can
	// answer the same request; on an owned host only the owner's and its
	// delegates' routes can, so it cannot reach another namespace's traffic
	// there.
	MaxPrecedence int
	// MaxRateLimits bounds the RateLimit policies of one Service; each keeps
	// a bucket table of bounded size.
	MaxRateLimits int

	// MaxHosts bounds the Host documents (edge certificates) of one
	// Service: each holds a parsed certificate chain and key in every
	// replica and costs a Secret lookup and parse at every build.
	MaxHosts int

	// MaxAuths bounds the Auth documents of one Service: each may hold a
	// parsed key set or an API key table in every replica, and each
	// jwks_uri starts a fetcher that calls out every few minutes.
	MaxAuths int
}

// DefaultBudgets are generous for hand-written annotations (the largest
// Emissary annotations we have seen hold a few dozen Mappings and a handful
// of expressions) and small enough that the worst admitted annotation
// costs a few megabytes and milliseconds, not seconds, of CPU per request
// (docs/security.md has the measured figures). MaxRegexProgram is Envoy's
// default max_program_size, which Emissary users already live within.
func DefaultBudgets() Budgets {
	return Budgets{
		MaxRoutes:       256,
		MaxConditions:   32,
		MaxRegexes:      64,
		MaxRegexProgram: 100,
		MaxRegexTotal:   1000,
		MaxRegexInput:   2048,
		MaxPrecedence:   1 << 20,
		MaxRateLimits:   64,
		MaxHosts:        64,
		MaxAuths:        16,
	}
}

// withDefaults fills zero fields from DefaultBudgets.
func (b Budgets) withDefaults() Budgets {
	d := DefaultBudgets()
	fill := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&b.MaxRoutes, d.MaxRoutes)
	fill(&b.MaxConditions, d.MaxConditions)
	fill(&b.MaxRegexes, d.MaxRegexes)
	fill(&b.MaxRegexProgram, d.MaxRegexProgram)
	fill(&b.MaxRegexTotal, d.MaxRegexTotal)
	fill(&b.MaxRegexInput, d.MaxRegexInput)
	fill(&b.MaxPrecedence, d.MaxPrecedence)
	fill(&b.MaxRateLimits, d.MaxRateLimits)
	fill(&b.MaxHosts, d.MaxHosts)
	fill(&b.MaxAuths, d.MaxAuths)
	return b
}

// regexKey is an expression as the router compiles it: a path expression
// of a case-insensitive route is folded.
type regexKey struct {
	pattern string
	fold    bool
}

// programSize is the number of RE2 instructions pattern compiles to, the
// measure of the memory an expression holds and of the work a match does
// per input byte. The router anchors expressions, which adds a handful.
func programSize(k regexKey) (int, error) {
	flags := syntax.Perl
	if k.fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(k.pattern, flags)
	if err != nil {
		return 0, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, err
	}
	return len(prog.Inst), nil
}

// budgetFlag names the serve flag that sets a budget, for messages that
// tell a user who can change it.
func budgetFlag(name string, value int) string {
	return fmt.Sprintf("%d, the platform's --%s", value, name)
}
