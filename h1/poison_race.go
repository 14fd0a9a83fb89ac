//go:build race

package h1

// poison: see Arena. The race detector's builds are the ones CI runs the
// tests with, and the only ones that pay for overwriting.
const poison = true
