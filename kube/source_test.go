package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// fakeClient lists and watches the fake clientset as client-go's informer
// factory does, telling the reflectors that the fake cannot stream the
// initial list in a watch.
type fakeClient struct{ c *fake.Clientset }

var _ Client = fakeClient{}

func (f fakeClient) Services(ns string) cache.ListerWatcher {
	return f.listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return f.c.CoreV1().Services(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return f.c.CoreV1().Services(ns).Watch(ctx, o)
		})
}

func (f fakeClient) EndpointSlices(ns string) cache.ListerWatcher {
	return f.listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return f.c.DiscoveryV1().EndpointSlices(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return f.c.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
		})
}

// Secrets passes the options through as given: the fake clientset
// ignores field selectors anyway, so what the Source keeps of the Secrets it
// is sent is its own doing (kube/api's test checks the selector is sent).
func (f fakeClient) Secrets(ns string, _ corev1.SecretType) cache.ListerWatcher {
	return f.listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return f.c.CoreV1().Secrets(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return f.c.CoreV1().Secrets(ns).Watch(ctx, o)
		})
}

func (f fakeClient) Namespaces() cache.ListerWatcher {
	return f.listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return f.c.CoreV1().Namespaces().List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return f.c.CoreV1().Namespaces().Watch(ctx, o)
		})
}

func (f fakeClient) listWatch(list cache.ListWithContextFunc, watch cache.WatchFuncWithContext) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watch}, f.c)
}

