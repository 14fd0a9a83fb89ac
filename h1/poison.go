//go:build !race

package h1

// poison: see Arena.
const poison = false
