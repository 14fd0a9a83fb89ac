package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/demo"
	"github.com/gatehouse-dev/gatehouse/examples"
	"github.com/gatehouse-dev/gatehouse/files"
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var f serveFlags
	fset.StringVar(&f.dir, "dir", "", "manifest directory (default: examples/quickstart if present, else the copy built into the binary)")
	f.register(fset)
	if err := fset.Parse(args); err != nil {
		return 2
	}
	embedded := false
	if f.dir == "" {
		f.dir = filepath.Join("examples", "quickstart")
		if _, err := os.Stat(f.dir); err != nil {
			dir, err := extractQuickstart()
			if err != nil {
				fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
				return 1
			}
			defer os.RemoveAll(dir)
			f.dir, embedded = dir, true
		}
	}
	m, _, err := files.Dir{Path: f.dir}.Load()
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrs, err := demo.Upstreams(ctx, m.Slices)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	// HTTPS too, with a certificate made now for the names the quickstart
	// answers, signed by a CA of its own that curl is told to trust.
	var cert demo.Certificate
	if f.listenTLS == "" {
		f.listenTLS = "127.0.0.1:8443"
	}
	if f.tlsCert == "" {
		dir, err := os.MkdirTemp("", "gatehouse-demo-tls-")
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if cert, err = demo.SelfSigned(dir, "localhost", "shop.example.com", "127.0.0.1"); err != nil {
			fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
			return 1
		}
		f.tlsCert, f.tlsKey = cert.Cert, cert.Key
	}
	return serveDir(ctx, f, stderr, func(proxyAddr, adminAddr, tlsAddr string) {
		where := f.dir
		if embedded {
			where = "the built-in quickstart"
		}
		fmt.Fprintf(stdout, "\nGatehouse is serving %s on http://%s (admin: http://%s/metrics)\n", where, proxyAddr, adminAddr)
		fmt.Fprintf(stdout, "Example upstreams answer on %s.\n", strings.Join(addrs, ", "))
		fmt.Fprintln(stdout, "Edit the files and the gateway reloads. Try:")
		for _, t := range examples.QuickstartTries() {
			fmt.Fprintf(stdout, "\n  # %s\n  curl -s %s\n", t.What, strings.ReplaceAll(t.Curl, "GATEWAY", "http://"+proxyAddr))
		}
		if tlsAddr != "" && cert.CA != "" {
			_, port, _ := net.SplitHostPort(tlsAddr)
			fmt.Fprintf(stdout, "\nOver HTTPS (HTTP/2 or HTTP/1.1) on https://%s, with a certificate made at start for localhost and shop.example.com:\n", tlsAddr)
			fmt.Fprintf(stdout, "\n  curl -s --http2 --cacert %s https://localhost:%s/users/42\n", cert.CA, port)
			fmt.Fprintf(stdout, "  curl -s --cacert %s --resolve shop.example.com:%s:127.0.0.1 https://shop.example.com:%s/orders/7\n", cert.CA, port, port)
		}
		fmt.Fprintln(stdout, "\nStop with Ctrl-C.")
	})
}

func extractQuickstart() (string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-quickstart-")
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(examples.Quickstart, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := examples.Quickstart.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644)
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("writing the built-in quickstart: %w", err)
	}
	return dir, nil
}
