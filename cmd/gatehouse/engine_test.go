package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServeRefusesUnknownEngine: a mistyped --engine stops serve before it
// listens, naming the choices.
func TestServeRefusesUnknownEngine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--from-dir", t.TempDir(), "--engine", "fasst"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--engine must be fast or net/http") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
