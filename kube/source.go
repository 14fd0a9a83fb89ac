// Package kube feeds the gateway from the Kubernetes API: informers watch
// Services, EndpointSlices and Secrets of type kubernetes.io/tls, one event
// loop turns their changes into snapshot builds, and Events on each Service
// tell its owner whether the gateway took the Service's annotations.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// Defaults for Config.Quiet and Config.MaxDelay. Contour waits ~100 ms
// (capped ~500 ms); a gateway whose rebuild re-parses only what changed can
// afford to react ten times sooner.
const (
	DefaultQuiet    = 10 * time.Millisecond
	DefaultMaxDelay = 50 * time.Millisecond
)

// Client lists and watches what a Source reads: Services, EndpointSlices
// and Secrets of type kubernetes.io/tls of one namespace (of all when it is
// corev1.NamespaceAll), and Namespaces. kube/api's Client is the real one;
// tests list and watch a fake.
type Client interface {
	Services(namespace string) cache.ListerWatcher
	EndpointSlices(namespace string) cache.ListerWatcher
	// Secrets must have the API server filter by type (a field
	// selector), so that no other Secret is ever sent to the gateway. The
	// Source asks for the types in snapshot.SecretTypes, and keeps nothing
	// of any other type it is sent all the same.
	Secrets(namespace string, typ corev1.SecretType) cache.ListerWatcher
	Namespaces() cache.ListerWatcher
}

// Config is what a Source needs. Client, Keys and Apply are required.
type Config struct {
	Client Client
	// Namespaces to watch; empty means all. A gateway limited to some
	// namespaces needs RBAC in those only, so each gets its own informers
	// rather than one cluster-wide watch filtered afterwards.
	Namespaces []string
	// Keys are the annotations that carry configuration (see
	// snapshot.Options). Changes to other annotations are ignored, and the
	// cache drops them.
	Keys []string
	// Apply builds and publishes a snapshot (server.Server.Apply).
	Apply func(snapshot.Input) []snapshot.Report
	// UpdateEndpoints, when set, takes rounds in which only EndpointSlices
	// changed: the routes are the same, so the upstreams are updated in
	// place (server.Server.UpdateEndpoints) instead of rebuilding.
	UpdateEndpoints func(snapshot.Input)
	// Recorder receives Events about Services; nil records none.
	Recorder Recorder
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Quiet is how long the stream of changes must pause before a rebuild;
	// MaxDelay caps how long the first change of a burst waits. Zero means
	// DefaultQuiet and DefaultMaxDelay.
	Quiet, MaxDelay time.Duration
	// Clock is for tests; nil means the real one.
	Clock clock.Clock
	// HashKey hashes API keys as they arrive (snapshot.TrimSecret), so the
	// cache never holds one; nil keeps none.
	HashKey func([]byte) [32]byte
}

// Source keeps a gateway's snapshot in step with the cluster. Nothing is
// built before the informers' caches have synced, so the first snapshot is
// the whole cluster and never a partial one that would 404 routes that
// exist. Informer callbacks only note that something changed; one goroutine
// owns all the rest (listing, Apply, Events), so there is no locking beyond
// that hand-off.
//
// When the API server is unreachable the informers retry on their own
// (client-go backs off up to 30 s and logs the failures only at -v=2) and
// the last snapshot keeps serving; nothing is cleared. What changed in the
// meantime arrives with the relist after reconnecting.
//
// A Source runs once.
type Source struct {
	client     Client
	namespaces []string
	keys       []string
	apply      func(snapshot.Input) []snapshot.Report
	endpoints  func(snapshot.Input)
	recorder   Recorder
	log        *slog.Logger
	clock      clock.Clock
	hold       holdoff
	hashKey    func([]byte) [32]byte

	wake chan struct{} // capacity 1: a pending wake-up covers any number of changes

	mu       sync.Mutex
	observed map[string]time.Time // Service key → when a change to it was first seen; guarded by mu
	services bool                 // a Service changed since the last sync; guarded by mu

	namespaceStore cache.Store // set by Run before the loop starts

	// Owned by the loop goroutine.
	applied map[string][32]byte // Service key → fingerprint of its annotations at the last Apply; nil before it
	warned  map[string]string   // Service key → message of its last Warning Event
	// certWarned is the same for CertificateNotServed Events.
	certWarned map[string]string
	authWarned map[string]string // the same for AuthSecretNotUsable
	nsWarned   map[string]string // Namespace name → message of its last InvalidAnnotation Event
}

