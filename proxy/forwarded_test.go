package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var testTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}

// forwardedGateway is a gateway trusting testTrusted in front of an upstream
// that reports the headers it got.
func forwardedGateway(t *testing.T, config string) (*Handler, chan http.Header) {
	t.Helper()
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	t.Cleanup(up.Close)
	h := New(Options{Guard: loopbackGuard(t), TrustedProxies: testTrusted})
	h.Publish(compile(t, config, up.Listener.Addr().String()))
	return h, got
}

func TestForwardedHeaders(t *testing.T) {
	h, got := forwardedGateway(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n")
	// Every claim a client can make about where it is and how it came.
	forged := []string{
		"X-Forwarded-For", "6.6.6.6", "X-Real-Ip", "6.6.6.6", "Forwarded", "for=6.6.6.6;proto=https",
		"X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "X-Forwarded-Port", "443",
		"X-Forwarded-Client-Cert", "Hash=forged", "X-Forwarded-User", "admin", "True-Client-Ip", "6.6.6.6",
		"Cf-Connecting-Ip", "6.6.6.6", "X-Client-Ip", "6.6.6.6", "X-Original-Forwarded-For", "6.6.6.6",
		"X_Forwarded_For", "6.6.6.6", "X_real_ip", "6.6.6.6",
	}
	forgedNames := func() []string {
		var names []string
		for i := 0; i < len(forged); i += 2 {
			if n := forged[i]; !slices.Contains([]string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host"}, n) {
				names = append(names, n)
			}
		}
		return names
	}()
	many := strings.Repeat("10.0.0.9, ", 30)
	for _, tc := range []struct {
		name    string
		remote  string
		tls     bool
		headers [][2]string
		// want: X-Forwarded-For, X-Real-Ip, X-Forwarded-Proto, X-Forwarded-Host, Forwarded
		xff, real, proto, host, fwd string
		kept, gone                  []string // other headers passed on, and dropped
	}{
		{name: "untrusted, nothing claimed", remote: "192.0.2.1:1234",
			xff: "192.0.2.1", real: "192.0.2.1", proto: "http", host: "a.example", fwd: `for=192.0.2.1;host="a.example";proto=http`},
		{name: "untrusted, everything forged", remote: "192.0.2.1:1234", headers: pairs(forged...),
			xff: "192.0.2.1", real: "192.0.2.1", proto: "http", host: "a.example", fwd: `for=192.0.2.1;host="a.example";proto=http`,
			gone: forgedNames},
		{name: "untrusted over TLS", remote: "192.0.2.1:1234", tls: true,
			xff: "192.0.2.1", real: "192.0.2.1", proto: "https", host: "a.example", fwd: `for=192.0.2.1;host="a.example";proto=https`},
		{name: "untrusted IPv6", remote: "[2001:db8::5]:1",
			xff: "2001:db8::5", real: "2001:db8::5", proto: "http", host: "a.example", fwd: `for="[2001:db8::5]";host="a.example";proto=http`},
		{name: "trusted, one client", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "203.0.113.9"),
			xff: "203.0.113.9, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.1`},
		{name: "trusted, client forged a prefix", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.0.0.2"),
			xff: "203.0.113.9, 10.0.0.2, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.2, for=10.0.0.1`},
		{name: "trusted, the list over two lines", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "203.0.113.9, 10.0.0.2"),
			xff: "203.0.113.9, 10.0.0.2, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.2, for=10.0.0.1`},
		{name: "trusted, unreadable element", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "203.0.113.9, unknown, 10.0.0.2"),
			xff: "10.0.0.2, 10.0.0.1", real: "10.0.0.2", proto: "http", host: "a.example",
			fwd: `for=10.0.0.2;host="a.example";proto=http, for=10.0.0.1`},
		{name: "trusted, garbage only", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "garbage"),
			xff: "10.0.0.1", real: "10.0.0.1", proto: "http", host: "a.example", fwd: `for=10.0.0.1;host="a.example";proto=http`},
		{name: "trusted, empty elements", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", " , 203.0.113.9,, 10.0.0.2 ,"),
			xff: "203.0.113.9, 10.0.0.2, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.2, for=10.0.0.1`},
		{name: "trusted, ports and brackets", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "[2001:db8::1]:443, 10.0.0.2:8080"),
			xff: "2001:db8::1, 10.0.0.2, 10.0.0.1", real: "2001:db8::1", proto: "http", host: "a.example",
			fwd: `for="[2001:db8::1]";host="a.example";proto=http, for=10.0.0.2, for=10.0.0.1`},
		{name: "trusted all the way", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "10.0.0.3, 10.0.0.2"),
			xff: "10.0.0.3, 10.0.0.2, 10.0.0.1", real: "10.0.0.3", proto: "http", host: "a.example",
			fwd: `for=10.0.0.3;host="a.example";proto=http, for=10.0.0.2, for=10.0.0.1`},
		{name: "trusted, chain longer than followed", remote: "10.0.0.1:5", headers: pairs("X-Forwarded-For", "203.0.113.9, "+many+"10.0.0.2"),
			xff: strings.Repeat("10.0.0.9, ", 15) + "10.0.0.2, 10.0.0.1", real: "10.0.0.9", proto: "http", host: "a.example",
			fwd: `for=10.0.0.9;host="a.example";proto=http` + strings.Repeat(", for=10.0.0.9", 14) + ", for=10.0.0.2, for=10.0.0.1"},
		{name: "trusted, X-Real-IP only", remote: "10.0.0.1:5", headers: pairs("X-Real-Ip", "203.0.113.9"),
			xff: "203.0.113.9, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.1`},
		{name: "trusted, X-Forwarded-For wins over X-Real-IP", remote: "10.0.0.1:5", headers: pairs("X-Real-Ip", "6.6.6.6", "X-Forwarded-For", "203.0.113.9"),
			xff: "203.0.113.9, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.1`},
		{name: "trusted proto, host and the rest of the family", remote: "10.0.0.1:5",
			headers: pairs("X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "HTTPS, http", "X-Forwarded-Host", "shop.example:8443, lb.internal",
				"X-Forwarded-Port", "8443", "X-Forwarded-Client-Cert", "Hash=abc", "Forwarded", "for=6.6.6.6", "X_Forwarded_For", "6.6.6.6"),
			xff: "203.0.113.9, 10.0.0.1", real: "203.0.113.9", proto: "https", host: "shop.example:8443",
			fwd:  `for=203.0.113.9;host="shop.example:8443";proto=https, for=10.0.0.1`,
			kept: []string{"X-Forwarded-Port", "X-Forwarded-Client-Cert"}, gone: []string{"X_Forwarded_For"}},
		{name: "trusted, unusable proto and host", remote: "10.0.0.1:5",
			headers: pairs("X-Forwarded-Proto", "javascript", "X-Forwarded-Host", `bad"host`),
			xff:     "10.0.0.1", real: "10.0.0.1", proto: "http", host: "a.example", fwd: `for=10.0.0.1;host="a.example";proto=http`},
		{name: "trusted, seen through a dual-stack listener", remote: "[::ffff:10.0.0.1]:5", headers: pairs("X-Forwarded-For", "203.0.113.9"),
			xff: "203.0.113.9, 10.0.0.1", real: "203.0.113.9", proto: "http", host: "a.example",
			fwd: `for=203.0.113.9;host="a.example";proto=http, for=10.0.0.1`},
		{name: "trusted IPv6 peer", remote: "[fd00::1]:5", headers: pairs("X-Forwarded-For", "2001:db8::7"),
			xff: "2001:db8::7, fd00::1", real: "2001:db8::7", proto: "http", host: "a.example",
			fwd: `for="[2001:db8::7]";host="a.example";proto=http, for="[fd00::1]"`},
		{name: "peer without an address", remote: "@", headers: pairs("X-Forwarded-For", "6.6.6.6", "X-Real-Ip", "6.6.6.6"),
			xff: "", real: "", proto: "http", host: "a.example", fwd: `for=unknown;host="a.example";proto=http`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://a.example/x", nil)
			req.RemoteAddr = tc.remote
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			for _, kv := range tc.headers {
				req.Header[kv[0]] = append(req.Header[kv[0]], kv[1]) // as sent, not canonicalised
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			hdr := <-got
			for _, c := range [][3]string{
				{"X-Forwarded-For", hdr.Get("X-Forwarded-For"), tc.xff},
				{"X-Real-Ip", hdr.Get("X-Real-Ip"), tc.real},
				{"X-Forwarded-Proto", hdr.Get("X-Forwarded-Proto"), tc.proto},
				{"X-Forwarded-Host", hdr.Get("X-Forwarded-Host"), tc.host},
				{"Forwarded", hdr.Get("Forwarded"), tc.fwd},
			} {
				if c[1] != c[2] {
					t.Errorf("%s = %q, want %q", c[0], c[1], c[2])
				}
			}
			for _, name := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
				if n := len(hdr[name]); n > 1 {
					t.Errorf("%s sent %d times: %q", name, n, hdr[name])
				}
			}
			for _, name := range tc.kept {
				if _, ok := hdr[name]; !ok {
					t.Errorf("%s from a trusted proxy was dropped", name)
				}
			}
			for _, name := range tc.gone {
				if v, ok := hdr[name]; ok {
					t.Errorf("%s reached the upstream: %q", name, v)
				}
			}
		})
	}
}

