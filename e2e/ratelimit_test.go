package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const rlNS = "rl-shop"

// redisProc is a throwaway redis-server on a loopback port.
type redisProc struct {
	addr string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on port (0: a free one), persisting
// nothing, and waits until it answers PING.
func startRedis(t *testing.T, port int) *redisProc {
	t.Helper()
	bin := requireTool(t, "redis-server")
	if port == 0 {
		port = freePort(t)
	}
	r := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	waitFor(t, "redis-server answers PING", 20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprint(c, "PING\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "+PONG")
	})
	return r
}

func (r *redisProc) stop() {
	if r.cmd.Process != nil && r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// admitted sends n GET path requests spread over the gateways from
// workers goroutines, as fast as they answer, and counts the 200s; any
// answer but 200 and 429 is an error.
func admitted(t *testing.T, bases []string, path string, workers, n int) (ok int64, elapsed time.Duration) {
	t.Helper()
	return admittedUntil(t, bases, path, workers, n, time.Time{})
}

// admittedUntil is admitted, stopping at n requests or at the deadline
// (zero: none), whichever comes first.
func admittedUntil(t *testing.T, bases []string, path string, workers, n int, deadline time.Time) (ok int64, elapsed time.Duration) {
	t.Helper()
	var okN, sent atomic.Int64
	var bad atomic.Pointer[string]
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; sent.Add(1) <= int64(n) && (deadline.IsZero() || time.Now().Before(deadline)); i++ {
				resp, err := client.Get(bases[i%len(bases)] + path)
				if err != nil {
					msg := err.Error()
					bad.CompareAndSwap(nil, &msg)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					okN.Add(1)
				case 429:
				default:
					msg := "status " + resp.Status
					bad.CompareAndSwap(nil, &msg)
				}
			}
		}()
	}
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Errorf("a request failed: %s", *b)
	}
	return okN.Load(), time.Since(start)
}

// startBalancer is a TCP load balancer on loopback in front of the
// gateways at addrs: each accepted connection goes to the next one in
// turn, as a Service's kube-proxy spreads them. It returns its base URL.
func startBalancer(t *testing.T, bases []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", strings.TrimPrefix(bases[i%len(bases)], "http://"))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestLimitsAcrossReplicas runs two gateway processes on one cluster,
// behind one address (startBalancer): with
// replica-aware division a policy holds across both (within its
// rounding), with Redis exactly, and when Redis stops each falls back to
// its share, then returns to Redis when it is back.
func TestLimitsAcrossReplicas(t *testing.T) {
	env := startKubeEnv(t)
	ctx := context.Background()
	podA := env.pods[0]
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rlNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The gateways' own Service, with two ready endpoints: theirs.
	ready := true
	if _, err := env.admin.DiscoveryV1().EndpointSlices(rlNS).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "gw-1", Namespace: rlNS, Labels: map[string]string{"kubernetes.io/service-name": "gw"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.255.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.255.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: rlNS, Annotations: map[string]string{"gatehouse.dev/config": `kind: Mapping
name: steady
prefix: /steady/
service: api
rate_limits: [steady]
---
kind: Mapping
name: fixed
prefix: /fixed/
service: api
rate_limits: [fixed]
---
kind: RateLimit
name: steady
rate: 6000
unit: minute
burst: 20
---
kind: RateLimit
name: fixed
rate: 1
unit: hour
burst: 100
`}}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := env.admin.CoreV1().Services(rlNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.setEndpointsIn(t, rlNS, "api", podA)

	start := func(extra ...string) []string {
		var bases []string
		for range 2 {
			g := startProcess(t, "", append([]string{"serve", "--kubeconfig", env.gatehouseKubeconfig, "--access-log=false",
				"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--replicas-from", rlNS + "/gw"}, extra...)...)
			g.eventually("the route is served", func() bool {
				r, err := fetch(g.base, "/steady/warm")
				return err == nil && (r.status == 200 || r.status == 429)
			})
			bases = append(bases, g.base)
		}
		return []string{startBalancer(t, bases)}
	}

	t.Run("replica share", func(t *testing.T) {
		bases := start()
		// 100 a second with a burst of 20, shared by two: each replica 50
		// a second and 10 at once. Without the share, 2 × 320.
		ok, elapsed := admittedUntil(t, bases, "/steady/x", 8, 1<<30, time.Now().Add(3*time.Second))
		want := 20 + 100*elapsed.Seconds()
		t.Logf("replica share: %d admitted in %v; the policy allows %.0f over that time", ok, elapsed.Round(time.Millisecond), want)
		if d := float64(ok) - want; d > 0.05*want || d < -0.05*want {
			t.Errorf("%d admitted across two replicas, want %.0f ± 5%%", ok, want)
		}
	})

	t.Run("Redis", func(t *testing.T) {
		redis := startRedis(t, 0)
		bases := start("--ratelimit-redis", redis.addr, "--ratelimit-redis-timeout", "50ms")
		ok, _ := admitted(t, bases, "/fixed/x", 8, 400)
		t.Logf("Redis: %d admitted of 400 from two replicas (burst 100, 1 an hour)", ok)
		if ok != 100 {
			t.Errorf("%d admitted across two replicas sharing Redis, want exactly 100", ok)
		}
		// Redis stops: each replica falls back to its share (50 at once).
		port, _ := strconv.Atoi(redis.addr[strings.LastIndexByte(redis.addr, ':')+1:])
		redis.stop()
		ok, _ = admitted(t, bases, "/fixed/y", 8, 400)
		t.Logf("Redis down: %d admitted of 400 by the replicas' local shares", ok)
		if ok < 90 || ok > 100 {
			t.Errorf("with Redis down %d were admitted, want the two local shares, 100 (at least 90: a request in flight at the stop may be Redis's)", ok)
		}
		// Redis returns (empty: it persisted nothing): decisions are
		// global again once each replica's probe finds it.
		startRedis(t, port)
		// The local shares are spent (and refill 1 an hour), so a request
		// admitted now was admitted by Redis, whose bucket is full again.
		var back int64
		waitFor(t, "the replicas use Redis again", 20*time.Second, func() bool {
			ok, _ := admitted(t, bases, "/fixed/probe", 2, 4)
			back += ok
			return ok > 0
		})
		ok, _ = admitted(t, bases, "/fixed/z", 8, 400)
		back += ok
		t.Logf("Redis back: %d admitted", back)
		if back != 100 {
			t.Errorf("after Redis returned %d were admitted across both, want exactly its 100", back)
		}
	})
}
