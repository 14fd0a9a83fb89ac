package annotations

import "strings"

// What a Mapping, a Host and an Auth mean for routing, in one place: the builder,
// the webhook and the CLI read these rather than the raw fields, so that a
// rule such as "hostname wins over host" is decided once.

// Redirects reports whether the Mapping answers with a redirect
// (host_redirect) instead of proxying.
func (m *Mapping) Redirects() bool { return m.HostRedirect != nil && *m.HostRedirect }

// Mirrors reports whether the Mapping is a shadow, which Emissary sends
// copies of traffic to and which must never take traffic itself.
func (m *Mapping) Mirrors() bool { return m.Shadow != nil && *m.Shadow }

// RouteHost is the host the Mapping matches: hostname wins over host
// (Emissary's rule), and "" means any host ("*" is written for it too).
func (m *Mapping) RouteHost() string {
	h := m.Host
	if m.Hostname != "" {
		h = m.Hostname
	}
	if h == "*" {
		return ""
	}
	return h
}

// RouteHostRegex reports whether RouteHost is a regular expression; a
// hostname is always a glob.
func (m *Mapping) RouteHostRegex() bool { return m.HostRegex && m.Hostname == "" }

// ExactHost is RouteHost when it names one host exactly (no wildcard, no
// regular expression, not any host): the hosts a namespace can own.
func (m *Mapping) ExactHost() (string, bool) {
	h := m.RouteHost()
	if h == "" || m.RouteHostRegex() || h[0] == '*' {
		return "", false
	}
	return h, true
}

// PathCaseSensitive is case_sensitive with its default, true.
func (m *Mapping) PathCaseSensitive() bool { return m.CaseSensitive == nil || *m.CaseSensitive }

// FieldPos is where field of m ("prefix", "headers.x-env") was written,
// else where its closest enclosing field was, else where m starts.
func (m *Mapping) FieldPos(field string) Position {
	return fieldPos(m.Positions, m.Pos, field)
}

// FieldPos is where field of h ("hostname", "tls_secret", "hsts.max_age")
// was written, else where its closest enclosing field was, else where h's
// document starts (so a default, such as insecure when not written, points
// at the document).
func (h *Host) FieldPos(field string) Position {
	return fieldPos(h.Positions, h.Pos, field)
}

// FieldPos is where field of a ("jwt.issuer", "external.service") was
// written, else where its closest enclosing field was, else where a's
// document starts (so a default, such as jwt.consumer_claim when not
// written, points at the document).
func (a *Auth) FieldPos(field string) Position {
	return fieldPos(a.Positions, a.Pos, field)
}

func fieldPos(positions map[string]Position, start Position, field string) Position {
	for field != "" {
		if p, ok := positions[field]; ok {
			return p
		}
		i := strings.LastIndexByte(field, '.')
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return start
}

// IsWildcard reports whether the Host names a wildcard ("*.example.com"),
// which covers exactly one label in front of the rest.
func (h *Host) IsWildcard() bool { return strings.HasPrefix(h.Hostname, "*.") }
