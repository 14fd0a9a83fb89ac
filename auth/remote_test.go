package auth

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer is an issuer's JWKS endpoint over TLS whose answer a test
// changes as it goes.
type jwksServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        []byte
	status      int
	contentType string
	delay       chan struct{} // when not nil, answers wait for it to close (or the client to give up)
	hits        atomic.Int64
	running     atomic.Int64
	maxRunning  atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200, contentType: "application/jwk-set+json"}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		n := s.running.Add(1)
		defer s.running.Add(-1)
		for {
			m := s.maxRunning.Load()
			if n <= m || s.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		s.mu.Lock()
		body, status, ct, delay := s.body, s.status, s.contentType, s.delay
		s.mu.Unlock()
		if delay != nil {
			select {
			case <-delay:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *jwksServer) remote(o RemoteOptions) *Remote {
	return NewRemote(s.URL+"/jwks", s.Client(), o)
}

// TestRemoteRotation: a token signed by a newly published key, whose kid
// the set lacks, causes exactly one fetch, and passes.
func TestRemoteRotation(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, jwksJSON(t, rsa1))
	r := srv.remote(RemoteOptions{Now: func() time.Time { return t0 }})
	j := NewJWT(defaultJWT, r)

	// The first request fetches the set: there is none yet.
	if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, rsa1, claims(nil))), t0); d != nil {
		t.Fatalf("rsa1: denied: %s", d.Body)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches after the first token = %d, want 1", n)
	}
	// Known kids cost no fetch.
	for range 10 {
		j.Authenticate(bearerReq("Bearer "+sign(t, rsa1, claims(nil))), t0)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches after known kids = %d, want 1", n)
	}

	// The issuer rotates: es256 is published and signs the next token.
	srv.set(func(s *jwksServer) { s.body = jwksJSON(t, rsa1, es256) })
	now := t0.Add(DefaultMinRefresh)
	if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, es256, claims(nil))), now); d != nil {
		t.Fatalf("es256 after rotation: denied: %s", d.Body)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches after the new kid = %d, want 2", n)
	}
	if _, d := j.Authenticate(bearerReq("Bearer "+sign(t, es256, claims(nil))), now); d != nil {
		t.Fatalf("es256 again: denied: %s", d.Body)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches after the new kid again = %d, want 2", n)
	}
	st := r.Stats()
	if st.Fetches != 2 || st.Failures != 0 || !st.LastSuccess.Equal(t0) || st.Keys != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestRemoteUnknownKidFlood: made-up kids, concurrent or not, cost at most
// one fetch per MinRefresh, and concurrent askers share the one fetch.
func TestRemoteUnknownKidFlood(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, jwksJSON(t, rsa1))
	minRefresh := 10 * time.Second
	r := srv.remote(RemoteOptions{MinRefresh: minRefresh})
	if ks := r.Keys("rsa1", t0); len(ks) != 1 {
		t.Fatalf("Keys(rsa1) = %v", ks)
	}
	flood := func(now time.Time) {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if ks := r.Keys("nope-"+string(rune('a'+i%26)), now); ks != nil {
					t.Errorf("Keys(nope) = %v", ks)
				}
			})
		}
		wg.Wait()
	}
	for _, tc := range []struct {
		at   time.Duration
		hits int64
	}{
		{0, 1},                          // the first fetch was just made
		{minRefresh - time.Second, 1},   // still within MinRefresh
		{minRefresh, 2},                 // one more
		{minRefresh + time.Second, 2},   // within MinRefresh of that one
		{2*minRefresh - time.Second, 2}, //
		{2 * minRefresh, 3},             // one more
		{100 * minRefresh, 4},           //
		{-100 * minRefresh, 4},          // a clock that went back
	} {
		flood(t0.Add(tc.at))
		if n := srv.hits.Load(); n != tc.hits {
			t.Fatalf("at t0%+v: %d fetches, want %d", tc.at, n, tc.hits)
		}
	}
	if m := srv.maxRunning.Load(); m != 1 {
		t.Errorf("%d fetches ran at once, want 1", m)
	}
}

