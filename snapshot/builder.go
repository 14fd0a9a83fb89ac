package snapshot

import (
	"fmt"
	"sort"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Input is the cluster state a snapshot is built from.
type Input struct {
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
}

// Report says what happened to one annotated Service in a build.
type Report struct {
	Service string // "namespace/name"
	// Problems of the Service's current annotation, positions relative to
	// the annotation string. Compile-time problems (a cross-namespace target,
	// a host and path another namespace owns) point at the Mapping.
	Problems annotations.Problems
	// Rejected is true when the current annotation has errors; the Service
	// then serves its last good configuration, or nothing if it never had one.
	Rejected bool
	// ServingLastGood is true when a rejected Service still serves routes
	// from an earlier annotation.
	ServingLastGood bool
}

// Builder turns Inputs into Snapshots. It remembers each Service's last good
// configuration so a bad edit never takes routes down, and it owns the limiter
// and upstream registries so bucket and breaker state survive rebuilds. A
// Builder is used by one goroutine.
type Builder struct {
	limiters   *limiter.Registry
	upstreams  *upstream.Registry
	services   map[string]*serviceState
	generation uint64
}

type serviceState struct {
	annotation string                // the annotation last parsed
	parsed     *annotations.Config   // its config, nil when it had errors
	problems   annotations.Problems  // its problems
	good       *annotations.Config   // what this Service serves
	claims     map[claimKey]struct{} // host+path keys good holds
}

// claimKey is the unit of ownership between namespaces: one namespace owns a
// host and path, whatever conditions its Mappings add.
type claimKey struct {
	host string
	kind router.PathKind
	path string
}

// NewBuilder returns a Builder that keeps limiter and upstream state in the
// given registries.
func NewBuilder(limiters *limiter.Registry, upstreams *upstream.Registry) *Builder {
	return &Builder{limiters: limiters, upstreams: upstreams, services: map[string]*serviceState{}}
}

// Build compiles in into a new Snapshot. Only Services whose annotation
// changed since the last Build are parsed again. A Service whose annotation
// is invalid keeps serving its last good configuration; nothing else is
// affected. Reports list every annotated Service with problems or changes.
func (b *Builder) Build(in Input) (*Snapshot, []Report, error) {
	services := make(map[string]*corev1.Service, len(in.Services))
	var keys []string
	for _, svc := range in.Services {
		key := svc.Namespace + "/" + svc.Name
		if _, dup := services[key]; dup {
			continue // first one wins; files may repeat a Service by mistake
		}
		services[key] = svc
		if _, ok := svc.Annotations[annotations.Key]; ok {
			keys = append(keys, key)
		}
	}
	// Incumbents first, then by creation time, then by name: the order in
	// which Services claim hosts and paths, so a newcomer never displaces
	// an incumbent.
	sort.Slice(keys, func(i, j int) bool {
		si, sj := b.services[keys[i]], b.services[keys[j]]
		ii, ij := si != nil && si.good != nil, sj != nil && sj.good != nil
		if ii != ij {
			return ii
		}
		ti, tj := services[keys[i]].CreationTimestamp, services[keys[j]].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return keys[i] < keys[j]
	})

	// Forget Services that are gone or lost their annotation.
	for key := range b.services {
		if svc, ok := services[key]; !ok || !hasAnnotation(svc) {
			delete(b.services, key)
		}
	}

	owners := map[claimKey]string{} // claim → owning namespace
	var reports []Report
	// Incumbents' claims stand before any change is considered.
	for _, key := range keys {
		if st := b.services[key]; st != nil {
			for c := range st.claims {
				if _, taken := owners[c]; !taken {
					owners[c] = services[key].Namespace
				}
			}
		}
	}

	for _, key := range keys {
		svc := services[key]
		text := svc.Annotations[annotations.Key]
		st := b.services[key]
		if st == nil {
			st = &serviceState{}
			b.services[key] = st
		}
		changed := st.parsed == nil && st.problems == nil || st.annotation != text
		if changed {
			cfg, problems := annotations.Parse(text, annotations.Options{Namespace: svc.Namespace})
			st.annotation, st.parsed, st.problems = text, nil, problems
			if !problems.HasErrors() {
				st.parsed = cfg
			}
		}
		problems := st.problems
		candidate := st.parsed
		if candidate != nil && candidate != st.good {
			claims, compileProblems := b.check(svc, candidate, st, owners)
			problems = append(append(annotations.Problems(nil), problems...), compileProblems...)
			if compileProblems.HasErrors() {
				candidate = nil
			} else {
				for c := range st.claims {
					if owners[c] == svc.Namespace {
						delete(owners, c)
					}
				}
				for c := range claims {
					owners[c] = svc.Namespace
				}
				st.good, st.claims = candidate, claims
			}
		}
		rejected := candidate == nil
		if changed || rejected || len(problems) > 0 {
			reports = append(reports, Report{
				Service:         key,
				Problems:        problems,
				Rejected:        rejected,
				ServingLastGood: rejected && st.good != nil,
			})
		}
	}

	snap, err := b.compile(keys, services, in.Slices)
	if err != nil {
		return nil, reports, err
	}
	return snap, reports, nil
}

func hasAnnotation(svc *corev1.Service) bool {
	_, ok := svc.Annotations[annotations.Key]
	return ok
}

// check applies the rules that need more than one annotation: targets stay
// in the Mapping's namespace, and a host and path owned by another namespace
// cannot be taken. It returns the claims the config would hold.
func (b *Builder) check(svc *corev1.Service, cfg *annotations.Config, st *serviceState, owners map[claimKey]string) (map[claimKey]struct{}, annotations.Problems) {
	var problems annotations.Problems
	claims := map[claimKey]struct{}{}
	for _, m := range cfg.Mappings {
		path := `Mapping "` + m.Name + `"`
		ref, err := annotations.ParseServiceRef(m.Service, svc.Namespace)
		if err != nil {
			problems = append(problems, annotations.Problem{Pos: m.Pos, Path: path + ".service", Message: err.Error()})
			continue
		}
		if ref.Namespace != svc.Namespace {
			problems = append(problems, annotations.Problem{Pos: m.Pos, Path: path + ".service",
				Message: fmt.Sprintf("service %q is in namespace %q; a Mapping may only route to Services in its own namespace %q", m.Service, ref.Namespace, svc.Namespace)})
		}
		c := claimKey{host: m.Host, kind: pathKind(m), path: m.Prefix}
		if owner, taken := owners[c]; taken && owner != svc.Namespace {
			problems = append(problems, annotations.Problem{Pos: m.Pos, Path: path,
				Message: fmt.Sprintf("host %q and %s %q are already routed by namespace %q", hostOrAny(m.Host), pathKind(m), m.Prefix, owner)})
		}
		claims[c] = struct{}{}
	}
	return claims, problems
}

func hostOrAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

func pathKind(m annotations.Mapping) router.PathKind {
	switch {
	case m.PrefixRegex:
		return router.Regex
	case m.PrefixExact:
		return router.Exact
	}
	return router.Prefix
}

// compile turns every Service's good configuration into a router table.
func (b *Builder) compile(keys []string, services map[string]*corev1.Service, slices []*discoveryv1.EndpointSlice) (*Snapshot, error) {
	var routes []router.Route[*Route]
	keepLimiters := map[string]bool{}
	keepUpstreams := map[string]bool{}
	for _, key := range keys {
		st := b.services[key]
		if st == nil || st.good == nil {
			continue
		}
		svc := services[key]
		policies := map[string]annotations.RateLimit{}
		for _, rl := range st.good.RateLimits {
			policies[rl.Name] = rl
		}
		for _, m := range st.good.Mappings {
			ref, err := annotations.ParseServiceRef(m.Service, svc.Namespace)
			if err != nil {
				return nil, fmt.Errorf("compiling %s: %w", key, err) // checked before; a bug if reached
			}
			upstreamID := fmt.Sprintf("%s/%s:%d", ref.Namespace, ref.Name, ref.Port)
			up := b.upstreams.Get(upstreamID)
			up.SetEndpoints(resolveEndpoints(services[ref.Namespace+"/"+ref.Name], ref.Port, slices))
			keepUpstreams[upstreamID] = true

			r := &Route{
				Mapping:        displayName(svc.Namespace, m.Name),
				Service:        key,
				Kind:           pathKind(m),
				Prefix:         m.Prefix,
				Rewrite:        "/",
				RewriteEnabled: true,
				Timeout:        DefaultTimeout,
				Target:         ref,
				Upstream:       up,
			}
			if m.Rewrite != nil {
				r.Rewrite = *m.Rewrite
				r.RewriteEnabled = *m.Rewrite != ""
			}
			if m.TimeoutMS != nil {
				r.Timeout = time.Duration(*m.TimeoutMS) * time.Millisecond
			}
			for _, name := range m.RateLimits {
				rl := policies[name]
				p := policy(key, rl)
				keepLimiters[p.ID] = true
				r.Limiters = append(r.Limiters, b.limiters.Get(p))
				r.RateLimits = append(r.RateLimits, displayName(svc.Namespace, name))
			}
			var headers []router.HeaderMatch
			for name, v := range m.Headers {
				headers = append(headers, router.HeaderMatch{Name: name, Value: v.Value, Present: v.Present})
			}
			sort.Slice(headers, func(i, j int) bool { return headers[i].Name < headers[j].Name })
			routes = append(routes, router.Route[*Route]{
				ID:         key + "/" + m.Name,
				Host:       m.Host,
				Path:       m.Prefix,
				Kind:       r.Kind,
				Method:     m.Method,
				Headers:    headers,
				Precedence: m.Precedence,
				Value:      r,
			})
		}
	}
	table, err := router.New(routes)
	if err != nil {
		return nil, fmt.Errorf("building router: %w", err)
	}
	b.limiters.Retain(keepLimiters)
	b.upstreams.Retain(keepUpstreams)
	b.generation++
	return &Snapshot{Generation: b.generation, Table: table}, nil
}

// policy compiles a RateLimit. Its ID includes the declaring Service because
// RateLimit names are scoped to one annotation.
func policy(serviceKey string, rl annotations.RateLimit) limiter.Policy {
	per := map[string]time.Duration{
		annotations.UnitSecond: time.Second,
		annotations.UnitMinute: time.Minute,
		annotations.UnitHour:   time.Hour,
		annotations.UnitDay:    24 * time.Hour,
	}[rl.Unit]
	burst := rl.Burst
	if burst == 0 {
		burst = rl.Rate
	}
	p := limiter.Policy{
		ID:    serviceKey + "/" + rl.Name,
		Limit: rate.Limit(float64(rl.Rate) / per.Seconds()),
		Burst: burst,
	}
	switch rl.Key {
	case annotations.KeyClientIP:
		p.Key = limiter.KeyClientIP
	case annotations.KeyHeader:
		p.Key = limiter.KeyHeader
		p.Header = rl.Header
	}
	return p
}
