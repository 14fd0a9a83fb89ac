package router

import (
	"net/http"
	"slices"
	"strings"
)

// node is one node of a compact path radix tree. A node's full key is the
// concatenation of the prefixes from the root (whose prefix is "") down to
// it; a route sits at the node whose full key is its Path (for Regex routes,
// the expression's literal prefix).
type node struct {
	prefix   string  // edge label from the parent; non-empty except at the root
	indices  string  // first byte of each child's prefix, parallel to children
	children []*node //
	parent   *node   // lets the lookup check candidates from the deepest node up without a stack
	ranks    []int32 // routes sitting here, best rank first
}

// insert adds rank at key below n, splitting edges as needed. Callers insert
// in rank order so every ranks slice stays sorted.
func (n *node) insert(key string, rank int32) {
	for {
		if key == "" {
			n.ranks = append(n.ranks, rank)
			return
		}
		i := strings.IndexByte(n.indices, key[0])
		if i < 0 {
			n.indices += key[:1]
			n.children = append(n.children, &node{prefix: key, parent: n, ranks: []int32{rank}})
			return
		}
		child := n.children[i]
		l := commonPrefixLen(key, child.prefix)
		if l < len(child.prefix) {
			mid := &node{
				prefix:   child.prefix[:l],
				indices:  child.prefix[l : l+1],
				children: []*node{child},
				parent:   n,
			}
			child.prefix = child.prefix[l:]
			child.parent = mid
			n.children[i] = mid
			child = mid
		}
		key = key[l:]
		n = child
	}
}

func commonPrefixLen(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// finish orders children by their first byte so dumps are stable and readable.
func (n *node) finish() {
	slices.SortFunc(n.children, func(a, b *node) int { return int(a.prefix[0]) - int(b.prefix[0]) })
	idx := make([]byte, len(n.children))
	for i, c := range n.children {
		idx[i] = c.prefix[0]
		c.finish()
	}
	n.indices = string(idx)
}

// lookup returns the better of best and the best-ranked route in this tree
// that matches. It descends as far as path allows, then checks candidates
// from the deepest node up: deeper nodes hold longer paths, which usually
// rank better, so the early best lets shallower nodes be skipped by a single
// comparison.
func (n *node) lookup(conds []cond, method, path string, h http.Header, best int32) int32 {
	rest := path
	for rest != "" {
		i := strings.IndexByte(n.indices, rest[0])
		if i < 0 {
			break
		}
		child := n.children[i]
		if !strings.HasPrefix(rest, child.prefix) {
			break
		}
		rest = rest[len(child.prefix):]
		n = child
	}
	atEnd := rest == "" // only the deepest node can end exactly where the path does
	for ; n != nil; n = n.parent {
		for _, r := range n.ranks {
			if r >= best {
				break
			}
			if conds[r].matches(atEnd, method, path, h) {
				best = r
				break
			}
		}
		atEnd = false
	}
	return best
}
