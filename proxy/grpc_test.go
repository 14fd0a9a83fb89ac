package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"100m": 100 * time.Millisecond, "2S": 2 * time.Second, "1H": time.Hour, "5M": 5 * time.Minute,
		"7u": 7 * time.Microsecond, "9n": 9, "99999999S": 99999999 * time.Second,
	} {
		if got, ok := grpcTimeout(in); !ok || got != want {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "m", "100", "100x", "-1m", "1.5S", "123456789S", "10 m"} {
		if _, ok := grpcTimeout(bad); ok {
			t.Errorf("grpcTimeout(%q) accepted", bad)
		}
	}
}

func TestGRPCStatusFor(t *testing.T) {
	for code, want := range map[int]int{
		http.StatusNotFound: grpcUnimplemented, http.StatusTooManyRequests: grpcResourceExhausted,
		http.StatusServiceUnavailable: grpcUnavailable, http.StatusBadGateway: grpcUnavailable,
		http.StatusGatewayTimeout: grpcDeadlineExceeded, http.StatusBadRequest: grpcInternal,
		http.StatusForbidden: grpcPermissionDenied, StatusClientClosed: grpcCancelled,
	} {
		if got := grpcStatusFor(code); got != want {
			t.Errorf("grpcStatusFor(%d) = %d, want %d", code, got, want)
		}
	}
}

func TestPastClientDeadline(t *testing.T) {
	for _, tc := range []struct {
		deadline time.Time
		want     bool
	}{
		{time.Time{}, false},
		{time.Now().Add(time.Second), false},
		{time.Now().Add(deadlineSlack / 2), true}, // the upstream's timer fired a moment first
		{time.Now().Add(-time.Millisecond), true},
	} {
		ex := &exchange{clientDeadline: tc.deadline}
		if got := ex.pastClientDeadline(); got != tc.want {
			t.Errorf("deadline %v from now: %v, want %v", time.Until(tc.deadline).Round(time.Millisecond), got, tc.want)
		}
	}
}

// FuzzGRPCTimeout: any header value is refused or read as PROTOCOL-HTTP2.md
// allows: at most 8 digits and one unit, never a negative duration.
func FuzzGRPCTimeout(f *testing.F) {
	for _, s := range []string{"100m", "1H", "99999999S", "", "m", "-1m", "1.5S", "123456789S", "10 m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := grpcTimeout(v)
		if !ok {
			return
		}
		if d < 0 || len(v) < 2 || len(v) > 9 || !strings.ContainsRune("HMSmun", rune(v[len(v)-1])) {
			t.Fatalf("grpcTimeout(%q) = %v", v, d)
		}
		for _, c := range v[:len(v)-1] {
			if c < '0' || c > '9' {
				t.Fatalf("grpcTimeout(%q) accepted a non-digit", v)
			}
		}
	})
}
