package router

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteTo writes a readable dump of the table: each host bucket (exact hosts,
// then wildcards, then host regexes in the order Match tries them, then the
// host-less bucket), its path trees (case-sensitive, then case-insensitive
// with lower-cased labels) one node per line indented by depth with the
// node's edge label quoted, and under each node its units in rank order, a
// group followed by its members and weights. An exact host's bucket that
// also holds the units of the wildcard, host-regex and host-less buckets
// that apply to it marks those with from-host or from-any-host. An owned
// host lists its tenants after the host (its bucket holds only their units),
// and a route with a Tenant shows it. It exists
// for golden tests and for the `gatehouse routes` command; the format is
// not stable.
//
//	routes: 1
//	host "api.example.com"
//	  "/api/"
//	    #0 exact "/api/" id="a" method=GET
func (t *Table[T]) WriteTo(w io.Writer) (int64, error) {
	d := &dumper[T]{w: w, t: t}
	if t == nil {
		d.printf("routes: 0\n")
		return d.n, d.err
	}
	d.printf("routes: %d\n", len(t.routes))
	for _, h := range sortedHosts(&t.exact) {
		if tenants, owned := t.owners[h.key]; owned {
			d.printf("host %q owners %q\n", h.key, tenants)
		} else {
			d.printf("host %q\n", h.key)
		}
		if h.b.complete {
			d.host = h.key
		}
		d.bucket(h.b)
		d.host = ""
	}
	for _, h := range sortedHosts(&t.wild) {
		d.printf("host %q\n", "*"+h.key)
		d.bucket(h.b)
	}
	for _, hr := range t.hostRes {
		d.printf("host regex %q\n", hr.src)
		d.bucket(hr.bucket)
	}
	if t.any != nil {
		d.printf("any host\n")
		d.bucket(t.any)
	}
	return d.n, d.err
}

func sortedHosts(h *hostTable) []hostSlot {
	var out []hostSlot
	h.each(func(key string, b *bucket) { out = append(out, hostSlot{key: key, b: b}) })
	slices.SortFunc(out, func(a, b hostSlot) int { return strings.Compare(a.key, b.key) })
	return out
}

// dumper remembers the first write error so the dump code stays linear.
type dumper[T any] struct {
	w    io.Writer
	t    *Table[T]
	n    int64
	err  error
	host string // of the complete bucket being written: units of other hosts are marked
}

func (d *dumper[T]) printf(format string, args ...any) {
	if d.err != nil {
		return
	}
	n, err := fmt.Fprintf(d.w, format, args...)
	d.n += int64(n)
	d.err = err
}

func (d *dumper[T]) bucket(b *bucket) {
	if b.exact.nodes != nil {
		d.node(&b.exact, 0, 1, "")
	}
	if b.fold.nodes != nil {
		d.node(&b.fold, 0, 1, " case-insensitive")
	}
}

func (d *dumper[T]) node(t *tree, at int32, depth int, note string) {
	n := &t.nodes[at]
	label := t.nodeLabel(n)
	indent := strings.Repeat("  ", depth)
	d.printf("%s%q%s\n", indent, label, note)
	for _, rank := range t.nodeRanks(n) {
		u := d.t.units[rank]
		r := &d.t.routes[u.first]
		var b strings.Builder
		fmt.Fprintf(&b, "%s  #%d %s %q", indent, rank, r.Kind, r.Path)
		if r.Group == "" {
			fmt.Fprintf(&b, " id=%q", r.ID)
			if r.Tenant != "" {
				fmt.Fprintf(&b, " tenant=%q", r.Tenant)
			}
		} else {
			fmt.Fprintf(&b, " group=%q", r.Group)
		}
		if r.CaseInsensitive {
			b.WriteString(" case-insensitive")
		}
		if r.Precedence != 0 {
			fmt.Fprintf(&b, " precedence=%d", r.Precedence)
		}

		switch {
		case r.MethodRegex:
			fmt.Fprintf(&b, " method~%q", r.Method)
		case r.Method != "":
			fmt.Fprintf(&b, " method=%s", r.Method)
		}
		for _, hm := range r.Headers {
			fmt.Fprintf(&b, " header=%s", hm.Name)
			if !hm.Present {
				b.WriteString(condValue(hm.Value, hm.Regex))
			}
		}
		for _, qm := range r.Query {
			fmt.Fprintf(&b, " query=%q", qm.Name)
			if !qm.Present {
				b.WriteString(condValue(qm.Value, qm.Regex))
			}
		}
		if d.host != "" {
			switch {
			case r.HostRegex:
				fmt.Fprintf(&b, " from-host~%q", r.Host)
			case r.Host == "":
				b.WriteString(" from-any-host")
			case r.Host != d.host:
				fmt.Fprintf(&b, " from-host=%q", r.Host)
			}
		}
		d.printf("%s\n", b.String())
		if r.Group != "" {
			for i := u.first; i < u.first+u.n; i++ {
				m := &d.t.routes[i]
				tenant := ""
				if m.Tenant != "" {
					tenant = fmt.Sprintf(" tenant=%q", m.Tenant)
				}
				d.printf("%s    id=%q weight=%d%s\n", indent, m.ID, m.Weight, tenant)
			}
		}
	}
	for c := n.first; c < n.first+int32(n.kids); c++ {
		d.node(t, c, depth+1, "")
	}
}

// condValue renders an exact condition as :"value" and a regex as ~"expr".
func condValue(v string, regex bool) string {
	if regex {
		return fmt.Sprintf("~%q", v)
	}
	return fmt.Sprintf(":%q", v)
}
