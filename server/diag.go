package server

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"hash/fnv"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// The diagnostics page: the admin listener's state as HTML for a person
// with a browser and a port-forward, where the admin API (admin.go) serves
// it as JSON for tools. Server-rendered with html/template, which escapes
// everything a Service's author wrote; no JavaScript, no assets from
// anywhere, so it works air-gapped and its Content-Security-Policy can
// forbid every script.
//
//	/diag/                  overview, linking to the rest
//	/diag/routes            the route table in evaluation order, hosts with edge TLS
//	/diag/services          each annotated Service: accepted, or rejected with its problems
//	/diag/upstreams         the upstreams the routes use
//	/diag/upstream?id=ID    one upstream: breaker, endpoints, ejections
//	/diag/limits            rate-limit policies and their buckets
//	/diag/snapshots         the last builds
//	/diag/explain           a form explaining a request against the live snapshot
//
// Read-only like the API: every page is computed from the snapshot of the
// moment and from what Apply recorded (diagState), and explain sends
// nothing anywhere.

//go:embed diag/*.tmpl
var diagFS embed.FS

// maxBuilds is how many builds /diag/snapshots remembers; maxChanged bounds
// the Services named per build (the first build names every Service).
const (
	maxBuilds  = 50
	maxChanged = 100
)

// diagState is what the page knows beyond the snapshot being served: each
// annotated Service's configuration status as Apply's reports left it, and
// the last builds. Apply writes it (under Server.mu); its own lock lets a
// page read it without waiting for a build. The zero value is ready.
type diagState struct {
	// templates are parsed when a page is first asked for (pages): parsing
	// at start cost every gateway 0.4 MB of heap and the resident code of
	// html/template's parser for a page most never show.
	templatesOnce sync.Once
	templates     map[string]*template.Template

	mu       sync.Mutex
	services map[string]*serviceStatus
	builds   [maxBuilds]buildRecord // a ring: build n is at n % maxBuilds
	nbuilds  int
}

// serviceStatus is one annotated Service as of the last build.
type serviceStatus struct {
	Name string
	// Rejected: its current annotations have errors. ServingLastGood: it
	// still serves routes from earlier annotations, accepted at
	// AcceptedAt. AcceptedAt is when the configuration it serves was
	// accepted (as far as this process saw: its first build at the
	// latest); zero when it serves none.
	Rejected, ServingLastGood bool
	AcceptedAt                time.Time
	// Problems are the reports' problems, warnings included, about its
	// annotations and about the Secrets they name.
	Problems []diagProblem

	accepted uint64 // digest of the annotations AcceptedAt is about
	print    string // everything above, to tell which Services changed
}

// diagProblem is one problem of a Report, with where it came from.
type diagProblem struct {
	Annotation string
	// About is "" for the configuration itself, "certificate" or "auth
	// secret" for the Secrets an accepted configuration names.
	About string
	annotations.Problem
}

// buildRecord is one Apply.
type buildRecord struct {
	Generation uint64
	At         time.Time
	Took       time.Duration
	Routes     int
	Services   int // annotated
	Rejected   int
	// Changed are the Services whose status changed in this build, in
	// name order, at most maxChanged of them; MoreChanged counts the rest.
	Changed     []serviceChange
	MoreChanged int
}

type serviceChange struct{ Service, What string }

