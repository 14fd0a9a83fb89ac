package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

const (
	probeEvery    = 2 * time.Millisecond
	isolatedGap   = time.Second
	backToBackGap = 100 * time.Millisecond
	// The unrelated routes are requested at this pace throughout.
	unrelatedEvery = 5 * time.Millisecond
)

// result collects one case's apply-to-serve latencies; changes that never
// served within -change-timeout are counted, not timed.
type result struct {
	mu        sync.Mutex
	latencies []time.Duration
	failed    int
	firstErr  error
}

func (r *result) record(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.latencies = append(r.latencies, d)
}

// unrelated counts requests to routes no change touches, and those that
// did not answer 200.
type unrelated struct {
	sent, failed atomic.Int64
	first        atomic.Value // string: the first failure
}

// measureChanges runs both cases while the unrelated routes are requested
// in the background.
func (e *env) measureChanges(ctx context.Context, r *report) error {
	un, iso, b2b := &unrelated{}, &result{}, &result{}
	r.unrelated, r.isolated, r.b2b = un, iso, b2b
	bgCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); e.requestUnrelated(bgCtx, un) }()
	defer func() { stopBg(); bg.Wait() }()

	// change k touches Service unrelated+k, wrapping, so concurrent
	// back-to-back changes never edit the same Service and the version
	// in each new prefix is unique over the run.
	var k int
	next := func() (int, int) {
		id := e.o.unrelated + k%(e.o.services-e.o.unrelated)
		k++
		return id, k
	}

	logf("isolated: %d changes, %v apart", e.o.changes, isolatedGap)
	for range e.o.changes {
		started := time.Now()
		id, v := next()
		e.change(ctx, iso, id, v)
		if err := sleep(ctx, isolatedGap-time.Since(started)); err != nil {
			return err
		}
	}
	logf("back-to-back: %d changes, one every %v", e.o.changes, backToBackGap)
	var wg sync.WaitGroup
	tick := time.NewTicker(backToBackGap)
	defer tick.Stop()
	for n := range e.o.changes {
		if n > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			case <-tick.C:
			}
		}
		id, v := next()
		wg.Add(1)
		go func() { defer wg.Done(); e.change(ctx, b2b, id, v) }()
	}
	wg.Wait()
	return ctx.Err()
}

// change moves Service id to the new prefix /svc-id-vV/ and records the
// time from the Update's response until the gateway serves that prefix.
func (e *env) change(ctx context.Context, r *result, id, v int) {
	name := serviceName(id)
	prefix := fmt.Sprintf("/%s-v%d/", name, v)
	svcs := e.admin.CoreV1().Services(namespace)
	var applied time.Time
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		svc.Annotations[annotation] = mapping(id, prefix)
		_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		applied = time.Now()
		return err
	})
	if err != nil {
		r.record(0, fmt.Errorf("updating %s: %w", name, err))
		return
	}
	err = poll(ctx, e.o.changeWait, probeEvery, func() bool { return e.serves(ctx, prefix) })
	if err != nil {
		r.record(0, fmt.Errorf("waiting for %s to serve: %w", prefix, err))
		return
	}
	r.record(time.Since(applied), nil)
}

// requestUnrelated requests the routes of the never-changed Services in
// turn until ctx ends.
func (e *env) requestUnrelated(ctx context.Context, un *unrelated) {
	tick := time.NewTicker(unrelatedEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		path := "/" + serviceName(n%e.o.unrelated) + "/x"
		code, err := e.get(ctx, path)
		if ctx.Err() != nil {
			return // our own cancellation, not the gateway's failure
		}
		un.sent.Add(1)
		if err == nil && code == http.StatusOK {
			continue
		}
		if un.failed.Add(1) == 1 {
			un.first.Store(fmt.Sprintf("GET %s: status %d, error %v", path, code, err))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// report is everything a run prints.
type report struct {
	options
	serveAll, scaleServe serveAll
	scaleStarted         bool
	rss, scaleRSS        rss
	isolated, b2b        *result
	unrelated            *unrelated
}

// print writes what was measured; after a failure some parts are missing.
func (r *report) print(w io.Writer) {
	if r.isolated == nil {
		fmt.Fprintln(w, "no changes measured")
		printServeAll(w, 0, r.services, r.serveAll, r.rss)
		return
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "apply-to-serve with %d annotated Services (probing every %v):\n", r.services, probeEvery)
	for _, c := range []struct {
		name string
		r    *result
	}{{"isolated (>= 1 s apart)", r.isolated}, {"back-to-back (every 100 ms)", r.b2b}} {
		l := slices.Clone(c.r.latencies)
		slices.Sort(l)
		fmt.Fprintf(w, "  %-28s n=%d p50=%s p90=%s p99=%s max=%s failed=%d\n", c.name, len(l),
			ms(percentile(l, 0.50)), ms(percentile(l, 0.90)), ms(percentile(l, 0.99)), ms(percentile(l, 1)), c.r.failed)
		if c.r.firstErr != nil {
			fmt.Fprintf(w, "    first failure: %v\n", c.r.firstErr)
		}
	}
	fmt.Fprintf(w, "unrelated routes: %d requests, %d not 200\n", r.unrelated.sent.Load(), r.unrelated.failed.Load())
	if f, ok := r.unrelated.first.Load().(string); ok {
		fmt.Fprintf(w, "  first failure: %s\n", f)
	}
	printServeAll(w, 0, r.services, r.serveAll, r.rss)
	if r.scaleStarted {
		printServeAll(w, r.services, r.rssServices, r.scaleServe, r.scaleRSS)
	}
}

func printServeAll(w io.Writer, from, to int, s serveAll, m rss) {
	fmt.Fprintf(w, "Services %d..%d: created in %v; after the last create, a sample of 20 served in %v, all %d in %v (last sweep %v)\n",
		from, to-1, s.created.Round(time.Millisecond), s.sample.Round(time.Millisecond), to, s.all.Round(time.Millisecond), s.sweep.Round(time.Millisecond))
	fmt.Fprintf(w, "gateway RSS with %d annotated Services: %v\n", to, m)
}
