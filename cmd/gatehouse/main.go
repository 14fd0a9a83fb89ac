// Command gatehouse is the Gatehouse API gateway: it routes HTTP traffic to
// Kubernetes Services as their gatehouse.dev/config annotations say.
//
//	gatehouse serve [--kubeconfig P]   serve the cluster's annotated Services
//	gatehouse serve --from-dir DIR     serve manifests from a directory
//	gatehouse validate FILE...         check manifests offline
//	gatehouse routes -f FILE...        print the compiled route table
//	gatehouse explain -f FILE... M URL tell what a request would do
//	gatehouse demo                     serve the quickstart with example upstreams
//	gatehouse version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: gatehouse <command> [flags]

commands:
  serve     serve traffic: from the cluster (--kubeconfig PATH, or in-cluster) or from manifests (--from-dir DIR)
  validate  check manifests offline: gatehouse validate FILE...
  routes    print the compiled route table: gatehouse routes -f FILE...
  explain   tell what a request would do: gatehouse explain -f FILE... GET http://host/path
  demo      serve examples/quickstart with example upstreams (no cluster needed)
  version   print the version

Run 'gatehouse <command> -h' for a command's flags.
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "validate":
		return validateCmd(args[1:], stdout, stderr)
	case "routes":
		return routesCmd(args[1:], stdout, stderr)
	case "explain":
		return explainCmd(args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gatehouse", version())
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