// recordBuild notes what a build decided: the status of each annotated
// Service and the build itself. Apply calls it with mu held, after
// building from in what snap and reports are, start being when it began.
func (s *Server) recordBuild(in snapshot.Input, snap *snapshot.Snapshot, reports []snapshot.Report, start time.Time) {
	now := time.Now()
	keys := s.cfg.Build.Keys()
	byService := map[string][]snapshot.Report{}
	for _, r := range reports {
		byService[r.Service] = append(byService[r.Service], r)
	}
	d := &s.diag
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.services == nil {
		d.services = map[string]*serviceStatus{}
	}
	rec := buildRecord{Generation: snap.Generation, At: now, Took: now.Sub(start), Routes: snap.Table.Len()}
	var changed []serviceChange
	seen := make(map[string]bool, len(in.Services))
	for _, svc := range in.Services {
		name := svc.Namespace + "/" + svc.Name
		digest, annotated := annotationDigest(svc.Annotations, keys)
		if !annotated || seen[name] {
			continue // the builder, too, reads only the first of a repeated Service
		}
		seen[name] = true
		old := d.services[name]
		st := &serviceStatus{Name: name}
		if old != nil {
			st.AcceptedAt, st.accepted = old.AcceptedAt, old.accepted
		}
		for _, r := range byService[name] {
			about := ""
			switch {
			case r.Certificates:
				about = "certificate"
			case r.AuthSecrets:
				about = "auth secret"
			default:
				st.Rejected = st.Rejected || r.Rejected
				st.ServingLastGood = st.ServingLastGood || r.ServingLastGood
			}
			for _, p := range r.Problems {
				st.Problems = append(st.Problems, diagProblem{Annotation: r.Annotation, About: about, Problem: p})
			}
		}
		switch {
		case !st.Rejected && (st.AcceptedAt.IsZero() || st.accepted != digest):
			st.AcceptedAt, st.accepted = now, digest
		case st.Rejected && !st.ServingLastGood:
			st.AcceptedAt, st.accepted = time.Time{}, 0
		}
		st.print = st.fingerprint()
		d.services[name] = st
		rec.Services++
		if st.Rejected {
			rec.Rejected++
		}
		if what := statusChange(old, st); what != "" {
			changed = append(changed, serviceChange{name, what})
		}
	}
	for name := range d.services {
		if !seen[name] {
			delete(d.services, name)
			changed = append(changed, serviceChange{name, "removed"})
		}
	}
	slices.SortFunc(changed, func(a, b serviceChange) int { return strings.Compare(a.Service, b.Service) })
	if len(changed) > maxChanged {
		rec.MoreChanged = len(changed) - maxChanged
		changed = changed[:maxChanged:maxChanged]
	}
	rec.Changed = changed
	d.builds[d.nbuilds%maxBuilds] = rec
	d.nbuilds++
}

// fingerprint is st's status as a string that changes when it does.
func (st *serviceStatus) fingerprint() string {
	var b strings.Builder
	fmt.Fprint(&b, st.Rejected, st.ServingLastGood, st.accepted)
	for _, p := range st.Problems {
		b.WriteString("\n" + p.Annotation + "\x00" + p.About + "\x00" + p.Error())
	}
	return b.String()
}

// statusChange says in a few words how a Service's status went from old
// (nil: not annotated before) to st; "" when it did not change.
func statusChange(old, st *serviceStatus) string {
	verdict := "accepted"
	if st.Rejected {
		verdict = "rejected"
	}
	switch {
	case old == nil:
		return "added, " + verdict
	case old.print == st.print:
		return ""
	case old.accepted != st.accepted && !st.Rejected:
		return "accepted a change"
	case old.Rejected != st.Rejected:
		return verdict
	}
	return "problems changed"
}

// annotationDigest is a digest of the annotations of keys that a has, and
// whether it has any: the builder reads those and nothing else.
func annotationDigest(a map[string]string, keys []string) (uint64, bool) {
	h := fnv.New64a()
	found := false
	for _, k := range keys {
		v, ok := a[k]
		if !ok {
			continue
		}
		found = true
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(v), v)
	}
	return h.Sum64(), found
}

// statuses returns copies of the Services' statuses, in name order.
func (d *diagState) statuses() []serviceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]serviceStatus, 0, len(d.services))
	for _, st := range d.services {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b serviceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// history returns the builds remembered, newest first.
func (d *diagState) history() []buildRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(d.nbuilds, maxBuilds)
	out := make([]buildRecord, 0, n)
	for i := d.nbuilds - 1; i >= d.nbuilds-n; i-- {
		out = append(out, d.builds[i%maxBuilds])
	}
	return out
}

// registerDiag adds the diagnostics page to the admin listener's mux.
func (s *Server) registerDiag(mux *http.ServeMux) {
	mux.HandleFunc("GET /diag/{$}", s.diagOverview)
	mux.HandleFunc("GET /diag/routes", s.diagRoutes)
	mux.HandleFunc("GET /diag/services", s.diagServices)
	mux.HandleFunc("GET /diag/upstreams", s.diagUpstreams)
	mux.HandleFunc("GET /diag/upstream", s.diagUpstream)
	mux.HandleFunc("GET /diag/limits", s.diagLimits)
	mux.HandleFunc("GET /diag/snapshots", s.diagSnapshots)
	mux.HandleFunc("GET /diag/hosts", s.diagHosts)
	mux.HandleFunc("GET /diag/explain", s.diagExplain)
}

