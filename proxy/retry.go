package proxy

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/h1"
	"github.com/gatehouse-dev/gatehouse/snapshot"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// Retries (a Mapping's retry_policy), as Envoy makes them.
//
// A failed try is sent again when the policy names its failure, the route
// allows another try, the request can be sent again (its body was read
// whole first: the fast path reads bodies up to maxBuffered), the client is
// still there, the route's timeout leaves time, and the upstream's retry
// budget has room (upstream.Upstream.TryRetry: retries at most a fifth of
// the upstream's requests plus a few a second, so an upstream that fails
// everything is not sent five times the traffic). Each retry goes to
// another endpoint when there is one (upstream.Upstream.Pick with the
// endpoints tried), after a back-off of Envoy's defaults: 25 ms doubling to
// at most 250 ms, fully jittered. On the ReverseProxy path (TLS upstreams,
// bodies over maxBuffered) retryTransport retries requests without a body:
// a streamed body cannot be sent twice.

// Envoy's default back-off: base 25 ms, cap 10 × base.
const (
	retryBase = 25 * time.Millisecond
	retryCap  = 250 * time.Millisecond
)

// maxTried bounds the endpoints a request remembers trying; past it, Pick
// may return one tried before (a request with more retries than that
// cycles through the endpoints again).
const maxTried = 8

// tryDeadline is when the current try must be over: the route's deadline,
// or the per-try timeout from now when that comes first.
func (ex *exchange) tryDeadline(route time.Time) time.Time {
	rp := ex.route.Retry
	if rp == nil || rp.PerTry <= 0 {
		return route
	}
	t := time.Now().Add(rp.PerTry)
	if !route.IsZero() && route.Before(t) {
		return route
	}
	return t
}

// retryable reports whether policy on names what happened to a try: an
// answer a, or err before any answer (connectFailed: no connection at all).
func retryable(on snapshot.RetryOn, status int, err error, connectFailed bool) bool {
	switch {
	case err != nil && connectFailed:
		return on&(snapshot.RetryConnectFailure|snapshot.RetryReset|snapshot.Retry5xx|snapshot.RetryGatewayError) != 0
	case err != nil:
		// Reset, closed, malformed, or the per-try timeout: no answer.
		return on&(snapshot.RetryReset|snapshot.Retry5xx|snapshot.RetryGatewayError) != 0
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return on&(snapshot.RetryGatewayError|snapshot.Retry5xx) != 0
	case status >= 500:
		return on&snapshot.Retry5xx != 0
	case status == http.StatusConflict:
		return on&snapshot.Retry409 != 0
	}
	return false
}

// retry decides whether the try that ended with a or err is sent again,
// and if so reports the try's outcome to its endpoint, picks the next
// endpoint and waits out the back-off. false leaves the exchange as it is.
func (h *Handler) retry(w http.ResponseWriter, r *http.Request, ex *exchange, a h1.Answer, err error, connectFailed bool, deadline time.Time) bool {
	rp := ex.route.Retry
	if rp == nil || ex.tries >= rp.Retries || !retryable(rp.On, a.Status, err, connectFailed) {
		return false
	}
	if r.Context().Err() != nil || clientHasGone(w) {
		return false
	}
	return h.nextTry(ex, a.Status, err, deadline)
}

// nextTry is what both paths do once a try may be retried: the route's
// deadline must leave room for the back-off, the circuit_breakers gate
// (max_retries) and the upstream's retry budget must have room; then the
// try's outcome goes to its endpoint, the next endpoint is picked, and the
// back-off waited out. false leaves the exchange as it is.
func (h *Handler) nextTry(ex *exchange, status int, err error, deadline time.Time) bool {
	wait := backoff(ex.tries)
	if !deadline.IsZero() && !time.Now().Add(wait).Before(deadline) {
		return false
	}
	u := ex.route.Upstream
	if ex.tries == 0 && !ex.route.Gate.TryRetry() {
		// circuit_breakers max_retries: retries in flight for the route.
		h.metrics.Overflow(u.ID(), "max_retries")
		return false
	}
	if !u.TryRetry() {
		if ex.tries == 0 {
			ex.route.Gate.RetryDone()
		}
		h.metrics.RetryRefused(u.ID())
		return false
	}
	ex.ep.End(tryOutcome(status, err))
	if ex.ntried < maxTried {
		ex.tried[ex.ntried] = ex.ep
		ex.ntried++
	}
	next, ok := u.Pick(ex.route.Balance, ex.hash, ex.tried[:ex.ntried])
	if !ok {
		// The endpoints are gone: the last try's answer stands, and its
		// endpoint's outcome was reported; a fresh Begin keeps End paired.
		ex.ep.Begin()
		return false
	}
	ex.tries++
	ex.ep, ex.endpoint = next, next.Addr()
	h.metrics.Retried(u.ID())
	time.Sleep(wait)
	return true
}

// backoff is the wait before retry n (0 for the first): Envoy's fully
// jittered exponential back-off.
func backoff(n int) time.Duration {
	ceiling := retryBase << min(n, 4)
	if ceiling > retryCap {
		ceiling = retryCap
	}
	return rand.N(ceiling) + time.Millisecond
}

// tryOutcome is what a try says about its endpoint's health (outlier
// detection): a connection failure, reset or timeout, a 5xx, or a success.
func tryOutcome(status int, err error) upstream.Outcome {
	switch {
	case err != nil:
		return upstream.OutcomeConnectFailure
	case status >= 500:
		return upstream.OutcomeServerError
	}
	return upstream.OutcomeSuccess
}

// endpointOutcome maps an exchange's outcome for the breaker (outcome.go)
// to what it says about the endpoint that served it.
func endpointOutcome(err error) upstream.Outcome {
	switch {
	case err == nil:
		return upstream.OutcomeSuccess
	case errors.Is(err, upstream.ErrExcluded):
		return upstream.OutcomeNeither
	case errors.Is(err, errUpstreamStatus):
		return upstream.OutcomeServerError
	}
	return upstream.OutcomeConnectFailure
}

// bodyLimit is the bound on route's request bodies; 0 means none.
func (h *Handler) bodyLimit(rt *snapshot.Route) int64 {
	switch {
	case rt.MaxRequestBody > 0:
		return rt.MaxRequestBody
	case rt.MaxRequestBody < 0:
		return 0
	}
	return h.maxBody
}

// retryTransport retries on the ReverseProxy path, under the same rules as
// the fast path, the requests that carry no body. The route's timeout
// bounds all tries through the request's context; a per-try timeout
// applies to the fast path only.
type retryTransport struct {
	h    *Handler
	next http.RoundTripper
}

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil || ex.route.Retry == nil || req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 {
		return resp, err
	}
	for {
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		if !t.h.retryRP(req, ex, status, err) {
			return resp, err
		}
		if resp != nil {
			resp.Body.Close()
		}
		ex.ep.Begin()
		again := req.Clone(req.Context())
		again.URL.Host = ex.endpoint
		resp, err = t.next.RoundTrip(again)
	}
}

// retryRP is retry for the ReverseProxy path: the client's going away and
// the route's deadline come through the request's context.
func (h *Handler) retryRP(req *http.Request, ex *exchange, status int, err error) bool {
	rp := ex.route.Retry
	if ex.tries >= rp.Retries || !retryable(rp.On, status, err, isDialError(err)) || req.Context().Err() != nil {
		return false
	}
	deadline, _ := req.Context().Deadline()
	return h.nextTry(ex, status, err, deadline)
}

// isDialError reports whether err is a failure to connect.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
