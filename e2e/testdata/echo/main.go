// Command echo is the upstream the Kubernetes e2e tests run inside network
// namespaces (EndpointSlices reject loopback addresses, so upstreams cannot
// live in the test process). It answers like the demo's example upstreams,
// or, with -mode authz, as an external authorization service.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/demo"
)

func main() {
	listen := flag.String("listen", "", "address to serve on, e.g. 10.200.0.2:8080")
	name := flag.String("name", "echo", "what to answer as the service name")
	mode := flag.String("mode", "echo", "echo, or authz: an external auth service (see authz)")
	flag.Parse()
	var h http.Handler = demo.EchoHandler(*name, *listen)
	if *mode == "authz" {
		h = http.HandlerFunc(authz)
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// authz decides by the bearer token: "allow-NAME" is let through as
// consumer NAME (X-User and X-Consumer in the answer, X-Internal, which
// the route does not copy, too), "slow" after 3 s, anything else is
// refused with 403, a body and a WWW-Authenticate of its own. It answers
// the path and body it was sent in X-Seen-Path and X-Seen-Body, so a test
// can tell what the gateway forwarded.
func authz(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	w.Header().Set("X-Seen-Path", r.URL.Path)
	w.Header().Set("X-Seen-Body", string(body))
	switch {
	case strings.HasPrefix(token, "allow-"):
		user := strings.TrimPrefix(token, "allow-")
		w.Header().Set("X-User", user)
		w.Header().Set("X-Consumer", user)
		w.Header().Set("X-Internal", "not for the upstream")
		w.WriteHeader(http.StatusOK)
	case token == "slow":
		time.Sleep(3 * time.Second)
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authz"`)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "denied by authz\n")
	}
}
