package cors

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/h1"
)

// FuzzPolicy compiles arbitrary cors settings and runs arbitrary requests
// through them: Compile never panics and names a field in every problem; a
// compiled policy never emits a header field that could split a response,
// gives Access-Control-Allow-Origin exactly when the reference allows the
// origin, never lets an upstream's stand, and answers exactly the
// preflights.
//
// origins is one origin per line (expressions may hold commas); the other
// lists are comma-separated. shape's bits leave out the Origin (1), send it
// twice (2), leave out Access-Control-Request-Method (4) and
// Access-Control-Request-Headers (8).
func FuzzPolicy(f *testing.F) {
	f.Add("https://app.example.com\nhttp://localhost:8080", "GET,PUT", "X-Token", "X-Trace", "600", false, "OPTIONS", "https://app.example.com", "PUT", "x-token", uint8(0))
	f.Add("*", "", "", "", "", true, "OPTIONS", "null", "GET", "", uint8(8))
	f.Add("*", "*", "*", "*", "0", false, "GET", "https://x.example", "", "", uint8(4))
	f.Add(`~https://[a-z0-9-]+\.example\.com`, "*", "*", "", "", true, "OPTIONS", "https://Shop.example.com", "DELETE", "x-a, authorization", uint8(0))
	f.Add(`~https://(a|b)\.example`+"\nnull", "patch", "", "", "99999999999999999999", true, "OPTIONS", "https://a.example\r\nSet-Cookie: x=y", "PATCH", "a\r\nb", uint8(2))
	f.Add("HTTPS://App.Example.com:443\nhttps://[2001:DB8::1]:08443", "put", "content-type", "", "", false, "OPTIONS", "https://[2001:db8::1]:8443", "PUT", ",,content-type,", uint8(0))
	f.Add("https://*.example.com\nfile:///x\n~\n~(", "G T", "x y", "\n", "1d", false, "GET", "", "", "", uint8(1))
	f.Add("null", "", "", "", "", false, "OPTIONS", "null", "GET\r\n", "", uint8(0))

	fields := []string{"origins", "methods", "headers", "exposed_headers", "max_age"}
	f.Fuzz(func(t *testing.T, origins, methods, headers, exposed, maxAge string, creds bool, method, origin, acrm, acrh string, shape uint8) {
		c := &annotations.CORS{
			Origins:        split(origins, "\n"),
			Methods:        split(methods, ","),
			Headers:        split(headers, ","),
			ExposedHeaders: split(exposed, ","),
			MaxAge:         maxAge,
			Credentials:    &creds,
		}
		p, err := Compile(c)
		if err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("problem %v is not a *FieldError", e)
				}
				name, _, _ := strings.Cut(fe.Field, "[")
				if !containsStr(fields, name) || fe.Reason == "" {
					t.Fatalf("problem %q names no field", fe)
				}
			}
			return
		}

		r := &http.Request{Method: method, URL: &url.URL{Path: "/"}, Header: http.Header{}}
		if shape&1 == 0 {
			r.Header["Origin"] = []string{origin}
			if shape&2 != 0 {
				r.Header["Origin"] = append(r.Header["Origin"], origin)
			}
		}
		if shape&4 == 0 {
			r.Header["Access-Control-Request-Method"] = []string{acrm}
		}
		if shape&8 == 0 {
			r.Header["Access-Control-Request-Headers"] = []string{acrh}
		}

		const planted = "https://upstream.invalid"
		h := http.Header{
			"Access-Control-Allow-Origin":      {planted},
			"Access-Control-Allow-Credentials": {"true"},
			"Access-Control-Max-Age":           {"1"},
			"Vary":                             {"Accept-Encoding"},
		}
		p.Apply(h, r)
		checkFields(t, "Apply", h)
		want := refAllow(c, r.Header["Origin"])
		if got := h.Get("Access-Control-Allow-Origin"); got != want || len(h["Access-Control-Allow-Origin"]) > 1 {
			t.Fatalf("Apply, Origin %q: Access-Control-Allow-Origin %q, reference %q", r.Header["Origin"], h["Access-Control-Allow-Origin"], want)
		}
		if h.Get("Access-Control-Max-Age") != "" {
			t.Fatalf("Apply kept the upstream's Access-Control-Max-Age")
		}
		if got := h.Get("Access-Control-Allow-Credentials"); got != "" && (!creds || want == "") {
			t.Fatalf("Apply, Origin %q, credentials %v: Access-Control-Allow-Credentials %q", r.Header["Origin"], creds, got)
		}

		w := httptest.NewRecorder()
		answered := p.Preflight(w, r)
		isPreflight := method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if answered != isPreflight {
			t.Fatalf("Preflight(%s %v) = %v, want %v", method, r.Header, answered, isPreflight)
		}
		if !answered {
			if len(w.Header()) != 0 || w.Body.Len() != 0 {
				t.Fatalf("Preflight passed the request on but wrote %v %q", w.Header(), w.Body)
			}
			return
		}
		checkFields(t, "Preflight", w.Header())
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("preflight answered %d with body %q", w.Code, w.Body)
		}
		if got, want := w.Header().Get("Access-Control-Allow-Origin"), refPreflight(c, r); got != want {
			t.Fatalf("Preflight(%v): Access-Control-Allow-Origin %q, reference %q", r.Header, got, want)
		}
	})
}

func split(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkFields fails when a header field of h could not be written as one
// field line: a name that is not a token, a value with a control character
// other than tab (CR and LF would split the response).
func checkFields(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, vs := range h {
		if !h1.IsToken(k) {
			t.Fatalf("%s set field name %q", what, k)
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
					t.Fatalf("%s set %s: %q, with a control character", what, k, v)
				}
			}
		}
	}
}
