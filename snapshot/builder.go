package snapshot

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Input is the cluster state a snapshot is built from.
type Input struct {
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
	// Namespaces matter for their annotations.GrantKey annotations only:
	// a Mapping may route into another namespace that grants it.
	Namespaces []*corev1.Namespace
	// Secrets are the Secrets of type kubernetes.io/tls the gateway can
	// read, their data trimmed to ca.crt, tls.crt and tls.key: what
	// upstream_tls names (TLSClient). Data is nil exactly when the kept
	// keys exceeded MaxSecretData (TrimTLSSecret).
	Secrets []*corev1.Secret
}

// Report says what happened to one annotation of one Service in a build.
type Report struct {
	Service    string // "namespace/name"
	Annotation string // the annotation key the problems are in
	// Problems of the annotation, positions relative to the annotation
	// string. Compile-time problems (a cross-namespace target, a host and
	// path another namespace owns, a canary group over 100%) point at the
	// Mapping's field.
	Problems annotations.Problems
	// Rejected is true when the Service's current annotations have errors;
	// the Service then serves its last good configuration, or nothing if it
	// never had one.
	Rejected bool
	// ServingLastGood is true when a rejected Service still serves routes
	// from earlier annotations.
	ServingLastGood bool
	// Certificates marks a report about the Secrets of an accepted
	// Service's Host documents: its Problems are warnings saying which
	// certificate could not be served as the Secret is now, and what is
	// served instead (the last good one, or none).
	Certificates bool
	// AuthSecrets marks a report about the Secrets an accepted Service's
	// Auth documents name (a JWKS, API keys): warnings saying what could
	// not be used, which the Auth then refuses.
	AuthSecrets bool
}

// Builder turns Inputs into Snapshots. It remembers each Service's last good
// configuration so a bad edit never takes routes down, and it owns the limiter
// and upstream registries so bucket and breaker state survive rebuilds. A
// Builder is used by one goroutine.
type Builder struct {
	opts      Options
	keys      []string // annotation keys read, in order
	limiters  *limiter.Registry
	upstreams *upstream.Registry
	regexes   *router.RegexCache // compiled expressions, kept across rebuilds
	services  map[string]*serviceState
	gates     map[string]*upstream.Gate         // by route ID and thresholds, kept across rebuilds
	targets   map[string]annotations.ServiceRef // upstream ID → target, as last compiled
	resolved  map[string]resolvedFrom           // upstream ID → what its endpoints came from
	edge      edgeState                         // last good edge certificates
	authCache authCache                         // key sets parsed, by content
	tokens    *auth.TokenCache                  // verified JWTs, for every Auth, across builds
	// now is the clock certificates' validity is judged by; package
	// tests set it.
	now        func() time.Time
	last       *Snapshot // the last snapshot built
	generation uint64
	accepted   uint64 // Services accepted so far: the order of their claims
}

// sourced is one annotation's parsed configuration.
type sourced struct {
	key string
	cfg *annotations.Config
}

type serviceState struct {
	// parsed holds, for each of the Builder's keys in order, what the
	// annotation last said. A slice of one or two rather than maps keyed by
	// annotation: at 10,000 Services three small maps each were megabytes.
	parsed   []parsedAnnotation
	good     []sourced        // what this Service serves
	claims   claims           // the hosts and shared paths good holds
	weights  map[string]int   // canary group → explicit weight good adds
	compiled *compiledService // good as routes
	since    uint64           // when good was first accepted (Builder.accepted); 0 never
}

// parsedAnnotation is one annotation of a Service as last parsed.
type parsedAnnotation struct {
	present  bool
	text     string
	cfg      *annotations.Config // nil when invalid
	problems annotations.Problems
}

// problemsOf returns the parse problems of annotation key.
func (b *Builder) problemsOf(st *serviceState, key string) annotations.Problems {
	for i, k := range b.keys {
		if k == key {
			return st.parsed[i].problems
		}
	}
	return nil
}

// NewBuilder returns a Builder that keeps limiter and upstream state in the
// given registries.
func NewBuilder(limiters *limiter.Registry, upstreams *upstream.Registry, opts Options) *Builder {
	return &Builder{
		opts:      opts,
		keys:      opts.Keys(),
		limiters:  limiters,
		upstreams: upstreams,
		regexes:   router.NewRegexCache(),
		services:  map[string]*serviceState{},
		gates:     map[string]*upstream.Gate{},
		targets:   map[string]annotations.ServiceRef{},
		resolved:  map[string]resolvedFrom{},
		now:       time.Now,
		tokens:    auth.NewTokenCache(0, 0),
	}
}

