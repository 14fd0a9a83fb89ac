package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// goProxyArg makes this program run as the bare Go reverse proxy instead
// (see main); the backend's address follows it.
const goProxyArg = "-internal-serve-goproxy"

// serveGoProxyFD serves the listener passed as file descriptor 3 with
// net/http's ReverseProxy to backend and nothing else: what the
// standard-library pieces Gatehouse is built on cost by themselves, so the
// gap between it and Gatehouse is Gatehouse's own, and the gap between it
// and nginx is net/http's as Gatehouse uses it. Its transport keeps as many idle upstream
// connections as Gatehouse's (128 per host); everything else is net/http's
// defaults.
func serveGoProxyFD(backend string) error {
	ln, err := net.FileListener(os.NewFile(3, "proxy listener"))
	if err != nil {
		return fmt.Errorf("using the inherited listener: %w", err)
	}
	target := &url.URL{Scheme: "http", Host: backend}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the client's Host, as Gatehouse sends
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// startGoProxy runs this program again as the bare Go reverse proxy on the
// proxy's CPU, with GOMAXPROCS=1 like Gatehouse.
func startGoProxy(ctx context.Context, e *env, c *cleanups) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("binding the Go proxy's port: %w", err)
	}
	defer ln.Close() // the child holds its own copy
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, fmt.Errorf("passing the Go proxy's listener: %w", err)
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to run the Go proxy: %w", err)
	}
	p, err := startProcess("go-reverseproxy", filepath.Join(e.tmp, "goproxy.log"), proxyCPU,
		[]string{"GOMAXPROCS=1"}, []*os.File{f}, self, goProxyArg, e.backend)
	if err != nil {
		return nil, err
	}
	c.add(p.stop)
	url := "http://" + ln.Addr().String() + "/"
	if err := waitReady(ctx, p, url, nil, nil); err != nil {
		return nil, err
	}
	return &target{url: url, proc: p}, nil
}
