package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckTLSFlags runs two stand-ins for serve -h, one from before the
// HTTPS listener, and checks that the older one is refused with the rows
// that can still run.
func TestCheckTLSFlags(t *testing.T) {
	fake := func(flags string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "gatehouse")
		script := "#!/bin/sh\nprintf 'Usage of serve:\\n" + flags + "' >&2\nexit 2\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return bin
	}
	names := []string{"nginx", "gatehouse", "nginx-tls", "gatehouse-tls"}
	if err := checkTLSFlags(t.Context(), fake(`  -listen string\n  -listen-tls string\n`), names); err != nil {
		t.Errorf("a binary with --listen-tls: %v", err)
	}
	old := fake(`  -listen string\n`)
	err := checkTLSFlags(t.Context(), old, names)
	if err == nil || !strings.Contains(err.Error(), "(-configs nginx,gatehouse)") {
		t.Errorf("a binary without --listen-tls: err = %v, want one naming -configs nginx,gatehouse", err)
	}
	err = checkTLSFlags(t.Context(), old, []string{"gatehouse-tls"})
	if err == nil || strings.Contains(err.Error(), "-configs") {
		t.Errorf("only HTTPS rows asked for: err = %v, want one naming no -configs", err)
	}
}
