package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// checkGuard asserts what g says about addr: want is "" when allowed, else a
// piece of the rule's text.
func checkGuard(t *testing.T, g *DialGuard, addr, want string) {
	t.Helper()
	err := g.Check(netip.MustParseAddrPort(addr))
	switch {
	case want == "" && err != nil:
		t.Errorf("Check(%s) = %v, want allowed", addr, err)
	case want != "" && err == nil:
		t.Errorf("Check(%s) allowed, want refused (%s)", addr, want)
	case want != "" && (!strings.Contains(err.Error(), want) || !errors.Is(err, ErrForbiddenAddress)):
		t.Errorf("Check(%s) = %v, want an ErrForbiddenAddress mentioning %q", addr, err, want)
	}
}

func mustGuard(t testing.TB, o GuardOptions) *DialGuard {
	t.Helper()
	g, err := NewDialGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDialGuardDefaults(t *testing.T) {
	var zero DialGuard
	for _, g := range []*DialGuard{nil, &zero, mustGuard(t, GuardOptions{})} {
		c := func(addr, want string) { t.Helper(); checkGuard(t, g, addr, want) }
		c("127.0.0.1:8877", "loopback")
		c("127.9.9.9:80", "loopback")
		c("[::1]:80", "loopback")
		c("[::ffff:127.0.0.1]:80", "loopback") // IPv4-mapped
		c("0.0.0.0:80", "unspecified")
		c("[::]:80", "unspecified")
		c("[::ffff:0.0.0.0]:80", "unspecified")
		c("0.1.2.3:80", "this network")
		c("169.254.169.254:80", "link-local") // the metadata address of AWS, GCP, Azure
		c("169.254.170.2:80", "link-local")   // ECS task credentials
		c("[::ffff:169.254.169.254]:80", "link-local")
		c("[fe80::1]:80", "link-local")
		c("[fe80::1%eth0]:80", "link-local")
		c("[fd00:ec2::254]:80", "metadata")
		c("100.100.100.200:80", "metadata")
		c("168.63.129.16:80", "metadata")
		c("224.0.0.1:80", "multicast")
		c("[ff02::1]:80", "multicast")
		c("255.255.255.255:80", "broadcast")
		c("240.0.0.1:80", "reserved")
		c("[::127.0.0.1]:80", "IPv4-compatible")
		c("[64:ff9b::a9fe:a9fe]:80", "link-local") // NAT64 of 169.254.169.254
		c("[64:ff9b::7f00:1]:80", "loopback")
		c("[2002:a9fe:a9fe::1]:80", "link-local") // 6to4 of 169.254.169.254
		c("10.0.0.1:8080", "")
		c("192.168.1.1:80", "")
		c("100.64.0.1:80", "") // carrier-grade NAT: some clusters' pod range
		c("[fd00::1]:80", "")
		c("8.8.8.8:443", "")
		c("[2001:4860:4860::8888]:443", "")
		c("[64:ff9b::808:808]:443", "") // NAT64 of a public address
	}
	if err := (*DialGuard)(nil).Check(netip.AddrPort{}); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Check(zero AddrPort) = %v", err)
	}
}

func TestDialGuardErrorNamesTheRule(t *testing.T) {
	err := (*DialGuard)(nil).Check(netip.MustParseAddrPort("127.0.0.1:8877"))
	if got, want := err.Error(), "dialing 127.0.0.1:8877: loopback addresses are not upstreams"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	var fe *ForbiddenError
	if !errors.As(err, &fe) || fe.Reason != ruleLoopback || fe.Addr != "127.0.0.1:8877" {
		t.Errorf("errors.As gave %+v", fe)
	}
}