// TestRemoteKeepsLastGood: every kind of bad answer keeps the set that
// was good, counts a failure and is logged without the URL's secrets.
func TestRemoteKeepsLastGood(t *testing.T) {
	makeKeys(t)
	good := jwksJSON(t, rsa1)
	srv := newJWKSServer(t, good)
	var logs bytes.Buffer
	clock := t0
	r := NewRemote(srv.URL+"/jwks?token=hush", srv.Client(), RemoteOptions{
		MaxBytes: 8 << 10,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Now:      func() time.Time { return clock },
	})
	if ks := r.Keys("rsa1", t0); len(ks) != 1 {
		t.Fatalf("Keys(rsa1) = %v", ks)
	}
	for i, bad := range []func(s *jwksServer){
		func(s *jwksServer) { s.status = 500 },
		func(s *jwksServer) { s.status = 404 },
		func(s *jwksServer) { s.contentType = "text/html; charset=utf-8"; s.body = []byte("<html>login</html>") },
		func(s *jwksServer) { s.body = []byte("<html>login</html>") },
		func(s *jwksServer) { s.body = append(good[:len(good):len(good)], bytes.Repeat([]byte(" "), 8<<10)...) },
		func(s *jwksServer) { s.body = []byte(`{"keys":[]}`) },
		func(s *jwksServer) { s.body = []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) },
	} {
		srv.set(func(s *jwksServer) { s.status, s.contentType, s.body = 200, "application/json", good; bad(s) })
		clock = t0.Add(time.Duration(i+1) * time.Hour)
		if ks := r.Keys("rotated", clock); ks != nil {
			t.Fatalf("bad answer %d: Keys(rotated) = %v", i, ks)
		}
		if ks := r.Keys("rsa1", clock); len(ks) != 1 {
			t.Fatalf("bad answer %d: the last good set is gone", i)
		}
		st := r.Stats()
		if st.Fetches != uint64(i+2) || st.Failures != uint64(i+1) || !st.LastSuccess.Equal(t0) || st.Keys != 1 {
			t.Fatalf("bad answer %d: Stats = %+v", i, st)
		}
	}
	if n := strings.Count(logs.String(), "fetching JWKS failed"); n != 7 {
		t.Errorf("%d failures logged, want 7:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "hush") {
		t.Errorf("log holds the URL's query:\n%s", logs.String())
	}
	// And a good answer again replaces the set.
	srv.set(func(s *jwksServer) { s.status, s.contentType, s.body = 200, "", jwksJSON(t, rsa1, es256) })
	if ks := r.Keys("es256", t0.Add(100*time.Hour)); len(ks) != 1 {
		t.Fatal("a good set after failures is not taken")
	}
}

// TestRemoteTimeout: an issuer that does not answer holds a request for
// an unknown kid at most Timeout, and so do the ones that wait for the
// same fetch.
func TestRemoteTimeout(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, jwksJSON(t, rsa1))
	release := make(chan struct{})
	defer close(release)
	srv.set(func(s *jwksServer) { s.delay = release })
	timeout := 100 * time.Millisecond
	r := srv.remote(RemoteOptions{Timeout: timeout})
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if ks := r.Keys("rsa1", t0); ks != nil {
				t.Errorf("Keys = %v", ks)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el > 20*timeout {
		t.Errorf("waited %v with Timeout %v", el, timeout)
	}
	if st := r.Stats(); st.Fetches != 1 || st.Failures != 1 {
		t.Errorf("Stats = %+v, want one failed fetch", st)
	}
}

// TestRemoteRun: Run fetches at once and every Refresh, one fetch at a
// time, and returns when its context ends.
func TestRemoteRun(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, jwksJSON(t, rsa1))
	r := srv.remote(RemoteOptions{Refresh: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	// Meanwhile, requests with unknown kids.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				r.Keys("nope", time.Now())
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	cancel()
	<-done
	if n := srv.hits.Load(); n < 4 {
		t.Fatalf("%d fetches in 10s with Refresh 20ms", n)
	}
	if m := srv.maxRunning.Load(); m != 1 {
		t.Errorf("%d fetches ran at once, want 1", m)
	}
	if ks := r.Keys("rsa1", time.Now()); len(ks) != 1 {
		t.Errorf("Keys(rsa1) = %v", ks)
	}
}

// TestRemoteRunRetries: after a failure Run tries again after MinRefresh,
// not Refresh.
func TestRemoteRunRetries(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, nil)
	srv.set(func(s *jwksServer) { s.status = 503 })
	r := srv.remote(RemoteOptions{Refresh: time.Hour, MinRefresh: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.hits.Load(); n < 3 {
		t.Fatalf("%d fetches in 10s after failures, want retries", n)
	}
}

// TestRemoteHTTPSOnly: a plain http URL is never fetched.
func TestRemoteHTTPSOnly(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	var logs bytes.Buffer
	r := NewRemote(srv.URL, srv.Client(), RemoteOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if ks := r.Keys("a", t0); ks != nil || hits != 0 {
		t.Fatalf("Keys = %v after %d requests", ks, hits)
	}
	if st := r.Stats(); st.Failures != 1 || !strings.Contains(logs.String(), "not an https URL") {
		t.Errorf("Stats = %+v, log %s", st, logs.String())
	}
}

// TestRemoteNilClient: without a client nothing is fetched.
func TestRemoteNilClient(t *testing.T) {
	makeKeys(t)
	srv := newJWKSServer(t, jwksJSON(t, rsa1))
	r := NewRemote(srv.URL, nil, RemoteOptions{})
	if ks := r.Keys("rsa1", t0); ks != nil || srv.hits.Load() != 0 {
		t.Fatalf("Keys = %v after %d requests", ks, srv.hits.Load())
	}
}
