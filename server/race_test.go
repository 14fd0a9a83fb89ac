//go:build race

package server

// raceEnabled says the figures of TestConnectionMemory come from a race
// build, whose stacks are larger and whose RSS includes shadow memory.
const raceEnabled = true
