//go:build race

package router

// raceEnabled: the race detector makes sync.Pool drop buffers on purpose,
// so allocation counts of pooled paths are only meaningful without it.
const raceEnabled = true
