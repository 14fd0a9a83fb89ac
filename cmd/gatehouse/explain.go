package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// headerList is a repeatable -H 'Name: value' flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "; ") }
func (h *headerList) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	*h = append(*h, v)
	return nil
}

func explainCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths fileList
	var headers headerList
	fs.Var(&paths, "f", "manifest file (repeatable)")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable; 'Host: x' sets the host)")
	output := fs.String("o", "text", `output format: "text" or "json"`)
	var d pipelineFlags
	d.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse explain -f FILE... [flags] METHOD URL\n\nTells which route a request would take and what the upstream would receive.\nURL is http://host/path?query, https://host/path?query (a request over TLS: the\ncertificate and policy of the host's Host) or /path?query (plain HTTP).\n\nflags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	opts, err := d.options()
	if err != nil || len(pos) != 2 || len(paths) == 0 || (*output != "text" && *output != "json") {
		if err != nil {
			fmt.Fprintln(stderr, "gatehouse explain:", err)
		}
		fs.Usage()
		return 2
	}
	req, err := http.NewRequest(strings.ToUpper(pos[0]), pos[1], nil)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	if req.URL.Scheme == "https" {
		// As the gateway sees a request on its TLS listener: the server
		// name the client sent is the URL's, whatever -H Host says.
		req.TLS = &tls.ConnectionState{ServerName: req.URL.Hostname()}
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	_, snap, findings, err := compileFiles(paths, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
		return 2
	}
	for _, f := range findings {
		fmt.Fprintln(stderr, f.String())
	}
	e, edge := explainEdge(snap, req, snapshot.Explain(snap, req), time.Now())
	if *output == "json" {
		if err := writeExplanationJSON(stdout, e, edge); err != nil {
			fmt.Fprintf(stderr, "gatehouse explain: %v\n", err)
			return 1
		}
	} else {
		writeExplanation(stdout, req, e, edge)
	}
	// Like validate and routes: a rejected annotation fails the command,
	// while the answer still shows what the rest of the configuration does.
	if hasErrors(findings) {
		return 1
	}
	return 0
}

// edgeExplanation is what the Host of a request's host does with it
// before any route, explain's "tls" in JSON.
type edgeExplanation struct {
	Scheme   string `json:"scheme"`   // "http" or "https"
	Hostname string `json:"hostname"` // the request's host, without its port
	// Host serves the hostname; absent when no Host does.
	Host *hostJSON `json:"host,omitempty"`
	// ServerName is the TLS server name when it is not the hostname (-H
	// Host on an https URL), and HandshakeHost the Host whose certificate
	// and TLS settings the handshake then got, if any.
	ServerName    string    `json:"server_name,omitempty"`
	HandshakeHost *hostJSON `json:"handshake_host,omitempty"`
	// Policy says in words what the Host (or its absence, over https)
	// means for this request.
	Policy string `json:"policy"`
	// answered is set when the Host answers the request itself (a redirect
	// to https, 403, 421): no route is consulted.
	answered bool
}

// acmePrefix is where ACME HTTP-01 challenges are answered; the proxy
// lets plain HTTP through there whatever a Host's insecure says.
const acmePrefix = "/.well-known/acme-challenge/"

// explainEdge layers a Host's policy over e, what the route table does
// with r, in the proxy's order (proxy/edge.go, edgePolicy): a path the
// gateway refuses is refused first; then plain HTTP for a host with a
// Host is redirected to https, refused or let through. Over TLS the
// handshake got the certificate of the server name's Host, the request
// gets HSTS from its host's, and a Host that authenticates clients
// refuses a request on a connection made for another Host. It returns e,
// changed when the Host answers, and nil when no Host and no TLS are
// involved.
func explainEdge(snap *snapshot.Snapshot, r *http.Request, e snapshot.Explanation, now time.Time) (snapshot.Explanation, *edgeExplanation) {
	edge := snap.EdgeTLS()
	secure := r.TLS != nil
	name := strings.TrimSuffix(strings.ToLower(snapshot.HostName(r.Host)), ".")
	ht := edge.Lookup(name)
	if ht == nil && !secure {
		return e, nil
	}
	x := &edgeExplanation{Scheme: "http", Hostname: name}
	if ht != nil {
		x.Host = describeHost(ht, now)
	}
	// A path refused before routing is refused before the Host's policy
	// too (the handshake, over TLS, has happened by then).
	refusedPath := !e.Matched && e.Status == http.StatusBadRequest
	var policy []string
	if !secure {
		path := ""
		if req, err := snapshot.RouterRequest(r, snap.Paths()); err == nil {
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
			e = snapshot.Explanation{Status: http.StatusForbidden, Reason: "this host is served over HTTPS only", RoutedPath: e.RoutedPath}
			x.answered = true
		default:
			status := http.StatusPermanentRedirect
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				status = http.StatusMovedPermanently
			}
			policy = append(policy, fmt.Sprintf("plain HTTP is redirected to HTTPS (insecure: redirect): the gateway answers %d before any route, path and query kept (the port is serve's --https-redirect-port or --listen-tls's, left out when 443)", status))
			e = snapshot.Explanation{Status: status, Redirect: httpsURL(r), Reason: "redirected to HTTPS", RoutedPath: e.RoutedPath}
			x.answered = true
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
			x.HandshakeHost = describeHost(hs, now)
		}
	}
	if hs == nil {
		policy = append(policy, fmt.Sprintf("no Host names %s: the handshake gets the gateway's default certificate (serve --tls-cert-file), or is refused when it has none", cmp.Or(x.ServerName, name)))
	} else {
		policy = append(policy, "TLS "+strings.TrimPrefix(tlsVersion(hs.MinVersion), "v")+" or later")
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
				e = snapshot.Explanation{Status: http.StatusMisdirectedRequest, Reason: "this host needs a client certificate: connect with its name as the TLS server name", RoutedPath: e.RoutedPath}
				x.answered = true
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
	host := snapshot.HostName(r.Host)
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return "https://" + host + r.URL.RequestURI()
}

