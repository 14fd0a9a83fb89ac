//go:build !race

package grpcweb

const raceEnabled = false
