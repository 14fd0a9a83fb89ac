package snapshot

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// Explain's whole answer about one request, as `gatehouse explain` prints
// it and the admin API (GET /api/explain) serves it: the request as read,
// what the route table does with it (Explain), and what the Host of its
// host does before any route (ExplainEdge).

// ExplainReport is explain's answer about one request.
type ExplainReport struct {
	// Method, Host and Target (path and query) are the request as the
	// gateway reads it.
	Method, Host, Target string
	Explanation          Explanation
	// Edge is nil when no Host and no TLS are involved.
	Edge *EdgeExplanation
}

// NewExplainReport explains r to the gateway serving s, certificates
// judged at now. It sends nothing anywhere.
func NewExplainReport(s *Snapshot, r *http.Request, now time.Time) ExplainReport {
	e, edge := ExplainEdge(s, r, Explain(s, r), now)
	return ExplainReport{Method: r.Method, Host: r.Host, Target: r.URL.RequestURI(), Explanation: e, Edge: edge}
}

// reportJSON is ExplainReport on the wire. Explanation is explain -o
// json's document (MarshalExplanation); EdgeAnswered is the one thing that
// document leaves out, which the text form needs.
type reportJSON struct {
	Method       string          `json:"method"`
	Host         string          `json:"host"`
	Target       string          `json:"target"`
	Explanation  json.RawMessage `json:"explanation"`
	EdgeAnswered bool            `json:"edge_answered"`
}

// MarshalJSON writes {"method", "host", "target", "explanation",
// "edge_answered"}, "explanation" being what explain -o json prints.
func (r ExplainReport) MarshalJSON() ([]byte, error) {
	ex, err := MarshalExplanation(r.Explanation, r.Edge)
	if err != nil {
		return nil, err
	}
	return marshalJSON(reportJSON{Method: r.Method, Host: r.Host, Target: r.Target, Explanation: ex, EdgeAnswered: r.Edge != nil && r.Edge.Answered})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *ExplainReport) UnmarshalJSON(data []byte) error {
	var w reportJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if len(w.Explanation) == 0 {
		return fmt.Errorf("no explanation")
	}
	var e Explanation
	if err := json.Unmarshal(w.Explanation, &e); err != nil {
		return fmt.Errorf("explanation: %w", err)
	}
	var edge struct {
		TLS *EdgeExplanation `json:"tls"`
	}
	if err := json.Unmarshal(w.Explanation, &edge); err != nil {
		return fmt.Errorf("explanation: %w", err)
	}
	if edge.TLS != nil {
		edge.TLS.Answered = w.EdgeAnswered
	}
	*r = ExplainReport{Method: w.Method, Host: w.Host, Target: w.Target, Explanation: e, Edge: edge.TLS}
	return nil
}

// MarshalExplanation is explain -o json's document: e as it encodes
// itself, with "tls" added when edge is set. e's own encoding is kept as
// it is (Explanation has a MarshalJSON an embedding struct would inherit,
// and lose the new field to).
func MarshalExplanation(e Explanation, edge *EdgeExplanation) ([]byte, error) {
	obj, err := marshalJSON(e)
	if err != nil || edge == nil {
		return obj, err
	}
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return nil, fmt.Errorf("explanation is not a JSON object: %s", obj)
	}
	tail, err := marshalJSON(edge)
	if err != nil {
		return nil, err
	}
	sep := ","
	if len(obj) == 2 {
		sep = ""
	}
	out := append(append([]byte{}, obj[:len(obj)-1]...), sep+`"tls":`...)
	return append(append(out, tail...), '}'), nil
}

// marshalJSON is json.Marshal without escaping <, > and &, which only
// matter inside HTML.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// ExplainRequest makes the request explain explains. method is any case.
// target is http://host/path?query, https://host/path?query (a request
// over TLS whose server name is the URL's host, whatever a Host header
// says) or /path?query (plain HTTP). headers are "Name: value"; "Host: x"
// sets the host.
func ExplainRequest(method, target string, headers []string) (*http.Request, error) {
	method = strings.ToUpper(method)
	if !isToken(method) {
		return nil, fmt.Errorf("method %q: not an HTTP method", method)
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "//"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == "":
	default:
		return nil, fmt.Errorf("url %q: want http://host/path?query, https://host/path?query or /path?query", target)
	}
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme == "https" {
		// As the gateway sees a request on its TLS listener.
		req.TLS = &tls.ConnectionState{ServerName: req.URL.Hostname()}
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("header %q: want 'Name: value'", h)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("header %q: a value cannot hold CR, LF or NUL", name)
		}
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	return req, nil
}

// isToken reports whether s is an HTTP token (RFC 9110 5.6.2), what
// methods and header names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// EdgeExplanation is what the Host of a request's host does with it
// before any route, explain's "tls" in JSON.
type EdgeExplanation struct {
	Scheme   string `json:"scheme"`   // "http" or "https"
	Hostname string `json:"hostname"` // the request's host, without its port
	// Host serves the hostname; nil when no Host does.
	Host *HostRow `json:"host,omitempty"`
	// ServerName is the TLS server name when it is not the hostname (a
	// Host header on an https URL), and HandshakeHost the Host whose
	// certificate and TLS settings the handshake then got, if any.
	ServerName    string   `json:"server_name,omitempty"`
	HandshakeHost *HostRow `json:"handshake_host,omitempty"`
	// Policy says in words what the Host (or its absence, over https)
	// means for this request.
	Policy string `json:"policy"`
	// Answered is set when the Host answers the request itself (a
	// redirect to https, 403, 421): no route is consulted. Not in explain
	// -o json's document, which predates it; ExplainReport carries it.
	Answered bool `json:"-"`
}

