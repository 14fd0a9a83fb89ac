package auth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// authServer is an external authorization service. It answers by the
// path it is asked about (after /check) and records the last request.
type authServer struct {
	*httptest.Server
	mu   sync.Mutex
	last *http.Request
	body []byte
}

func newAuthServer(t *testing.T) *authServer {
	s := &authServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.last, s.body = r, body
		s.mu.Unlock()
		path := strings.TrimPrefix(r.URL.Path, "/check")
		switch {
		case strings.HasPrefix(path, "/allow"):
			w.Header().Set("X-User", "alice")
			w.Header().Add("X-Roles", "a")
			w.Header().Add("X-Roles", "b")
			w.Header().Set("X-Internal", "not for upstream")
			w.Header().Set("X-Consumer", "  tenant-1 ")
			w.WriteHeader(200)
			w.Write([]byte("ignored"))
		case strings.HasPrefix(path, "/deny"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="example"`)
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("X-Reason", "no session")
			w.WriteHeader(401)
			w.Write([]byte("log in first"))
		case strings.HasPrefix(path, "/redirect"):
			http.Redirect(w, r, "https://login.example/?next=x", http.StatusFound)
		case strings.HasPrefix(path, "/fail"):
			w.Header().Set("X-Debug", "stack trace")
			w.WriteHeader(500)
			w.Write([]byte("panic: nil map"))
		case strings.HasPrefix(path, "/big"):
			w.WriteHeader(403)
			w.Write([]byte(strings.Repeat("x", MaxDenialBodyBytes+100)))
		case strings.HasPrefix(path, "/slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authServer) lastRequest() (*http.Request, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.body
}

// doer sends check requests to addr, without following redirects.
func doer(addr string) Doer {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(r *http.Request) (*http.Response, error) {
		r.URL.Host = addr
		return c.Do(r)
	}
}

var extSettings = ExternalSettings{
	PathPrefix:             "/check/",
	AllowedRequestHeaders:  []string{"x-tenant", "X-Tenant"},
	AllowedUpstreamHeaders: []string{"x-user", "X-Roles", "X-Groups", "x-user"},
	ConsumerHeader:         "x-consumer",
	IncludeBodyBytes:       5,
}

func clientReq(method, target string, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "app.example"
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Add("Cookie", "session=1")
	r.Header.Add("Cookie", "theme=dark")
	r.Header.Set("X-Secret", "do not send")
	r.Header.Set("X-Tenant", "t1")
	r.Header.Set("X-Request-Id", "req-1")
	return r
}

// TestExternalAllow: the check request carries what it should and nothing
// else; a 2xx answer's allowed headers and consumer make the Result.
func TestExternalAllow(t *testing.T) {
	srv := newAuthServer(t)
	e := NewExternal(extSettings, doer(srv.Listener.Addr().String()))
	r := clientReq("POST", "/allow/a%2Fb?q=1&r=%20", "hello world")
	res, d := e.Authenticate(context.Background(), r, []byte("hello world"))
	if d != nil {
		t.Fatalf("denied: %d %s", d.Status, d.Body)
	}
	want := Result{
		Consumer: "tenant-1",
		Set:      [][2]string{{"X-User", "alice"}, {"X-Roles", "a, b"}},
		Remove:   []string{"X-Groups"},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Result = %+v, want %+v", res, want)
	}

	got, body := srv.lastRequest()
	if got.Method != "POST" || got.URL.EscapedPath() != "/check/allow/a%2Fb" || got.URL.RawQuery != "q=1&r=%20" || got.Host != "app.example" {
		t.Errorf("check request: %s %s ? %s, Host %s", got.Method, got.URL.EscapedPath(), got.URL.RawQuery, got.Host)
	}
	if string(body) != "hello" || got.ContentLength != 5 {
		t.Errorf("check request body %q, length %d; want the first 5 bytes", body, got.ContentLength)
	}
	for name, want := range map[string][]string{
		"Authorization": {"Bearer abc"},
		"Cookie":        {"session=1", "theme=dark"},
		"X-Tenant":      {"t1"},
		"X-Request-Id":  {"req-1"},
		"X-Secret":      nil,
	} {
		if v := got.Header[name]; !reflect.DeepEqual(v, want) {
			t.Errorf("check request %s: %q, want %q", name, v, want)
		}
	}
	// The client's request is untouched.
	if b, _ := io.ReadAll(r.Body); string(b) != "hello world" || r.Header.Get("X-Secret") == "" {
		t.Errorf("client request changed: body %q", b)
	}
}

// TestExternalNoBody: without IncludeBodyBytes, or without a body, the
// check request has none.
func TestExternalNoBody(t *testing.T) {
	srv := newAuthServer(t)
	s := extSettings
	s.IncludeBodyBytes = 0
	for _, e := range []*External{NewExternal(s, doer(srv.Listener.Addr().String())), NewExternal(extSettings, doer(srv.Listener.Addr().String()))} {
		body := []byte("hello")
		if e.BodyBytes() > 0 {
			body = nil
		}
		if _, d := e.Authenticate(context.Background(), clientReq("PUT", "/allow", "hello"), body); d != nil {
			t.Fatalf("denied: %s", d.Body)
		}
		got, b := srv.lastRequest()
		if len(b) != 0 || got.ContentLength != 0 || got.Method != "PUT" || got.URL.Path != "/check/allow" {
			t.Errorf("BodyBytes %d: check request %s %s with %d bytes", e.BodyBytes(), got.Method, got.URL.Path, len(b))
		}
	}
}

// TestExternalDeny: a refusal is passed on with its status, body and
// end-to-end headers; a 5xx becomes our own 403.
func TestExternalDeny(t *testing.T) {
	srv := newAuthServer(t)
	e := NewExternal(extSettings, doer(srv.Listener.Addr().String()))

	_, d := e.Authenticate(context.Background(), clientReq("GET", "/deny", ""), nil)
	if d == nil || d.Status != 401 || string(d.Body) != "log in first" {
		t.Fatalf("deny: %+v", d)
	}
	if d.Header.Get("WWW-Authenticate") != `Bearer realm="example"` || d.Header.Get("X-Reason") != "no session" {
		t.Errorf("deny: headers %v", d.Header)
	}
	for _, h := range []string{"Connection", "X-Hop", "Keep-Alive", "Content-Length", "Transfer-Encoding"} {
		if _, ok := d.Header[h]; ok {
			t.Errorf("deny: %s passed on", h)
		}
	}

	_, d = e.Authenticate(context.Background(), clientReq("GET", "/redirect", ""), nil)
	if d == nil || d.Status != 302 || d.Header.Get("Location") != "https://login.example/?next=x" {
		t.Errorf("redirect: %+v", d)
	}

	for _, failOpen := range []bool{false, true} {
		s := extSettings
		s.FailOpen = failOpen
		_, d = NewExternal(s, doer(srv.Listener.Addr().String())).Authenticate(context.Background(), clientReq("GET", "/fail", ""), nil)
		if d == nil || d.Status != 403 || string(d.Body) != "authorization service failed\n" || d.Header.Get("X-Debug") != "" {
			t.Errorf("500, FailOpen %v: %+v", failOpen, d)
		}
	}

	_, d = e.Authenticate(context.Background(), clientReq("GET", "/big", ""), nil)
	if d == nil || d.Status != 403 || len(d.Body) != MaxDenialBodyBytes {
		t.Errorf("big: status %d, %d bytes of body", d.Status, len(d.Body))
	}
}

// TestExternalUnanswered: a service that does not answer in time, or
// cannot be reached, refuses with 403 or lets the request through with
// FailOpen, within Timeout.
func TestExternalUnanswered(t *testing.T) {
	srv := newAuthServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	timeout := 100 * time.Millisecond
	for _, tc := range []struct {
		name, addr, path string
	}{
		{"slow", srv.Listener.Addr().String(), "/slow"},
		{"refused", closed, "/allow"},
	} {
		for _, failOpen := range []bool{false, true} {
			s := extSettings
			s.Timeout, s.FailOpen = timeout, failOpen
			start := time.Now()
			res, d := NewExternal(s, doer(tc.addr)).Authenticate(context.Background(), clientReq("GET", tc.path, ""), nil)
			if el := time.Since(start); el > 20*timeout {
				t.Errorf("%s, FailOpen %v: took %v with Timeout %v", tc.name, failOpen, el, timeout)
			}
			if failOpen {
				want := Result{Remove: []string{"X-User", "X-Roles", "X-Groups"}}
				if d != nil || !reflect.DeepEqual(res, want) {
					t.Errorf("%s, FailOpen: %+v, %+v; want %+v", tc.name, res, d, want)
				}
				continue
			}
			if d == nil || d.Status != 403 || string(d.Body) != "authorization service unavailable\n" {
				t.Errorf("%s, fail closed: %+v", tc.name, d)
			}
		}
	}
	// The caller's context ends a check too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, d := NewExternal(extSettings, doer(srv.Listener.Addr().String())).Authenticate(ctx, clientReq("GET", "/slow", ""), nil); d == nil || time.Since(start) > 2*time.Second {
		t.Errorf("caller's context: %+v after %v", d, time.Since(start))
	}
}

func TestExternalSettingsValidate(t *testing.T) {
	err := ExternalSettings{
		PathPrefix:             "check",
		Timeout:                -1,
		IncludeBodyBytes:       -1,
		AllowedRequestHeaders:  []string{"Proxy-Authorization", "Content-Length", "bad name"},
		AllowedUpstreamHeaders: []string{"X-Ok", "Host"},
		ConsumerHeader:         "a:b",
	}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"PathPrefix", "Timeout", "IncludeBodyBytes", "AllowedRequestHeaders[1]", "AllowedRequestHeaders[2]", "AllowedUpstreamHeaders[1]", "ConsumerHeader"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %q, want %q", fields, want)
	}
	if err := extSettings.Validate(); err != nil {
		t.Errorf("extSettings: %v", err)
	}
}

// TestExternalAllowedValues: a value that could not be sent as a header
// (Go's client refuses such answers, another Doer might not) is removed,
// not set, and names no consumer.
func TestExternalAllowedValues(t *testing.T) {
	e := NewExternal(extSettings, nil)
	res := e.allowed(http.Header{"X-User": {"a\x01b"}, "X-Roles": {"ok"}, "X-Consumer": {"a\nb"}})
	want := Result{Set: [][2]string{{"X-Roles", "ok"}}, Remove: []string{"X-User", "X-Groups"}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
}
