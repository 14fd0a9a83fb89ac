package router

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteTo writes a readable dump of the table: each host bucket (exact hosts,
// then wildcards, then the host-less bucket), its path tree one node per
// line indented by depth with the node's edge label quoted, and under each
// node its routes in rank order. It exists for golden tests and for the
// `gatehouse routes` command; the format is not stable.
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
	for _, host := range sortedKeys(t.exact) {
		d.printf("host %q\n", host)
		d.node(t.exact[host], 1)
	}
	for _, suffix := range sortedKeys(t.wild) {
		d.printf("host %q\n", "*"+suffix)
		d.node(t.wild[suffix], 1)
	}
	if t.any != nil {
		d.printf("any host\n")
		d.node(t.any, 1)
	}
	return d.n, d.err
}

func sortedKeys(m map[string]*node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
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

func (d *dumper[T]) node(n *node, depth int) {
	indent := strings.Repeat("  ", depth)
	d.printf("%s%q\n", indent, n.prefix)
	for _, rank := range n.ranks {
		r := &d.t.routes[rank]
		var b strings.Builder
		fmt.Fprintf(&b, "%s  #%d %s %q id=%q", indent, rank, r.Kind, r.Path, r.ID)
		if r.Precedence != 0 {
			fmt.Fprintf(&b, " precedence=%d", r.Precedence)
		}
		if r.Method != "" {
			fmt.Fprintf(&b, " method=%s", r.Method)
		}
		for _, hm := range r.Headers {
			if hm.Present {
				fmt.Fprintf(&b, " header=%s", hm.Name)
			} else {
				fmt.Fprintf(&b, " header=%s:%q", hm.Name, hm.Value)
			}
		}
		d.printf("%s\n", b.String())
	}
	for _, c := range n.children {
		d.node(c, depth+1)
	}
}