// New returns a Source; Run starts it.
func New(cfg Config) *Source {
	s := &Source{
		client:     cfg.Client,
		namespaces: cfg.Namespaces,
		keys:       cfg.Keys,
		apply:      cfg.Apply,
		endpoints:  cfg.UpdateEndpoints,
		recorder:   cfg.Recorder,
		log:        cfg.Logger,
		clock:      cfg.Clock,
		hashKey:    cfg.HashKey,
		hold:       holdoff{quiet: cfg.Quiet, max: cfg.MaxDelay},
		wake:       make(chan struct{}, 1),
		observed:   map[string]time.Time{},
		warned:     map[string]string{},
		certWarned: map[string]string{},
		nsWarned:   map[string]string{},
		authWarned: map[string]string{},
	}
	if s.recorder == nil {
		s.recorder = discard{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.hold.quiet <= 0 {
		s.hold.quiet = DefaultQuiet
	}
	if s.hold.max <= 0 {
		s.hold.max = DefaultMaxDelay
	}
	if len(s.namespaces) == 0 {
		s.namespaces = []string{corev1.NamespaceAll}
	}
	return s
}

// watched is one namespace's (or the whole cluster's) caches.
type watched struct {
	services, slices cache.Store
	secrets          []typedStore // one per snapshot.SecretTypes
}

// typedStore is the cache of one type of Secret.
type typedStore struct {
	typ   corev1.SecretType
	store cache.Store
}

// Run watches the cluster and applies its state until ctx ends. It returns
// nil then, or an error if it could not start.
func (s *Source) Run(ctx context.Context) error {
	if s.client == nil || s.apply == nil || len(s.keys) == 0 {
		return errors.New("starting the Kubernetes source: client, apply and keys are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var informers []cache.SharedIndexInformer
	var running sync.WaitGroup
	defer func() {
		cancel()
		running.Wait() // the informers' goroutines
	}()
	start := func(inf cache.SharedIndexInformer) {
		informers = append(informers, inf)
		running.Go(func() { inf.RunWithContext(ctx) })
	}

	var all []watched
	for _, ns := range s.namespaces {
		svcs, err := newInformer(s.client.Services(ns), &corev1.Service{}, s.trim)
		if err != nil {
			return fmt.Errorf("watching Services in %q: %w", nsName(ns), err)
		}
		slices, err := newInformer(s.client.EndpointSlices(ns), &discoveryv1.EndpointSlice{}, s.trim)
		if err != nil {
			return fmt.Errorf("watching EndpointSlices in %q: %w", nsName(ns), err)
		}
		// Objects of the initial list are in the cache once it has synced,
		// and the first build reads them all: their adds are not changes.
		if _, err := svcs.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if !initial {
					s.serviceEvent(obj)
				}
			},
			UpdateFunc: s.serviceUpdate,
			DeleteFunc: func(obj any) { s.serviceEvent(deletedObject(obj)) },
		}); err != nil {
			return fmt.Errorf("watching Services in %q: %w", nsName(ns), err)
		}
		if _, err := slices.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(_ any, initial bool) {
				if !initial {
					s.signal()
				}
			},
			UpdateFunc: s.sliceUpdate,
			DeleteFunc: func(any) { s.signal() },
		}); err != nil {
			return fmt.Errorf("watching EndpointSlices in %q: %w", nsName(ns), err)
		}
		w := watched{services: svcs.GetStore(), slices: slices.GetStore()}
		start(svcs)
		start(slices)
		// A Secret is configuration (a certificate, a key set, API
		// keys): a change rebuilds, as a Service's does, and the build
		// reads them anew.
		for _, typ := range snapshot.SecretTypes {
			secrets, err := newInformer(s.client.Secrets(ns, typ), &corev1.Secret{}, s.trim)
			if err != nil {
				return fmt.Errorf("watching Secrets of type %s in %q: %w", typ, nsName(ns), err)
			}
			if _, err := secrets.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
				AddFunc: func(obj any, initial bool) {
					if !initial && isSecretOf(obj, typ) {
						s.configEvent()
					}
				},
				UpdateFunc: func(oldObj, newObj any) {
					old, ok1 := oldObj.(*corev1.Secret)
					cur, ok2 := newObj.(*corev1.Secret)
					if ok1 && ok2 && secretChanged(old, cur, typ) {
						s.configEvent()
					}
				},
				DeleteFunc: func(obj any) {
					if isSecretOf(deletedObject(obj), typ) {
						s.configEvent()
					}
				},
			}); err != nil {
				return fmt.Errorf("watching Secrets of type %s in %q: %w", typ, nsName(ns), err)
			}
			w.secrets = append(w.secrets, typedStore{typ: typ, store: secrets.GetStore()})
			start(secrets)
		}
		all = append(all, w)
	}

	// Namespaces are cluster-scoped: one informer, whatever --namespace
	// says, for the grants that let Mappings route across namespaces, the
	// delegations of owned hosts and the allowed hosts
	// (snapshot.NamespaceKeys). The cache keeps names and those.
	nsInformer, err := newInformer(s.client.Namespaces(), &corev1.Namespace{}, trimNamespace)
	if err != nil {
		return fmt.Errorf("watching Namespaces: %w", err)
	}
	if _, err := nsInformer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if ns, ok := obj.(*corev1.Namespace); ok && !initial && namespaceConfig(ns) != "" {
				s.configEvent()
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := oldObj.(*corev1.Namespace)
			cur, ok2 := newObj.(*corev1.Namespace)
			if ok1 && ok2 && namespaceConfig(old) != namespaceConfig(cur) {
				s.configEvent()
			}
		},
		DeleteFunc: func(any) { s.configEvent() },
	}); err != nil {
		return fmt.Errorf("watching Namespaces: %w", err)
	}
	s.namespaceStore = nsInformer.GetStore()
	start(nsInformer)

	s.log.Info("waiting for the informer caches to sync", "namespaces", s.namespaces)
	synced := make([]cache.DoneChecker, len(informers))
	for i, inf := range informers {
		synced[i] = inf.HasSyncedChecker()
	}
	// It returns early only when ctx ends; until then the informers retry,
	// so an API server that is down at start delays the first snapshot
	// rather than failing the gateway.
	if !cache.WaitFor(ctx, "", synced...) {
		return nil
	}
	s.log.Info("informer caches synced")
	s.sync(all)
	s.loop(ctx, all)
	return nil
}

