package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gatehouse-dev/gatehouse/auth"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// jwksRegistry is the snapshot.JWKSSource of a Server: one auth.Remote per
// jwks_uri, fetching in the background for as long as a build uses it.
// Fetches go through the dial guard, as upstream requests do: a jwks_uri is
// a URL a tenant wrote, and must not reach the gateway's own listeners,
// the node's metadata service or anything else the guard refuses.
type jwksRegistry struct {
	ctx    context.Context // the Server's: ends when it stops
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	remotes map[string]*jwksRemote
}

type jwksRemote struct {
	r      *auth.Remote
	cancel context.CancelFunc
}

func newJWKSRegistry(ctx context.Context, guard func() *upstream.DialGuard, log *slog.Logger) *jwksRegistry {
	client := &http.Client{
		Transport: proxy.NewGuardedTransport(guard),
		Timeout:   auth.DefaultTimeout,
		// A key set moved elsewhere is fetched from its new https home;
		// one sent to plain HTTP is not (the keys must not be swapped on
		// the way), nor one passed around more than a few times.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || len(via) >= 3 {
				return errors.New("redirect refused")
			}
			return nil
		},
	}
	return &jwksRegistry{ctx: ctx, client: client, log: log, remotes: map[string]*jwksRemote{}}
}

// Source returns the key source of url, starting its fetcher the first
// time.
func (j *jwksRegistry) Source(url string) auth.KeySource {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.remotes[url]; e != nil {
		return e.r
	}
	ctx, cancel := context.WithCancel(j.ctx)
	r := auth.NewRemote(url, j.client, auth.RemoteOptions{Logger: j.log})
	j.remotes[url] = &jwksRemote{r: r, cancel: cancel}
	go r.Run(ctx)
	return r
}

// Retain stops the fetchers of URLs no Auth uses any more.
func (j *jwksRegistry) Retain(urls map[string]bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for url, e := range j.remotes {
		if !urls[url] {
			e.cancel()
			delete(j.remotes, url)
		}
	}
}
