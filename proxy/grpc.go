package proxy

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// gRPC (a Mapping with grpc: true). The upstream is reached over HTTP/2
// (byProtocol), and ReverseProxy passes trailers and streams both ways.
// What the gateway adds: a client's grpc-timeout bounds the exchange as
// the route's timeout does, and an answer the gateway gives itself (no
// route, a rate limit, an open breaker, a timeout) is a gRPC status, which
// gRPC clients understand, rather than an HTTP error page, which they
// report as a protocol error.

// errClientDeadline is the cause of an exchange ended by the client's
// grpc-timeout: DEADLINE_EXCEEDED to the client, nothing against the
// upstream (outcome.go).
var errClientDeadline = errors.New("the client's grpc-timeout passed")

// isGRPC reports whether r is a gRPC request (not gRPC-Web, which browsers
// send over HTTP/1.1 and the gateway translates).
func isGRPC(r *http.Request) bool {
	ct := firstElement(r.Header["Content-Type"])
	return strings.HasPrefix(ct, "application/grpc") && !strings.HasPrefix(ct, "application/grpc-web")
}

// gRPC status codes the gateway answers with.
const (
	grpcCancelled         = 1
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// grpcStatusFor is the gRPC status of an answer the gateway gives itself
// with HTTP status code, following gRPC's HTTP-to-status mapping
// (doc/http-grpc-status-mapping.md) where the two meet, and saying what
// the gateway meant where they do not: a rate limit is RESOURCE_EXHAUSTED,
// a timeout DEADLINE_EXCEEDED, a client that went away CANCELLED.
func grpcStatusFor(code int) int {
	switch code {
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return grpcResourceExhausted
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case StatusClientClosed:
		return grpcCancelled
	}
	return grpcInternal
}

// failGRPC answers a gRPC request the gateway refuses: a trailers-only
// answer (HTTP 200, the status in the headers), as gRPC servers send one.
func failGRPC(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(grpcStatusFor(code)))
	// grpc-message is percent-encoded (PROTOCOL-HTTP2.md).
	h.Set("Grpc-Message", url.PathEscape(msg))
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
}

// grpcTimeout parses a grpc-timeout value: at most 8 digits and a unit
// (H, M, S, m, u, n), as PROTOCOL-HTTP2.md defines it.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > uint64(math.MaxInt64/unit) {
		// Years: no deadline worth keeping (and the product would wrap to
		// a negative one, failing the call at once).
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// deadlineSlack is how early, before the client's grpc-timeout ends, a
// failure still counts as that deadline's doing. The upstream enforces the
// same deadline (grpc-timeout travels with the request) and may reset the
// stream a moment before the gateway's own timer fires; that reset is the
// deadline, not the upstream failing.
const deadlineSlack = 50 * time.Millisecond

// pastClientDeadline reports whether the exchange failed at (or just
// before) the client's own grpc-timeout.
func (ex *exchange) pastClientDeadline() bool {
	return !ex.clientDeadline.IsZero() && !time.Now().Before(ex.clientDeadline.Add(-deadlineSlack))
}
