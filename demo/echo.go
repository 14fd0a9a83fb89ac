// Package demo runs the example upstreams behind `gatehouse demo`: small echo
// servers that answer with what they received, so a newcomer sees the path
// rewrite, the forwarded headers and which replica answered.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// Echo is what an echo upstream answers, as JSON.
type Echo struct {
	Service         string `json:"service"`
	Endpoint        string `json:"endpoint"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	Query           string `json:"query,omitempty"`
	Host            string `json:"host"`
	XForwardedFor   string `json:"x_forwarded_for,omitempty"`
	XForwardedHost  string `json:"x_forwarded_host,omitempty"`
	XForwardedProto string `json:"x_forwarded_proto,omitempty"`
	XRequestID      string `json:"x_request_id,omitempty"`
	// Headers are the other X- headers the upstream got (what a route
	// adds: claims, an auth service's answer, the consumer), and
	// Authorization as "(present)", never its value.
	Headers map[string]string `json:"headers,omitempty"`
}

// EchoHandler answers every request with an Echo naming service and endpoint.
func EchoHandler(service, endpoint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Echo{
			Service:         service,
			Endpoint:        endpoint,
			Method:          r.Method,
			Path:            r.URL.EscapedPath(), // as sent on the wire, %2F and all
			Query:           r.URL.RawQuery,
			Host:            r.Host,
			XForwardedFor:   r.Header.Get("X-Forwarded-For"),
			XForwardedHost:  r.Header.Get("X-Forwarded-Host"),
			XForwardedProto: r.Header.Get("X-Forwarded-Proto"),
			XRequestID:      r.Header.Get("X-Request-Id"),
			Headers:         otherHeaders(r.Header),
		})
	})
}

func otherHeaders(h http.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		switch {
		case k == "Authorization":
		case !strings.HasPrefix(k, "X-"), strings.HasPrefix(k, "X-Forwarded-"), k == "X-Request-Id":
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		if k == "Authorization" {
			out[k] = "(present)"
			continue
		}
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// Upstreams serves an echo server on every ready loopback endpoint of slices
// until ctx ends. Only loopback addresses are served: the demo never binds a
// public interface. It returns the addresses it serves once all are bound.
func Upstreams(ctx context.Context, slices []*discoveryv1.EndpointSlice) ([]string, error) {
	var servers []*http.Server
	var addrs []string
	fail := func(err error) ([]string, error) {
		for _, s := range servers {
			s.Close()
		}
		return nil, err
	}
	for _, s := range slices {
		service := s.Labels["kubernetes.io/service-name"]
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			for _, ep := range s.Endpoints {
				for _, a := range ep.Addresses {
					ip := net.ParseIP(a)
					if ip == nil || !ip.IsLoopback() {
						continue
					}
					addr := net.JoinHostPort(a, strconv.Itoa(int(*p.Port)))
					ln, err := net.Listen("tcp", addr)
					if err != nil {
						return fail(fmt.Errorf("starting example upstream %s for %s: %w", addr, service, err))
					}
					srv := &http.Server{Handler: EchoHandler(service, addr), ReadHeaderTimeout: 5 * time.Second}
					servers = append(servers, srv)
					addrs = append(addrs, addr)
					go func() {
						if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
							fmt.Printf("example upstream %s: %v\n", addr, err)
						}
					}()
				}
			}
		}
	}
	go func() {
		<-ctx.Done()
		for _, s := range servers {
			s.Close()
		}
	}()
	return addrs, nil
}
