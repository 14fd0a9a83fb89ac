// Command echo is the upstream the Kubernetes e2e tests run inside network
// namespaces (EndpointSlices reject loopback addresses, so upstreams cannot
// live in the test process). It answers like the demo's example upstreams.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/demo"
)

func main() {
	listen := flag.String("listen", "", "address to serve on, e.g. 10.200.0.2:8080")
	name := flag.String("name", "echo", "what to answer as the service name")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		Handler:           demo.EchoHandler(*name, *listen),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
