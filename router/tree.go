package router

import (
	"math"
	"math/bits"
	"slices"
	"strings"
)

// tree is a compact radix tree over paths, case-sensitive or over
// lower-cased keys. A node's full key is the concatenation of the edge
// labels from the root (whose label is usually "/") down to it; a unit sits
// at the node whose full key is its Path (for Regex routes, the
// expression's literal prefix), lower-cased in a case-insensitive tree.
//
// New builds a tree of linked nodes, where edges split easily, and finish
// freezes it into flat slices in breadth-first order: a node's children are
// adjacent, a node is one 64-byte record holding everything the descent
// reads, and labels and units live in shared arrays. A lookup then touches
// about one cache line per level instead of following pointers to a
// separate label, index string and candidate slice.
type tree struct {
	nodes  []node      // after finish; nodes[0] is the root
	wide   []byteIndex // the child indices of nodes with many children
	ranks  []int32     // the units of every node, each node's best rank first
	labels string      // all edge labels, concatenated
	build  *buildNode  // before finish; nil when the tree is empty
}

type buildNode struct {
	prefix   string // edge label from the parent
	indices  string // first byte of each child's prefix, parallel to children
	children []*buildNode
	ranks    []int32 // units sitting here, best rank first
}

type node struct {
	// head holds the first eight bytes of the label (fewer: zero-padded,
	// with headMask covering only the real ones), so that most edges compare
	// in one load.
	head, headMask uint64
	// small holds the first bytes of the children's labels, ascending, when
	// there are at most eight of them; otherwise the position of the node's
	// byteIndex in tree.wide.
	small uint64
	kids  uint16 // number of children
	flags uint8  // about top: topPlain, topExact
	first int32  // position of the first child
	best  int32  // best rank here or below: the walk stops where nothing deeper can win
	label int32  // offset of the edge label in tree.labels
	// length is the length of the edge label.
	length int32
	// top is the best unit here (when units > 0): with flags, the common
	// case of a node whose best unit has no condition beyond its path is
	// settled without reading tree.ranks or the unit's conditions.
	top   int32
	ranks int32 // offset of the node's units in tree.ranks
	units int32 // number of units
	// up is the nearest ancestor holding units (-1 for none) and upBest the
	// best rank of all ancestors: the lookup checks candidates from the
	// deepest node up, skipping empty nodes, and stops once no ancestor can
	// win.
	up     int32
	upBest int32
}

// Flags of a node's top unit.
const (
	topPlain = 1 << iota // no condition beyond the host and the path prefix
	topExact             // an Exact path: it needs the request path to end here
)

// byteIndex finds a child by its first byte in one load: entry c is the
// position of the child whose label starts with c. Entries of bytes no
// child starts with are 0, and the comparison of the label that follows
// rejects the first child for them. It costs 256 bytes, on nodes with more
// than eight children only.
type byteIndex [256]uint8

// nodeLabel returns n's edge label.
func (t *tree) nodeLabel(n *node) string {
	return t.labels[n.label : n.label+n.length]
}

// nodeRanks returns n's units, best first.
func (t *tree) nodeRanks(n *node) []int32 {
	return t.ranks[n.ranks : n.ranks+n.units]
}

