// Package metrics holds the gateway's Prometheus collectors. They live in a
// Set registered on a registry that main creates, not on the global default
// registry, so tests and several gateways in one process never collide.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Set is every collector the gateway exports.
type Set struct {
	// The label values in use, by collector family, so Retain can delete
	// the series of routes, upstreams and policies that are gone: without
	// it a cluster whose Services come and go (preview environments) would
	// grow the gateway's memory and its /metrics page forever.
	routes, upstreams, policies sync.Map // label value → struct{}

	requests           *prometheus.CounterVec
	upstreamLatency    *prometheus.HistogramVec
	rateLimitRejects   *prometheus.CounterVec
	breakerState       *prometheus.GaugeVec
	retries            *prometheus.CounterVec
	ejections          *prometheus.CounterVec
	overflows          *prometheus.CounterVec
	mirrored           *prometheus.CounterVec
	snapshotGeneration prometheus.Gauge
	snapshotRoutes     prometheus.Gauge
	configErrors       *prometheus.GaugeVec
}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) *Set {
	s := &Set{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total",
			Help: "Requests served, by Mapping (namespace/name, empty when nothing matched) and HTTP status.",
		}, []string{"route", "status"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_upstream_latency_seconds",
			Help:    "Time from sending a request upstream to the end of the response headers, by upstream (namespace/service:port).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"upstream"}),
		rateLimitRejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_rejections_total",
			Help: "Requests refused with 429, by RateLimit policy (namespace/name).",
		}, []string{"policy"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_breaker_state",
			Help: "Circuit breaker state by upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_retries_total",
			Help: "Retries by upstream and result: sent, or refused because the upstream's retry budget was spent (retry_policy).",
		}, []string{"upstream", "result"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_ejections_total",
			Help: "Endpoints ejected by outlier detection (consecutive connect failures or 5xx answers), by upstream.",
		}, []string{"upstream"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_overflows_total",
			Help: "Requests and retries refused by a Mapping's circuit_breakers thresholds, by upstream and reason: overflow (every slot and the queue taken), pending_timeout (queued until the route's timeout), max_retries.",
		}, []string{"upstream", "reason"}),
		mirrored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_mirrored_requests_total",
			Help: "Copies of requests for shadow Mappings, by shadow upstream and result: sent (answered), failed, dropped (the mirroring bounds were full), no_endpoint.",
		}, []string{"upstream", "result"}),
		snapshotGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_snapshot_generation",
			Help: "Generation of the snapshot being served; it increases with every configuration change applied.",
		}),
		snapshotRoutes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_snapshot_routes",
			Help: "Routes in the snapshot being served.",
		}),
		configErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_config_rejected",
			Help: "1 for each annotated Service whose current annotation is rejected (it serves its last good routes, if any).",
		}, []string{"service"}),
	}
	reg.MustRegister(s.requests, s.upstreamLatency, s.rateLimitRejects, s.breakerState,
		s.retries, s.ejections, s.overflows, s.mirrored, s.snapshotGeneration, s.snapshotRoutes, s.configErrors)
	return s
}

// Request counts one served request. A nil Set records nothing, which keeps
// benchmarks and small tests free of Prometheus.
func (s *Set) Request(route string, status int) {
	if s == nil {
		return
	}
	seen(&s.routes, route)
	s.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

// RouteRequests counts one route's requests like Set.Request, without a
// label lookup per request: it keeps the series it has used, by status.
// The data plane makes one per route of each snapshot it publishes, so a
// series Retain deletes is never kept past the snapshot that used it (a
// request still finishing on that snapshot counts into the deleted series
// and is lost, rather than bringing it back). A nil RouteRequests records
// nothing. Safe for concurrent use; recording a status seen before does
// not allocate.
type RouteRequests struct {
	set   *Set
	route string
	// An immutable list, replaced whole when a status is first seen: a
	// route answers with a handful of statuses, so a scan beats a map.
	byStatus atomic.Pointer[[]statusCounter]
}

type statusCounter struct {
	status  int
	counter prometheus.Counter
}

// Route returns the request counters of route; nil when s is nil.
func (s *Set) Route(route string) *RouteRequests {
	if s == nil {
		return nil
	}
	return &RouteRequests{set: s, route: route}
}

// Request counts one request answered with status.
func (c *RouteRequests) Request(status int) {
	if c == nil {
		return
	}
	for {
		old := c.byStatus.Load()
		var list []statusCounter
		if old != nil {
			list = *old
		}
		for i := range list {
			if list[i].status == status {
				list[i].counter.Inc()
				return
			}
		}
		seen(&c.set.routes, c.route)
		counter := c.set.requests.WithLabelValues(c.route, strconv.Itoa(status))
		grown := append(list[:len(list):len(list)], statusCounter{status, counter})
		if c.byStatus.CompareAndSwap(old, &grown) {
			counter.Inc()
			return
		}
		// Another request added a status meanwhile: look again.
	}
}

// UpstreamObserver records one upstream's latencies like
// Set.UpstreamLatency, looking its series up once. Made per upstream of
// each published snapshot, for the reasons RouteRequests is. A nil
// UpstreamObserver records nothing. Safe for concurrent use.
type UpstreamObserver struct {
	set      *Set
	upstream string
	latency  atomic.Pointer[prometheus.Observer]
}

// Upstream returns the latency recorder of upstream; nil when s is nil.
func (s *Set) Upstream(upstream string) *UpstreamObserver {
	if s == nil {
		return nil
	}
	return &UpstreamObserver{set: s, upstream: upstream}
}

// Latency records one upstream exchange. The series is made on first use,
// not with the recorder, so an upstream nobody reached exports nothing.
func (o *UpstreamObserver) Latency(d time.Duration) {
	if o == nil {
		return
	}
	p := o.latency.Load()
	if p == nil {
		seen(&o.set.upstreams, o.upstream)
		obs := o.set.upstreamLatency.WithLabelValues(o.upstream)
		o.latency.CompareAndSwap(nil, &obs) // a racing request found the same series
		p = o.latency.Load()
	}
	(*p).Observe(d.Seconds())
}

// UpstreamLatency records one upstream exchange.
func (s *Set) UpstreamLatency(upstream string, d time.Duration) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.upstreamLatency.WithLabelValues(upstream).Observe(d.Seconds())
}