func pairs(kv ...string) [][2]string {
	var p [][2]string
	for i := 0; i+1 < len(kv); i += 2 {
		p = append(p, [2]string{kv[i], kv[i+1]})
	}
	return p
}

// TestMappingMayOverrideForwarded: a Mapping's own request headers are
// applied after the gateway's, as the Service owner's decision about its
// own upstream.
func TestMappingMayOverrideForwarded(t *testing.T) {
	h, got := forwardedGateway(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\nadd_request_headers:\n  x-forwarded-proto: {value: https, append: false}\n")
	req := httptest.NewRequest("GET", "/x", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if p := (<-got).Get("X-Forwarded-Proto"); p != "https" {
		t.Errorf("X-Forwarded-Proto %q, want the Mapping's https", p)
	}
}

// TestClientIPRateLimitUsesVouchedClient: client_ip limits key on the
// client the gateway vouches for: the peer, whatever it forges, or the
// client a trusted proxy names; IPv6 clients by /64.
func TestClientIPRateLimitUsesVouchedClient(t *testing.T) {
	h, _ := forwardedGateway(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\nrate_limits: [one]\n---\n"+
		"kind: RateLimit\nname: one\nrate: 1\nunit: hour\nkey: client_ip\n")
	try := func(remote string, headers ...string) int {
		req := httptest.NewRequest("GET", "/x", nil)
		req.RemoteAddr = remote
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for i, step := range []struct {
		remote, xff, realIP string
		want                int
	}{
		{"192.0.2.1:1", "1.1.1.1", "", 200},
		{"192.0.2.1:2", "2.2.2.2", "3.3.3.3", 429}, // forging does not buy a new bucket
		{"10.0.0.1:1", "203.0.113.1", "", 200},
		{"10.0.0.2:1", "203.0.113.2", "", 200},          // another client behind the proxies
		{"10.0.0.2:2", "6.6.6.6, 203.0.113.1", "", 429}, // the same client, whatever it prepends
		{"10.0.0.1:2", "", "203.0.113.3", 200},          // named by X-Real-IP alone
		{"10.0.0.1:3", "", "", 200},                     // the proxy itself
		{"10.0.0.1:4", "2001:db8:1:2::1", "", 200},      // IPv6: one bucket per /64
		{"10.0.0.1:5", "2001:db8:1:2:ffff::9", "", 429}, // same /64
		{"10.0.0.1:6", "2001:db8:1:3::1", "", 200},      // next /64
		{"[2001:db8:9:9::1]:1", "", "", 200},            // an IPv6 peer
		{"[2001:db8:9:9::2]:1", "203.0.113.9", "", 429}, // its /64, forging or not
		{"[::ffff:192.0.2.1]:1", "", "", 429},           // 192.0.2.1 again, dual-stack
		{"192.0.2.200:1", "10.0.0.1", "", 200},          // an untrusted peer cannot pose as a proxy's client
		{"192.0.2.200:1", "203.0.113.1", "", 429},
	} {
		var headers []string
		if step.xff != "" {
			headers = append(headers, "X-Forwarded-For", step.xff)
		}
		if step.realIP != "" {
			headers = append(headers, "X-Real-Ip", step.realIP)
		}
		if got := try(step.remote, headers...); got != step.want {
			t.Errorf("step %d (%s, xff %q, x-real-ip %q): %d, want %d", i, step.remote, step.xff, step.realIP, got, step.want)
		}
	}
}

// refResolve is a plain reading of the rules, for the property test: split
// the whole list, walk it from the right.
func refResolve(tr trust, remote string, xff []string, realIP []string) (client netip.Addr, chain []netip.Addr) {
	peer := peerAddr(remote)
	if !peer.IsValid() || !tr.has(peer) {
		return peer, nil
	}
	if len(xff) == 0 {
		if len(realIP) == 1 {
			if a, ok := parseNode(strings.TrimSpace(realIP[0])); ok {
				return a, []netip.Addr{a}
			}
		}
		return peer, nil
	}
	var elems []string
	for _, line := range xff {
		for _, e := range strings.Split(line, ",") {
			if e = strings.TrimSpace(e); e != "" {
				elems = append(elems, e)
			}
		}
	}
	client = peer
	for i := len(elems) - 1; i >= 0; i-- {
		a, ok := parseNode(elems[i])
		if !ok {
			break
		}
		chain = append([]netip.Addr{a}, chain...)
		client = a
		if !tr.has(a) || len(chain) == maxForwardHops {
			break
		}
	}
	return client, chain
}

// TestResolveProperty compares resolve with refResolve on seeded random
// chains of trusted, untrusted and unreadable elements, and checks what
// must hold whatever the input: the client is the first vouched node, and
// every node after it is a trusted proxy.
func TestResolveProperty(t *testing.T) {
	tr := newTrust(testTrusted)
	rng := rand.New(rand.NewPCG(11, 4))
	elems := []string{"10.0.0.1", "10.1.2.3:80", "fd00::5", "[fd00::6]:443", "203.0.113.9", "2001:db8::1", "[2001:db8::2]",
		"unknown", "", " ", "garbage", "::ffff:10.0.0.7", "1.2.3.4:5:6", "fe80::1%eth0"}
	remotes := []string{"10.0.0.1:1", "[fd00::1]:1", "192.0.2.1:1", "[::ffff:10.9.9.9]:2", "@", ""}
	for i := 0; i < 5000; i++ {
		var xff []string
		for l := rng.IntN(3); l > 0; l-- {
			var parts []string
			for n := rng.IntN(25); n > 0; n-- {
				parts = append(parts, elems[rng.IntN(len(elems))])
			}
			xff = append(xff, strings.Join(parts, ","))
		}
		var realIP []string
		if rng.IntN(3) == 0 {
			realIP = []string{elems[rng.IntN(len(elems))]}
		}
		remote := remotes[rng.IntN(len(remotes))]
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != nil {
			r.Header["X-Forwarded-For"] = xff
		}
		if realIP != nil {
			r.Header["X-Real-Ip"] = realIP
		}
		o := tr.resolve(r)
		client, chain := refResolve(tr, remote, xff, realIP)
		if o.client != client || !slices.Equal(o.chain, chain) {
			t.Fatalf("%q %q %q: resolve = %v %v, reference = %v %v", remote, xff, realIP, o.client, o.chain, client, chain)
		}
		nodes := o.nodes()
		if len(nodes) > 0 && nodes[0] != o.client {
			t.Fatalf("%q %q: first node %v is not the client %v", remote, xff, nodes[0], o.client)
		}
		for _, n := range nodes[min(1, len(nodes)):] {
			if !tr.has(n) {
				t.Fatalf("%q %q: node %v after the client is not a trusted proxy (%v)", remote, xff, n, nodes)
			}
		}
		if got := o.forwardedFor(); o.peer.IsValid() && got != joinAddrs(nodes) {
			t.Fatalf("X-Forwarded-For %q, nodes %v", got, nodes)
		}
	}
}

func joinAddrs(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// FuzzForwarded: no input makes resolve or setHeaders fail, and the
// upstream only ever gets well-formed values naming trusted proxies after
// the client.
func FuzzForwarded(f *testing.F) {
	f.Add("10.0.0.1:5", "6.6.6.6, 203.0.113.9, 10.0.0.2", "", "https", "x.example")
	f.Add("192.0.2.1:1", "1.1.1.1", "2.2.2.2", "http", "")
	f.Add("[fd00::1]:1", "[2001:db8::1]:80,,unknown", "", "", "a\"b")
	tr := newTrust(testTrusted)
	f.Fuzz(func(t *testing.T, remote, xff, realIP, proto, host string) {
		in := &http.Request{RemoteAddr: remote, Host: "a.example", Header: http.Header{
			"X-Forwarded-For": {xff}, "X-Real-Ip": {realIP}, "X-Forwarded-Proto": {proto}, "X-Forwarded-Host": {host}}}
		o := tr.resolve(in)
		out := &http.Request{Header: http.Header{}}
		o.setHeaders(&httputil.ProxyRequest{In: in, Out: out})
		for _, name := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			for _, v := range out.Header[name] {
				if strings.ContainsAny(v, "\r\n\x00\"\\") && name != "Forwarded" {
					t.Fatalf("%s = %q", name, v)
				}
			}
		}
		if p := out.Header.Get("X-Forwarded-Proto"); p != "http" && p != "https" {
			t.Fatalf("X-Forwarded-Proto = %q", p)
		}
		if v := out.Header.Get("Forwarded"); strings.ContainsAny(v, "\r\n\x00") || strings.Count(v, `"`)%2 != 0 {
			t.Fatalf("Forwarded = %q", v)
		}
		if o.client.IsValid() && out.Header.Get("X-Real-Ip") != o.client.String() {
			t.Fatalf("X-Real-Ip %q, client %v", out.Header.Get("X-Real-Ip"), o.client)
		}
		if first, _, _ := strings.Cut(out.Header.Get("X-Forwarded-For"), ","); o.peer.IsValid() && first != o.client.String() {
			t.Fatalf("X-Forwarded-For %q does not start with the client %v", out.Header.Get("X-Forwarded-For"), o.client)
		}
	})
}

// TestResolveDoesNotAllocate: working out the origin of a request from an
// untrusted peer, the common case, costs no allocation.
func TestResolveDoesNotAllocate(t *testing.T) {
	tr := newTrust(testTrusted)
	for _, r := range []*http.Request{
		{RemoteAddr: "192.0.2.1:1234", Header: http.Header{"X-Forwarded-For": {"6.6.6.6"}}},
		{RemoteAddr: "[2001:db8::1]:1234", Header: http.Header{}},
		{RemoteAddr: "10.0.0.1:1234", Header: http.Header{}}, // trusted, naming nobody
	} {
		if n := testing.AllocsPerRun(100, func() { tr.resolve(r) }); n != 0 {
			t.Errorf("resolve(%s): %v allocs, want 0", r.RemoteAddr, n)
		}
	}
}

func TestAddrText(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.1:5555", "192.0.2.1"},
		{"[2001:db8::1]:5555", "2001:db8::1"},
		{"[::ffff:192.0.2.1]:5555", ""}, // unmapped: the text differs
		{"[fe80::1%eth0]:5555", ""},     // the zone is dropped
		{"[2001:DB8::1]:5555", ""},      // not canonical
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"@", ""},
	} {
		if got := addrText(c.remote, peerAddr(c.remote)); got != c.want {
			t.Errorf("addrText(%q) = %q, want %q", c.remote, got, c.want)
		}
		if got := addrText(c.remote, peerAddr(c.remote)); got != "" && got != peerAddr(c.remote).String() {
			t.Errorf("addrText(%q) = %q, not the address's text", c.remote, got)
		}
	}
}

// TestAccessLogClientIP: the access log names the client a trusted proxy
// vouched for (client_ip) next to the connection's peer, and only then.
func TestAccessLogClientIP(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	var log bytes.Buffer
	h := New(Options{Guard: loopbackGuard(t), TrustedProxies: testTrusted, AccessLog: &log})
	h.Publish(compile(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n", up.Listener.Addr().String()))
	for _, tc := range []struct{ remote, xff, want string }{
		{"10.1.2.3:5000", "203.0.113.7", "203.0.113.7"}, // a trusted proxy's word
		{"198.51.100.9:5000", "203.0.113.7", ""},        // anyone else's is dropped
		{"10.1.2.3:5000", "", ""},                       // nobody vouched for
	} {
		log.Reset()
		req := httptest.NewRequest("GET", "/x", nil)
		req.RemoteAddr = tc.remote
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		var line struct {
			Client   string `json:"client"`
			ClientIP string `json:"client_ip"`
		}
		if err := json.Unmarshal(log.Bytes(), &line); err != nil {
			t.Fatalf("access line %q: %v", log.String(), err)
		}
		if line.Client != tc.remote || line.ClientIP != tc.want {
			t.Errorf("from %s with X-Forwarded-For %q: client %q, client_ip %q; want %q", tc.remote, tc.xff, line.Client, line.ClientIP, tc.want)
		}
	}
}

// TestTEIsHopByHop: TE describes the client's connection; the upstream gets
// only "trailers" from it, which a proxy may pass on, and nothing else.
func TestTEIsHopByHop(t *testing.T) {
	h, got := forwardedGateway(t, "kind: Mapping\nname: app\nprefix: /\nservice: app\n")
	for _, tc := range []struct{ te, want string }{
		{"gzip", ""},
		{"trailers, deflate;q=0.5", "trailers"},
	} {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("Te", tc.te)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if v := (<-got).Get("Te"); v != tc.want {
			t.Errorf("TE %q reached the upstream as %q, want %q", tc.te, v, tc.want)
		}
	}
}
