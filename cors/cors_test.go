package cors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

func mustCompile(t testing.TB, c annotations.CORS) *Policy {
	t.Helper()
	p, err := Compile(&c)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", c, err)
	}
	return p
}

func yes() *bool { b := true; return &b }

// The policies of the tables.
var (
	exactCORS = annotations.CORS{
		Origins:        []string{"https://app.example.com", "http://LOCALHOST:8080", "https://api.example.com:443"},
		Methods:        []string{"GET", "put", "PATCH"},
		Headers:        []string{"X-Token", "Content-Type"},
		ExposedHeaders: []string{"X-Trace"},
		MaxAge:         "600",
	}
	credsCORS     = withCreds(exactCORS)
	starCORS      = annotations.CORS{Origins: []string{"*"}, ExposedHeaders: []string{"X-Trace"}, Methods: []string{"PUT"}}
	starCredsCORS = annotations.CORS{Origins: []string{"*"}, Credentials: yes()}
	regexCORS     = annotations.CORS{Origins: []string{`~https://[a-z0-9-]+\.example\.com`}, Credentials: yes()}
	nullCORS      = annotations.CORS{Origins: []string{"null", "https://app.example.com"}}
	bareCORS      = annotations.CORS{Origins: []string{"https://app.example.com"}}
	wildCORS      = annotations.CORS{Origins: []string{"https://app.example.com"}, Methods: []string{"*"}, Headers: []string{"*"}, Credentials: yes()}
)

func withCreds(c annotations.CORS) annotations.CORS {
	c.Credentials = yes()
	return c
}

// short names the response headers a policy decides, for terse tables.
var short = []struct{ name, abbr string }{
	{"Access-Control-Allow-Origin", "ACAO"},
	{"Access-Control-Allow-Credentials", "ACAC"},
	{"Access-Control-Allow-Methods", "ACAM"},
	{"Access-Control-Allow-Headers", "ACAH"},
	{"Access-Control-Expose-Headers", "ACEH"},
	{"Access-Control-Max-Age", "ACMA"},
	{"Vary", "Vary"},
}

// render prints the CORS headers of h, in a fixed order, several values of
// one field joined by "|": "ACAO=https://a.example Vary=Origin".
func render(h http.Header) string {
	var parts []string
	for _, s := range short {
		if v, ok := h[s.name]; ok {
			parts = append(parts, s.abbr+"="+strings.Join(v, "|"))
		}
	}
	return strings.Join(parts, " ")
}

