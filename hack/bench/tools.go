package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// tool is a program the benchmark runs and the Debian packages that bring
// it, the first that the archive has wins (nginx-light is gone from newer
// releases, where plain nginx is as small).
type tool struct {
	name     string
	packages []string
}

var (
	toolNginx   = tool{"nginx", []string{"nginx-light", "nginx"}}
	toolWrk     = tool{"wrk", []string{"wrk"}}
	toolTaskset = tool{"taskset", []string{"util-linux"}}
)

// ensureTools installs the missing tools from Debian when running as root
// and says which are missing otherwise.
func ensureTools(ctx context.Context, tools []tool) error {
	var missing []tool
	for _, t := range tools {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var names, pkgs []string
	for _, t := range missing {
		names = append(names, t.name)
		pkgs = append(pkgs, t.packages[0])
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not found on PATH; install them (apt-get install -y %s) or run this as root to have it done",
			strings.Join(names, ", "), strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s not found on PATH, and no apt-get to install them with", strings.Join(names, ", "))
	}
	// An install can wait on a slow mirror; it must not wait forever.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	updated := false
	for _, t := range missing {
		if err := aptInstall(ctx, t, &updated); err != nil {
			return err
		}
		if _, err := exec.LookPath(t.name); err != nil {
			return fmt.Errorf("installed %s but %s is still not on PATH", strings.Join(t.packages, " or "), t.name)
		}
	}
	return nil
}

// aptInstall tries t's packages in turn, refreshing the package lists once
// (a fresh machine may have none) before giving up.
func aptInstall(ctx context.Context, t tool, updated *bool) error {
	var lastErr error
	for {
		for _, pkg := range t.packages {
			logf("installing %s (apt-get install -y --no-install-recommends %s)", t.name, pkg)
			if lastErr = apt(ctx, "install", "-y", "--no-install-recommends", pkg); lastErr == nil {
				return nil
			}
		}
		if *updated {
			return fmt.Errorf("installing %s: %w", t.name, lastErr)
		}
		logf("apt-get update")
		if err := apt(ctx, "update"); err != nil {
			return fmt.Errorf("installing %s: %w", t.name, err)
		}
		*updated = true
	}
}

func apt(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	// No prompts: there may be no terminal, and nobody to answer.
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// facts describe the machine a run was made on; they are printed with
// the table so that a figure is never quoted without them.
type facts struct {
	date        time.Time
	cpus        int
	cpuModel    string
	kernel      string
	goVersion   string
	nginx, wrk  string
	redis       string // "" when no row uses Redis
	load, after string // load averages before and after the run
}

// gatherFacts describes this machine and the tools; redis is the path of
// redis-server when a row uses it, "" otherwise.
func gatherFacts(ctx context.Context, withNginx bool, redis string) facts {
	f := facts{
		date:     time.Now().UTC(),
		cpus:     runtime.NumCPU(),
		cpuModel: cpuModel(),
		kernel:   firstLine(readFile("/proc/sys/kernel/osrelease")),
		load:     loadAvg(),
	}
	f.goVersion = firstLine(output(ctx, "go", "version"))
	// wrk has no version flag: -v prints its banner before the usage text
	// and exits non-zero, so the output counts whatever the status.
	f.wrk = firstLine(output(ctx, "wrk", "-v"))
	if withNginx {
		f.nginx = firstLine(output(ctx, "nginx", "-v"))
	}
	if redis != "" {
		f.redis = firstLine(output(ctx, redis, "--version"))
	}
	return f
}

func cpuModel() string {
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// output is a command's combined output, whatever its exit status, or
// "unknown" when it could not run.
func output(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if len(b) == 0 && err != nil {
		return "unknown"
	}
	return string(b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}