// insert adds rank at key, splitting edges as needed. Callers insert in rank
// order so every ranks slice stays sorted.
func (t *tree) insert(key string, rank int32) {
	if t.build == nil {
		t.build = &buildNode{}
	}
	n := t.build
	for {
		if key == "" {
			n.ranks = append(n.ranks, rank)
			return
		}
		i := strings.IndexByte(n.indices, key[0])
		if i < 0 {
			n.indices += key[:1]
			n.children = append(n.children, &buildNode{prefix: key, ranks: []int32{rank}})
			return
		}
		child := n.children[i]
		l := commonPrefixLen(key, child.prefix)
		if l < len(child.prefix) {
			mid := &buildNode{
				prefix:   child.prefix[:l],
				indices:  child.prefix[l : l+1],
				children: []*buildNode{child},
			}
			child.prefix = child.prefix[l:]
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

// finish freezes the linked nodes into t.nodes, children ordered by their
// first byte so that dumps are stable, and computes best, top, up and
// upBest; conds are the units' conditions, by rank.
func (t *tree) finish(conds []cond) {
	if t.build == nil {
		return
	}
	// A root without units and with one child is only a step: the child
	// becomes the root, label and all, and the walk starts one level lower.
	// Most trees have one, as every Prefix and Exact path starts with "/".
	root := t.build
	if len(root.ranks) == 0 && len(root.children) == 1 {
		root = root.children[0]
	}
	queue := []*buildNode{root}
	size, units := 0, 0
	for i := 0; i < len(queue); i++ {
		b := queue[i]
		slices.SortFunc(b.children, func(x, y *buildNode) int { return int(x.prefix[0]) - int(y.prefix[0]) })
		queue = append(queue, b.children...)
		size += len(b.prefix)
		units += len(b.ranks)
	}
	t.nodes = make([]node, len(queue))
	t.ranks = make([]int32, 0, units)
	var labels strings.Builder
	labels.Grow(size)
	first := 1
	for i, b := range queue {
		n := &t.nodes[i]
		n.first, n.kids = int32(first), uint16(len(b.children)) // at most 256, one per byte
		first += len(b.children)
		n.label, n.length = int32(labels.Len()), int32(len(b.prefix))
		labels.WriteString(b.prefix)
		n.ranks, n.units = int32(len(t.ranks)), int32(len(b.ranks))
		t.ranks = append(t.ranks, b.ranks...)
		if len(b.ranks) > 0 {
			n.top = b.ranks[0]
			if c := &conds[n.top]; c.plain {
				n.flags |= topPlain
				if c.kind == Exact {
					n.flags |= topExact
				}
			}
		}
		for k := range min(len(b.prefix), 8) {
			n.head |= uint64(b.prefix[k]) << (8 * k)
			n.headMask |= 0xff << (8 * k)
		}
		if len(b.children) <= 8 {
			for k, c := range b.children {
				n.small |= uint64(c.prefix[0]) << (8 * k)
			}
			continue
		}
		var x byteIndex
		for k, c := range b.children {
			x[c.prefix[0]] = uint8(k) // at most 256 children, one per byte
		}
		n.small = uint64(len(t.wide))
		t.wide = append(t.wide, x)
	}
	t.labels = labels.String()
	// Parents come before their children: ancestors top-down, subtree
	// bests bottom-up.
	t.nodes[0].up, t.nodes[0].upBest = -1, math.MaxInt32
	for i := range t.nodes {
		n := &t.nodes[i]
		up, upBest := n.up, n.upBest
		if n.units > 0 {
			up, upBest = int32(i), min(upBest, t.ranks[n.ranks])
		}
		for c := n.first; c < n.first+int32(n.kids); c++ {
			t.nodes[c].up, t.nodes[c].upBest = up, upBest
		}
	}
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := &t.nodes[i]
		n.best = math.MaxInt32
		if n.units > 0 {
			n.best = t.ranks[n.ranks]
		}
		for c := n.first; c < n.first+int32(n.kids); c++ {
			n.best = min(n.best, t.nodes[c].best)
		}
	}
	t.build = nil
}

// lookup returns the better of best and the best-ranked unit in the tree
// that matches; fold says the tree is over lower-cased keys, and the walk
// lower-cases the request path as it goes instead of copying it. It
// descends as far as the path allows and as long as something below can
// beat best, then checks candidates from the deepest node up. The tree must
// not be empty: callers skip a tree whose best rank cannot win, and an
// empty one has none.
//
// The descent makes no calls: Go keeps no registers across a call, and the
// spills around even a cold call slow every step of the loop.
func (t *tree) lookup(conds []cond, m *matcher, best int32, fold bool) int32 {
	nodes := t.nodes
	path := m.req.Path
	at, next, i := -1, 0, 0 // the deepest node matched so far, the one to try
descend:
	for {
		n := &nodes[next]
		rem := len(path) - i
		if n.best >= best || rem < int(n.length) {
			break
		}
		// Compare the label a word at a time: most labels are short and most
		// paths long, so one masked word usually settles it.
		if rem >= 8 {
			w := le64(path[i:])
			if fold {
				w = lowerWord(w)
			}
			if w&n.headMask != n.head {
				break
			}
			if n.length > 8 {
				label, p := t.labels[n.label+8:n.label+n.length], path[i+8:]
				for ; len(label) >= 8; label, p = label[8:], p[8:] {
					w := le64(p)
					if fold {
						w = lowerWord(w)
					}
					if w != le64(label) {
						break descend
					}
				}
				for j := 0; j < len(label); j++ {
					if c := p[j]; c != label[j] && (!fold || lower(c) != label[j]) {
						break descend
					}
				}
			}
		} else {
			label := t.labels[n.label : n.label+n.length]
			for j := 0; j < len(label); j++ {
				if c := path[i+j]; c != label[j] && (!fold || lower(c) != label[j]) {
					break descend
				}
			}
		}
		i += int(n.length)
		at = next
		if i == len(path) {
			break
		}
		c := path[i]
		if fold {
			c = lower(c)
		}
		var k int
		if n.kids <= 8 {
			// The classic test for a zero byte, on small with c xored out:
			// the lowest set bit marks the first child starting with c. The
			// padding (zero bytes) can only match c == 0, past the real
			// children.
			x := n.small ^ uint64(c)*bytes01
			if k = bits.TrailingZeros64((x-bytes01)&^x&bytes80) >> 3; k >= int(n.kids) {
				break
			}
		} else {
			k = int(t.wide[n.small][c])
		}
		next = int(n.first) + k
	}
	if at < 0 {
		return best
	}
	// Check candidates from the deepest node up: deeper nodes hold longer
	// paths, which usually rank better, so the early best lets shallower
	// nodes be skipped by a single comparison. Only the deepest node can end
	// exactly where the path does.
	atEnd := i == len(path)
	for {
		n := &nodes[at]
		if n.units > 0 && n.top < best {
			if n.flags&topPlain != 0 && (n.flags&topExact == 0 || atEnd) && m.allow == nil {
				best = n.top
			} else {
				for _, r := range t.nodeRanks(n) {
					if r >= best {
						break
					}
					c := &conds[r]
					// A unit of a tenant the owned host does not allow is
					// simply not a match: the walk goes on as if it had
					// failed its conditions.
					if m.allow != nil && !allows(m.allow, c.tenancy) {
						continue
					}
					if c.plain && (c.kind != Exact || atEnd) || c.matches(m, atEnd) {
						best = r
						break
					}
				}
			}
		}
		if n.upBest >= best {
			return best
		}
		at, atEnd = int(n.up), false
	}
}