// request builds a request with the given Origin values ("-" for none) and
// header pairs.
func request(method, origin string, kv ...string) *http.Request {
	r := httptest.NewRequest(method, "http://gw.example/api", nil)
	if origin != "-" {
		for _, o := range strings.Split(origin, "\x00") {
			r.Header.Add("Origin", o)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

const pfVary = "Vary=Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

func TestApply(t *testing.T) {
	exact, creds, star, starCreds := mustCompile(t, exactCORS), mustCompile(t, credsCORS), mustCompile(t, starCORS), mustCompile(t, starCredsCORS)
	regex, null := mustCompile(t, regexCORS), mustCompile(t, nullCORS)
	expect := func(p *Policy, c annotations.CORS, origin string, upstream http.Header, want string) {
		t.Helper()
		h := upstream.Clone()
		if h == nil {
			h = http.Header{}
		}
		r := request("GET", origin)
		p.Apply(h, r)
		if got := render(h); got != want {
			t.Errorf("Apply(origin %q, upstream %v) = %q, want %q", origin, upstream, got, want)
		}
		ref := refAllow(&c, r.Header["Origin"])
		if got := h.Get("Access-Control-Allow-Origin"); p != nil && got != ref {
			t.Errorf("Apply(origin %q): Access-Control-Allow-Origin %q, reference says %q", origin, got, ref)
		}
	}
	up := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	const app = "ACAO=https://app.example.com ACEH=X-Trace Vary=Origin"
	expect(exact, exactCORS, "https://app.example.com", nil, app)
	expect(exact, exactCORS, "https://evil.example.com", nil, "Vary=Origin")
	expect(exact, exactCORS, "-", nil, "Vary=Origin") // a cache must not serve this answer to an origin
	expect(exact, exactCORS, "", nil, "Vary=Origin")
	expect(exact, exactCORS, "http://localhost:8080", nil, "ACAO=http://localhost:8080 ACEH=X-Trace Vary=Origin")
	expect(exact, exactCORS, "HTTPS://APP.Example.com", nil, "ACAO=HTTPS://APP.Example.com ACEH=X-Trace Vary=Origin") // RFC 6454: echoed as sent
	expect(exact, exactCORS, "https://api.example.com", nil, "ACAO=https://api.example.com ACEH=X-Trace Vary=Origin")
	expect(exact, exactCORS, "https://api.example.com:443", nil, "Vary=Origin") // browsers never send a default port
	expect(exact, exactCORS, "https://app.example.com.evil.net", nil, "Vary=Origin")
	expect(exact, exactCORS, "https://app.example.com:8443", nil, "Vary=Origin")
	expect(exact, exactCORS, "http://app.example.com", nil, "Vary=Origin")
	expect(exact, exactCORS, "https://app.example.com/", nil, "Vary=Origin")
	expect(exact, exactCORS, "null", nil, "Vary=Origin")
	expect(exact, exactCORS, "https://app.example.com\x00https://app.example.com", nil, "Vary=Origin") // two Origin fields
	expect(creds, credsCORS, "https://app.example.com", nil, "ACAO=https://app.example.com ACAC=true ACEH=X-Trace Vary=Origin")
	expect(creds, credsCORS, "https://evil.example.com", nil, "Vary=Origin")
	expect(star, starCORS, "https://any.example", nil, "ACAO=* ACEH=X-Trace") // the same for everyone: no Vary
	expect(star, starCORS, "-", nil, "ACAO=* ACEH=X-Trace")
	expect(star, starCORS, "null", nil, "ACAO=* ACEH=X-Trace")
	expect(starCreds, starCredsCORS, "https://any.example:8080", nil, "ACAO=https://any.example:8080 ACAC=true Vary=Origin")
	expect(starCreds, starCredsCORS, "null", nil, "Vary=Origin")
	expect(starCreds, starCredsCORS, "https://x.example\r\nSet-Cookie: a=b", nil, "Vary=Origin")
	expect(starCreds, starCredsCORS, "https://x.example, https://y.example", nil, "Vary=Origin")
	expect(starCreds, starCredsCORS, "https://"+strings.Repeat("a", MaxOriginLen), nil, "Vary=Origin")
	expect(regex, regexCORS, "https://shop.example.com", nil, "ACAO=https://shop.example.com ACAC=true Vary=Origin")
	expect(regex, regexCORS, "https://Shop.EXAMPLE.com", nil, "ACAO=https://Shop.EXAMPLE.com ACAC=true Vary=Origin")
	expect(regex, regexCORS, "https://example.com", nil, "Vary=Origin")
	expect(regex, regexCORS, "https://a.b.example.com", nil, "Vary=Origin")
	expect(regex, regexCORS, "https://shop.example.com.evil.net", nil, "Vary=Origin") // anchored
	expect(regex, regexCORS, "https://evil.net/x.example.com", nil, "Vary=Origin")
	expect(regex, regexCORS, "http://shop.example.com", nil, "Vary=Origin")
	expect(regex, regexCORS, "null", nil, "Vary=Origin")
	expect(null, nullCORS, "null", nil, "ACAO=null Vary=Origin")
	expect(null, nullCORS, "NULL", nil, "Vary=Origin")

	// The policy owns the Access-Control-* headers; Vary is merged.
	expect(exact, exactCORS, "https://evil.example.com", up("Access-Control-Allow-Origin", "*", "Access-Control-Allow-Credentials", "true", "Vary", "Accept-Encoding"), "Vary=Accept-Encoding|Origin")
	expect(exact, exactCORS, "https://app.example.com", up("Access-Control-Allow-Origin", "https://evil.example.com", "Access-Control-Max-Age", "1", "Access-Control-Expose-Headers", "Set-Cookie"), app)
	expect(exact, exactCORS, "https://app.example.com", up("Vary", "accept-encoding, origin"), "ACAO=https://app.example.com ACEH=X-Trace Vary=accept-encoding, origin")
	expect(exact, exactCORS, "https://app.example.com", up("Vary", "*"), "ACAO=https://app.example.com ACEH=X-Trace Vary=*")
	expect(star, starCORS, "https://any.example", up("Access-Control-Allow-Origin", "https://any.example", "Access-Control-Allow-Credentials", "true"), "ACAO=* ACEH=X-Trace")
	expect(nil, exactCORS, "https://app.example.com", up("Access-Control-Allow-Origin", "*"), "ACAO=*") // no policy: untouched
}

// preflight runs Preflight and prints what it did: "pass" when it left the
// request alone, else the status and the CORS headers.
func preflight(t testing.TB, p *Policy, r *http.Request) string {
	t.Helper()
	w := httptest.NewRecorder()
	if !p.Preflight(w, r) {
		if w.Code != http.StatusOK || len(w.Header()) != 0 || w.Body.Len() != 0 {
			t.Errorf("Preflight returned false but wrote %d %v %q", w.Code, w.Header(), w.Body)
		}
		return "pass"
	}
	if w.Body.Len() != 0 {
		t.Errorf("preflight answer has a body: %q", w.Body)
	}
	if got := w.Header().Get("Content-Length"); got != "0" {
		t.Errorf("preflight answer has Content-Length %q, want 0", got)
	}
	return strconv.Itoa(w.Code) + " " + render(w.Header())
}

func TestPreflight(t *testing.T) {
	exact, creds, star, starCreds := mustCompile(t, exactCORS), mustCompile(t, credsCORS), mustCompile(t, starCORS), mustCompile(t, starCredsCORS)
	regex, null, bare, wild := mustCompile(t, regexCORS), mustCompile(t, nullCORS), mustCompile(t, bareCORS), mustCompile(t, wildCORS)
	expect := func(p *Policy, c annotations.CORS, method, origin, acrm, acrh, want string) {
		t.Helper()
		var kv []string
		for _, v := range strings.Split(acrm, "\x00") {
			if v != "-" {
				kv = append(kv, "Access-Control-Request-Method", v)
			}
		}
		if acrh != "-" {
			kv = append(kv, "Access-Control-Request-Headers", acrh)
		}
		r := request(method, origin, kv...)
		got := preflight(t, p, r)
		if got != want {
			t.Errorf("%s Origin %q, method %q, headers %q: got %q, want %q", method, origin, acrm, acrh, got, want)
		}
		acao := ""
		if _, v, ok := strings.Cut(got, "ACAO="); ok {
			acao, _, _ = strings.Cut(v, " ")
		}
		if ref := refPreflight(&c, r); p != nil && got != "pass" && acao != ref {
			t.Errorf("%s Origin %q, method %q, headers %q: reference says Access-Control-Allow-Origin %q, got %q", method, origin, acrm, acrh, ref, got)
		}
	}
	const app, denied = "ACAO=https://app.example.com", "200 " + pfVary
	const exactOK = "200 " + app + " ACAM=GET, PUT, PATCH ACAH=X-Token, Content-Type ACMA=600 " + pfVary
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "x-token, content-type", exactOK)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "X-TOKEN", exactOK) // header names ignore case
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "x-token,, content-type, ", exactOK)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "-", exactOK)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PATCH", "-", exactOK)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "GET", "-", exactOK)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "POST", "-", exactOK) // safelisted: browsers never need it listed
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "DELETE", "-", denied)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "put", "-", denied)   // methods compare as written; browsers send PUT
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "patch", "-", denied) // browsers do not upper-case PATCH
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT\x00GET", "-", denied)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "x-token, x-other", denied)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "PUT", "x-token\r\nx: y", denied)
	expect(exact, exactCORS, "OPTIONS", "https://evil.example.com", "PUT", "-", denied) // answered, not forwarded
	expect(exact, exactCORS, "OPTIONS", "null", "GET", "-", denied)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com\x00https://evil.example.com", "GET", "-", denied)
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "", "-", "pass") // an actual OPTIONS request
	expect(exact, exactCORS, "OPTIONS", "https://app.example.com", "-", "-", "pass")
	expect(exact, exactCORS, "OPTIONS", "-", "PUT", "-", "pass")
	expect(exact, exactCORS, "OPTIONS", "", "PUT", "-", "pass")
	expect(exact, exactCORS, "GET", "https://app.example.com", "PUT", "-", "pass")
	expect(creds, credsCORS, "OPTIONS", "https://app.example.com", "PUT", "-", "200 "+app+" ACAC=true ACAM=GET, PUT, PATCH ACAH=X-Token, Content-Type ACMA=600 "+pfVary)
	expect(bare, bareCORS, "OPTIONS", "https://app.example.com", "GET", "-", "200 "+app+" "+pfVary) // methods unset: no Allow-Methods
	expect(bare, bareCORS, "OPTIONS", "https://app.example.com", "PUT", "-", denied)
	expect(bare, bareCORS, "OPTIONS", "https://app.example.com", "POST", "content-type", denied) // headers unset: none allowed
	expect(wild, wildCORS, "OPTIONS", "https://app.example.com", "DELETE", "x-a, authorization", "200 "+app+" ACAC=true ACAM=DELETE ACAH=x-a, authorization "+pfVary)
	expect(wild, wildCORS, "OPTIONS", "https://app.example.com", "GET", "-", "200 "+app+" ACAC=true ACAM=GET "+pfVary)
	expect(wild, wildCORS, "OPTIONS", "https://app.example.com", "GET", ", ,", "200 "+app+" ACAC=true ACAM=GET "+pfVary)
	expect(wild, wildCORS, "OPTIONS", "https://app.example.com", "DEL\r\nX: y", "-", denied)
	expect(wild, wildCORS, "OPTIONS", "https://app.example.com", "GET", "x-a, b c", denied)
	expect(wild, wildCORS, "OPTIONS", "https://evil.example.com", "GET", "-", denied)
	expect(star, starCORS, "OPTIONS", "https://any.example", "PUT", "-", "200 ACAO=* ACAM=PUT "+pfVary)
	expect(star, starCORS, "OPTIONS", "null", "GET", "-", "200 ACAO=* ACAM=PUT "+pfVary)
	expect(star, starCORS, "OPTIONS", "https://any.example", "DELETE", "-", denied)
	expect(starCreds, starCredsCORS, "OPTIONS", "https://any.example", "GET", "-", "200 ACAO=https://any.example ACAC=true "+pfVary)
	expect(starCreds, starCredsCORS, "OPTIONS", "null", "GET", "-", denied)
	expect(regex, regexCORS, "OPTIONS", "https://shop.example.com", "GET", "-", "200 ACAO=https://shop.example.com ACAC=true "+pfVary)
	expect(regex, regexCORS, "OPTIONS", "https://shop.example.com.evil.net", "GET", "-", denied)
	expect(null, nullCORS, "OPTIONS", "null", "GET", "-", "200 ACAO=null "+pfVary)
	expect(nil, bareCORS, "OPTIONS", "https://app.example.com", "GET", "-", "pass")
}

