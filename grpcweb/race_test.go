//go:build race

package grpcweb

const raceEnabled = true
