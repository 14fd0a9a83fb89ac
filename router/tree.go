package router

import (
	"slices"
	"strings"
)

// node is one node of a compact path radix tree. A node's full key is the
// concatenation of the prefixes from the root (whose prefix is "") down to
// it; a unit sits at the node whose full key is its Path (for Regex routes,
// the expression's literal prefix), lower-cased in a case-insensitive tree.
type node struct {
	prefix   string  // edge label from the parent; non-empty except at the root
	indices  string  // first byte of each child's prefix, parallel to children
	children []*node //
	parent   *node   // lets the lookup check candidates from the deepest node up without a stack
	ranks    []int32 // units sitting here, best rank first
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

// lookup returns the better of best and the best-ranked unit in this tree
// that matches. It descends as far as the request path allows, then checks
// candidates from the deepest node up.
func (n *node) lookup(conds []cond, m *matcher, best int32) int32 {
	path := m.req.Path
	i := 0
	for i < len(path) {
		k := strings.IndexByte(n.indices, path[i])
		if k < 0 {
			break
		}
		child := n.children[k]
		if !strings.HasPrefix(path[i:], child.prefix) {
			break
		}
		i += len(child.prefix)
		n = child
	}
	return n.check(conds, m, i == len(path), best)
}

// lookupFold is lookup for a tree of lower-cased keys: it lower-cases the
// request path byte by byte as it descends instead of copying it.
func (n *node) lookupFold(conds []cond, m *matcher, best int32) int32 {
	path := m.req.Path
	i := 0
	for i < len(path) {
		k := strings.IndexByte(n.indices, lower(path[i]))
		if k < 0 {
			break
		}
		child := n.children[k]
		if !hasLowerPrefix(path[i:], child.prefix) {
			break
		}
		i += len(child.prefix)
		n = child
	}
	return n.check(conds, m, i == len(path), best)
}

// hasLowerPrefix reports whether s, ASCII lower-cased, starts with prefix.
func hasLowerPrefix(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// check tries the candidates of n and its ancestors, deepest first: deeper
// nodes hold longer paths, which usually rank better, so the early best lets
// shallower nodes be skipped by a single comparison. atEnd says the request
// path ends exactly at n.
func (n *node) check(conds []cond, m *matcher, atEnd bool, best int32) int32 {
	for ; n != nil; n = n.parent {
		for _, r := range n.ranks {
			if r >= best {
				break
			}
			if conds[r].matches(m, atEnd) {
				best = r
				break
			}
		}
		atEnd = false // only the deepest node can end exactly where the path does
	}
	return best
}