// TestPreflightReplaces checks that a preflight answer carries the
// policy's headers only, whatever the writer held.
func TestPreflightReplaces(t *testing.T) {
	p := mustCompile(t, bareCORS)
	w := httptest.NewRecorder()
	w.Header().Set("Access-Control-Allow-Methods", "DELETE")
	w.Header().Set("X-Request-Id", "r1")
	p.Preflight(w, request("OPTIONS", "https://app.example.com", "Access-Control-Request-Method", "GET"))
	if got := w.Header().Get("Access-Control-Allow-Methods"); got != "" {
		t.Errorf("Access-Control-Allow-Methods %q survived the preflight answer", got)
	}
	if got := w.Header().Get("X-Request-Id"); got != "r1" {
		t.Errorf("X-Request-Id = %q, want the gateway's r1 kept", got)
	}
}

func TestCompileErrors(t *testing.T) {
	expect := func(c annotations.CORS, want ...string) {
		t.Helper()
		_, err := Compile(&c)
		if err == nil {
			t.Errorf("Compile(%+v) succeeded, want %q", c, want)
			return
		}
		var got []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var fe *FieldError
			if !errors.As(e, &fe) {
				t.Errorf("Compile(%+v): %v is not a *FieldError", c, e)
				continue
			}
			got = append(got, fe.Error())
		}
		if len(got) != len(want) {
			t.Errorf("Compile(%+v) = %q, want %q", c, got, want)
			return
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("Compile(%+v) problem %d = %q, want it to start %q", c, i, got[i], want[i])
			}
		}
	}
	o := func(origins ...string) annotations.CORS { return annotations.CORS{Origins: origins} }
	expect(o(), "origins: at least one origin is required")
	expect(o("a.example.com"), `origins[0]: invalid origin "a.example.com": an origin is scheme://host[:port]`)
	expect(o("https://ok.example", "https://*.example.com"), `origins[1]: invalid origin "https://*.example.com": an exact origin has no wildcards or regular-expression syntax; to match many origins write an expression after "~", such as "~https://[a-z0-9-]+\\.example\\.com"`)
	expect(o(`https://.*\.example\.com`), `origins[0]: invalid origin "https://.*\\.example\\.com": an exact origin has no wildcards`)
	expect(o("https://app.example.com/"), `origins[0]: invalid origin "https://app.example.com/": an origin has no path; write "https://app.example.com"`)
	expect(o("https://app.example.com/x?y"), `origins[0]: invalid origin "https://app.example.com/x?y": an origin has no path, query or fragment`)
	expect(o("https?://app.example.com"), `origins[0]: invalid origin "https?://app.example.com": an origin is scheme://host[:port]`)
	expect(o("https://app.example.com|https://b.example.com"), `origins[0]: invalid origin "https://app.example.com|https://b.example.com": an exact origin has no wildcards or regular-expression syntax; to match many origins write an expression after "~", such as "~https://app\\.example\\.com\\|https://b\\.example\\.com"`)
	expect(o("https://u@app.example.com"), `origins[0]: invalid origin "https://u@app.example.com": an origin has no user information`)
	expect(o("https://bücher.example"), `origins[0]: invalid origin "https://bücher.example": write the host in its ASCII (punycode) form`)
	expect(o("https://a b.example"), `origins[0]: invalid origin "https://a b.example": it has whitespace`)
	expect(o("https://a.example\r\n"), `origins[0]: invalid origin "https://a.example\r\n": it has whitespace or a control character`)
	expect(o("file:///etc"), `origins[0]: invalid origin "file:///etc": file: pages have the origin "null"`)
	expect(o("https://a,b.example"), `origins[0]: invalid origin "https://a,b.example": the host "a,b.example" has ','`)
	expect(o("https://:443"), `origins[0]: invalid origin "https://:443": the host is empty`)
	expect(o("https://a.example:99999"), `origins[0]: invalid origin "https://a.example:99999": port "99999" is not a number`)
	expect(o("https://a.example:+1"), `origins[0]: invalid origin "https://a.example:+1": an exact origin has no wildcards`)
	expect(o("https://[::ffff:1.2.3.4]"), `origins[0]: invalid origin "https://[::ffff:1.2.3.4]": IPv6 address "::ffff:1.2.3.4" with an embedded IPv4 address`)
	expect(o("https://[fe80::1%eth0]"), `origins[0]: invalid origin "https://[fe80::1%eth0]": "fe80::1%eth0" in brackets is not an IPv6 address`)
	expect(o("https://[::1"), `origins[0]: invalid origin "https://[::1": "[" without "]"`)
	expect(o("https://"+strings.Repeat("a", MaxOriginLen)), `origins[0]: invalid origin "https://aaaa`)
	expect(o("~"), `origins[0]: an empty regular expression`)
	expect(o("~https://(a"), `origins[0]: invalid regular expression: missing closing ): `)
	expect(o("~https://a)|(b"), `origins[0]: invalid regular expression: unexpected ): `)
	expect(o(`~https://(?<=a)b`), `origins[0]: invalid regular expression: `)
	expect(o(`~https://(a)\1`), `origins[0]: invalid regular expression: invalid escape sequence: `)
	expect(o(`~https://[a-z]{1,200}\.example`), `origins[0]: regular expression compiles to `)
	expect(o(`~https://App\.example\.com`), `origins[0]: the expression has the upper-case letter 'A'`)
	expect(annotations.CORS{Origins: []string{"*"}, Methods: []string{"GET", "G T"}}, `methods[1]: invalid method "G T"`)
	expect(annotations.CORS{Origins: []string{"*"}, Headers: []string{"x y"}, ExposedHeaders: []string{"a", "b\n"}}, `headers[0]: invalid header name "x y"`, `exposed_headers[1]: invalid header name "b\n"`)
	expect(annotations.CORS{Origins: []string{"*"}, MaxAge: "1d"}, `max_age: must be a number of seconds, such as "86400"; got "1d"`)
	expect(annotations.CORS{Origins: []string{"*"}, MaxAge: "-1"}, `max_age: must be a number of seconds`)
	expect(annotations.CORS{Origins: []string{"x", "*"}, MaxAge: "x"}, `origins[0]: invalid origin "x"`, `max_age: must be`)
}

