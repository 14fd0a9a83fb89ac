package upstream

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, s string) ExternalPolicy {
	t.Helper()
	p, err := ParseExternalPolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseExternalPolicy(t *testing.T) {
	ok := func(in, want string) {
		t.Helper()
		p, err := ParseExternalPolicy(in)
		if err != nil {
			t.Errorf("ParseExternalPolicy(%q): %v", in, err)
			return
		}
		if got := p.String(); got != want {
			t.Errorf("ParseExternalPolicy(%q).String() = %q, want %q", in, got, want)
		}
	}
	bad := func(in, want string) {
		t.Helper()
		if _, err := ParseExternalPolicy(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExternalPolicy(%q) = %v, want an error mentioning %q", in, err, want)
		}
	}
	ok("", "")
	ok("  ", "")
	ok("api.example.com", "api.example.com")
	ok("API.Example.COM.", "api.example.com")
	ok(" *.Example.com , api.stripe.com ", "*.example.com,api.stripe.com")
	ok("*", "*")
	ok("*,*,a.example.com,A.example.com", "*,a.example.com")
	ok("203.0.113.7,[2001:db8::1],::ffff:192.0.2.1", "203.0.113.7,2001:db8::1,192.0.2.1")
	ok("localhost,*.localhost,metadata.google.internal", "localhost,*.localhost,metadata.google.internal")
	ok("xn--bcher-kva.example", "xn--bcher-kva.example")

	bad("a.example.com,,b.example.com", `pattern 2 "": empty pattern`)
	bad("a.example.com,", `pattern 2 "": empty`)
	bad("*.*.example.com", `pattern 1 "*.*.example.com"`)
	bad("*example.com", `"*" stands alone`)
	bad("api.*.com", `"*" stands alone`)
	bad("*.", "empty")
	bad("*.203.0.113.7", "not addresses")
	bad("10.0.0.0/8", "ranges are not supported")
	bad("https://api.example.com", "without a scheme")
	bad("api.example.com:443", "without a port")
	bad("fe80::1%eth0", "zone")
	bad("127.1", "last label must start with a letter")
	bad("0x7f.1", "last label")
	bad("a..example.com", "empty label")
	bad("-a.example.com", "hyphen")
	bad("a_b.example.com", "letters, digits, hyphens")
	bad("bücher.example", "letters, digits, hyphens")
	bad(strings.Repeat("a", 64)+".com", "63")
	bad(strings.Repeat("a.", 127)+"com", "253")
}

func TestExternalPolicyAllows(t *testing.T) {
	for _, c := range []struct {
		policy string
		yes    []string
		no     []string
	}{
		{"", nil, []string{"api.example.com", "8.8.8.8", "localhost", ""}},
		{"api.example.com",
			[]string{"api.example.com", "API.example.COM", "api.example.com."},
			[]string{"x.api.example.com", "example.com", "api.example.com..", "api.example.co", "api.example.com:443", "api.example.com.evil.io"}},
		{"*.example.com",
			[]string{"a.example.com", "A.B.example.com.", "x-1.example.com"},
			[]string{"example.com", ".example.com", "aexample.com", "a.example.com.evil.io", "a..example.com", "*.example.com"}},
		{"*",
			[]string{"api.stripe.com", "a.b.c.example.org", "8.8.8.8", "[2001:4860:4860::8888]", "2001:4860:4860::8888", "::ffff:8.8.8.8"},
			[]string{
				"localhost", "LOCALHOST.", "a.localhost", "metadata.google.internal", "metadata", "instance-data",
				"db.team-b.svc.cluster.local", "printer.local", "nas.lan", "foo.internal", "x.home.arpa", "host.test",
				"single", "127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "169.254.169.254", "fe80::1",
				"fd00:ec2::254", "100.100.100.200", "10.0.0.1", "192.168.1.1", "172.16.0.1", "fd00::1", "100.64.0.1",
				"224.0.0.1", "192.0.2.1", "64:ff9b::808:808", "2002:808:808::1", "127.1", "0x7f000001", "fe80::1%eth0",
			}},
		{"localhost,metadata.google.internal,127.0.0.1,169.254.169.254,::1",
			[]string{"localhost", "localhost.", "metadata.google.internal", "127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "[::1]"},
			[]string{"a.localhost", "127.0.0.2", "metadata.goog"}},
		{"*.localhost,*.internal,*.google.internal",
			[]string{"a.localhost", "b.a.localhost", "db.corp.internal"},
			[]string{"localhost", "metadata.google.internal"}}, // metadata names need their own pattern
		{"*.svc.cluster.local", []string{"db.team-b.svc.cluster.local"}, []string{"svc.cluster.local"}},
		{"*,10.0.0.1", []string{"10.0.0.1", "8.8.8.8"}, []string{"10.0.0.2"}},
	} {
		p := mustPolicy(t, c.policy)
		for _, h := range c.yes {
			if !p.Allows(h) {
				t.Errorf("policy %q refuses %q", c.policy, h)
			}
		}
		for _, h := range c.no {
			if p.Allows(h) {
				t.Errorf("policy %q allows %q", c.policy, h)
			}
		}
	}
}

func TestExternalPolicyLiterals(t *testing.T) {
	p := mustPolicy(t, "api.example.com,169.254.169.254,::ffff:127.0.0.1,[fd00:ec2::254],*")
	want := []netip.Prefix{
		netip.MustParsePrefix("169.254.169.254/32"),
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("fd00:ec2::254/128"),
	}
	if got := p.Literals(); !slices.Equal(got, want) {
		t.Errorf("Literals() = %v, want %v", got, want)
	}
	if got := mustPolicy(t, "*").Literals(); got != nil {
		t.Errorf("Literals() of * = %v", got)
	}
	// Fed to a guard, a literal is dialable even inside a denied range.
	g := mustGuard(t, GuardOptions{Allow: p.Literals()})
	checkGuard(t, g, "169.254.169.254:80", "")
	checkGuard(t, g, "169.254.169.253:80", "link-local")
}

func TestCanonicalHost(t *testing.T) {
	for _, c := range [][2]string{
		{"API.Example.com.", "api.example.com"},
		{"[2001:DB8::1]", "2001:db8::1"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"10.0.0.1", "10.0.0.1"},
		{"localhost", "localhost"},
		{"1.2.3.4.", ""}, // neither: a name cannot end in a numeric label
		{"a b", ""},
		{"", ""},
	} {
		got, err := CanonicalHost(c[0])
		if got != c[1] || (err != nil) != (c[1] == "") {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", c[0], got, err, c[1])
		}
	}
}

// refAllows is a plain reference for ExternalPolicy.Allows, written from
// the documentation with other tools (net.ParseIP, a regular expression,
// label lists), for the differential tests.
func refAllows(patterns []string, host string) bool {
	h := strings.ToLower(host)
	bracketed := len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']'
	if bracketed {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil && !strings.Contains(h, "%") {
		if bracketed && !strings.Contains(h, ":") {
			return false
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		a, _ := netip.AddrFromSlice(ip)
		for _, p := range patterns {
			if l, err := netip.ParseAddr(strings.Trim(p, "[]")); err == nil && l.Unmap() == a {
				return true
			}
		}
		return slices.Contains(patterns, "*") && isPublic(a)
	}
	if bracketed {
		return false
	}
	h = strings.TrimSuffix(h, ".")
	labels := strings.Split(h, ".")
	if len(h) > 253 || !refLastLabel.MatchString(labels[len(labels)-1]) {
		return false
	}
	for _, l := range labels {
		if !refLabel.MatchString(l) {
			return false
		}
	}
	metadata := map[string]bool{"metadata": true, "metadata.google.internal": true, "metadata.goog": true, "instance-data": true, "instance-data.ec2.internal": true}
	local := labels[len(labels)-1] == "localhost"
	for _, p := range patterns {
		p = strings.TrimSuffix(strings.ToLower(p), ".")
		if p == h {
			return true
		}
		suffix, ok := strings.CutPrefix(p, "*.")
		if !ok || metadata[h] {
			continue
		}
		s := strings.Split(suffix, ".")
		if len(labels) > len(s) && slices.Equal(labels[len(labels)-len(s):], s) && (!local || s[len(s)-1] == "localhost") {
			return true
		}
	}
	private := map[string]bool{"alt": true, "arpa": true, "corp": true, "example": true, "home": true, "internal": true,
		"intranet": true, "invalid": true, "lan": true, "local": true, "localdomain": true, "localhost": true, "onion": true, "test": true}
	return slices.Contains(patterns, "*") && len(labels) > 1 && !private[labels[len(labels)-1]] && !metadata[h]
}

var (
	refLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	refLastLabel = regexp.MustCompile(`^[a-z]`)
)

// randomHost builds host names and addresses from pieces that exercise the
// policy's edges: special names and TLDs, case, trailing dots, bad labels.
func randomHost(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		ips := []string{"8.8.8.8", "10.0.0.1", "127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1", "169.254.169.254",
			"203.0.113.7", "2001:4860::1", "[2001:4860::1]", "fd00:ec2::254", "0.0.0.0", "100.64.1.1", "127.1", "[8.8.8.8]"}
		return ips[r.IntN(len(ips))]
	}
	pieces := []string{"a", "api", "example", "com", "localhost", "internal", "google", "metadata", "local", "cluster",
		"svc", "instance-data", "1", "x-y", "-bad", "", "EXAMPLE", "Com", "xn--p1ai", "0x7f", "lan"}
	n := 1 + r.IntN(4)
	labels := make([]string, n)
	for i := range labels {
		labels[i] = pieces[r.IntN(len(pieces))]
	}
	h := strings.Join(labels, ".")
	if r.IntN(5) == 0 {
		h += "."
	}
	return h
}

func TestExternalPolicyAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all := []string{"*", "api.example.com", "*.example.com", "localhost", "*.localhost", "metadata.google.internal",
		"*.google.internal", "*.internal", "127.0.0.1", "::1", "203.0.113.7", "*.com", "a.localhost", "8.8.8.8", "*.svc.cluster.local"}
	for range 200 {
		var pats []string
		for _, p := range all {
			if r.IntN(4) == 0 {
				pats = append(pats, p)
			}
		}
		p := mustPolicy(t, strings.Join(pats, ","))
		for range 100 {
			h := randomHost(r)
			if got, want := p.Allows(h), refAllows(pats, h); got != want {
				t.Fatalf("policy %q, host %q: Allows = %v, reference says %v", p, h, got, want)
			}
		}
	}
}

func FuzzParseExternalPolicy(f *testing.F) {
	for _, s := range []string{"", "*", "api.example.com,*.example.com", "127.0.0.1,[::1]", "*.localhost,localhost", "a,,b", "*.*.x", "10.0.0.0/8"} {
		f.Add(s, "a.example.com")
		f.Add(s, "localhost.")
		f.Add(s, "[::ffff:127.0.0.1]")
	}
	f.Fuzz(func(t *testing.T, s, host string) {
		p, err := ParseExternalPolicy(s)
		if err != nil {
			if p.String() != "" || p.Allows(host) {
				t.Fatalf("a failed parse returned a policy that allows something")
			}
			return
		}
		again, err := ParseExternalPolicy(p.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", p.String(), s, err)
		}
		if again.String() != p.String() || !slices.Equal(again.Literals(), p.Literals()) {
			t.Fatalf("round trip of %q: %q, then %q", s, p.String(), again.String())
		}
		allowed := p.Allows(host)
		if allowed != again.Allows(host) {
			t.Fatalf("%q and its round trip disagree on %q", s, host)
		}
		if allowed != refAllows(p.patterns, host) {
			t.Fatalf("policy %q, host %q: Allows = %v, reference disagrees", p, host, allowed)
		}
		if c, err := CanonicalHost(host); err == nil {
			if c2, err := CanonicalHost(c); err != nil || c2 != c {
				t.Fatalf("CanonicalHost(%q) = %q, then %q, %v", host, c, c2, err)
			}
			if p.Allows(c) != allowed {
				t.Fatalf("policy %q: Allows(%q) = %v but Allows(%q) = %v", p, host, allowed, c, !allowed)
			}
		} else if allowed {
			t.Fatalf("policy %q allows %q, which is not a host", p, host)
		}
		// Every name or address a pattern lists is allowed.
		for _, pat := range p.patterns {
			if pat != "*" && !strings.HasPrefix(pat, "*.") && !p.Allows(pat) {
				t.Fatalf("policy %q refuses %q, which it lists", p, pat)
			}
		}
	})
}

func TestAllowsAllocations(t *testing.T) {
	p := benchPolicy(t)
	for _, h := range []string{"api.stripe.com", "a.b.example.com", "8.8.8.8", "metadata.google.internal", "nope..x"} {
		if n := testing.AllocsPerRun(100, func() { p.Allows(h) }); n != 0 {
			t.Errorf("Allows(%q) allocates %v times", h, n)
		}
	}
}

func benchPolicy(tb testing.TB) ExternalPolicy {
	return mustPolicy(tb, "api.stripe.com,hooks.slack.com,*.example.com,*.amazonaws.com,203.0.113.7,*")
}

func BenchmarkExternalPolicyAllows(b *testing.B) {
	p := benchPolicy(b)
	for _, c := range []struct{ name, host string }{
		{"exact", "api.stripe.com"},
		{"suffix", "bucket.s3.amazonaws.com"},
		{"any", "www.wikipedia.org"},
		{"literal", "203.0.113.7"},
		{"sensitive", "metadata.google.internal"},
		{"upper", "API.Stripe.com"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Allows(c.host)
			}
		})
	}
}