func TestDialGuardOptions(t *testing.T) {
	loop := mustGuard(t, GuardOptions{AllowLoopback: true})
	checkGuard(t, loop, "127.0.0.1:80", "")
	checkGuard(t, loop, "[::1]:80", "")
	checkGuard(t, loop, "[::ffff:127.0.0.1]:80", "")
	checkGuard(t, loop, "169.254.169.254:80", "link-local")
	checkGuard(t, loop, "0.0.0.0:80", "unspecified") // not loopback, though Linux connects it to itself
	checkGuard(t, loop, "[64:ff9b::7f00:1]:80", "loopback")

	allow := mustGuard(t, GuardOptions{Allow: []netip.Prefix{
		netip.MustParsePrefix("169.254.169.254/32"),
		netip.MustParsePrefix("::ffff:100.100.100.0/120"), // written mapped, matches unmapped
	}})
	checkGuard(t, allow, "169.254.169.254:80", "")
	checkGuard(t, allow, "[::ffff:169.254.169.254]:80", "")
	checkGuard(t, allow, "169.254.169.253:80", "link-local")
	checkGuard(t, allow, "100.100.100.200:80", "")
	checkGuard(t, allow, "127.0.0.1:80", "loopback")
}

func TestDialGuardSelf(t *testing.T) {
	// Self wins over AllowLoopback and over Allow.
	g := mustGuard(t, GuardOptions{
		AllowLoopback: true,
		Allow:         []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		Self:          []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8877"), netip.MustParseAddrPort("10.0.0.5:9443")},
	})
	c := func(addr, want string) { t.Helper(); checkGuard(t, g, addr, want) }
	c("127.0.0.1:8877", "own listeners")
	c("[::ffff:127.0.0.1]:8877", "own listeners")
	c("127.0.0.2:8877", "own listeners") // every loopback address: the conservative reading
	c("[::1]:8877", "own listeners")
	c("0.0.0.0:8877", "own listeners")
	c("[::]:8877", "own listeners")
	c("10.0.0.5:9443", "own listeners")
	c("127.0.0.1:9443", "own listeners")
	c("127.0.0.1:8878", "")
	c("10.0.0.5:8877", "") // a listener on 127.0.0.1 is not reachable on 10.0.0.5
	c("10.0.0.6:9443", "")
}

func TestDialGuardSelfOnEveryAddress(t *testing.T) {
	local := func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("192.168.0.9").To16(), Mask: net.CIDRMask(120, 128)}, // 16-byte form
			&net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)},
			&net.IPAddr{IP: net.ParseIP("10.9.9.9")},
		}, nil
	}
	for _, wildcard := range []string{"0.0.0.0:8080", "[::]:8080", "[::ffff:0.0.0.0]:8080"} {
		g, err := newDialGuard(GuardOptions{Self: []netip.AddrPort{netip.MustParseAddrPort(wildcard)}}, local)
		if err != nil {
			t.Fatal(err)
		}
		c := func(addr, want string) { t.Helper(); checkGuard(t, g, addr, want) }
		c("10.1.2.3:8080", "own listeners")
		c("192.168.0.9:8080", "own listeners")
		c("[2001:db8::7]:8080", "own listeners")
		c("10.9.9.9:8080", "own listeners")
		c("127.0.0.1:8080", "own listeners")
		c("[::1]:8080", "own listeners")
		c("10.1.2.4:8080", "")
		c("10.1.2.3:8081", "")
	}
}

func TestNewDialGuardRefuses(t *testing.T) {
	failing := func() ([]net.Addr, error) { return nil, errors.New("no netlink") }
	for _, c := range []struct {
		o    GuardOptions
		want string
	}{
		{GuardOptions{Self: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}}, "not a bound address"},
		{GuardOptions{Self: []netip.AddrPort{{}}}, "not a bound address"},
		{GuardOptions{Self: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:8080")}}, "no netlink"},
		{GuardOptions{Allow: []netip.Prefix{{}}}, "not valid"},
		{GuardOptions{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/80")}}, "IPv4-mapped"},
	} {
		if _, err := newDialGuard(c.o, failing); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("newDialGuard(%+v) = %v, want an error mentioning %q", c.o, err, c.want)
		}
	}
	// A specific address needs no interface list.
	if _, err := newDialGuard(GuardOptions{Self: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}}, failing); err != nil {
		t.Error(err)
	}
}

// listen starts a loopback listener that counts the connections it accepts.
func listen(t *testing.T) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	t.Cleanup(func() { ln.Close() })
	return ln, &n
}