// RateLimited counts one 429.
func (s *Set) RateLimited(policy string) {
	if s == nil {
		return
	}
	seen(&s.policies, policy)
	s.rateLimitRejects.WithLabelValues(policy).Inc()
}

// BreakerState records an upstream's breaker state (0 closed, 1 half-open, 2 open).
func (s *Set) BreakerState(upstream string, state int) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.breakerState.WithLabelValues(upstream).Set(float64(state))
}

// Retried counts one retry sent to upstream. Retries happen on failures
// only: a label lookup each is affordable there.
func (s *Set) Retried(upstream string) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.retries.WithLabelValues(upstream, "sent").Inc()
}

// RetryRefused counts a retry the upstream's budget refused.
func (s *Set) RetryRefused(upstream string) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.retries.WithLabelValues(upstream, "budget_exhausted").Inc()
}

// Overflow counts a request or retry refused by circuit_breakers thresholds.
func (s *Set) Overflow(upstream, reason string) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.overflows.WithLabelValues(upstream, reason).Inc()
}

// Mirrored counts one copy of a request for a shadow, by result.
func (s *Set) Mirrored(upstream, result string) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.mirrored.WithLabelValues(upstream, result).Inc()
}

// Ejected counts one endpoint of upstream ejected by outlier detection.
func (s *Set) Ejected(upstream string) {
	if s == nil {
		return
	}
	seen(&s.upstreams, upstream)
	s.ejections.WithLabelValues(upstream).Inc()
}

// Snapshot records the snapshot being served.
func (s *Set) Snapshot(generation uint64, routes int) {
	if s == nil {
		return
	}
	s.snapshotGeneration.Set(float64(generation))
	s.snapshotRoutes.Set(float64(routes))
}

// ConfigRejected marks a Service's current annotation as rejected or not.
func (s *Set) ConfigRejected(service string, rejected bool) {
	if s == nil {
		return
	}
	if rejected {
		s.configErrors.WithLabelValues(service).Set(1)
		return
	}
	s.configErrors.DeleteLabelValues(service)
}

// seen records a label value in use. Load first: after the first request
// for a value, recording it costs a lookup and no allocation.
func seen(m *sync.Map, v string) {
	if _, ok := m.Load(v); !ok {
		m.Store(v, struct{}{})
	}
}

// Retain deletes the series of every route, upstream and rate-limit policy
// for which keep returns false; the snapshot being published says which
// exist. The route "" (requests nothing matched) always stays. A request
// still finishing on the previous snapshot may record a deleted series
// again; the next Retain removes it.
func (s *Set) Retain(keepRoute, keepUpstream, keepPolicy func(string) bool) {
	if s == nil {
		return
	}
	prune(&s.routes, func(v string) bool { return v == "" || keepRoute(v) }, func(v string) {
		s.requests.DeletePartialMatch(prometheus.Labels{"route": v})
	})
	prune(&s.upstreams, keepUpstream, func(v string) {
		s.upstreamLatency.DeleteLabelValues(v)
		s.breakerState.DeleteLabelValues(v)
		s.retries.DeletePartialMatch(prometheus.Labels{"upstream": v})
		s.ejections.DeleteLabelValues(v)
		s.overflows.DeletePartialMatch(prometheus.Labels{"upstream": v})
		s.mirrored.DeletePartialMatch(prometheus.Labels{"upstream": v})
	})
	prune(&s.policies, keepPolicy, func(v string) {
		s.rateLimitRejects.DeleteLabelValues(v)
	})
}

func prune(m *sync.Map, keep func(string) bool, drop func(string)) {
	m.Range(func(k, _ any) bool {
		if v := k.(string); !keep(v) {
			m.Delete(v)
			drop(v)
		}
		return true
	})
}
