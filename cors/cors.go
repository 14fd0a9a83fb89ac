// Package cors is a Mapping's cors setting compiled into the policy the
// proxy enforces for its route: the gateway answers CORS preflights itself
// and adds the Access-Control-* headers of actual cross-origin requests,
// as Envoy's CORS filter does for Emissary, with the differences that
// Policy lists.
//
// Everything a response can carry is built by Compile; Preflight and Apply
// only look values up and store them, so the hot path does no joins and, for
// an allowed origin sent as browsers send it, no allocation.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/h1"
)

// RegexPrefix starts an origin that is a regular expression rather than
// an exact origin: "~https://[a-z0-9-]+\.example\.com". Emissary has no
// such form (it hands every origin to Envoy as an exact match), so this is
// Gatehouse's own. "~" cannot start an exact origin, whose scheme starts
// with a letter, nor "*" or "null", so the two forms are never confused.
const RegexPrefix = "~"

// MaxOriginLen bounds the Origin values a policy looks at, and so the input
// an origin expression runs on. A browser's origin is a scheme, a host name
// of at most 253 bytes and a port; a longer value is not from a browser
// and is treated as not allowed.
const MaxOriginLen = 512

// DefaultMaxRegexProgram is the size bound of one origin expression when
// Options leaves it zero: Envoy's default max_program_size, and
// snapshot.DefaultBudgets' MaxRegexProgram.
const DefaultMaxRegexProgram = 100

// Options bound what one policy may cost. The zero value means the defaults.
type Options struct {
	// MaxRegexProgram bounds each origin expression, in RE2 instructions
	// counted as snapshot.Budgets counts them (the expression alone, before
	// anchoring). The platform's --max-regex-program should be passed here
	// so that one limit holds for every expression a tenant writes.
	MaxRegexProgram int
}

// Policy is a compiled cors setting of one route; immutable and safe for
// concurrent use. A nil *Policy is a route without cors: Preflight answers
// nothing and Apply changes nothing.
//
// An origin is allowed when it is listed exactly (compared as RFC 6454
// compares origins: scheme and host without regard to case), matches a
// listed expression, or "*" is listed. "null", the origin of sandboxed
// documents, file: pages and cross-origin redirects, is shared by every
// such document, so only an explicit "null" allows it, never "*" and never
// an expression (with one exception, below, where the answer is the same
// for everyone anyway).
//
// Differences from Envoy's filter, as Emissary configures it:
//   - A preflight from an origin that is not allowed, or asking for a
//     method or headers that are not allowed, is answered by the gateway
//     (200, no Access-Control-Allow-* headers, so the browser stops), not
//     forwarded: Envoy's forward_not_matching_preflights defaults to true,
//     which lets a preflight reach an upstream that never agreed to see one.
//   - Requested methods and headers are checked at the gateway (Envoy lists
//     the allowed ones and leaves the check to the browser); the browser's
//     answer is the same, and a denied preflight reveals nothing.
//   - origins "*" without credentials answers "Access-Control-Allow-Origin: *"
//     to every response, Origin or not: the answer is the same for everyone,
//     so caches need no Vary. Envoy echoes the origin, which browsers treat
//     the same for requests without credentials.
//   - Every other policy adds "Vary: Origin" to every response of the route,
//     with or without an Origin, because its answer depends on the origin
//     and a shared cache must not give one origin's answer to another.
//   - The policy owns the route's Access-Control-Allow-*, -Expose-Headers and
//     -Max-Age response headers: Apply removes whatever the upstream sent
//     before adding its own, so an upstream cannot widen the policy. Envoy
//     replaces only the headers it sets, and leaves an upstream's
//     Access-Control-Allow-Origin on responses to disallowed origins.
//   - "*" among methods or headers allows any method or header and the
//     answer names the ones requested (Envoy does so only when the whole
//     list is "*"); browsers read a literal "*" as a wildcard only for
//     requests without credentials.
type Policy struct {
	// static: "*" is listed and credentials are off, so every response
	// gets the same headers.
	static bool
	// anyOrigin: "*" is listed (with credentials on: echo every well-formed
	// origin but "null").
	anyOrigin bool
	// exact holds the listed origins in canonical form (lower case, no
	// default port), and "null" when listed.
	exact   map[string]struct{}
	regexes []*regexp.Regexp

	anyMethod bool
	methods   []string // allowed beyond the CORS-safelisted ones, as compared
	anyHeader bool
	headers   []string // allowed request header names, as written

	// Header values, built once. They are shared by every response: nothing
	// may write into them (http.Header's Add and Set never do).
	star          []string // "*"
	credentials   []string // "true", or nil
	exposeHeaders []string // nil when none
	allowMethods  []string // nil when not listed or "*"
	allowHeaders  []string // nil when not listed or "*"
	maxAge        []string // nil when unset
	vary          []string // "Origin"
	preflightVary []string
	zero          []string // "0", the preflight answer's Content-Length
}

