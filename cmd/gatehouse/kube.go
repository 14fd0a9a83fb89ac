package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/gatehouse-dev/gatehouse/kube"
	"github.com/gatehouse-dev/gatehouse/kube/api"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/server"
)

// namespaceList is a repeatable --namespace flag that also takes commas.
type namespaceList []string

func (n *namespaceList) String() string { return strings.Join(*n, ",") }
func (n *namespaceList) Set(v string) error {
	for _, ns := range strings.Split(v, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			*n = append(*n, ns)
		}
	}
	return nil
}

// serveKube runs the gateway on the cluster kubeconfig points at ("" means
// in-cluster) until ctx ends, watching namespaces (none means all). Logs,
// client-go's included, go to stderr as JSON. onListen, when set, is told
// the bound addresses.
func serveKube(ctx context.Context, f serveFlags, wh webhookFlags, kubeconfig string, namespaces []string, stderr io.Writer, onListen func(proxyAddr, adminAddr, tlsAddr string)) int {
	logs := proxy.NewLogWriter(stderr, logFlushInterval)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	// client-go logs through klog (watch failures, retries); one format
	// for the whole process is what log pipelines can parse.
	klog.SetSlogLogger(logger)
	opts, err := f.dialect.options()
	keyHasher(&opts)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: loading the Kubernetes client configuration:", err)
		return 2
	}
	cfg.UserAgent = "gatehouse/" + version()
	client, err := api.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse: creating the Kubernetes client:", err)
		return 2
	}

	cfgServer := f.serverConfig(opts, logger)
	cfgServer.LogOutput = logs
	if err := f.defaultCert(&cfgServer, logger); err != nil {
		fmt.Fprintln(stderr, "gatehouse:", err)
		return 2
	}
	if wh.listen != "" {
		cfgServer.Self = append(cfgServer.Self, wh.listen)
	}
	var certs certificateSource
	if wh.listen != "" {
		if certs, err = wh.source(client, logger); err != nil {
			fmt.Fprintln(stderr, "gatehouse: webhook certificate:", err)
			return 2
		}
		cfgServer.Ready = ready(certs)
	}
	srv := server.New(cfgServer)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The pod's name, in-cluster: which replica wrote an Event.
	instance, _ := os.Hostname()
	recorder := kube.NewRecorder(client, kube.RecorderOptions{Instance: instance, Logger: logger})
	var recording sync.WaitGroup
	recording.Go(func() { recorder.Run(ctx) })
	defer func() {
		cancel()
		recording.Wait()
	}()
	src := kube.New(kube.Config{
		Client:          client,
		Namespaces:      namespaces,
		Keys:            opts.Keys(),
		Apply:           srv.Apply,
		UpdateEndpoints: srv.UpdateEndpoints,
		Recorder:        recorder,
		Logger:          logger,
		HashKey:         opts.KeyHasher.Sum,
	})
	srcDone := make(chan error, 1)
	go func() {
		err := src.Run(ctx)
		if err != nil {
			cancel() // a gateway that cannot watch must not look alive
		}
		srcDone <- err
	}()

	whDone := make(chan error, 1)
	if wh.listen != "" {
		go func() {
			err := runWebhook(ctx, wh, certs, opts, srv.Current, logger)
			if err != nil {
				cancel() // a webhook that cannot serve must not look alive either
			}
			whDone <- err
		}()
	} else {
		whDone <- nil
	}

	err = srv.Run(ctx, func(p, a string) {
		logger.Info("listening", "proxy", p, "admin", a, "tls", srv.TLSAddr(), "api_server", cfg.Host, "namespaces", namespaces)
		if onListen != nil {
			onListen(p, a, srv.TLSAddr())
		}
	})
	cancel()
	if whErr := <-whDone; whErr != nil {
		logger.Error("admission webhook", "error", whErr)
		<-srcDone
		return 1
	}
	if srcErr := <-srcDone; srcErr != nil {
		logger.Error("watching the cluster", "error", srcErr)
		return 1
	}
	if err != nil {
		logger.Error("gateway stopped", "error", err)
		return 1
	}
	return 0
}