func TestCompileBudget(t *testing.T) {
	src := `~https://[a-z]{1,60}\.example` // 137 instructions
	if _, err := Compile(&annotations.CORS{Origins: []string{src}}); err == nil {
		t.Errorf("Compile(%q) with the default bound succeeded, want an error", src)
	}
	if _, err := CompileOptions(&annotations.CORS{Origins: []string{src}}, Options{MaxRegexProgram: 1000}); err != nil {
		t.Errorf("CompileOptions(%q, 1000 instructions): %v", src, err)
	}
}

func TestCompileNil(t *testing.T) {
	p, err := Compile(nil)
	if p != nil || err != nil {
		t.Fatalf("Compile(nil) = %v, %v; want nil, nil", p, err)
	}
}

func TestCanonicalOrigin(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://app.example.com", "https://app.example.com"},
		{"HTTPS://App.Example.COM:443", "https://app.example.com"},
		{"http://a.example:0080", "http://a.example"},
		{"http://a.example:443", "http://a.example:443"},
		{"https://a.example:", "https://a.example"},
		{"ws://a:80", "ws://a"},
		{"wss://a:8443", "wss://a:8443"},
		{"https://[2001:DB8:0:0:0:0:0:1]:8443", "https://[2001:db8::1]:8443"},
		{"http://[::1]", "http://[::1]"},
		{"http://127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"},
		{"https://a.example.", "https://a.example."},
	} {
		got, msg := canonicalOrigin(c.in)
		if got != c.want || msg != "" {
			t.Errorf("canonicalOrigin(%q) = %q, %q; want %q", c.in, got, msg, c.want)
		}
		if ref := refCanon(c.in); ref != c.want {
			t.Errorf("refCanon(%q) = %q; want %q", c.in, ref, c.want)
		}
	}
}

