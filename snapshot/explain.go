package snapshot

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/router"
	"github.com/gatehouse-dev/gatehouse/upstream"
)

// RouterRequest is how the gateway sees r for matching: its path is the
// canonical form (CanonicalPath under opts) of the path as the client escaped
// it, the one path that is then limited, rewritten, logged and forwarded.
// An error means the gateway answers 400.
func RouterRequest(r *http.Request, opts PathOptions) (router.Request, error) {
	p, err := CanonicalPath(WirePath(r.URL), opts)
	if err != nil {
		return router.Request{}, err
	}
	return router.Request{
		Host:     r.Host,
		Method:   r.Method,
		Path:     p,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header,
	}, nil
}

// Explanation is what the gateway would do with one request.
type Explanation struct {
	Matched bool `json:"matched"`
	// Status is set when the gateway answers itself: 404 without a route,
	// 400 for a path it refuses (Reason says why), the redirect's code.
	Status int    `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// RoutedPath is the canonical path that was matched, set when it differs
	// from the path as sent ("/api/%61dmin" is routed as "/api/admin").
	RoutedPath string `json:"routed_path,omitempty"`
	Mapping    string `json:"mapping,omitempty"`
	Upstream   string `json:"upstream,omitempty"`
	// Path and Host are what the upstream receives.
	Path       string   `json:"path,omitempty"`
	Host       string   `json:"host,omitempty"`
	RateLimits []string `json:"rate_limits,omitempty"`
	// Auth is what the route asks of a request before it goes on: which
	// Auth document checks it, of which kind, and whether a consumer is
	// required; "" when nothing is checked. Explain never checks the
	// request's own credentials: the admin API is no oracle for them.
	Auth     string        `json:"auth,omitempty"`
	Redirect string        `json:"redirect,omitempty"`
	Group    []GroupMember `json:"group,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

// MarshalJSON always writes rate_limits for a matched request, so tools can
// read it without checking for its absence.
func (e Explanation) MarshalJSON() ([]byte, error) {
	type plain Explanation
	if !e.Matched {
		return json.Marshal(plain(e))
	}
	limits := e.RateLimits
	if limits == nil {
		limits = []string{}
	}
	e.RateLimits = nil
	return json.Marshal(struct {
		plain
		RateLimits []string `json:"rate_limits"`
	}{plain(e), limits})
}

// GroupMember is one Mapping of a canary group and its share.
type GroupMember struct {
	Mapping  string `json:"mapping"`
	Upstream string `json:"upstream"`
	Weight   int    `json:"weight"`
}

// Explain tells what the gateway serving s does with r, using the same
// matching and rewriting code as the data plane. For a canary group it
// reports the first member with a share, and every member in Group.
func Explain(s *Snapshot, r *http.Request) Explanation {
	// The snapshot's path options: the proxy uses the same, so both read a
	// path alike.
	req, err := RouterRequest(r, s.Paths())
	if err != nil {
		return Explanation{Status: http.StatusBadRequest, Reason: err.Error()}
	}
	routed := ""
	if req.Path != WirePath(r.URL) {
		routed = req.Path
	}
	m, ok, preflight := MatchPreflight(s.Table, &req, PreflightMethod(r), 0)
	if !ok {
		return Explanation{Status: http.StatusNotFound, RoutedPath: routed}
	}
	rt := m.Value
	e := Explanation{Matched: true, Mapping: rt.Mapping, RateLimits: rt.RateLimits, Warnings: rt.Warnings, RoutedPath: routed, Auth: authOf(s, rt)}
	if preflight {
		// Answered by the gateway from the Mapping's cors policy.
		e.Status, e.Reason = http.StatusOK, "CORS preflight, answered by the gateway"
		return e
	}
	if rt.Redirect != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		e.Status = rt.Redirect.Code
		e.Redirect = rt.RedirectLocation(scheme, req.Path, req.RawQuery)
		return e
	}
	path, err := rt.ForwardPath(req.Path)
	if err != nil {
		e.Status, e.Reason = http.StatusBadRequest, err.Error()
		return e
	}
	e.Upstream = rt.Target.String()
	e.Path = path
	if req.RawQuery != "" {
		e.Path += "?" + req.RawQuery
	}
	e.Host = r.Host
	if rt.HostRewrite != "" {
		e.Host = rt.HostRewrite
	}
	if group := s.Table.Group(m); len(group) > 1 {
		for _, g := range group {
			e.Group = append(e.Group, GroupMember{Mapping: g.Value.Mapping, Upstream: upstreamOf(g.Value), Weight: g.Weight})
		}
	}
	return e
}

