package limiter

import "golang.org/x/time/rate"

// Enforced is what this replica's buckets of l enforce now: the policy's
// rate and burst, or this replica's share of them (Registry.SetShare). For
// the admin listener's diagnostics page; O(1).
func (l *Limiter) Enforced() (rate.Limit, int) {
	rt := l.rates()
	return rt.limit, rt.burst
}