func TestMaxAgeAndLists(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0", "0"},
		{"86400", "86400"},
		{"0086400", "86400"},
		{"2147483649", "2147483648"},
		{"99999999999999999999999999", "2147483648"},
	} {
		p := mustCompile(t, annotations.CORS{Origins: []string{"*"}, MaxAge: c.in})
		if got := preflight(t, p, request("OPTIONS", "https://a.example", "Access-Control-Request-Method", "GET")); !strings.Contains(got, " ACMA="+c.want+" ") {
			t.Errorf("max_age %q: preflight %q, want Access-Control-Max-Age %s", c.in, got, c.want)
		}
	}
	// Duplicates are dropped, header names compared without case.
	p := mustCompile(t, annotations.CORS{Origins: []string{"*"}, Methods: []string{"put", "PUT", "get"}, Headers: []string{"X-A", "x-a", "X-B"}, ExposedHeaders: []string{"X-C", "x-c"}})
	got := preflight(t, p, request("OPTIONS", "https://a.example", "Access-Control-Request-Method", "PUT"))
	if want := "200 ACAO=* ACAM=PUT, GET ACAH=X-A, X-B " + pfVary; got != want {
		t.Errorf("preflight = %q, want %q", got, want)
	}
	h := http.Header{}
	p.Apply(h, request("GET", "https://a.example"))
	if want := "ACAO=* ACEH=X-C"; render(h) != want {
		t.Errorf("Apply = %q, want %q", render(h), want)
	}
}