// acmePrefix is where ACME HTTP-01 challenges are answered; the proxy
// lets plain HTTP through there whatever a Host's insecure says.
const acmePrefix = "/.well-known/acme-challenge/"

// ExplainEdge layers a Host's policy over e, what the route table does
// with r, in the proxy's order (proxy/edge.go, edgePolicy): a path the
// gateway refuses is refused first; then plain HTTP for a host with a
// Host is redirected to https, refused or let through. Over TLS the
// handshake got the certificate of the server name's Host, the request
// gets HSTS from its host's, and a Host that authenticates clients
// refuses a request on a connection made for another Host. It returns e,
// changed when the Host answers, and nil when no Host and no TLS are
// involved. Certificates are judged at now.
func ExplainEdge(s *Snapshot, r *http.Request, e Explanation, now time.Time) (Explanation, *EdgeExplanation) {
	edge := s.EdgeTLS()
	secure := r.TLS != nil
	name := strings.TrimSuffix(strings.ToLower(HostName(r.Host)), ".")
	ht := edge.Lookup(name)
	if ht == nil && !secure {
		return e, nil
	}
	x := &EdgeExplanation{Scheme: "http", Hostname: name}
	if ht != nil {
		x.Host = DescribeHost(ht, now)
	}
	// A path refused before routing is refused before the Host's policy
	// too (the handshake, over TLS, has happened by then).
	refusedPath := !e.Matched && e.Status == http.StatusBadRequest
	var policy []string
	if !secure {
		path := ""
		if req, err := RouterRequest(r, s.Paths()); err == nil {
			path = req.Path
		}
		switch {
		case refusedPath:
			policy = append(policy, "the path is refused before the Host's policy applies")
		case ht.Insecure == annotations.InsecureRoute:
			policy = append(policy, "plain HTTP is routed as HTTPS is (insecure: route)")
		case strings.HasPrefix(path, acmePrefix):
			policy = append(policy, fmt.Sprintf("plain HTTP is let through: %s is where ACME HTTP-01 challenges are answered, never redirected or refused", acmePrefix))
		case ht.Insecure == annotations.InsecureReject:
			policy = append(policy, "plain HTTP is refused (insecure: reject): the gateway answers 403 before any route")
			e = Explanation{Status: http.StatusForbidden, Reason: "this host is served over HTTPS only", RoutedPath: e.RoutedPath}
			x.Answered = true
		default:
			status := http.StatusPermanentRedirect
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				status = http.StatusMovedPermanently
			}
			policy = append(policy, fmt.Sprintf("plain HTTP is redirected to HTTPS (insecure: redirect): the gateway answers %d before any route, path and query kept (the port is serve's --https-redirect-port or --listen-tls's, left out when 443)", status))
			e = Explanation{Status: status, Redirect: httpsURL(r), Reason: "redirected to HTTPS", RoutedPath: e.RoutedPath}
			x.Answered = true
		}
		if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			policy = append(policy, "X-Forwarded-Proto: https counts only from serve's --trusted-proxies; explained as sent by a client")
		}
		x.Policy = strings.Join(policy, "; ")
		return e, x
	}

	x.Scheme = "https"
	hs := ht // the Host the handshake was made for
	if sni := strings.ToLower(r.TLS.ServerName); sni != name {
		x.ServerName, hs = sni, edge.Lookup(sni)
		if hs != nil {
			x.HandshakeHost = DescribeHost(hs, now)
		}
	}
	if hs == nil {
		policy = append(policy, fmt.Sprintf("no Host names %s: the handshake gets the gateway's default certificate (serve --tls-cert-file), or is refused when it has none", cmp.Or(x.ServerName, name)))
	} else {
		policy = append(policy, "TLS "+strings.TrimPrefix(tlsVersionName(hs.MinVersion), "v")+" or later")
	}
	if ht == nil {
		policy = append(policy, "no HSTS, no client certificates")
		x.Policy = strings.Join(policy, "; ")
		return e, x
	}
	if ht.HSTS != "" {
		policy = append(policy, "answers carry Strict-Transport-Security: "+ht.HSTS)
	}
	if ht.ClientCA != "" {
		switch {
		case !hs.Same(ht):
			policy = append(policy, fmt.Sprintf("the host needs client certificates, and the connection was made for TLS server name %q: the gateway answers 421", x.ServerName))
			if !refusedPath {
				e = Explanation{Status: http.StatusMisdirectedRequest, Reason: "this host needs a client certificate: connect with its name as the TLS server name", RoutedPath: e.RoutedPath}
				x.Answered = true
			}
		case ht.ClientCert == annotations.ClientCertOptional:
			policy = append(policy, fmt.Sprintf("a client certificate is asked for, and verified against the CAs in Secret %s when one is sent (the upstream gets it in X-Forwarded-Client-Cert)", ht.ClientCA))
		default:
			policy = append(policy, fmt.Sprintf("a client certificate is required: the handshake needs one the CAs in Secret %s verify (the upstream gets it in X-Forwarded-Client-Cert)", ht.ClientCA))
		}
	}
	x.Policy = strings.Join(policy, "; ")
	return e, x
}

// httpsURL is where the gateway redirects plain-HTTP request r: the same
// host without its port, and the target as sent.
func httpsURL(r *http.Request) string {
	host := HostName(r.Host)
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return "https://" + host + r.URL.RequestURI()
}