// FieldError is one problem with a cors setting. Field is its path inside
// cors, in the annotation parser's form ("origins[2]", "max_age"), for
// annotations.Mapping.FieldPos("cors." + Field).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Response header names a policy owns.
const (
	hAllowOrigin      = "Access-Control-Allow-Origin"
	hAllowCredentials = "Access-Control-Allow-Credentials"
	hAllowMethods     = "Access-Control-Allow-Methods"
	hAllowHeaders     = "Access-Control-Allow-Headers"
	hExposeHeaders    = "Access-Control-Expose-Headers"
	hMaxAge           = "Access-Control-Max-Age"
	hRequestMethod    = "Access-Control-Request-Method"
	hRequestHeaders   = "Access-Control-Request-Headers"
)

// Compile is CompileOptions with the default Options.
func Compile(c *annotations.CORS) (*Policy, error) { return CompileOptions(c, Options{}) }

// CompileOptions checks and compiles c. A nil c compiles to a nil policy.
// The error joins one *FieldError per problem, in field order.
//
// Compile does not trust the annotation parser: every value that reaches a
// response header is checked here, so a policy can never emit a value with
// a control character, whatever it was given.
func CompileOptions(c *annotations.CORS, o Options) (*Policy, error) {
	if c == nil {
		return nil, nil
	}
	if o.MaxRegexProgram <= 0 {
		o.MaxRegexProgram = DefaultMaxRegexProgram
	}
	var errs []error
	fail := func(field, reason string) { errs = append(errs, &FieldError{field, reason}) }
	p := &Policy{
		exact:         make(map[string]struct{}, len(c.Origins)),
		star:          []string{"*"},
		vary:          []string{"Origin"},
		preflightVary: []string{"Origin, " + hRequestMethod + ", " + hRequestHeaders},
		zero:          []string{"0"},
	}
	credentials := c.Credentials != nil && *c.Credentials
	if credentials {
		p.credentials = []string{"true"}
	}

	if len(c.Origins) == 0 {
		// Envoy with no origins allows none and forwards every preflight;
		// a cors setting that does nothing is a mistake worth saying.
		fail("origins", "at least one origin is required; without one, no cross-origin request is allowed")
	}
	for i, s := range c.Origins {
		field := fmt.Sprintf("origins[%d]", i)
		switch src, isRegex := strings.CutPrefix(s, RegexPrefix); {
		case s == "*":
			p.anyOrigin = true
		case strings.EqualFold(s, "null"):
			p.exact["null"] = struct{}{}
		case isRegex:
			re, msg := compileOrigin(src, o.MaxRegexProgram)
			if msg != "" {
				fail(field, msg)
				continue
			}
			p.regexes = append(p.regexes, re)
		default:
			canon, msg := canonicalOrigin(s)
			if msg != "" {
				fail(field, msg)
				continue
			}
			p.exact[canon] = struct{}{}
		}
	}
	p.static = p.anyOrigin && !credentials

	var methods []string
	for i, m := range c.Methods {
		field := fmt.Sprintf("methods[%d]", i)
		switch {
		case m == "*":
			p.anyMethod = true
			continue
		case !h1.IsToken(m):
			fail(field, fmt.Sprintf("invalid method %q: a method has only letters, digits and !#$%%&'*+-.^_`|~", m))
			continue
		}
		m = normalizeMethod(m)
		if !contains(methods, m) {
			methods = append(methods, m)
		}
	}
	p.methods = methods
	if len(methods) > 0 && !p.anyMethod {
		p.allowMethods = []string{strings.Join(methods, ", ")}
	}

	headers, hs := headerList("headers", c.Headers, fail)
	p.headers = hs
	p.anyHeader = contains(hs, "*")
	if headers != "" && !p.anyHeader {
		p.allowHeaders = []string{headers}
	}
	if exposed, _ := headerList("exposed_headers", c.ExposedHeaders, fail); exposed != "" {
		p.exposeHeaders = []string{exposed}
	}

	if c.MaxAge != "" {
		secs, msg := maxAge(c.MaxAge)
		if msg != "" {
			fail("max_age", msg)
		} else {
			p.maxAge = []string{secs}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// headerList checks a list of header names and returns it joined for a
// response, and the names without duplicates (compared without regard to
// case, as header names are).
func headerList(name string, list []string, fail func(field, reason string)) (string, []string) {
	var out []string
	for i, h := range list {
		if !h1.IsToken(h) {
			fail(fmt.Sprintf("%s[%d]", name, i), fmt.Sprintf("invalid header name %q: a header name has only letters, digits and !#$%%&'*+-.^_`|~", h))
			continue
		}
		if !containsFold(out, h) {
			out = append(out, h)
		}
	}
	return strings.Join(out, ", "), out
}

// maxAge checks a max_age and returns it as sent. Beyond 2147483648 caches
// must treat delta-seconds as 2147483648 (RFC 9111, 1.2.2), so a bigger
// number is sent as that rather than refused: Emissary passes any number on.
func maxAge(s string) (string, string) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return "", fmt.Sprintf("must be a number of seconds, such as \"86400\"; got %q", s)
	}
	const most = 1 << 31
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > most {
		n = most
	}
	return strconv.FormatUint(n, 10), ""
}

// normalizeMethod upper-cases the methods browsers upper-case before they
// compare them (Fetch's "normalize a method"): a Mapping's "put" means what
// a browser sends as "PUT". Other methods are compared as written, as
// browsers compare them ("patch" stays "patch").
func normalizeMethod(m string) string {
	for _, std := range [...]string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"} {
		if strings.EqualFold(m, std) {
			return std
		}
	}
	return m
}