// The reference: a plain reading of the semantics in Policy's comment,
// written without the policy's code, for the differential tests.

var refWellFormed = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?$`)

// refCanon is an exact origin as browsers send it, by way of net/url.
func refCanon(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + ip.String() + "]"
	}
	if port != "" {
		n, _ := strconv.Atoi(port)
		port = strconv.Itoa(n)
	}
	if port == map[string]string{"http": "80", "ws": "80", "https": "443", "wss": "443", "ftp": "21"}[scheme] {
		port = ""
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}

// refAllow is the Access-Control-Allow-Origin c gives the Origin values v,
// "" for none.
func refAllow(c *annotations.CORS, v []string) string {
	creds := c.Credentials != nil && *c.Credentials
	star := slices.Contains(c.Origins, "*")
	if star && !creds {
		return "*"
	}
	if len(v) != 1 {
		return ""
	}
	o := v[0]
	if o == "null" {
		if slices.ContainsFunc(c.Origins, func(s string) bool { return strings.EqualFold(s, "null") }) {
			return o
		}
		return ""
	}
	if len(o) > MaxOriginLen || !refWellFormed.MatchString(o) {
		return ""
	}
	if star {
		return o
	}
	lower := strings.ToLower(o)
	for _, s := range c.Origins {
		if src, ok := strings.CutPrefix(s, "~"); ok {
			if regexp.MustCompile(`^(?:` + src + `)$`).MatchString(lower) {
				return o
			}
		} else if s != "*" && !strings.EqualFold(s, "null") && refCanon(s) == lower {
			return o
		}
	}
	return ""
}

// refPreflight is the Access-Control-Allow-Origin of the answer to the
// preflight r, "" for none.
func refPreflight(c *annotations.CORS, r *http.Request) string {
	allow := refAllow(c, r.Header["Origin"])
	m := r.Header["Access-Control-Request-Method"]
	if allow == "" || len(m) != 1 || !isTokenRef(m[0]) {
		return ""
	}
	methodOK := slices.Contains(c.Methods, "*") || m[0] == "GET" || m[0] == "HEAD" || m[0] == "POST"
	for _, listed := range c.Methods {
		if up := strings.ToUpper(listed); slices.Contains([]string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}, up) {
			listed = up // browsers upper-case these before comparing
		}
		if listed == m[0] {
			methodOK = true
		}
	}
	if !methodOK {
		return ""
	}
	for _, line := range r.Header["Access-Control-Request-Headers"] {
		for _, name := range strings.Split(line, ",") {
			name = strings.Trim(name, " \t")
			if name == "" {
				continue
			}
			ok := isTokenRef(name) && (slices.Contains(c.Headers, "*") || slices.ContainsFunc(c.Headers, func(h string) bool { return strings.EqualFold(h, name) }))
			if !ok {
				return ""
			}
		}
	}
	return allow
}

var tokenRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func isTokenRef(s string) bool { return tokenRE.MatchString(s) }

// TestReference draws policies and requests from pools of near misses and
// checks Apply and Preflight against the reference.
func TestReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	configured := []string{
		"https://app.example.com", "HTTPS://App.Example.com:443", "http://localhost:8080", "http://localhost:08080",
		"https://[2001:db8::1]", "https://[2001:DB8:0::1]:443", "null", "*", "chrome-extension://abc",
		`~https://[a-z0-9-]+\.example\.com`, `~https?://localhost(:[0-9]+)?`, `~.*`, `~(?i)https://x\.example`, `~null`,
	}
	sent := []string{
		"https://app.example.com", "HTTPS://APP.EXAMPLE.COM", "https://app.example.com:443", "http://app.example.com",
		"http://localhost:8080", "http://localhost", "http://localhost:3000", "https://[2001:db8::1]", "https://[2001:DB8::1]",
		"null", "NULL", "", "https://shop.example.com", "https://a.b.example.com", "https://x.example", "https://X.EXAMPLE",
		"chrome-extension://abc", "https://app.example.com/", "https://app.example.com, https://evil.example",
		"https://evil.example\r\nX: y", "https://app.example.com\x00https://app.example.com", "-", "https://[::1", "https://a:b:c",
	}
	methods := []string{"GET", "POST", "PUT", "put", "PATCH", "DELETE", "", "-", "G T"}
	headerSets := []string{"-", "", "x-token", "X-Token, content-type", "x-other", "a b", ",,"}
	for i := 0; i < 3000; i++ {
		var c annotations.CORS
		for n := 1 + rng.IntN(3); n > 0; n-- {
			c.Origins = append(c.Origins, configured[rng.IntN(len(configured))])
		}
		if rng.IntN(2) == 0 {
			c.Credentials = yes()
		}
		c.Methods = [][]string{nil, {"PUT"}, {"put", "PATCH"}, {"*"}}[rng.IntN(4)]
		c.Headers = [][]string{nil, {"X-Token"}, {"x-token", "Content-Type"}, {"*"}}[rng.IntN(4)]
		p := mustCompile(t, c)

		origin := sent[rng.IntN(len(sent))]
		h := http.Header{}
		r := request("GET", origin)
		p.Apply(h, r)
		if got, want := h.Get("Access-Control-Allow-Origin"), refAllow(&c, r.Header["Origin"]); got != want {
			t.Fatalf("policy %+v, Origin %q: Apply gives Access-Control-Allow-Origin %q, reference %q", c, origin, got, want)
		}

		var kv []string
		if m := methods[rng.IntN(len(methods))]; m != "-" {
			kv = append(kv, "Access-Control-Request-Method", m)
		}
		if hs := headerSets[rng.IntN(len(headerSets))]; hs != "-" {
			kv = append(kv, "Access-Control-Request-Headers", hs)
		}
		r = request("OPTIONS", origin, kv...)
		w := httptest.NewRecorder()
		answered := p.Preflight(w, r)
		isPreflight := r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if answered != isPreflight {
			t.Fatalf("policy %+v, request %v: Preflight = %v, want %v", c, r.Header, answered, isPreflight)
		}
		if !answered {
			continue
		}
		if got, want := w.Header().Get("Access-Control-Allow-Origin"), refPreflight(&c, r); got != want {
			t.Fatalf("policy %+v, request %v: preflight Access-Control-Allow-Origin %q, reference %q", c, r.Header, got, want)
		}
	}
}