// writeExplanationJSON writes e as the snapshot encodes it, with "tls"
// added when a Host or TLS is involved. e's own encoding is kept as it is
// (Explanation has a MarshalJSON an embedding struct would inherit, and
// lose the new field to).
func writeExplanationJSON(w io.Writer, e snapshot.Explanation, edge *edgeExplanation) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return err
	}
	if edge != nil {
		obj := bytes.TrimRight(buf.Bytes(), "\n")
		if len(obj) < 2 || obj[len(obj)-1] != '}' {
			return fmt.Errorf("explanation is not a JSON object: %s", obj)
		}
		var tail bytes.Buffer
		tenc := json.NewEncoder(&tail)
		tenc.SetEscapeHTML(false)
		if err := tenc.Encode(edge); err != nil {
			return err
		}
		sep := ","
		if len(obj) == 2 {
			sep = ""
		}
		out := append(append([]byte{}, obj[:len(obj)-1]...), sep+`"tls":`...)
		out = append(append(out, bytes.TrimRight(tail.Bytes(), "\n")...), "}\n"...)
		buf.Reset()
		buf.Write(out)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func writeExplanation(w io.Writer, req *http.Request, e snapshot.Explanation, edge *edgeExplanation) {
	fmt.Fprintf(w, "%s %s%s\n", req.Method, req.Host, req.URL.RequestURI())
	row := func(k, v string) { fmt.Fprintf(w, "  %-10s %s\n", k, v) }
	if edge != nil {
		writeEdge(row, edge)
		if edge.answered {
			if e.Redirect != "" {
				row("redirect", fmt.Sprintf("%d %s", e.Status, e.Redirect))
			} else {
				row("answer", fmt.Sprintf("%d %s", e.Status, e.Reason))
			}
			return
		}
	}
	if !e.Matched {
		fmt.Fprintf(w, "  no route: the gateway answers %d\n", e.Status)
		return
	}
	row("mapping", e.Mapping)
	if e.Redirect != "" {
		row("redirect", fmt.Sprintf("%d %s", e.Status, e.Redirect))
	} else {
		row("upstream", e.Upstream)
		row("path", e.Path)
		row("host", e.Host)
	}
	if len(e.RateLimits) > 0 {
		row("limits", strings.Join(e.RateLimits, ", "))
	}
	for _, g := range e.Group {
		row("group", fmt.Sprintf("%3d%% %s → %s", g.Weight, g.Mapping, g.Upstream))
	}
	for _, warn := range e.Warnings {
		row("warning", warn)
	}
}

// writeEdge prints the Host of a request and what it does: who declared
// it, over TLS the certificate the handshake got (with certFlags' words),
// and the policy.
func writeEdge(row func(k, v string), x *edgeExplanation) {
	if h := x.Host; h != nil {
		row("tls", fmt.Sprintf("%s: Host %q of Service %s, Secret %s", x.Hostname, h.Host, h.Service, h.Secret))
	} else {
		row("tls", x.Hostname+": no Host")
	}
	if x.Scheme == "https" {
		h, prefix := x.Host, ""
		if x.ServerName != "" {
			h, prefix = x.HandshakeHost, fmt.Sprintf("for TLS server name %s: ", x.ServerName)
		}
		if h != nil {
			row("cert", prefix+certSummary(h))
		} else {
			row("cert", prefix+"the gateway's default certificate, if any")
		}
	}
	row("policy", x.Policy)
}

// certSummary is one line on the certificate h serves: its names, SHA-256
// prefix, end of validity, and certFlags' words or "ok", with the build's
// reason when there is none or it is the last good one.
func certSummary(h *hostJSON) string {
	c := h.Certificate
	if c == nil {
		return flagNoCert + ": " + h.Problem
	}
	names := c.DNSNames
	if len(names) == 0 {
		names = []string{c.Subject}
	}
	status := "ok"
	if len(h.Flags) > 0 {
		status = strings.Join(h.Flags, ", ")
	}
	s := fmt.Sprintf("%s, sha256 %s, not after %s: %s", strings.Join(names, ","), c.SHA256[:min(16, len(c.SHA256))], c.NotAfter.Format(time.DateOnly), status)
	if c.LastGood && h.Problem != "" {
		s += " (" + h.Problem + ")"
	}
	return s
}
