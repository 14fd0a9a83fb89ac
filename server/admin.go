package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// The admin API: the snapshot being served, as data, for `gatehouse routes
// --admin` and `gatehouse explain --admin` (and curl). Read-only: each
// answer is computed from the snapshot of the moment, and explain matches
// a request it makes up against it without sending anything anywhere.
//
//	GET /api/routes   snapshot.RouteListing: the route table, the hosts with edge TLS
//	GET /api/explain?method=GET&url=http://host/path?q&header=Name:%20value...
//	GET /api/hosts    who owns each exact host; Namespaces' tenancy annotations
//	                  snapshot.ExplainReport of that request
//
// Answers are JSON, errors too ({"error": "..."}): 400 for bad input,
// 503 before the first snapshot.

// Bounds on what explain is asked, so a question cannot cost more than a
// request the proxy listener would take. (The whole query is bounded
// already by the admin server's header limit, http.DefaultMaxHeaderBytes.)
const (
	maxExplainURL     = 8 << 10 // longer than browsers and most proxies accept
	maxExplainHeaders = 64
	maxExplainHeader  = 8 << 10 // one "Name: value"
)

// registerAPI adds the admin API to the admin listener's mux.
func (s *Server) registerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/routes", s.apiRoutes)
	mux.HandleFunc("GET /api/explain", s.apiExplain)
	mux.HandleFunc("GET /api/hosts", s.apiHosts)
}

func (s *Server) apiRoutes(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if snap == nil {
		apiError(w, http.StatusServiceUnavailable, "no snapshot served yet")
		return
	}
	apiJSON(w, http.StatusOK, snapshot.ListRoutes(snap, time.Now()))
}

func (s *Server) apiHosts(w http.ResponseWriter, _ *http.Request) {
	snap := s.Current()
	if snap == nil {
		apiError(w, http.StatusServiceUnavailable, "no snapshot served yet")
		return
	}
	apiJSON(w, http.StatusOK, struct {
		Hosts      []snapshot.HostOwner         `json:"hosts"`
		Namespaces []snapshot.NamespaceSettings `json:"namespaces"`
	}{snap.HostOwners(), snap.NamespaceSettings()})
}

func (s *Server) apiExplain(w http.ResponseWriter, r *http.Request) {
	req, err := explainQuery(r.URL.RawQuery)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.Current()
	if snap == nil {
		apiError(w, http.StatusServiceUnavailable, "no snapshot served yet")
		return
	}
	apiJSON(w, http.StatusOK, snapshot.NewExplainReport(snap, req, time.Now()))
}

// explainQuery is the request /api/explain's query describes: url (once),
// method (at most once; GET by default) and header (repeatable, "Name:
// value"), read as the CLI reads its arguments (snapshot.ExplainRequest).
func explainQuery(rawQuery string) (*http.Request, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for k := range q {
		if k != "method" && k != "url" && k != "header" {
			return nil, fmt.Errorf("unknown parameter %q (known: method, url, header)", k)
		}
	}
	if len(q["url"]) != 1 || len(q["method"]) > 1 {
		return nil, fmt.Errorf("want one url and at most one method, as in ?method=GET&url=http://host/path")
	}
	method, target, headers := "GET", q.Get("url"), q["header"]
	if ms := q["method"]; len(ms) == 1 {
		method = ms[0]
	}
	switch {
	case len(target) > maxExplainURL:
		return nil, fmt.Errorf("url: %d bytes, more than the %d allowed", len(target), maxExplainURL)
	case len(headers) > maxExplainHeaders:
		return nil, fmt.Errorf("%d headers, more than the %d allowed", len(headers), maxExplainHeaders)
	}
	for i, h := range headers {
		if len(h) > maxExplainHeader {
			return nil, fmt.Errorf("header %d: %d bytes, more than the %d allowed", i+1, len(h), maxExplainHeader)
		}
	}
	return snapshot.ExplainRequest(method, target, headers)
}

// apiJSON writes v as the CLI's -o json does: indented, <, > and & as
// they are.
func apiJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	apiJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}