// nopWriter is a ResponseWriter that does not allocate.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

func TestAllocs(t *testing.T) {
	exact, regex, starCreds := mustCompile(t, credsCORS), mustCompile(t, regexCORS), mustCompile(t, starCredsCORS)
	for _, c := range []struct {
		name   string
		p      *Policy
		r      *http.Request
		vary   bool
		allocs float64
	}{
		{"exact", exact, request("GET", "https://app.example.com"), false, 0},
		{"exact upper case", exact, request("GET", "HTTPS://APP.EXAMPLE.COM"), false, 0},
		{"regex", regex, request("GET", "https://shop.example.com"), false, 0},
		{"any origin", starCreds, request("GET", "https://shop.example.com"), false, 0},
		{"disallowed", exact, request("GET", "https://evil.example.com"), false, 0},
		{"no origin", exact, request("GET", "-"), false, 0},
		{"upstream Vary", exact, request("GET", "https://app.example.com"), true, 1},
	} {
		h := http.Header{}
		got := testing.AllocsPerRun(100, func() {
			clear(h)
			if c.vary {
				h["Vary"] = []string{"Accept-Encoding"}[:1:1]
			}
			c.p.Apply(h, c.r)
		})
		if c.vary {
			got-- // the test's own slice
		}
		if got != c.allocs {
			t.Errorf("Apply, %s: %v allocations, want %v", c.name, got, c.allocs)
		}
	}
	r := request("OPTIONS", "https://app.example.com", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-token")
	w := &nopWriter{h: http.Header{}}
	if got := testing.AllocsPerRun(100, func() { clear(w.h); exact.Preflight(w, r) }); got != 0 {
		t.Errorf("Preflight: %v allocations, want 0", got)
	}
	if w.h.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("Preflight measured a denied answer: %v", w.h)
	}
}

// TestShared checks that the values a policy shares between responses
// cannot be changed through one response: a later Add copies.
func TestShared(t *testing.T) {
	p := mustCompile(t, credsCORS)
	r := request("GET", "https://app.example.com")
	h1, h2 := http.Header{}, http.Header{}
	p.Apply(h1, r)
	h1.Add("Vary", "Accept")
	h1.Add("Access-Control-Allow-Credentials", "x")
	h1.Add("Access-Control-Allow-Origin", "x")
	p.Apply(h2, r)
	if got, want := render(h2), "ACAO=https://app.example.com ACAC=true ACEH=X-Trace Vary=Origin"; got != want {
		t.Errorf("second response = %q, want %q", got, want)
	}
	if got := r.Header["Origin"]; len(got) != 1 {
		t.Errorf("request Origin changed through the response: %q", got)
	}
}

