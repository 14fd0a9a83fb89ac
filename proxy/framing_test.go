package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCloseAfterAmbiguousFraming: requests whose framing net/http may have
// normalised away (chunked HTTP/1.1, any HTTP/1.0) are answered with
// Connection: close, whatever the answer; others are not.
func TestCloseAfterAmbiguousFraming(t *testing.T) {
	h, _ := forwardedGateway(t, "kind: Mapping\nname: app\nprefix: /app/\nservice: app\n")
	for _, tc := range []struct {
		name       string
		major      int
		minor      int
		te         []string
		path       string
		wantStatus int
		wantClose  bool
	}{
		{"HTTP/1.1 with Content-Length", 1, 1, nil, "/app/x", 200, false},
		{"HTTP/1.1 chunked", 1, 1, []string{"chunked"}, "/app/x", 200, true},
		{"HTTP/1.1 chunked, no route", 1, 1, []string{"chunked"}, "/nowhere", 404, true},
		{"HTTP/1.0", 1, 0, nil, "/app/x", 200, true},
		{"HTTP/2", 2, 0, nil, "/app/x", 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tc.path, strings.NewReader("hello"))
			req.ProtoMajor, req.ProtoMinor = tc.major, tc.minor
			if tc.te != nil {
				req.TransferEncoding, req.ContentLength = tc.te, -1
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantStatus || (w.Header().Get("Connection") == "close") != tc.wantClose {
				t.Errorf("%d, Connection %q; want %d, close %v", w.Code, w.Header().Get("Connection"), tc.wantStatus, tc.wantClose)
			}
		})
	}
}