// compileOrigin compiles an origin expression to match whole origins. The
// source is parsed alone first: wrapped, ")|(" would compile into a
// different, valid expression.
func compileOrigin(src string, maxProgram int) (*regexp.Regexp, string) {
	if src == "" {
		return nil, "an empty regular expression after \"" + RegexPrefix + "\" would match nothing useful; write the expression after it"
	}
	parsed, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		// The annotation parser explains RE2's gaps (look-arounds,
		// back-references) at the field; this is the backstop.
		return nil, "invalid regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, "invalid regular expression: " + err.Error()
	}
	if n := len(prog.Inst); n > maxProgram {
		return nil, fmt.Sprintf("regular expression compiles to %d instructions; at most %d are allowed per expression", n, maxProgram)
	}
	if r, ok := upperLiteral(parsed); ok {
		return nil, fmt.Sprintf("the expression has the upper-case letter %q, but origins are matched in lower case, as browsers send them; write it in lower case", r)
	}
	re, err := regexp.Compile(`^(?:` + src + `)$`)
	if err != nil {
		return nil, "invalid regular expression: " + err.Error()
	}
	return re, ""
}

// upperLiteral finds a case-sensitive upper-case ASCII letter in re, which
// can never match a lower-cased origin.
func upperLiteral(re *syntax.Regexp) (rune, bool) {
	if re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0 {
		for _, r := range re.Rune {
			if r >= 'A' && r <= 'Z' {
				return r, true
			}
		}
	}
	for _, sub := range re.Sub {
		if r, ok := upperLiteral(sub); ok {
			return r, ok
		}
	}
	return 0, false
}

// defaultPort is the port a browser leaves out of an origin of scheme.
func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	case "ftp":
		return "21"
	}
	return ""
}