// authOf describes what rt's authentication asks: "jwt: Auth shop/users
// (Service shop/users-api), a consumer required".
func authOf(s *Snapshot, rt *Route) string {
	ra := s.AuthFor(rt)
	if ra == nil || ra.Spec == nil {
		if ns := s.namespaceAuth[rt.Namespace()]; ns != nil && rt.BypassAuth && rt.Auth == nil && rt.Annotation == annotations.EmissaryKey {
			return fmt.Sprintf("none: bypass_auth skips the namespace's AuthService %s/%s", ns.Namespace, ns.Name)
		}
		return ""
	}
	a := ra.Spec
	out := fmt.Sprintf("%s: Auth %s/%s (Service %s)", a.Kind, a.Namespace, a.Name, a.Service)
	if rt.Auth == nil {
		out = fmt.Sprintf("%s: the namespace's AuthService %s/%s (Service %s)", a.Kind, a.Namespace, a.Name, a.Service)
	}
	if rt.RequireConsumer {
		out += ", a consumer required"
	}
	return out
}

func upstreamOf(r *Route) string {
	if r.Redirect != nil {
		return "redirect " + r.Redirect.Host
	}
	return r.Target.String()
}

// WriteRoutes prints the route table in evaluation order, one route a line
// (WriteRouteRows of RouteRows).
func WriteRoutes(w io.Writer, s *Snapshot) error {
	return WriteRouteRows(w, RouteRows(s))
}

// options lists a route's settings that differ from the defaults.
func options(rt *Route) []string {
	var out []string
	if rt.Timeout != DefaultTimeout {
		out = append(out, "timeout="+rt.Timeout.String())
	}
	if rt.ConnectTimeout != DefaultConnectTimeout {
		out = append(out, "connect-timeout="+rt.ConnectTimeout.String())
	}
	if rt.IdleTimeout != 0 {
		out = append(out, "idle-timeout="+rt.IdleTimeout.String())
	}
	for _, h := range rt.RequestHeadersRemove {
		out = append(out, "request-remove="+h)
	}
	for _, h := range rt.RequestHeadersAdd {
		out = append(out, headerOp("request", h))
	}
	for _, h := range rt.ResponseHeadersRemove {
		out = append(out, "response-remove="+h)
	}
	for _, h := range rt.ResponseHeadersAdd {
		out = append(out, headerOp("response", h))
	}
	if len(rt.AllowUpgrade) > 0 {
		out = append(out, "upgrade="+strings.Join(rt.AllowUpgrade, ","))
	}
	if c := rt.Caps; c != (Caps{}) {
		out = append(out, fmt.Sprintf("max-requests=%d max-pending=%d max-retries=%d", c.Requests, c.Pending, c.Retries))
	}
	for _, s := range rt.Shadows {
		out = append(out, fmt.Sprintf("mirror=%s %d%%", s.Route.Mapping, s.Percent))
	}
	if rt.MaxRequestBody > 0 {
		out = append(out, "max-request-body="+strconv.FormatInt(rt.MaxRequestBody, 10))
	}
	if a := rt.Auth; a != nil {
		out = append(out, "auth="+a.Name+" ("+a.Kind+")")
	}
	if rt.RequireConsumer {
		out = append(out, "require-consumer")
	}
	if rt.BypassAuth {
		out = append(out, "bypass-auth")
	}
	if rp := rt.Retry; rp != nil {
		s := "retries=" + strconv.Itoa(rp.Retries)
		if rp.PerTry > 0 {
			s += " per-try=" + rp.PerTry.String()
		}
		out = append(out, s)
	}
	if rt.Balance != upstream.RoundRobin {
		s := "balance=" + rt.Balance.String()
		switch h := rt.Hash; {
		case h.Header != "":
			s += " header=" + h.Header
		case h.Cookie != nil:
			s += " cookie=" + h.Cookie.Name
		case h.SourceIP:
			s += " source-ip"
		}
		out = append(out, s)
	}
	if rd := rt.Redirect; rd != nil {
		target := rd.Host
		if rd.Scheme != "" {
			target = rd.Scheme + "://" + target
		}
		switch {
		case rd.Path != "":
			target += " path=" + rd.Path
		case rd.Prefix != "":
			target += " prefix=" + rd.Prefix
		}
		out = append(out, "redirect="+strconv.Itoa(rd.Code)+" "+target)
	}
	if n := len(rt.Warnings); n > 0 {
		out = append(out, "warnings="+strconv.Itoa(n))
	}
	return out
}