func TestDialerChecksTheResolvedAddress(t *testing.T) {
	ln, accepted := listen(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var later atomic.Int32 // a Control the base dialer had runs after the guard's
	base := net.Dialer{Timeout: 5 * time.Second, Control: func(string, string, syscall.RawConn) error { later.Add(1); return nil }}

	// "localhost" is a name: only the address it resolves to can be judged.
	_, err := (*DialGuard)(nil).Dialer(base).Dial("tcp", net.JoinHostPort("localhost", port))
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("dialing localhost: %v, want ErrForbiddenAddress", err)
	}
	// Refused before connecting: no packet, so none of these waits for the
	// timeout, and nothing reached the listener or the base's Control.
	for _, addr := range []string{"169.254.169.254:80", "[::ffff:127.0.0.1]:" + port, "[fd00:ec2::254]:80"} {
		start := time.Now()
		_, err := (*DialGuard)(nil).Dialer(base).Dial("tcp", addr)
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("dialing %s: %v, want ErrForbiddenAddress", addr, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("dialing %s took %v: it was attempted", addr, d)
		}
	}
	if later.Load() != 0 || accepted.Load() != 0 {
		t.Errorf("refused dials reached the base Control %d times and the listener %d times", later.Load(), accepted.Load())
	}

	c, err := mustGuard(t, GuardOptions{AllowLoopback: true}).Dialer(base).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if later.Load() != 1 {
		t.Errorf("the base Control ran %d times for an allowed dial, want 1", later.Load())
	}
}

func TestDialerKeepsBaseControlContext(t *testing.T) {
	ln, _ := listen(t)
	var saw atomic.Value
	base := net.Dialer{ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
		saw.Store(address)
		return nil
	}}
	c, err := mustGuard(t, GuardOptions{AllowLoopback: true}).Dialer(base).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if saw.Load() != ln.Addr().String() {
		t.Errorf("base ControlContext saw %v", saw.Load())
	}
}

func TestControlRefusesNonIP(t *testing.T) {
	if err := (*DialGuard)(nil).Control("unix", "/run/gatehouse.sock", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Control(unix) = %v", err)
	}
}

func TestRootedAddr(t *testing.T) {
	for _, c := range [][2]string{
		{"users.shop:443", "users.shop.:443"},
		{"users.shop.:443", "users.shop.:443"},
		{"localhost:80", "localhost.:80"},
		{"10.0.0.1:80", "10.0.0.1:80"},
		{"[fd00::1]:80", "[fd00::1]:80"},
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80"},
		{":80", ":80"},
		{"no-port", "no-port"},
	} {
		if got := RootedAddr(c[0]); got != c[1] {
			t.Errorf("RootedAddr(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestCheckAllocations(t *testing.T) {
	g := benchGuard(t)
	ok := netip.MustParseAddrPort("10.1.2.3:8080")
	if n := testing.AllocsPerRun(100, func() { _ = g.Check(ok) }); n != 0 {
		t.Errorf("Check of an allowed address allocates %v times", n)
	}
}

// benchGuard is a production-like guard: three listeners, one literal.
func benchGuard(tb testing.TB) *DialGuard {
	return mustGuard(tb, GuardOptions{
		Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")},
		Self: []netip.AddrPort{
			netip.MustParseAddrPort("10.0.0.5:8080"),
			netip.MustParseAddrPort("10.0.0.5:8877"),
			netip.MustParseAddrPort("10.0.0.5:9443"),
		},
	})
}

func BenchmarkDialGuardCheck(b *testing.B) {
	g := benchGuard(b)
	for _, c := range []struct{ name, addr string }{
		{"pod", "10.1.2.3:8080"},
		{"mapped", "[::ffff:10.1.2.3]:8080"},
		{"ipv6", "[fd00::1234]:8080"},
		{"refused", "169.254.169.254:80"},
	} {
		addr := netip.MustParseAddrPort(c.addr)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = g.Check(addr)
			}
		})
	}
}

func TestNewDialGuardListsThisMachine(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("this machine's addresses cannot be listed: %v", err)
	}
	g := mustGuard(t, GuardOptions{Self: []netip.AddrPort{netip.MustParseAddrPort("[::]:8080")}})
	for _, ia := range addrs {
		if a, ok := netAddrIP(ia); ok {
			checkGuard(t, g, netip.AddrPortFrom(a, 8080).String(), "own listeners")
		}
	}
}
