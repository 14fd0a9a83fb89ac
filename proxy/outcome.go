package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/upstream"
)

// What an exchange says about the upstream's health.
//
// Health is learned from the upstream only. The breaker counts as a
// failure what the upstream did to a request it had in full: a connection
// refused or not made in time, a connection reset, no answer within the
// route's timeout, a broken answer, a 5xx. It learns nothing (ErrExcluded)
// from exchanges a client spoiled: a client that went away, whose body
// could not be read (cut off, malformed, too large, too slow for the
// server's limits), or that had not finished sending its body when the
// exchange ended. The last is the subtle one: an upstream waiting for a
// body the client is trickling in times out, answers 5xx because its own
// body read failed, or resets the connection, and every one of those
// would otherwise be the client opening the upstream's breaker for
// everyone (five stalled uploads used to do it).
//
// So the gateway watches the request body as the upstream transport reads
// it: whether reading began, whether the client sent all of it (the
// declared Content-Length, or the end of the chunks), and whether reading
// it failed. A connection that could not be made is the upstream's fault
// whatever the body: the transport reads no body before it has a
// connection. The cost of the rule is that an upstream that dies while a
// client is uploading goes uncounted for that request; its next bodyless
// or fully sent request counts.
//
// On the fast path (fast.go) the question of a partial body does not
// arise: a body it takes is read whole before any upstream connection is
// taken, so a client that stalls or breaks its body fails before the
// upstream is involved (408 or 400, excluded), and the upstream only ever
// gets complete requests. A client that goes away is found from the
// request's context (net/http's server) or by asking h1's server where an
// exchange failed (clientHasGone), and excluded the same way.
//
// Once the upstream has answered, a response cut short by the route's
// timeouts or the client says nothing certain either (a client reading
// slowly stalls the copy just as a stalled upstream does), so it is
// excluded too; an answer the upstream itself broke off (a reset, a body
// shorter than its Content-Length) is a failure.

// errUpstreamStatus marks an upstream 5xx answer as a breaker failure.
var errUpstreamStatus = errors.New("upstream answered 5xx")

// outcome is what the breaker learns from the exchange: nil for a success,
// an error for an upstream fault, upstream.ErrExcluded when the exchange
// says nothing about the upstream.
func (ex *exchange) outcome() error {
	switch {
	case ex.clientErr, ex.cut:
		return upstream.ErrExcluded
	case ex.partial && (ex.err != nil || ex.upstream >= 500):
		return upstream.ErrExcluded
	case ex.err != nil:
		return ex.err
	case ex.upstream >= 500:
		return errUpstreamStatus
	}
	return nil
}

// requestBody is the client's request body as the upstream transport reads
// it, on the transport's own goroutine while the handler may be looking:
// hence atomics. Its zero value is a request without a body.
type requestBody struct {
	rc io.ReadCloser
	// length is the declared Content-Length, -1 for a chunked body.
	length int64
	// idle, when not nil, is restarted by every byte the client sends:
	// idle_timeout_ms is about bytes moving either way.
	idle    *time.Timer
	idleFor time.Duration

	n     atomic.Int64
	flags atomic.Uint32
	err   atomic.Pointer[error]
}

const (
	bodyStarted uint32 = 1 << iota // the transport asked for the body
	bodyReading                    // a Read is waiting for the client now
	bodyEOF                        // the client sent all of it
)

func (b *requestBody) Read(p []byte) (int, error) {
	b.flags.Or(bodyStarted | bodyReading)
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		if b.idle != nil {
			b.idle.Reset(b.idleFor)
		}
	}
	switch {
	case errors.Is(err, io.EOF): // a wrapper of the server's (body limits) may wrap it
		b.flags.Or(bodyEOF)
	case err != nil:
		b.err.CompareAndSwap(nil, &err)
	}
	b.flags.And(^bodyReading)
	return n, err
}

func (b *requestBody) Close() error { return b.rc.Close() }

// complete reports whether the client sent its whole body. Counting bytes
// against Content-Length matters: the transport stops at the declared
// length, and the upstream may answer before the transport reads on to
// the EOF behind it.
func (b *requestBody) complete() bool {
	return b.flags.Load()&bodyEOF != 0 || (b.length >= 0 && b.n.Load() >= b.length)
}

// partial reports whether the transport began reading the body and the
// client has not finished sending it.
func (b *requestBody) partial() bool {
	return b.flags.Load()&bodyStarted != 0 && !b.complete()
}

// waiting reports whether the transport is blocked on the client's body
// right now: the client, not the upstream, is what the exchange waits for.
func (b *requestBody) waiting() bool {
	return b.flags.Load()&bodyReading != 0 && !b.complete()
}