func headerOp(where string, h HeaderOp) string {
	op := "-add="
	if !h.Append {
		op = "-set="
	}
	return where + op + h.Name + ":" + strconv.Quote(shownValue(h.Name, h.Value))
}

// shownValue is a header's value as routes, explain and the admin API
// show it: redacted when the name says it carries a credential. A
// Mapping that sets "Authorization: Bearer …" towards its upstream, or
// routes on a shared-secret header, must not have the secret printed
// on the admin listener, which monitoring namespaces read too.
func shownValue(name, value string) string {
	if value != "" && credentialHeader(name) {
		return "<redacted>"
	}
	return value
}

// credentialHeader says whether a header's name suggests a secret value:
// the standard credential headers, and any name with a word that usually
// means one (X-Api-Key, X-Auth-Token, X-Client-Secret…).
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, word := range []string{"token", "secret", "key", "password", "passwd", "auth", "credential", "session", "signature", "cookie"} {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

func condition(kind, name, value string, present, regex bool) string {
	switch {
	case present:
		return kind + name
	case regex:
		return kind + name + "~" + strconv.Quote(value)
	}
	return kind + name + "=" + strconv.Quote(value)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// PreflightMethod returns the method a CORS preflight asks about, "" when
// r is not one (an OPTIONS request with Origin and
// Access-Control-Request-Method).
func PreflightMethod(r *http.Request) string {
	if r.Method != http.MethodOptions || r.Header.Get("Origin") == "" {
		return ""
	}
	return r.Header.Get("Access-Control-Request-Method")
}

// MatchPreflight matches a CORS preflight as the gateway does: as the
// method it asks about, so that the Mapping that will take the actual
// request answers it (a Mapping limited to PUT never sees an OPTIONS);
// when that Mapping has no cors, the preflight is an OPTIONS request like
// any other and is matched as one. preflight reports which it was. roll
// picks a canary group's member as Table.MatchRoll does; negative is
// Table.Match's own random roll.
func MatchPreflight(t *router.Table[*Route], req *router.Request, method string, roll int64) (rt *router.Route[*Route], ok, preflight bool) {
	// Not a func parameter for the two: req would escape to the heap, an
	// allocation on every request.
	match := func() (*router.Route[*Route], bool) {
		if roll < 0 {
			return t.Match(req)
		}
		return t.MatchRoll(req, uint32(roll))
	}
	if method != "" {
		saved := req.Method
		req.Method = method
		if rt, ok = match(); ok && rt.Value.CORS != nil {
			return rt, true, true
		}
		req.Method = saved
	}
	rt, ok = match()
	return rt, ok, false
}