// newInformer returns an informer over lw whose cache holds what transform
// makes of each object. No resync: the event loop reads whole state from
// the caches on every rebuild, so a periodic replay would only cost CPU.
// No indexers: the loop only ever lists a cache whole, so an index (the
// informer factory's by namespace) would cost an entry per object and be
// read by nobody.
func newInformer(lw cache.ListerWatcher, example runtime.Object, transform cache.TransformFunc) (cache.SharedIndexInformer, error) {
	inf := cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{})
	if err := inf.SetTransform(transform); err != nil {
		return nil, err
	}
	return inf, nil
}

func nsName(ns string) string {
	if ns == corev1.NamespaceAll {
		return "all namespaces"
	}
	return ns
}

// signal wakes the loop without blocking the informer: if a wake-up is
// already pending it covers this change too.
func (s *Source) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// serviceEvent notes when a change to a Service was first seen, for the
// Programmed Event's latency, and wakes the loop.
func (s *Source) serviceEvent(obj any) {
	if svc, ok := obj.(*corev1.Service); ok {
		key := svc.Namespace + "/" + svc.Name
		now := s.clock.Now()
		s.mu.Lock()
		if _, seen := s.observed[key]; !seen {
			s.observed[key] = now
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.services = true // deletions arrive as tombstones, not Services
	s.mu.Unlock()
	s.signal()
}

func (s *Source) serviceUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Service)
	cur, ok2 := newObj.(*corev1.Service)
	if ok1 && ok2 && !s.serviceChanged(old, cur) {
		return
	}
	s.serviceEvent(newObj)
}