// TestSourceLoop drives the wiring with the fake clientset and a fake
// clock: only pure logic is checked here (what reaches Apply, when, and
// which Events follow); the e2e tests run it against a real API server.
func TestSourceLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	client := fake.NewClientset(
		service("1", map[string]string{ourKey: "a1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}, 80),
		slice("1", "web", "10.0.0.1"),
	)
	// The fake clientset loses changes made between an informer's list
	// and its watch (a real API server replays them), so changes wait
	// until both watches run. Room for every informer's watch and its
	// renewals: the fake runs reactors under its lock, so a send that
	// blocked would stall the whole clientset.
	watching := make(chan string, 64)
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		watching <- a.GetResource().Resource
		return true, w, err
	})
	applied := make(chan snapshot.Input, 10)
	updated := make(chan snapshot.Input, 10)
	rec := record.NewFakeRecorder(10)
	s := New(Config{
		Client: fakeClient{client}, Keys: []string{ourKey}, Recorder: rec, Clock: clk,
		UpdateEndpoints: func(in snapshot.Input) { updated <- in },
		Apply: func(in snapshot.Input) []snapshot.Report {
			var reports []snapshot.Report
			for _, svc := range in.Services {
				if _, ok := svc.Annotations[ourKey]; ok {
					reports = append(reports, snapshot.Report{Service: svc.Namespace + "/" + svc.Name, Annotation: ourKey})
				}
			}
			applied <- in
			return reports
		},
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	in := <-applied
	for seen := map[string]bool{}; !seen["services"] || !seen["endpointslices"]; {
		seen[<-watching] = true
	}
	if len(in.Services) != 1 || len(in.Slices) != 1 {
		t.Fatalf("first Apply: %d Services, %d slices; want the synced cache (1, 1)", len(in.Services), len(in.Slices))
	}
	if got := in.Services[0].Annotations; len(got) != 1 || got[ourKey] != "a1" {
		t.Errorf("first Apply: annotations %v; only ours should be cached", got)
	}

	update := func(svc *corev1.Service) {
		t.Helper()
		if _, err := client.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create := func(svc *corev1.Service) {
		t.Helper()
		if _, err := client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// waitObserved polls until the informer has handed the loop a change
	// to name (informers deliver asynchronously; nothing else says when).
	waitObserved := func(name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			_, ok := s.observed["shop/"+name]
			s.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("change to %s never reached the loop", name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// waitTimer polls until the loop has armed its holdoff timer.
	waitTimer := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("the loop never armed its holdoff timer")
			}
			time.Sleep(time.Millisecond)
		}
	}

	// No-op updates are dropped at the door; informers deliver in order, so
	// once the later real change (to "api") is seen, the no-ops were judged.
	relabel := service("2", map[string]string{ourKey: "a1"}, 80)
	relabel.Labels["team"] = "blue"
	update(relabel)
	sameRV := service("2", map[string]string{ourKey: "never seen"}, 80)
	update(sameRV)
	api := service("1", map[string]string{ourKey: "b1"}, 80)
	api.Name = "api"
	create(api)
	waitObserved("api")
	s.mu.Lock()
	_, webSeen := s.observed["shop/web"]
	s.mu.Unlock()
	if webSeen {
		t.Error("a label change or a same-resourceVersion update reached the loop")
	}

	// A burst coalesces: changes 4 ms apart on the fake clock are applied
	// once. The loop may take the last wake-up before or after the clock
	// moves; stepping past the cap makes the batch due either way.
	waitTimer()
	clk.Step(4 * time.Millisecond)
	update(service("3", map[string]string{ourKey: "a2"}, 80))
	waitObserved("web")
	clk.Step(4 * time.Millisecond)
	cart := service("1", map[string]string{ourKey: "c1"}, 80)
	cart.Name = "cart"
	create(cart)
	waitObserved("cart")
	for len(s.wake) > 0 {
		time.Sleep(time.Millisecond) // until the loop has taken the wake-up
	}
	clk.Step(50 * time.Millisecond)
	select {
	case in = <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("no Apply after the holdoff")
	}
	got := map[string]string{}
	for _, svc := range in.Services {
		got[svc.Name] = svc.Annotations[ourKey]
	}
	if got["web"] != "a2" || got["api"] != "b1" || got["cart"] != "c1" {
		t.Errorf("coalesced Apply saw %v; want api=b1 cart=c1 web=a2", got)
	}
	if clk.HasWaiters() {
		t.Error("holdoff timer still armed after the batch was applied: the burst would be applied twice")
	}
	// Events follow the Apply; wait for the three expected.
	var events []string
	for len(events) < 3 {
		select {
		case e := <-rec.Events:
			events = append(events, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("events after the coalesced Apply: %q; want three", events)
		}
	}
	want := map[string]bool{
		"Normal Programmed routes programmed in 58 ms after the change was observed": true, // api, seen at 0 ms
		"Normal Programmed routes programmed in 54 ms after the change was observed": true, // web, seen at 4 ms
		"Normal Programmed routes programmed in 50 ms after the change was observed": true, // cart, seen at 8 ms
	}
	for _, e := range events {
		if !want[e] {
			t.Errorf("unexpected event %q", e)
		}
		delete(want, e)
	}
	for e := range want {
		t.Errorf("missing event %q", e)
	}

	// Endpoint changes alone update the upstreams in place: no rebuild.
	es := slice("2", "web", "10.0.0.1", "10.0.0.2")
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTimer()
	clk.Step(10 * time.Millisecond)
	select {
	case in = <-updated:
	case in = <-applied:
		t.Fatal("an endpoint-only change rebuilt the snapshot")
	case <-time.After(10 * time.Second):
		t.Fatal("no endpoint update after an endpoint change")
	}
	if len(in.Slices) != 1 || len(in.Slices[0].Endpoints) != 2 {
		t.Errorf("UpdateEndpoints after the endpoint change saw %+v", in.Slices)
	}

	// A deletion rebuilds without an Event; its Apply also proves the
	// loop finished the previous round, Events included.
	if err := client.CoreV1().Services("shop").Delete(ctx, "cart", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTimer()
	clk.Step(10 * time.Millisecond)
	select {
	case in = <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("no Apply after a deletion")
	}
	if len(in.Services) != 2 {
		t.Errorf("Apply after deleting cart saw %d Services, want 2", len(in.Services))
	}
	if events := drain(rec); len(events) != 0 {
		t.Errorf("an endpoint change recorded %q", events)
	}
}

// TestSourceNamespaces checks that a Source limited to namespaces builds
// from those alone, one informer set per namespace.
func TestSourceNamespaces(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in := func(ns, name string) *corev1.Service {
		svc := service("1", map[string]string{ourKey: name}, 80)
		svc.Namespace, svc.Name = ns, name
		return svc
	}
	client := fake.NewClientset(in("shop", "a"), in("blog", "b"), in("kube-system", "c"))
	applied := make(chan snapshot.Input, 1)
	s := New(Config{
		Client: fakeClient{client}, Keys: []string{ourKey}, Namespaces: []string{"shop", "blog"},
		Apply: func(in snapshot.Input) []snapshot.Report {
			applied <- in
			return nil
		},
	})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	got := <-applied
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	var names []string
	for _, svc := range got.Services {
		names = append(names, svc.Namespace+"/"+svc.Name)
	}
	if strings.Join(names, " ") != "blog/b shop/a" {
		t.Errorf("first Apply saw %v; want blog/b shop/a, sorted", names)
	}
}
