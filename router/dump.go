package router

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteTo writes a readable dump of the table: each host bucket (exact hosts,
// then wildcards, then host regexes in the order Match tries them, then the
// host-less bucket), its path trees (case-sensitive, then case-insensitive
// with lower-cased labels) one node per line indented by depth with the
// node's edge label quoted, and under each node its units in rank order, a
// group followed by its members and weights. It exists for golden tests and
// for the `gatehouse routes` command; the format is not stable.
//
//	routes: 1
//	host "api.example.com"
//	  ""
//	    "/api/"
//	      #0 exact "/api/" id="a" method=GET
func (t *Table[T]) WriteTo(w io.Writer) (int64, error) {
	d := &dumper[T]{w: w, t: t}
	if t == nil {
		d.printf("routes: 0\n")
		return d.n, d.err
	}
	d.printf("routes: %d\n", len(t.routes))
	for _, host := range slices.Sorted(maps.Keys(t.exact)) {
		d.printf("host %q\n", host)
		d.bucket(t.exact[host])
	}
	for _, suffix := range slices.Sorted(maps.Keys(t.wild)) {
		d.printf("host %q\n", "*"+suffix)
		d.bucket(t.wild[suffix])
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

// dumper remembers the first write error so the dump code stays linear.
type dumper[T any] struct {
	w   io.Writer
	t   *Table[T]
	n   int64
	err error
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
	if b.exact.root != nil {
		d.node(b.exact.root, 1, "")
	}
	if b.fold.root != nil {
		d.node(b.fold.root, 1, " case-insensitive")
	}
}

func (d *dumper[T]) node(n *node, depth int, note string) {
	indent := strings.Repeat("  ", depth)
	d.printf("%s%q%s\n", indent, n.prefix, note)
	for _, rank := range n.ranks {
		u := d.t.units[rank]
		r := &d.t.routes[u.first]
		var b strings.Builder
		fmt.Fprintf(&b, "%s  #%d %s %q", indent, rank, r.Kind, r.Path)
		if r.Group == "" {
			fmt.Fprintf(&b, " id=%q", r.ID)
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
		d.printf("%s\n", b.String())
		if r.Group != "" {
			for i := u.first; i < u.first+u.n; i++ {
				d.printf("%s    id=%q weight=%d\n", indent, d.t.routes[i].ID, d.t.routes[i].Weight)
			}
		}
	}
	for _, c := range n.children {
		d.node(c, depth+1, "")
	}
}

// condValue renders an exact condition as :"value" and a regex as ~"expr".
func condValue(v string, regex bool) string {
	if regex {
		return fmt.Sprintf("~%q", v)
	}
	return fmt.Sprintf(":%q", v)
}
