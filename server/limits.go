package server

import "time"

// Limits bound what one client can hold on the proxy listener: how long it
// may take to send a request, how long an idle connection is kept, how big
// a request head may be and how many connections exist at once. Each wait a
// client controls is bounded, so a client that stalls costs a descriptor and
// some kilobytes for a known time, and the number of such clients is capped.
//
// Zero fields mean the defaults below; a negative field means no limit (not
// offered for MaxHeaderBytes: net/http would fall back to 1 MiB, so a
// non-positive value means the default there).
type Limits struct {
	// ReadHeaderTimeout bounds the time from the first byte of a request
	// (from the accept, for a connection's first request) to the end of its
	// headers. A client trickling its head is closed without an answer.
	ReadHeaderTimeout time.Duration

	// BodyIdleTimeout bounds each wait for request body bytes: a body that
	// sends nothing for this long fails to read, the request is abandoned
	// and the connection closed.
	BodyIdleTimeout time.Duration

	// BodyMinRate, in bytes per second, is the overall bound on a body: the
	// time spent waiting for it may not exceed BodyIdleTimeout plus one
	// second per BodyMinRate bytes received. Without it a client sending a
	// byte just before every idle timeout would hold its connection for
	// ever. Only time spent waiting for the client counts, not time the
	// upstream takes to accept the bytes, so a slow upstream never makes a
	// client look slow. With BodyIdleTimeout off the initial allowance is
	// DefaultBodyIdleTimeout.
	BodyMinRate int64

	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration

	// MaxConnections caps the connections open on the proxy listener at
	// once; connections beyond it are accepted and closed at once with a
	// reset (see connLimiter for why).
	MaxConnections int

	// SendTimeout bounds each wait to hand a client bytes of its answer
	// (fast engine): a client that stops reading is closed after it. A
	// download that keeps reading, however slowly, is never cut.
	SendTimeout time.Duration

	// MaxHeaderBytes caps the request line plus headers; a larger head is
	// answered 431. net/http reads up to 4 KiB beyond it before refusing.
	MaxHeaderBytes int
}

// Defaults for Limits, and for the serve flags that set them.
const (
	// DefaultReadHeaderTimeout gives a client on a poor mobile link time to
	// send a head of a few kilobytes; anything slower is an attack
	// (slowloris) or broken.
	DefaultReadHeaderTimeout = 10 * time.Second

	// DefaultBodyIdleTimeout is longer than a live client pauses (TCP
	// retransmissions on a lossy link back off to seconds, not tens of
	// seconds) and short enough that a stalled upload gives its descriptor,
	// its upstream connection and its goroutines back within half a
	// minute. nginx's client_body_timeout is 60 s, Apache's 20 s.
	DefaultBodyIdleTimeout = 30 * time.Second

	// DefaultBodyMinRate follows Apache's mod_reqtimeout (MinRate=500):
	// far below any real client's upload speed, yet it makes a client pay
	// for every second it holds a connection with a body.
	DefaultBodyMinRate = 500

	// DefaultIdleTimeout is longer than the 60 s idle timeout of the usual
	// load balancers in front of a gateway (AWS ALB, nginx's upstream
	// keepalive_timeout), so that they, not we, close an idle connection
	// and never send a request on one we are closing; it is shorter than
	// net/http's customary 120 s because idle connections count against
	// MaxConnections. nginx's own default is 75 s.
	DefaultIdleTimeout = 75 * time.Second

	// DefaultSendTimeout is nginx's send_timeout: a client that has read
	// nothing of its answer for a minute is gone or hostile.
	DefaultSendTimeout = 60 * time.Second

	// DefaultMaxConnections bounds the worst case: a connection holding a
	// stalled request, the most a client can hold (a big body streaming
	// to its upstream connection), costs about 108 KiB (docs/benchmarks.md,
	// "Idle and slow connections"), so 1,536 of them take about 162 MiB,
	// which fits the 256 MiB memory limit of manifests/gatehouse.yaml next
	// to the configuration of a cluster of 1,000 Services (63 MB); an idle
	// keep-alive connection costs a seventh of that. HAProxy's frontends
	// long defaulted to 2,000. Raise it with the memory limit.
	DefaultMaxConnections = 1536

	// DefaultMaxHeaderBytes is enough for large cookies and tokens (nginx
	// allows 4 × 8 KiB, Envoy 60 KiB) and small enough that a connection's
	// head costs little.
	DefaultMaxHeaderBytes = 64 << 10
)

// withDefaults fills zero fields; negative ones stay, meaning no limit.
func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyIdleTimeout == 0 {
		l.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if l.BodyMinRate == 0 {
		l.BodyMinRate = DefaultBodyMinRate
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.SendTimeout == 0 {
		l.SendTimeout = DefaultSendTimeout
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// positive is d when it is a limit, and 0 (net/http's "none") when d is
// negative.
func positive(d time.Duration) time.Duration {
	return max(d, 0)
}
