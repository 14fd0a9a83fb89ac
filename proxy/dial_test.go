package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// adminListener stands in for the gateway's admin port: a real listener on
// 127.0.0.1 that counts the connections reaching it.
func adminListener(t *testing.T) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), &n
}

// get fetches url through a transport, as the proxy's ReverseProxy would.
func get(rt http.RoundTripper, url string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

func guard(t *testing.T, o upstream.GuardOptions) *upstream.DialGuard {
	t.Helper()
	g, err := upstream.NewDialGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestTransportNeverDialsTheGatewayItself(t *testing.T) {
	admin, reached := adminListener(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer app.Close()

	// File mode: loopback upstreams are fine, the admin port is not.
	rt := NewTransport(guard(t, upstream.GuardOptions{AllowLoopback: true, Self: []netip.AddrPort{admin}}))
	defer rt.CloseIdleConnections()
	if err := get(rt, "http://"+admin.String()+"/metrics"); !errors.Is(err, upstream.ErrForbiddenAddress) {
		t.Errorf("GET admin port: %v, want ErrForbiddenAddress", err)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(admin.Addr().As16()), admin.Port()) // [::ffff:127.0.0.1]:port
	if err := get(rt, "http://"+mapped.String()+"/metrics"); !errors.Is(err, upstream.ErrForbiddenAddress) {
		t.Errorf("GET admin port as %s: %v, want ErrForbiddenAddress", mapped, err)
	}
	if err := get(rt, app.URL); err != nil {
		t.Errorf("GET loopback upstream: %v", err)
	}

	// The defaults (nil guard, as in Kubernetes): no loopback at all.
	for _, rt := range []*http.Transport{NewTransport(nil), NewTransport(guard(t, upstream.GuardOptions{Self: []netip.AddrPort{admin}}))} {
		for _, url := range []string{"http://" + admin.String() + "/", app.URL} {
			if err := get(rt, url); !errors.Is(err, upstream.ErrForbiddenAddress) {
				t.Errorf("GET %s: %v, want ErrForbiddenAddress", url, err)
			}
		}
		rt.CloseIdleConnections()
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the admin listener accepted %d connections", n)
	}
}

func TestTransportChecksNamesAfterResolving(t *testing.T) {
	admin, reached := adminListener(t)
	// "localhost" passes no text check: only the address it resolves to,
	// loopback, can refuse it.
	rt := NewTransport(guard(t, upstream.GuardOptions{AllowLoopback: true, Self: []netip.AddrPort{admin}}))
	defer rt.CloseIdleConnections()
	err := get(rt, "http://localhost:"+strconv.Itoa(int(admin.Port()))+"/")
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, upstream.ErrForbiddenAddress):
		// The resolver answered loopback (RFC 6761) and Control refused it.
	case errors.As(err, &dnsErr):
		// Rooted, the name skips /etc/hosts and search domains; a resolver
		// that does not answer for localhost. says so. Either way it was
		// looked up fully qualified.
		if dnsErr.Name != "localhost." {
			t.Errorf("looked up %q, want the rooted localhost.", dnsErr.Name)
		}
	default:
		t.Errorf("GET localhost: %v, want a refusal", err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the admin listener accepted %d connections", n)
	}
}

func TestTransportRefusesBeforeConnecting(t *testing.T) {
	rt := NewTransport(nil)
	defer rt.CloseIdleConnections()
	for _, url := range []string{"http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:1/", "http://[fd00:ec2::254]/", "http://0.0.0.0:1/"} {
		// Control runs before connect: the refusal is immediate, with no
		// connect timeout spent on a host that may not even answer.
		start := time.Now()
		err := get(rt, url)
		if !errors.Is(err, upstream.ErrForbiddenAddress) {
			t.Errorf("GET %s: %v, want ErrForbiddenAddress", url, err)
			continue
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET %s refused after %v", url, d)
		}
		if !strings.Contains(err.Error(), "are not upstreams") {
			t.Errorf("GET %s: %v does not name the rule", url, err)
		}
	}
}
