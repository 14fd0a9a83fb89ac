package kube

import "time"

// holdoff gathers changes into one rebuild. A kubectl apply of a manifest
// with a Service and its EndpointSlices, or a rollout that moves endpoints
// one by one, arrives as a burst of events; rebuilding once per burst
// instead of once per event saves work without delaying a lone change by
// more than quiet. The cap keeps a steady trickle (a large rollout) from
// postponing the rebuild forever.
//
// The zero value holds no changes; quiet and max must be set.
type holdoff struct {
	quiet time.Duration // how long the stream must pause
	max   time.Duration // how long the first change may wait at most

	pending     bool
	first, last time.Time
}

// add records a change seen at now.
func (h *holdoff) add(now time.Time) {
	if !h.pending {
		h.pending, h.first = true, now
	}
	h.last = now
}

// due is when the pending changes must be applied; meaningless when none
// are pending.
func (h *holdoff) due() time.Time {
	d := h.last.Add(h.quiet)
	if limit := h.first.Add(h.max); limit.Before(d) {
		return limit
	}
	return d
}

// take reports whether changes are pending and due at now, and if so
// forgets them: the caller applies them.
func (h *holdoff) take(now time.Time) bool {
	if !h.pending || now.Before(h.due()) {
		return false
	}
	h.pending = false
	return true
}