// Build compiles in into a new Snapshot. It succeeds for every input: a
// Service whose annotations do not parse, do not compile, exceed a budget
// or break a cross-namespace rule is rejected on its own and keeps serving
// its last good configuration; nothing else is affected. Only Services
// whose annotations changed since the last Build are compiled again.
// Reports cover every annotation that changed or has problems.
func (b *Builder) Build(in Input) (*Snapshot, []Report) {
	services := make(map[string]*corev1.Service, len(in.Services))
	// Incumbents first, in the order they were first accepted, then
	// newcomers by creation time, then by name: the order in which
	// Services claim hosts and paths, so a newcomer never displaces an
	// incumbent. The sort keys are gathered first: looking them up in
	// maps inside the comparison cost more than the rest of a rebuild.
	type entry struct {
		since   uint64 // 0 for a newcomer
		created time.Time
		key     string
	}
	var order []entry
	for _, svc := range in.Services {
		key := svc.Namespace + "/" + svc.Name
		if _, dup := services[key]; dup {
			continue // first one wins; files may repeat a Service by mistake
		}
		services[key] = svc
		if b.annotated(svc) {
			e := entry{created: svc.CreationTimestamp.Time, key: key}
			if st := b.services[key]; st != nil && st.good != nil {
				e.since = st.since
			}
			order = append(order, e)
		}
	}
	slices.SortFunc(order, func(a, b entry) int {
		switch {
		case a.since != b.since && (a.since == 0 || b.since == 0):
			return cmp.Compare(b.since, a.since) // incumbents first
		case a.since != b.since:
			return cmp.Compare(a.since, b.since)
		}
		return cmp.Or(a.created.Compare(b.created), strings.Compare(a.key, b.key))
	})
	keys := make([]string, len(order))
	for i, e := range order {
		keys[i] = e.key
	}

	// Forget Services that are gone or lost their annotations.
	for key := range b.services {
		if svc, ok := services[key]; !ok || !b.annotated(svc) {
			delete(b.services, key)
		}
	}

	// What incumbents hold stands before any change is considered.
	t := newTenancy(in.Namespaces, services)
	for _, key := range keys {
		if st := b.services[key]; st != nil && st.good != nil {
			t.hold(services[key].Namespace, key, st.claims, st.weights)
		}
	}

	// Each Service is decided against the Services decided before it;
	// what is accepted is held at once, so later ones see it, and committed
	// only after the precedence rule has seen every route (precedenceAfterAll).
	type decision struct {
		key       string
		changed   map[string]bool
		all       map[string]annotations.Problems
		candidate []sourced // nil when rejected
		accepted  bool      // candidate is new and held in t
		u         *unit
		cl        claims
		weights   map[string]int
	}
	decisions := make([]decision, 0, len(keys))
	for _, key := range keys {
		svc := services[key]
		st := b.services[key]
		if st == nil {
			st = &serviceState{parsed: make([]parsedAnnotation, len(b.keys))}
			b.services[key] = st
		}
		d := decision{key: key, all: map[string]annotations.Problems{}}
		d.changed, d.candidate = b.parse(svc, st)
		for i, k := range b.keys {
			if ps := st.parsed[i].problems; len(ps) > 0 {
				d.all[k] = append(annotations.Problems(nil), ps...)
			}
		}
		if d.candidate != nil && !sameSources(d.candidate, st.good) {
			u, cl, weights, problems := b.decide(svc, st, d.candidate, t)
			for k, ps := range problems {
				d.all[k] = append(d.all[k], ps...)
			}
			if anyErrors(problems) {
				d.candidate = nil
			} else {
				t.release(svc.Namespace, key, st.claims)
				t.hold(svc.Namespace, key, cl, weights)
				d.accepted, d.u, d.cl, d.weights = true, u, cl, weights
			}
		}
		decisions = append(decisions, d)
	}
	// Taking a route back can only leave fewer routes to outrank, so this
	// settles; it loops for the rare chain where one rollback restores a
	// Service's earlier routes that another new route outranks.
	for again := true; again; {
		again = false
		for i := range decisions {
			d := &decisions[i]
			if !d.accepted {
				continue
			}
			st := b.services[d.key]
			problems := t.precedenceAfterAll(d.u, st.claims.routes)
			if problems == nil {
				continue
			}
			ns := services[d.key].Namespace
			t.release(ns, d.key, d.cl)
			if st.good != nil {
				t.hold(ns, d.key, st.claims, st.weights)
			}
			for k, ps := range problems {
				d.all[k] = append(d.all[k], ps...)
			}
			d.accepted, d.candidate, d.u = false, nil, nil
			again = true
		}
	}

	var reports []Report
	for i := range decisions {
		d := &decisions[i]
		svc, st := services[d.key], b.services[d.key]
		if d.accepted {
			st.good, st.claims, st.weights = d.candidate, d.cl, d.weights
			st.compiled = b.bind(d.key, d.candidate, d.u)
			if st.since == 0 {
				b.accepted++
				st.since = b.accepted
			}
		}
		rejected := d.candidate == nil
		for _, k := range b.keys {
			ps := d.all[k]
			if _, present := svc.Annotations[k]; !present {
				continue
			}
			if d.changed[k] || rejected || len(ps) > 0 {
				sortProblems(ps)
				reports = append(reports, Report{
					Service:         d.key,
					Annotation:      k,
					Problems:        ps,
					Rejected:        rejected,
					ServingLastGood: rejected && st.good != nil,
				})
			}
		}
	}

	snap, isolated := b.compile(keys, services, in.Slices, t)
	reports = append(reports, isolated...)
	snap.tenancy, snap.opts = t, b.opts
	// Resolved at every build, from the Secrets of the moment: a renewed
	// certificate is picked up without the Mapping changing.
	specs := b.authSpecs(keys, snap)
	snap.TLS = resolveUpstreamTLS(snap.Table.Routes(), authTargets(specs), in.Secrets)
	var certs, authReports []Report
	snap.Edge, certs = b.resolveEdgeTLS(keys, services, t, in.Secrets, b.now())
	reports = append(reports, certs...)
	snap.auths, authReports = b.resolveAuth(specs, in.Secrets)
	reports = append(reports, authReports...)
	b.last = snap
	return snap, reports
}