// failure is the error reading the client's body failed with, nil if none.
func (b *requestBody) failure() error {
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

// aLongTimeAgo is a read deadline that has passed: a read waiting on the
// connection fails at once (net/http aborts reads with the same value).
var aLongTimeAgo = time.Unix(1, 0)

// track puts ex.body between the transport and the client's body.
//
// It also makes the route's timeouts reach a client that stalls its body.
// net/http's transport cannot interrupt a Read of the request body: when
// the exchange's context ends, RoundTrip still waits for the goroutine
// writing the request, which waits for the client. So when the context
// ends while that Read waits, the client connection's read deadline is
// moved into the past, the Read fails, and the exchange ends as one whose
// client did not send its body in time. The context also ends when the
// handler returns, and a Read still waiting then (the upstream answered
// before the whole body) is ended the same way, so the transport's
// goroutine does not wait on the client for ever. The deadline is moved
// only while such a Read waits: once the body has been read to its end,
// net/http keeps a read of its own pending on the connection (to notice
// the client going away), which a deadline would break.
func (ex *exchange) track(pr *http.Request) {
	if pr.Body == nil || pr.Body == http.NoBody {
		return // ReverseProxy sends no body when Content-Length is 0
	}
	ex.body.rc = pr.Body
	ex.body.length = pr.ContentLength
	if ex.idle != nil {
		ex.body.idle, ex.body.idleFor = ex.idle, ex.route.IdleTimeout
	}
	pr.Body = &ex.body
	if ex.w != nil {
		body, w := &ex.body, ex.w
		context.AfterFunc(pr.Context(), func() {
			if body.waiting() {
				// Not supported (a recorder in tests): the Read ends when the
				// client sends or goes away.
				_ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
			}
		})
	}
}

// responseBody is the upstream's answer as it is copied to the client, on
// the handler's goroutine. It restarts the idle timer as bytes arrive and
// tells outcome how a broken copy ended.
type responseBody struct {
	io.ReadCloser
	ex  *exchange
	ctx context.Context
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	ex := b.ex
	if n > 0 && ex.idle != nil {
		ex.idle.Reset(ex.route.IdleTimeout)
	}
	if err != nil && err != io.EOF && !ex.cut && ex.err == nil {
		switch {
		case errors.Is(context.Cause(b.ctx), context.Canceled):
			ex.clientErr = true
		case b.ctx.Err() != nil:
			// A timeout of ours: the upstream may have stalled, or the copy
			// waited on a client reading slowly.
			ex.cut = true
			ex.err = fmt.Errorf("response cut short: %w", context.Cause(b.ctx))
		default:
			ex.err = fmt.Errorf("reading the upstream's answer: %w", err)
		}
	}
	return n, err
}

// answered records what the upstream's answer tells outcome, and watches
// its body. A 101's body is the upgraded connection, which ReverseProxy
// needs unwrapped.
func (ex *exchange) answered(resp *http.Response) {
	ex.upstream = resp.StatusCode
	ex.partial = ex.body.partial()
	if ex.partial {
		// An answer before the whole body (an upstream that gave up on it):
		// the rest must not be read as a request, and net/http would
		// otherwise wait to drain it before sending the answer on.
		closeConnection(resp.Header)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return
	}
	if ex.idle != nil {
		ex.idle.Reset(ex.route.IdleTimeout)
	}
	ex.resp = responseBody{ReadCloser: resp.Body, ex: ex, ctx: resp.Request.Context()}
	resp.Body = &ex.resp
}

// failed classifies an exchange the transport gave up on and answers the
// client; r is the outgoing request.
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, ex *exchange, err error) {
	ex.err = err
	if berr := ex.body.failure(); berr != nil {
		// The client's body broke: whatever the transport says happened next
		// followed from that.
		h.bodyFailed(w, ex, berr)
		return
	}
	ex.partial = ex.body.partial()
	if ex.partial {
		// The rest of the body is still coming, or never will: it must not
		// be read as the next request, and net/http would otherwise try to
		// drain it before sending this answer.
		closeConnection(w.Header())
	}
	cause := context.Cause(r.Context())
	timedOut := errors.Is(cause, errIdleTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded)
	switch {
	case errors.Is(cause, context.Canceled):
		// Only the client going away cancels without a cause of ours.
		ex.clientErr = true
		w.WriteHeader(StatusClientClosed)
	case errors.Is(cause, errClientDeadline) || ex.pastClientDeadline():
		// The client's own grpc-timeout: its impatience, not the
		// upstream's fault.
		ex.clientErr = true
		h.fail(w, http.StatusGatewayTimeout, "the client's grpc-timeout passed")
	case timedOut && ex.body.waiting():
		ex.err = fmt.Errorf("waiting for the request body: %w", cause)
		h.fail(w, http.StatusRequestTimeout, "request body not received in time")
	case errors.Is(cause, errIdleTimeout):
		ex.err = errIdleTimeout
		h.fail(w, http.StatusGatewayTimeout, "upstream idle for too long")
	case timedOut:
		h.fail(w, http.StatusGatewayTimeout, "upstream timed out")
	default:
		h.fail(w, http.StatusBadGateway, "upstream unreachable or answered badly")
	}
}