// pages are the diagnostics pages, each the layout with its "content",
// parsed on first use. server's tests render every page.
func (d *diagState) pages() map[string]*template.Template {
	d.templatesOnce.Do(func() { d.templates = parseDiagTemplates() })
	return d.templates
}

func parseDiagTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"ago": func(t time.Time) string { return ago(time.Since(t)) },
		"dur": func(d time.Duration) string { return ago(d) },
		"ms":  func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) },
	}
	pages := map[string]*template.Template{}
	for _, p := range []string{"overview", "routes", "services", "upstreams", "upstream", "limits", "snapshots", "explain", "hosts"} {
		pages[p] = template.Must(template.New("layout.tmpl").Funcs(funcs).ParseFS(diagFS, "diag/layout.tmpl", "diag/"+p+".tmpl"))
	}
	return pages
}

// ago writes d coarsely, as a person reads an age.
func ago(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m" + strconv.FormatInt(int64(d%time.Minute/time.Second), 10) + "s"
	case d < 48*time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h" + strconv.FormatInt(int64(d%time.Hour/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
}

// diagPage is what the layout reads; Data is the page's own.
type diagPage struct {
	Page, Title string
	Now         time.Time
	Generation  uint64 // 0 before the first snapshot
	Error       string // shown above the content
	Data        any
}

// newPage is page p about snap (nil before the first snapshot), with data.
func newPage(p, title string, snap *snapshot.Snapshot, data any) diagPage {
	page := diagPage{Page: p, Title: title, Now: time.Now(), Data: data}
	if snap != nil {
		page.Generation = snap.Generation
	} else if p != "overview" {
		page.Error = "no snapshot served yet"
	}
	return page
}

// failed is page with msg for its error.
func (page diagPage) failed(msg string) diagPage {
	page.Error = msg
	return page
}