// decide runs the pipeline on a Service's changed configuration: compiled
// on its own, then checked against what other Services hold.
func (b *Builder) decide(svc *corev1.Service, st *serviceState, candidate []sourced, t *tenancy) (*unit, claims, map[string]int, map[string]annotations.Problems) {
	u, problems := compileUnit(svc, candidate, func(key string) annotations.Problems { return b.problemsOf(st, key) }, t.isKnown, &b.opts, b.regexes)
	if anyErrors(problems) {
		return nil, claims{}, nil, problems
	}
	cl, weights, cross := t.check(svc, u, &b.opts)
	for k, ps := range cross {
		problems[k] = append(problems[k], ps...)
	}
	return u, cl, weights, problems
}

// UpdateEndpoints re-resolves the endpoints of every upstream the current
// snapshot routes to, without parsing or compiling anything: when only
// EndpointSlices (or the ports of target Services) changed, the routes are
// the same and the upstreams, shared by every snapshot, change in place.
func (b *Builder) UpdateEndpoints(in Input) []DroppedEndpoint {
	services := make(map[string]*corev1.Service, len(in.Services))
	for _, svc := range in.Services {
		key := svc.Namespace + "/" + svc.Name
		if _, dup := services[key]; !dup {
			services[key] = svc
		}
	}
	return b.resolveTargets(b.targets, services, in.Slices)
}

func (b *Builder) annotated(svc *corev1.Service) bool {
	for _, k := range b.keys {
		if _, ok := svc.Annotations[k]; ok {
			return true
		}
	}
	return false
}

// parse re-parses the annotations of svc that changed, records which, and
// returns every annotation's config when none has errors (nil otherwise).
func (b *Builder) parse(svc *corev1.Service, st *serviceState) (map[string]bool, []sourced) {
	if st.good != nil && b.unchanged(svc, st) {
		// The common case in a large cluster: this Service is not what
		// changed, and what it serves is what it says.
		return nil, st.good
	}
	changed := map[string]bool{}
	var srcs []sourced
	failed := false
	for i, k := range b.keys {
		text, present := svc.Annotations[k]
		pa := &st.parsed[i]
		switch {
		case !present:
			if pa.present {
				*pa = parsedAnnotation{}
				changed[k] = true
			}
			continue
		case !pa.present || pa.text != text:
			changed[k] = true
			cfg, problems := annotations.Parse(text, b.opts.parseOptions(k, svc.Namespace))
			*pa = parsedAnnotation{present: true, text: text, cfg: cfg, problems: problems}
		}
		if pa.cfg == nil {
			failed = true
			continue
		}
		srcs = append(srcs, sourced{key: k, cfg: pa.cfg})
	}
	if failed {
		return changed, nil
	}
	return changed, srcs
}

// unchanged reports whether svc carries exactly the annotations st last
// parsed, all of them valid.
func (b *Builder) unchanged(svc *corev1.Service, st *serviceState) bool {
	for i, k := range b.keys {
		text, present := svc.Annotations[k]
		pa := &st.parsed[i]
		if present != pa.present || present && (pa.text != text || pa.cfg == nil) {
			return false
		}
	}
	return true
}

func sortProblems(ps annotations.Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Pos.Line != ps[j].Pos.Line {
			return ps[i].Pos.Line < ps[j].Pos.Line
		}
		return ps[i].Pos.Column < ps[j].Pos.Column
	})
}

func sameSources(a, b []sourced) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func anyErrors(m map[string]annotations.Problems) bool {
	for _, ps := range m {
		if ps.HasErrors() {
			return true
		}
	}
	return false
}

// pathKind is the router's kind of a Mapping's path.
func pathKind(m *annotations.Mapping) router.PathKind {
	switch {
	case m.PrefixRegex:
		return router.Regex
	case m.PrefixExact:
		return router.Exact
	}
	return router.Prefix
}
