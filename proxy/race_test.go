//go:build race

package proxy

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// allocation counts of pooled paths are only meaningful without it
// (hack/test runs the Allocs tests a second time, without it).
const raceEnabled = true