// render writes page. A template that fails is a bug: 500, and the log
// says why.
func (s *Server) render(w http.ResponseWriter, code int, page diagPage) {
	var buf bytes.Buffer
	if err := s.diag.pages()[page.Page].Execute(&buf, page); err != nil {
		s.log.Error("rendering the diagnostics page", "page", page.Page, "error", err)
		http.Error(w, "rendering the page failed; the gateway's log says why", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing runs, nothing is fetched, nothing frames the page; forms go
	// only back to it.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// noSnapshot renders p without data before the first snapshot; it reports
// whether it did.
func (s *Server) noSnapshot(w http.ResponseWriter, snap *snapshot.Snapshot, p, title string) bool {
	if snap != nil {
		return false
	}
	s.render(w, http.StatusServiceUnavailable, newPage(p, title, nil, nil))
	return true
}

// routeRef points at a route of the table, by its 1-based position.
type routeRef struct {
	Index   int
	Mapping string
	Service string // the Service that declared it
	// ShadowOf is set when the reference is to a shadow Mapping mirroring
	// this route's requests; Mapping then is the shadow's.
	ShadowOf string
}

// limitRef is a route's rate limit: its name and the policy's ID.
type limitRef struct{ Name, ID string }

// routeView is a row of the route table with what the page links to.
type routeView struct {
	Index int
	snapshot.RouteRow
	Service    string
	UpstreamID string // "" for a redirect
	Host       string // the host as routes writes it: "*" for any, "~" before an expression
	Match      string
	Conditions []string
	Limits     []limitRef
	Shadows    []string // upstream IDs of the shadows
}

// routeViews are the rows of snap's table with their routes.
func routeViews(snap *snapshot.Snapshot) []routeView {
	routes := snap.Table.Routes()
	rows := snapshot.RouteRows(snap) // in the same order
	out := make([]routeView, 0, len(rows))
	for i, row := range rows {
		rt := routes[i].Value
		v := routeView{Index: i + 1, RouteRow: row, Service: rt.Service, Host: row.HostText(), Match: row.MatchText(), Conditions: row.Conditions()}
		if rt.Upstream != nil {
			v.UpstreamID = rt.Upstream.ID()
		}
		for j, name := range rt.RateLimits {
			ref := limitRef{Name: name}
			if j < len(rt.Limiters) {
				ref.ID = rt.Limiters[j].Policy().ID
			}
			v.Limits = append(v.Limits, ref)
		}
		for _, sh := range rt.Shadows {
			if sh.Route.Upstream != nil {
				v.Shadows = append(v.Shadows, sh.Route.Upstream.ID())
			}
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) diagOverview(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	type overview struct {
		Ready                        bool
		Routes, Hosts, Upstreams     int
		Services, Rejected, LastGood int
		Last                         *buildRecord
	}
	o := overview{Ready: s.ready.Load()}
	for _, st := range s.diag.statuses() {
		o.Services++
		if st.Rejected {
			o.Rejected++
			if st.ServingLastGood {
				o.LastGood++
			}
		}
	}
	if h := s.diag.history(); len(h) > 0 {
		o.Last = &h[0]
	}
	if snap != nil {
		o.Routes = snap.Table.Len()
		o.Hosts = len(snap.EdgeTLS().Hosts())
		ids := map[string]bool{}
		for _, r := range snap.Table.Routes() {
			for _, rt := range append([]*snapshot.Route{r.Value}, shadowRoutes(r.Value)...) {
				if rt.Upstream != nil {
					ids[rt.Upstream.ID()] = true
				}
			}
		}
		o.Upstreams = len(ids)
	}
	s.render(w, http.StatusOK, newPage("overview", "Overview", snap, o))
}

// shadowRoutes are the routes of rt's shadows.
func shadowRoutes(rt *snapshot.Route) []*snapshot.Route {
	out := make([]*snapshot.Route, len(rt.Shadows))
	for i, sh := range rt.Shadows {
		out[i] = sh.Route
	}
	return out
}

func (s *Server) diagRoutes(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "routes", "Routes") {
		return
	}
	data := struct {
		Routes []routeView
		Hosts  []*snapshot.HostRow
	}{routeViews(snap), snapshot.HostRows(snap.EdgeTLS().Hosts(), time.Now())}
	s.render(w, http.StatusOK, newPage("routes", "Routes", snap, data))
}

// serviceView is a Service's status with its routes and their upstreams.
type serviceView struct {
	serviceStatus
	Routes    []routeRef
	Upstreams []string
}

func (s *Server) diagServices(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	byService := map[string]*serviceView{}
	var views []*serviceView
	for _, st := range s.diag.statuses() {
		v := &serviceView{serviceStatus: st}
		byService[st.Name] = v
		views = append(views, v)
	}
	if snap != nil {
		for _, r := range routeViews(snap) {
			v := byService[r.Service]
			if v == nil {
				continue
			}
			v.Routes = append(v.Routes, routeRef{Index: r.Index, Mapping: r.Mapping})
			if r.UpstreamID != "" && !slices.Contains(v.Upstreams, r.UpstreamID) {
				v.Upstreams = append(v.Upstreams, r.UpstreamID)
			}
		}
	}
	code := http.StatusOK
	if snap == nil {
		code = http.StatusServiceUnavailable
	}
	s.render(w, code, newPage("services", "Services", snap, struct{ Services []*serviceView }{views}))
}

// upstreamView is one upstream as the pages show it.
type upstreamView struct {
	ID, Target        string
	External          bool
	State             string
	Counts            upstream.BreakerCounts
	Endpoints         []upstream.EndpointStatus
	Ejected, InFlight int
	Routes            []routeRef
}

// upstreamViews are the upstreams snap's routes and their shadows use, in
// ID order, with their state now; only the one with ID id when id is not
// "".
func upstreamViews(snap *snapshot.Snapshot, id string) []*upstreamView {
	byID := map[string]*upstreamView{}
	add := func(rt *snapshot.Route, ref routeRef) {
		u := rt.Upstream
		if u == nil || id != "" && u.ID() != id {
			return
		}
		v := byID[u.ID()]
		if v == nil {
			v = &upstreamView{ID: u.ID(), Target: rt.Target.String(), External: rt.External, State: u.State().String(), Counts: u.BreakerCounts()}
			v.Endpoints = u.EndpointStatuses()
			for _, e := range v.Endpoints {
				if e.Ejected {
					v.Ejected++
				}
				v.InFlight += int(e.Active)
			}
			byID[u.ID()] = v
		}
		v.Routes = append(v.Routes, ref)
	}
	for i, r := range snap.Table.Routes() {
		rt := r.Value
		add(rt, routeRef{Index: i + 1, Mapping: rt.Mapping, Service: rt.Service})
		for _, sh := range rt.Shadows {
			add(sh.Route, routeRef{Index: i + 1, Mapping: sh.Route.Mapping, Service: sh.Route.Service, ShadowOf: rt.Mapping})
		}
	}
	out := make([]*upstreamView, 0, len(byID))
	for _, v := range byID {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *upstreamView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *Server) diagUpstreams(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "upstreams", "Upstreams") {
		return
	}
	s.render(w, http.StatusOK, newPage("upstreams", "Upstreams", snap, struct{ Upstreams []*upstreamView }{upstreamViews(snap, "")}))
}

func (s *Server) diagUpstream(w http.ResponseWriter, r *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "upstream", "Upstream") {
		return
	}
	id := r.URL.Query().Get("id")
	var v *upstreamView
	if id != "" {
		if vs := upstreamViews(snap, id); len(vs) == 1 {
			v = vs[0]
		}
	}
	if v == nil {
		msg := fmt.Sprintf("no route of generation %d uses an upstream %q", snap.Generation, id)
		s.render(w, http.StatusNotFound, newPage("upstream", "Upstream", snap, nil).failed(msg))
		return
	}
	s.render(w, http.StatusOK, newPage("upstream", "Upstream "+v.ID, snap, v))
}

// limitView is one rate-limit policy of the snapshot.
type limitView struct {
	ID, Key       string
	Rate          string
	Burst         int
	EnforcedRate  string // this replica's share, when it is not the whole policy
	EnforcedBurst int
	// Buckets is how many keyed buckets are held, -1 for a policy with
	// one bucket for all.
	Buckets int
	Routes  []routeRef
	Names   []string // as the routes name it
}

func (s *Server) diagLimits(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "limits", "Rate limits") {
		return
	}
	byLimiter := map[*limiter.Limiter]*limitView{}
	var views []*limitView
	for i, r := range snap.Table.Routes() {
		rt := r.Value
		for j, l := range rt.Limiters {
			v := byLimiter[l]
			if v == nil {
				p := l.Policy()
				limit, burst := l.Enforced()
				v = &limitView{ID: p.ID, Key: p.Key.String(), Rate: formatRate(p.Limit), Burst: p.Burst, Buckets: -1}
				if p.Key == limiter.KeyHeader {
					v.Key += " " + p.Header
				}
				if limit != p.Limit || burst != p.Burst {
					v.EnforcedRate, v.EnforcedBurst = formatRate(limit), burst
				}
				if p.Key != limiter.KeyPolicy {
					v.Buckets = l.Len()
				}
				byLimiter[l] = v
				views = append(views, v)
			}
			v.Routes = append(v.Routes, routeRef{Index: i + 1, Mapping: rt.Mapping})
			if j < len(rt.RateLimits) && !slices.Contains(v.Names, rt.RateLimits[j]) {
				v.Names = append(v.Names, rt.RateLimits[j])
			}
		}
	}
	slices.SortFunc(views, func(a, b *limitView) int { return strings.Compare(a.ID, b.ID) })
	data := struct {
		Limits   []*limitView
		Replicas int64
		Share    bool // ReplicasFrom is set
		Redis    string
	}{Limits: views, Replicas: s.replicas.Load(), Share: s.cfg.ReplicasFrom != ""}
	switch {
	case s.redis == nil:
		data.Redis = "none: every replica decides with its own buckets"
	case s.redis.Stats().Up:
		data.Redis = "up: decisions go to Redis"
	default:
		data.Redis = "down: decisions fall back (--ratelimit-redis-failure)"
	}
	s.render(w, http.StatusOK, newPage("limits", "Rate limits", snap, data))
}

// formatRate writes a refill rate in the unit that reads best.
func formatRate(l rate.Limit) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	switch {
	case l == rate.Inf:
		return "unlimited"
	case l <= 0:
		return "no refill"
	case l >= 1:
		return f(float64(l)) + "/s"
	case l*60 >= 1:
		return f(float64(l)*60) + "/min"
	}
	return f(float64(l)*3600) + "/h"
}

func (s *Server) diagSnapshots(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	code := http.StatusOK
	if snap == nil {
		code = http.StatusServiceUnavailable
	}
	s.render(w, code, newPage("snapshots", "Snapshots", snap, struct {
		Builds []buildRecord
		Max    int
	}{s.diag.history(), maxBuilds}))
}

// diagHosts shows who owns each exact host (and whom it delegates to), and
// the Namespaces' grants, delegations and allowed hosts.
func (s *Server) diagHosts(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "hosts", "Hosts and namespaces") {
		return
	}
	s.render(w, http.StatusOK, newPage("hosts", "Hosts and namespaces", snap, struct {
		Hosts      []snapshot.HostOwner
		Namespaces []snapshot.NamespaceSettings
	}{snap.HostOwners(), snap.NamespaceSettings()}))
}

