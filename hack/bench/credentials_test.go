package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/files"
	"github.com/gatehouse-dev/gatehouse/limiter"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// compileManifests reads a row's manifest files and compiles them as
// `gatehouse validate` and `serve --from-dir` do (files.ParseWith, then
// the snapshot builder with the same key hasher), failing on any problem,
// warnings included: a bench manifest has no excuse for one. It returns
// the snapshot's only route and how it authenticates.
func compileManifests(t *testing.T, v variant, cr credentials) (*snapshot.Route, *snapshot.RouteAuth) {
	t.Helper()
	docs, err := gatehouseManifests(v, "127.0.0.1:9090", "127.0.0.1:9191", cr)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewKeyHasher()
	if err != nil {
		t.Fatal(err)
	}
	all := &files.Manifests{}
	for _, m := range docs {
		got, problems := files.ParseWith(m.name, []byte(m.text), files.Options{HashKey: hasher.Sum})
		for _, p := range problems {
			t.Errorf("%s: %v\n%s", v.suffix(), p, m.text)
		}
		all.Append(got)
	}
	// serve --from-dir's guard: upstreams on loopback, as the bench's are.
	guard, err := upstream.NewDialGuard(upstream.GuardOptions{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	b := snapshot.NewBuilder(limiter.NewRegistry(limiter.Options{}), upstream.NewRegistry(upstream.RegistryOptions{Guard: guard}), snapshot.Options{KeyHasher: hasher})
	snap, reports := b.Build(snapshot.Input{Services: all.ServiceObjects(), Slices: all.Slices, Namespaces: all.Namespaces, Secrets: all.Secrets})
	for _, r := range reports {
		for _, f := range all.Locate(r.Service, r.Annotation, r.Problems) {
			t.Errorf("%s: %s", v.suffix(), f)
		}
	}
	for _, d := range snap.Dropped {
		t.Errorf("%s: dropped endpoint %s", v.suffix(), d)
	}
	var routes []*snapshot.Route
	for rt := range snap.Table.All() {
		routes = append(routes, rt.Value)
	}
	if len(routes) != 1 {
		t.Fatalf("%s: %d routes, want 1", v.suffix(), len(routes))
	}
	rt := routes[0]
	if got := rt.Upstream.Endpoints(); !slices.Equal(got, []string{"127.0.0.1:9090"}) {
		t.Errorf("%s: the route's endpoints are %v, want the backend's", v.suffix(), got)
	}
	return rt, snap.AuthFor(rt)
}

// request is a GET / with the headers wrk sends to a row of variant v.
func request(cr credentials, v variant) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	for _, h := range cr.headers(v) {
		name, value, _ := strings.Cut(h, ": ")
		r.Header.Add(name, value)
	}
	return r
}

// TestManifestsCompile checks every Gatehouse row's manifests with the
// gateway's own parser and compiler, and that the authenticated rows
// accept exactly what wrk sends: the run's token and key, not another
// run's.
func TestManifestsCompile(t *testing.T) {
	now := time.Now()
	cr, err := newCredentials(now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newCredentials(now)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []variant{plain, logAndLimit, overTLS, withJWT, withAPIKey, withExtAuth, logLimitRedis, logLimitTrace, logLimitTraceAll} {
		rt, ra := compileManifests(t, v, cr)
		if full := len(rt.Limiters) == 1; full != v.full() {
			t.Errorf("%s: %d rate limits, want one exactly when the row is -full", v.suffix(), len(rt.Limiters))
		}
		if (ra != nil) != (v == withJWT || v == withAPIKey || v == withExtAuth) {
			t.Errorf("%s: route auth %+v", v.suffix(), ra)
			continue
		}
		switch v {
		case withJWT:
			if res, d := ra.JWT.Authenticate(request(cr, v), now.Add(time.Minute)); d != nil || res.Consumer != benchConsumer {
				t.Errorf("the run's token: consumer %q, %s", res.Consumer, denial(d))
			}
			if _, d := ra.JWT.Authenticate(request(other, v), now.Add(time.Minute)); d == nil {
				t.Error("another run's token was accepted")
			}
			if _, d := ra.JWT.Authenticate(request(cr, v), now.Add(25*time.Hour)); d == nil {
				t.Error("the token is accepted after a day")
			}
		case withAPIKey:
			if res, d := ra.APIKeys.Authenticate(request(cr, v)); d != nil || res.Consumer != benchConsumer {
				t.Errorf("the run's key: consumer %q, %s", res.Consumer, denial(d))
			}
			if _, d := ra.APIKeys.Authenticate(request(other, v)); d == nil {
				t.Error("another run's key was accepted")
			}
		case withExtAuth:
			if s := ra.Spec; s.Kind != snapshot.AuthExternal || s.External.Timeout != time.Second ||
				!slices.Equal(s.Target.Upstream.Endpoints(), []string{"127.0.0.1:9191"}) {
				t.Errorf("external auth %+v, endpoints %v; want a 1s check at the auth service", s.External, s.Target.Upstream.Endpoints())
			}
		}
	}
}

func denial(d *auth.Denial) string {
	if d == nil {
		return "accepted"
	}
	return fmt.Sprintf("refused %d: %s", d.Status, strings.TrimSpace(string(d.Body)))
}

func TestCredentialHeaders(t *testing.T) {
	cr := credentials{token: "a.b.c", apiKey: "0123"}
	for v, want := range map[variant][]string{
		withJWT:       {"Authorization: Bearer a.b.c"},
		withAPIKey:    {"X-Api-Key: 0123"},
		withExtAuth:   nil,
		plain:         nil,
		logLimitRedis: nil,
	} {
		if got := cr.headers(v); !slices.Equal(got, want) {
			t.Errorf("headers(%s) = %q, want %q", v.suffix(), got, want)
		}
	}
	c, err := newCredentials(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.apiKey) != 64 || strings.Trim(c.apiKey, "0123456789abcdef") != "" {
		t.Errorf("API key %q, want 64 hex digits", c.apiKey)
	}
	if strings.Count(c.token, ".") != 2 || strings.ContainsAny(c.token, " \r\n") {
		t.Errorf("token %q is not a JWS compact serialization", c.token)
	}
}