// TestConcurrent runs one policy from many goroutines, for the race
// detector.
func TestConcurrent(t *testing.T) {
	p := mustCompile(t, annotations.CORS{Origins: []string{"https://app.example.com", `~https://[a-z]+\.example\.com`}, Credentials: yes(), Headers: []string{"*"}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				origin := fmt.Sprintf("https://%c.example.com", 'a'+rune(i%26))
				h := http.Header{}
				p.Apply(h, request("GET", origin))
				if h.Get("Access-Control-Allow-Origin") != origin {
					t.Errorf("Apply(%q) = %v", origin, h)
					return
				}
				p.Preflight(&nopWriter{h: http.Header{}}, request("OPTIONS", origin, "Access-Control-Request-Method", "GET"))
			}
		}()
	}
	wg.Wait()
}

func ExamplePolicy_Apply() {
	p, err := Compile(&annotations.CORS{
		Origins:     []string{"https://app.example.com", `~https://[a-z0-9-]+\.preview\.example\.com`},
		Credentials: yes(),
	})
	if err != nil {
		panic(err)
	}
	for _, origin := range []string{"https://app.example.com", "https://pr-42.preview.example.com", "https://evil.example"} {
		r := httptest.NewRequest("GET", "http://api.example.com/", nil)
		r.Header.Set("Origin", origin)
		h := http.Header{"Vary": {"Accept-Encoding"}}
		p.Apply(h, r)
		fmt.Printf("%s: %q %q %q\n", origin, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"), h["Vary"])
	}
	// Output:
	// https://app.example.com: "https://app.example.com" "true" ["Accept-Encoding" "Origin"]
	// https://pr-42.preview.example.com: "https://pr-42.preview.example.com" "true" ["Accept-Encoding" "Origin"]
	// https://evil.example: "" "" ["Accept-Encoding" "Origin"]
}

func BenchmarkApply(b *testing.B) {
	exact, regex, star := mustCompile(b, credsCORS), mustCompile(b, regexCORS), mustCompile(b, starCORS)
	for _, c := range []struct {
		name string
		p    *Policy
		r    *http.Request
		vary bool
	}{
		{"exact", exact, request("GET", "https://app.example.com"), false},
		{"exact-upstream-vary", exact, request("GET", "https://app.example.com"), true},
		{"exact-upper-case", exact, request("GET", "HTTPS://APP.EXAMPLE.COM"), false},
		{"regex", regex, request("GET", "https://shop.example.com"), false},
		{"regex-miss", regex, request("GET", "https://shop.example.net"), false},
		{"star", star, request("GET", "https://shop.example.com"), false},
		{"disallowed", exact, request("GET", "https://evil.example.com"), false},
		{"no-origin", exact, request("GET", "-"), false},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := http.Header{}
			vary := []string{"Accept-Encoding"}
			for b.Loop() {
				clear(h)
				if c.vary {
					h["Vary"] = vary[:1:1]
				}
				c.p.Apply(h, c.r)
			}
		})
	}
}

// BenchmarkApplyBaseline is what the same headers cost written the plain
// way, http.Header.Set with values joined per request, to compare
// BenchmarkApply/exact with in the same run.
func BenchmarkApplyBaseline(b *testing.B) {
	b.ReportAllocs()
	r := request("GET", "https://app.example.com")
	exposed := credsCORS.ExposedHeaders
	h := http.Header{}
	for b.Loop() {
		clear(h)
		h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", strings.Join(exposed, ", "))
		h.Add("Vary", "Origin")
	}
}

func BenchmarkPreflight(b *testing.B) {
	exact, wild := mustCompile(b, credsCORS), mustCompile(b, wildCORS)
	for _, c := range []struct {
		name string
		p    *Policy
		r    *http.Request
	}{
		{"allowed", exact, request("OPTIONS", "https://app.example.com", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-token, content-type")},
		{"reflect", wild, request("OPTIONS", "https://app.example.com", "Access-Control-Request-Method", "DELETE", "Access-Control-Request-Headers", "x-a, authorization")},
		{"denied", exact, request("OPTIONS", "https://evil.example.com", "Access-Control-Request-Method", "PUT")},
		{"not-preflight", exact, request("GET", "https://app.example.com")},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &nopWriter{h: http.Header{}}
			for b.Loop() {
				clear(w.h)
				c.p.Preflight(w, c.r)
			}
		})
	}
}