// explainForm is the explain page's form, as submitted.
type explainForm struct {
	Method, URL, Headers string
}

// explainView is explain's answer with what the page links to.
type explainView struct {
	Form   explainForm
	Report *snapshot.ExplainReport
	// Route and UpstreamID are the route the request matched and its
	// upstream, when it matched one.
	Route      int
	UpstreamID string
	Group      []groupView
}

type groupView struct {
	snapshot.GroupMember
	Route int
}

// diagExplain explains the request its query describes: method, url and
// headers (a textarea's lines, "Name: value" each), checked and bounded as
// /api/explain's are (explainQuery).
func (s *Server) diagExplain(w http.ResponseWriter, r *http.Request) {
	snap := s.Current()
	if s.noSnapshot(w, snap, "explain", "Explain") {
		return
	}
	v := explainView{Form: explainForm{Method: "GET"}}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		err = fmt.Errorf("query: %w", err)
	} else {
		// Shown again as sent, whatever is wrong with it.
		v.Form = explainForm{Method: cmp.Or(strings.TrimSpace(q.Get("method")), "GET"), URL: q.Get("url"), Headers: q.Get("headers")}
		for _, k := range slices.Sorted(maps.Keys(q)) {
			if k != "method" && k != "url" && k != "headers" {
				err = fmt.Errorf("unknown parameter %q (known: method, url, headers)", k)
				break
			}
		}
	}
	if err != nil {
		s.renderExplainError(w, snap, v, err)
		return
	}
	if _, asked := q["url"]; !asked {
		s.render(w, http.StatusOK, newPage("explain", "Explain", snap, v))
		return
	}
	api := url.Values{"url": q["url"], "method": {v.Form.Method}}
	if len(q["method"]) > 1 || len(q["headers"]) > 1 {
		s.renderExplainError(w, snap, v, fmt.Errorf("want at most one method and one headers"))
		return
	}
	n := 0
	for line := range strings.Lines(v.Form.Headers) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		// Counted on, kept only up to the bound: explainQuery refuses more.
		if n++; n <= maxExplainHeaders {
			api["header"] = append(api["header"], line)
		}
	}
	if n > maxExplainHeaders {
		s.renderExplainError(w, snap, v, fmt.Errorf("%d headers, more than the %d allowed", n, maxExplainHeaders))
		return
	}
	req, err := explainQuery(api.Encode())
	if err != nil {
		s.renderExplainError(w, snap, v, err)
		return
	}
	rep := snapshot.NewExplainReport(snap, req, time.Now())
	v.Report = &rep
	if rep.Explanation.Mapping != "" {
		routes := routeViews(snap)
		index := func(mapping string) (int, string) {
			for _, rt := range routes {
				if rt.Mapping == mapping {
					return rt.Index, rt.UpstreamID
				}
			}
			return 0, ""
		}
		v.Route, v.UpstreamID = index(rep.Explanation.Mapping)
		for _, g := range rep.Explanation.Group {
			i, _ := index(g.Mapping)
			v.Group = append(v.Group, groupView{GroupMember: g, Route: i})
		}
	}
	s.render(w, http.StatusOK, newPage("explain", "Explain", snap, v))
}

func (s *Server) renderExplainError(w http.ResponseWriter, snap *snapshot.Snapshot, v explainView, err error) {
	s.render(w, http.StatusBadRequest, newPage("explain", "Explain", snap, v).failed(err.Error()))
}
