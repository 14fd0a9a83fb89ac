package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of RemoteOptions.
const (
	DefaultRefresh    = 5 * time.Minute
	DefaultMinRefresh = 30 * time.Second
	DefaultTimeout    = 5 * time.Second
)

// RemoteOptions tune a Remote. The zero value means the defaults.
type RemoteOptions struct {
	// Refresh is how often Run fetches the key set (DefaultRefresh if 0).
	// After a failed fetch Run tries again after MinRefresh instead.
	Refresh time.Duration
	// MinRefresh is the least time between two fetches that an unknown kid
	// may cause (DefaultMinRefresh if 0): a flood of tokens with made-up
	// kids costs the issuer at most one request per MinRefresh.
	MinRefresh time.Duration
	// Timeout bounds each fetch, connection to last byte, and so the wait
	// of a request that asked for an unknown kid (DefaultTimeout if 0).
	Timeout time.Duration
	// MaxBytes bounds the key set document (MaxJWKSBytes if 0); a larger
	// one is a failed fetch.
	MaxBytes int
	// Logger, if not nil, is told of each failed fetch.
	Logger *slog.Logger
	// Now is the clock of Run and Stats (time.Now if nil); tests replace it.
	Now func() time.Time
}

// RemoteStats count a Remote's fetches, for metrics.
type RemoteStats struct {
	Fetches     uint64    // fetches started
	Failures    uint64    // fetches that did not give a usable key set
	LastSuccess time.Time // end of the last good fetch; zero if none yet
	Keys        int       // keys in the set in use
}

// Remote is a KeySource that fetches a JSON Web Key Set from an issuer's
// https URL (its jwks_uri): in the background every Refresh while Run
// runs, and on demand when a token names a kid the current set lacks, as
// issuers rotate keys by publishing the new one first.
//
// At most one fetch runs at a time; a request that needs one while another
// is running waits for that one. On-demand fetches are further limited to
// one per MinRefresh, and a request waits at most Timeout. A fetch that
// fails (a transport error, a status other than 200, a body that is not
// JSON or larger than MaxBytes, a set ParseJWKS refuses) keeps the last
// good set.
//
// Keys never blocks when the set has the kid. Remote is safe for concurrent
// use; create it with NewRemote.
type Remote struct {
	url    string
	client *http.Client
	o      RemoteOptions

	set atomic.Pointer[KeySet]

	mu       sync.Mutex
	last     time.Time  // when the latest fetch started
	inflight *fetchCall // the running fetch; nil if none
	stats    RemoteStats
}

var _ KeySource = (*Remote)(nil)

// NewRemote returns a Remote for the key set at rawURL, fetched with
// client. The client is the caller's so that its dialer can refuse
// addresses a tenant must not make the gateway reach (the cluster's own,
// the cloud's metadata service); Remote adds nothing to its transport.
// Only https URLs are fetched: a key set read over plain http could be
// replaced by anyone on the path, and every fetch of one fails, as does
// every fetch with a nil client (http.DefaultClient would dial anything).
func NewRemote(rawURL string, client *http.Client, o RemoteOptions) *Remote {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = MaxJWKSBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Remote{url: rawURL, client: client, o: o}
}

// Keys returns the keys of the current set whose kid is kid (all keys for
// ""). When there are none it fetches the set again, unless a fetch
// started within MinRefresh of now, waiting at most Timeout, and answers
// from the set it then has.
func (r *Remote) Keys(kid string, now time.Time) []jose.JSONWebKey {
	if keys := r.set.Load().Keys(kid, now); len(keys) > 0 {
		return keys
	}
	r.refresh(context.Background(), now, true)
	return r.set.Load().Keys(kid, now)
}

// Run fetches the key set now and every Refresh until ctx is done (after a
// failure, again after MinRefresh).
func (r *Remote) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := r.o.Refresh
		if !r.refresh(ctx, r.o.Now(), false) {
			next = r.o.MinRefresh
		}
		t.Reset(next)
	}
}

// Stats returns the counts so far.
func (r *Remote) Stats() RemoteStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Keys = r.set.Load().Len()
	return st
}

// fetchCall is one fetch, for those who wait for it.
type fetchCall struct {
	done chan struct{} // closed when the fetch ends
	ok   bool          // whether it succeeded; read after done is closed
}

// refresh fetches the set unless a fetch is running (then it waits for that
// one, at most Timeout) or, when limited, one started within MinRefresh of
// now. It reports whether the fetch it made or waited for succeeded: false
// when it made none or stopped waiting.
func (r *Remote) refresh(ctx context.Context, now time.Time, limited bool) bool {
	r.mu.Lock()
	if c := r.inflight; c != nil {
		r.mu.Unlock()
		t := time.NewTimer(r.o.Timeout)
		defer t.Stop()
		select {
		case <-c.done:
			return c.ok
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	if limited && !r.last.IsZero() && now.Sub(r.last) < r.o.MinRefresh {
		r.mu.Unlock()
		return false
	}
	c := &fetchCall{done: make(chan struct{})}
	r.inflight, r.last = c, now
	r.stats.Fetches++
	r.mu.Unlock()

	set, err := r.fetch(ctx)

	r.mu.Lock()
	if err != nil {
		r.stats.Failures++
	} else {
		r.set.Store(set)
		r.stats.LastSuccess = r.o.Now()
	}
	r.inflight = nil
	r.mu.Unlock()
	c.ok = err == nil
	close(c.done)
	if err != nil && r.o.Logger != nil {
		r.o.Logger.Warn("fetching JWKS failed; keeping the last good key set", "url", redact(r.url), "error", err)
	}
	return err == nil
}

// fetch gets and parses the key set, within Timeout.
func (r *Remote) fetch(ctx context.Context) (*KeySet, error) {
	u, err := url.Parse(r.url)
	if err != nil {
		return nil, errors.New("JWKS URL does not parse")
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("JWKS URL is not an https URL")
	}
	if r.client == nil {
		return nil, errors.New("no HTTP client")
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the URL is logged once, redacted
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, fmt.Errorf("content type %q is not JSON", ct)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(r.o.MaxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("reading key set: %w", err)
	}
	return parseJWKS(data, r.o.MaxBytes)
}

// isJSON reports whether a media type is JSON: application/json,
// application/jwk-set+json and the like. Issuers differ in which they
// send; an HTML error page sent with 200 is what this keeps out.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// redact returns rawURL without a password or query, which may hold a
// secret, for logs.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}