// canonicalOrigin checks an exact origin and returns it as a browser
// serializes it (RFC 6454, 6.1; the URL standard): scheme and host in lower
// case, IPv6 in its shortest form, no default port. Problems are phrased
// for the user.
func canonicalOrigin(s string) (string, string) {
	const form = "an origin is scheme://host[:port], such as https://app.example.com"
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 {
			return "", fmt.Sprintf("invalid origin %q: write the host in its ASCII (punycode) form, as browsers send it (such as https://xn--bcher-kva.example)", s)
		} else if c <= ' ' || c == 0x7f {
			return "", fmt.Sprintf("invalid origin %q: it has whitespace or a control character", s)
		}
	}
	// Emissary hands every origin to Envoy as an exact match, so a glob or
	// an expression written there never matched anything; say how to write
	// what was meant.
	if strings.ContainsAny(s, `*\^$|(){}+`) {
		suggest := regexp.QuoteMeta(strings.ToLower(s))
		if strings.Contains(s, "*") {
			suggest = strings.ReplaceAll(suggest, `\*`, `[a-z0-9-]+`)
		}
		return "", fmt.Sprintf("invalid origin %q: an exact origin has no wildcards or regular-expression syntax; to match many origins write an expression after %q, such as %q", s, RegexPrefix, RegexPrefix+suggest)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !isScheme(scheme) {
		return "", fmt.Sprintf("invalid origin %q: %s", s, form)
	}
	scheme = strings.ToLower(scheme)
	if scheme == "file" {
		return "", fmt.Sprintf("invalid origin %q: file: pages have the origin \"null\", which every sandboxed document shares; list \"null\" to allow them", s)
	}
	if path := strings.IndexAny(rest, "/?#"); path >= 0 {
		if rest[path:] == "/" {
			return "", fmt.Sprintf("invalid origin %q: an origin has no path; write %q", s, strings.TrimSuffix(s, "/"))
		}
		return "", fmt.Sprintf("invalid origin %q: an origin has no path, query or fragment; %s", s, form)
	}
	if strings.Contains(rest, "@") {
		return "", fmt.Sprintf("invalid origin %q: an origin has no user information; %s", s, form)
	}
	host, port, msg := splitHostPort(rest)
	if msg != "" {
		return "", fmt.Sprintf("invalid origin %q: %s", s, msg)
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	canon := scheme + "://" + host
	if port != "" {
		canon += ":" + port
	}
	if len(canon) > MaxOriginLen {
		return "", fmt.Sprintf("invalid origin %q: longer than %d bytes, more than any browser sends", s, MaxOriginLen)
	}
	return canon, ""
}

// splitHostPort returns the host of an origin in canonical form and its
// port without leading zeros ("" when none).
func splitHostPort(s string) (host, port, msg string) {
	if rest, ok := strings.CutPrefix(s, "["); ok {
		addr, after, closed := strings.Cut(rest, "]")
		if !closed {
			return "", "", `"[" without "]"`
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", "", fmt.Sprintf("%q in brackets is not an IPv6 address", addr)
		}
		if strings.Contains(ip.String(), ".") {
			// Go writes these with a dotted IPv4 tail, browsers in hex.
			return "", "", fmt.Sprintf("IPv6 address %q with an embedded IPv4 address is not supported; write it in hexadecimal", addr)
		}
		host = "[" + ip.String() + "]"
		if after == "" {
			return host, "", ""
		}
		p, ok := strings.CutPrefix(after, ":")
		if !ok {
			return "", "", fmt.Sprintf("unexpected %q after the IPv6 address", after)
		}
		port, msg = cleanPort(p)
		return host, port, msg
	}
	host, p, hasPort := strings.Cut(s, ":")
	if host == "" {
		return "", "", "the host is empty"
	}
	for i := 0; i < len(host); i++ {
		if !hostByte(host[i]) {
			return "", "", fmt.Sprintf("the host %q has %q; a host has only letters, digits and -._~", host, host[i])
		}
	}
	if hasPort {
		port, msg = cleanPort(p)
	}
	return strings.ToLower(host), port, msg
}

// cleanPort checks a port and drops its leading zeros, as browsers do. An
// empty port is no port, as in "https://a.example:".
func cleanPort(p string) (string, string) {
	if p == "" {
		return "", ""
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || strings.TrimLeft(p, "0123456789") != "" {
		return "", fmt.Sprintf("port %q is not a number from 0 to 65535", p)
	}
	return strconv.FormatUint(n, 10), ""
}

func isScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// hostByte reports whether c may appear in a host name of an origin this
// package accepts: what browsers send for DNS names and IPv4 addresses.
func hostByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Preflight reports whether r is a CORS preflight (OPTIONS with an Origin
// and an Access-Control-Request-Method) and, if so, answers it on w: the
// gateway answers preflights itself, they never reach the upstream.
//
// The answer is 200 with no body. When the origin, the requested method and
// every requested header are allowed it carries Access-Control-Allow-Origin,
// -Allow-Credentials, -Allow-Methods, -Allow-Headers and -Max-Age as
// configured; otherwise none of them, and the browser does not send the
// request. Methods a browser sends without asking (GET, HEAD, POST) are
// always allowed; with methods unset, only they are, and no
// Access-Control-Allow-Methods is sent (as Envoy, whose empty allow_methods
// leaves browsers to allow only those). With headers unset, no request
// header needing a preflight is allowed: Envoy does not reflect
// Access-Control-Request-Headers either, unless allow_headers is "*".
func (p *Policy) Preflight(w http.ResponseWriter, r *http.Request) bool {
	if p == nil || r.Method != http.MethodOptions {
		return false
	}
	origin, method := r.Header["Origin"], r.Header[hRequestMethod]
	if len(origin) == 0 || origin[0] == "" || len(method) == 0 || method[0] == "" {
		return false
	}
	h := w.Header()
	deleteOwned(h)
	h["Vary"] = p.preflightVary
	h["Content-Length"] = p.zero
	if allow := p.allowOrigin(origin); allow != nil && p.methodAllowed(method) && p.headersAllowed(r.Header[hRequestHeaders]) {
		h[hAllowOrigin] = allow
		if p.credentials != nil {
			h[hAllowCredentials] = p.credentials
		}
		switch {
		case p.anyMethod:
			h[hAllowMethods] = method[:1:1]
		case p.allowMethods != nil:
			h[hAllowMethods] = p.allowMethods
		}
		switch requested := r.Header[hRequestHeaders]; {
		case p.anyHeader && hasNonEmpty(requested):
			h[hAllowHeaders] = requested[:len(requested):len(requested)]
		case p.allowHeaders != nil:
			h[hAllowHeaders] = p.allowHeaders
		}
		if p.maxAge != nil {
			h[hMaxAge] = p.maxAge
		}
	}
	w.WriteHeader(http.StatusOK)
	return true
}

// Apply adds to h, the header map of the response to r, the headers an
// actual (non-preflight) request gets: for an allowed origin,
// Access-Control-Allow-Origin, -Allow-Credentials and -Expose-Headers; for
// any other request none of them. Vary: Origin is added unless the answer
// is the same for every request (see Policy).
//
// Apply is called once the upstream's header fields are in h and before
// they are written, so that the policy replaces whatever Access-Control-*
// headers the upstream sent: those are removed from every response of the
// route, allowed origin or not. An existing Vary is kept and "Origin"
// appended to it, which allocates a slice; without one, Apply does not
// allocate for an allowed origin as browsers send it (lower case). The
// Access-Control-Allow-Origin it sets shares r's Origin value.
func (p *Policy) Apply(h http.Header, r *http.Request) {
	if p == nil {
		return
	}
	deleteOwned(h)
	if p.static {
		h[hAllowOrigin] = p.star
		if p.exposeHeaders != nil {
			h[hExposeHeaders] = p.exposeHeaders
		}
		return
	}
	addVaryOrigin(h, p.vary)
	allow := p.allowOrigin(r.Header["Origin"])
	if allow == nil {
		return
	}
	h[hAllowOrigin] = allow
	if p.credentials != nil {
		h[hAllowCredentials] = p.credentials
	}
	if p.exposeHeaders != nil {
		h[hExposeHeaders] = p.exposeHeaders
	}
}

// AllowsOrigin reports whether origin, an Origin header value, is allowed;
// for explaining a decision, not for the hot path.
func (p *Policy) AllowsOrigin(origin string) bool {
	return p != nil && p.allowOrigin([]string{origin}) != nil
}

// allowOrigin returns the Access-Control-Allow-Origin value for the Origin
// field values v, or nil when the origin is not allowed. Several Origin
// fields are not something a browser sends and allow nothing.
func (p *Policy) allowOrigin(v []string) []string {
	if p.static {
		return p.star
	}
	if len(v) != 1 {
		return nil
	}
	o := v[0]
	if o == "null" {
		if _, ok := p.exact["null"]; ok {
			return v[:1:1]
		}
		return nil
	}
	upper, ok := wellFormed(o)
	if !ok {
		return nil
	}
	echo := v[:1:1] // the full slice expression makes a later Add copy
	if _, ok := p.exact[o]; ok {
		return echo
	}
	lower := o
	if upper {
		var buf [MaxOriginLen]byte
		b := buf[:copy(buf[:], o)]
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		if _, ok := p.exact[string(b)]; ok { // no allocation for a map index
			return echo
		}
		if p.anyOrigin || len(p.regexes) > 0 {
			lower = string(b)
		}
	}
	if p.anyOrigin {
		return echo
	}
	for _, re := range p.regexes {
		if re.MatchString(lower) {
			return echo
		}
	}
	return nil
}

// wellFormed reports whether o is an origin as browsers serialize one,
// scheme://host[:port] with a DNS name, IPv4 or bracketed IPv6 host, at
// most MaxOriginLen bytes long, and whether it has upper-case letters.
// Only such a value is echoed in a response or given to an expression.
func wellFormed(o string) (upper, ok bool) {
	if len(o) > MaxOriginLen {
		return false, false
	}
	i := strings.Index(o, "://")
	if i <= 0 || !isScheme(o[:i]) {
		return false, false
	}
	rest := o[i+3:]
	var host string
	if strings.HasPrefix(rest, "[") {
		j := strings.IndexByte(rest, ']')
		if j < 2 {
			return false, false
		}
		for k := 1; k < j; k++ {
			if c := rest[k]; !isDigit(c) && !(c|0x20 >= 'a' && c|0x20 <= 'f') && c != ':' && c != '.' {
				return false, false
			}
		}
		host, rest = rest[:j+1], rest[j+1:]
	} else {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			j = len(rest)
		}
		host, rest = rest[:j], rest[j:]
		if host == "" {
			return false, false
		}
		for k := 0; k < len(host); k++ {
			if !hostByte(host[k]) {
				return false, false
			}
		}
	}
	if rest != "" {
		port := rest[1:]
		if rest[0] != ':' || port == "" || len(port) > 5 {
			return false, false
		}
		for k := 0; k < len(port); k++ {
			if !isDigit(port[k]) {
				return false, false
			}
		}
	}
	for k := 0; k < i+3+len(host); k++ {
		if c := o[k]; c >= 'A' && c <= 'Z' {
			return true, true
		}
	}
	return false, true
}

// methodAllowed checks an Access-Control-Request-Method. Methods are
// compared as written, as browsers compare them.
func (p *Policy) methodAllowed(v []string) bool {
	if len(v) != 1 || !h1.IsToken(v[0]) {
		return false
	}
	switch m := v[0]; {
	case p.anyMethod:
		return true
	case m == http.MethodGet || m == http.MethodHead || m == http.MethodPost:
		return true // CORS-safelisted: browsers never need them listed
	default:
		return contains(p.methods, m)
	}
}

// headersAllowed checks the Access-Control-Request-Headers field values: a
// comma-separated list of header names, empty elements ignored (RFC 9110,
// 5.6.1), each allowed without regard to case. A name that is not a token
// is refused even under "*", since "*" echoes the names back.
func (p *Policy) headersAllowed(v []string) bool {
	for _, line := range v {
		for line != "" {
			var name string
			name, line, _ = strings.Cut(line, ",")
			name = strings.Trim(name, " \t")
			if name == "" {
				continue
			}
			if !h1.IsToken(name) || !p.anyHeader && !containsFold(p.headers, name) {
				return false
			}
		}
	}
	return true
}

func hasNonEmpty(v []string) bool {
	for _, s := range v {
		if strings.Trim(s, " \t,") != "" {
			return true
		}
	}
	return false
}

// deleteOwned removes the response headers a policy decides, so that the
// upstream's cannot stand beside (or instead of) the policy's.
func deleteOwned(h http.Header) {
	delete(h, hAllowOrigin)
	delete(h, hAllowCredentials)
	delete(h, hAllowMethods)
	delete(h, hAllowHeaders)
	delete(h, hExposeHeaders)
	delete(h, hMaxAge)
}

// addVaryOrigin adds "Origin" to h's Vary unless it is there already (or
// Vary is "*", which covers it). vary is the policy's shared ["Origin"].
func addVaryOrigin(h http.Header, vary []string) {
	v, ok := h["Vary"]
	if !ok {
		h["Vary"] = vary
		return
	}
	for _, line := range v {
		for line != "" {
			var tok string
			tok, line, _ = strings.Cut(line, ",")
			tok = strings.Trim(tok, " \t")
			if tok == "*" || strings.EqualFold(tok, "Origin") {
				return
			}
		}
	}
	// Copied, never appended in place: the upstream's slice may share an
	// array with other fields.
	h["Vary"] = append(v[:len(v):len(v)], "Origin")
}
