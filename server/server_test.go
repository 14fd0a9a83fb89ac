package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// appInput is one Service routing / to an upstream at addr (127.0.0.1:port).
func appInput(t *testing.T, addr string) snapshot.Input {
	t.Helper()
	_, portStr, _ := net.SplitHostPort(addr)
	p, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	port := int32(p)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app", Annotations: map[string]string{
			annotations.Key: "kind: Mapping\nname: app\nprefix: /\nservice: app\n"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "app-1", Labels: map[string]string{"kubernetes.io/service-name": "app"}},
		Ports:      []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
	}
	return snapshot.Input{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{slice}}
}

func TestServerLifecycle(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer up.Close()

	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true})
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} }) }()
	a := <-addrs
	proxyURL, adminURL := "http://"+a[0], "http://"+a[1]

	if code, _ := get(t, adminURL+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get(t, adminURL+"/readyz"); code != 503 {
		t.Errorf("readyz before the first snapshot: %d, want 503", code)
	}
	if code, _ := get(t, proxyURL+"/x"); code != 503 {
		t.Errorf("traffic before the first snapshot: %d, want 503", code)
	}
	s.Apply(appInput(t, up.Listener.Addr().String()))
	if code, _ := get(t, adminURL+"/readyz"); code != 200 {
		t.Errorf("readyz after Apply: %d", code)
	}
	if code, body := get(t, proxyURL+"/x"); code != 200 || body != "done" {
		t.Errorf("proxied: %d %q", code, body)
	}
	_, metrics := get(t, adminURL+"/metrics")
	for _, want := range []string{"gatehouse_snapshot_generation 1", "gatehouse_snapshot_routes 1", `gatehouse_requests_total{route="t/app",status="200"} 1`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// A request in flight when shutdown starts still completes.
	slow := make(chan string, 1)
	go func() {
		_, body := get(t, proxyURL+"/slow")
		slow <- body
	}()
	<-started
	cancel()
	// Shutdown is under way once the listener refuses new connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := http.Get(proxyURL + "/x"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after cancel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if body := <-slow; body != "done" {
		t.Errorf("in-flight request got %q, want it to complete", body)
	}
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestMetricsFollowTheSnapshot: series of a route that is gone disappear,
// and a Service deleted while rejected stops being reported as rejected.
// /debug/pprof is served only when asked for.
func TestMetricsFollowTheSnapshot(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]string, 1)
	go s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} })
	a := <-addrs
	proxyURL, adminURL := "http://"+a[0], "http://"+a[1]

	in := appInput(t, up.Listener.Addr().String())
	broken := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "broken",
		Annotations: map[string]string{annotations.Key: "kind: Mapping\nname: x\nprefx: /x/\n"}}}
	in.Services = append(in.Services, broken)
	s.Apply(in)
	if code, _ := get(t, proxyURL+"/x"); code != 200 {
		t.Fatalf("proxied: %d", code)
	}
	_, m := get(t, adminURL+"/metrics")
	for _, want := range []string{`gatehouse_requests_total{route="t/app",status="200"} 1`, `gatehouse_upstream_latency_seconds_count{upstream="t/app:80"} 1`, `gatehouse_config_rejected{service="t/broken"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	s.Apply(snapshot.Input{})
	_, m = get(t, adminURL+"/metrics")
	for _, gone := range []string{`route="t/app"`, `upstream="t/app:80"`, `service="t/broken"`} {
		if strings.Contains(m, gone) {
			t.Errorf("metrics still have %s after the Services are gone", gone)
		}
	}
	if code, _ := get(t, adminURL+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", code)
	}
}

// TestReadyzWaitsForTheExtraCondition: with Config.Ready set, a served
// snapshot is not enough for /readyz.
func TestReadyzWaitsForTheExtraCondition(t *testing.T) {
	var notYet atomic.Bool
	notYet.Store(true)
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true, Ready: func() error {
		if notYet.Load() {
			return errors.New("webhook certificate not loaded yet")
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]string, 1)
	go s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} })
	adminURL := "http://" + (<-addrs)[1]
	s.Apply(snapshot.Input{})
	if code, body := get(t, adminURL+"/readyz"); code != 503 || !strings.Contains(body, "webhook certificate") {
		t.Errorf("readyz with the condition unmet: %d %q", code, body)
	}
	notYet.Store(false)
	if code, _ := get(t, adminURL+"/readyz"); code != 200 {
		t.Errorf("readyz with the condition met: %d", code)
	}
}

// TestPprofOnlyWhenAsked: Config.Pprof puts the profiles on the admin
// listener (TestMetricsFollowTheSnapshot checks they are absent otherwise).
func TestPprofOnlyWhenAsked(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", AllowLoopback: true, Pprof: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]string, 1)
	go s.Run(ctx, func(p, a string) { addrs <- [2]string{p, a} })
	adminURL := "http://" + (<-addrs)[1]
	if code, body := get(t, adminURL+"/debug/pprof/"); code != 200 || !strings.Contains(body, "heap") {
		t.Errorf("/debug/pprof/ with Pprof: %d", code)
	}
	if code, _ := get(t, adminURL+"/debug/pprof/heap?debug=1"); code != 200 {
		t.Errorf("/debug/pprof/heap with Pprof: %d", code)
	}
}