// sliceUpdate wakes the loop for endpoint changes. They rebuild the whole
// snapshot; that is cheap because the builder re-parses only annotations
// that changed.
func (s *Source) sliceUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*discoveryv1.EndpointSlice)
	cur, ok2 := newObj.(*discoveryv1.EndpointSlice)
	if ok1 && ok2 && !sliceChanged(old, cur) {
		return
	}
	s.signal()
}

// configEvent wakes the loop for a change that needs a rebuild but is not
// about one Service: a Namespace's grant, a Secret.
func (s *Source) configEvent() {
	s.mu.Lock()
	s.services = true
	s.mu.Unlock()
	s.signal()
}

// takeObserved returns and resets what changed since the last sync: when
// each changed Service was first seen, and whether any Service changed.
func (s *Source) takeObserved() (map[string]time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, services := s.observed, s.services
	s.observed, s.services = map[string]time.Time{}, false
	return o, services
}

// loop applies changes once they settle (see holdoff) until ctx ends.
func (s *Source) loop(ctx context.Context, all []watched) {
	var timer clock.Timer // running while changes are pending
	stop := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
	}
	defer stop()
	for {
		var fired <-chan time.Time
		if timer != nil {
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			s.hold.add(s.clock.Now())
		case <-fired:
			timer = nil
		}
		now := s.clock.Now()
		if s.hold.take(now) {
			stop()
			s.sync(all)
			continue
		}
		if s.hold.pending {
			stop()
			timer = s.clock.NewTimer(s.hold.due().Sub(now))
		}
	}
}

// sync builds a snapshot from the caches' current state and records the
// Events it calls for.
func (s *Source) sync(all []watched) {
	// Changes noted from here on may or may not make it into this build;
	// they are noted again for the next.
	observed, servicesChanged := s.takeObserved()
	var in snapshot.Input
	for _, obj := range s.namespaceStore.List() {
		if ns, ok := obj.(*corev1.Namespace); ok && namespaceConfig(ns) != "" {
			in.Namespaces = append(in.Namespaces, ns)
		}
	}
	s.recordNamespaceWarnings(in.Namespaces)
	for _, w := range all {
		for _, obj := range w.services.List() {
			if svc, ok := obj.(*corev1.Service); ok {
				in.Services = append(in.Services, svc)
			}
		}
		for _, obj := range w.slices.List() {
			if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
				in.Slices = append(in.Slices, es)
			}
		}
		for _, ts := range w.secrets {
			for _, obj := range ts.store.List() {
				if sec, ok := obj.(*corev1.Secret); ok && sec.Type == ts.typ {
					in.Secrets = append(in.Secrets, sec)
				}
			}
		}
	}
	// Caches list in map order; sorting keeps builds reproducible.
	sort.Slice(in.Services, func(i, j int) bool {
		a, b := in.Services[i], in.Services[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	sort.Slice(in.Slices, func(i, j int) bool {
		a, b := in.Slices[i], in.Slices[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	sort.Slice(in.Secrets, func(i, j int) bool {
		a, b := in.Secrets[i], in.Secrets[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})

	if !servicesChanged && s.endpoints != nil && s.applied != nil {
		s.endpoints(in)
		return
	}
	reports := s.apply(in)
	s.recordEvents(in.Services, reports, observed, s.clock.Now())
}
