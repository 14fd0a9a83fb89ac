package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a child pinned to one CPU, in its own process group so that
// stopping it also stops whatever it forked (nginx's worker).
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string // its stdout and stderr
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// startProcess runs argv under `taskset -c cpu`. taskset sets the affinity
// and then execs argv, so the child's PID is the program's own and every
// thread and child it makes inherits the pin.
func startProcess(name, logPath string, cpu int, env []string, extra []*os.File, argv ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s's log: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu)}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Should this program be killed outright, its children go too
		// (nginx's master then stops its worker).
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop ends the process group: SIGTERM, then SIGKILL if its leader has not
// exited within five seconds. Both signals go while the leader is alive, so
// the group id is still ours (nginx's master outlives its worker on
// SIGTERM). Idempotent.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	pgid := p.cmd.Process.Pid // Setpgid made the group's id the child's PID
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		logf("%s did not stop within 5s of SIGTERM; killing it", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
}

// logTail is the end of the process's output, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (`getconf CLK_TCK`), fixed by the
// kernel ABI whatever CONFIG_HZ is.
const clockTicks = 100

// procStat is what this program reads from /proc/PID/stat.
type procStat struct {
	ppid  int
	ticks int64 // utime + stime, all threads, in clockTicks
}

// parseProcStat reads /proc/PID/stat. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, err
	}
	return procStat{ppid: ppid, ticks: utime + stime}, nil
}

// tree returns root and its descendants with their stat, read from /proc
// in one pass. Processes that exit while it reads are left out.
func tree(root int) (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	all := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone, or not ours to read
		}
		st, err := parseProcStat(string(b))
		if err != nil {
			return nil, fmt.Errorf("reading /proc/%d/stat: %w", pid, err)
		}
		all[pid] = st
	}
	if _, ok := all[root]; !ok {
		return nil, fmt.Errorf("process %d is gone", root)
	}
	out := map[int]procStat{root: all[root]}
	// Processes are few; repeat until no new descendant turns up.
	for grew := true; grew; {
		grew = false
		for pid, st := range all {
			if _, in := out[pid]; !in {
				if _, parentIn := out[st.ppid]; parentIn {
					out[pid] = st
					grew = true
				}
			}
		}
	}
	return out, nil
}

// treeCPU is the CPU time used so far by root and its descendants.
func treeCPU(root int) (time.Duration, error) {
	t, err := tree(root)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, st := range t {
		ticks += st.ticks
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// treeRSS is the resident memory of root and its descendants (VmRSS), and
// the anonymous part of it (RssAnon: the heap and stacks, what the process
// itself allocated, as opposed to the pages of its executable and libraries
// it has touched). Pages shared between them (nginx's master and worker
// share code) count once per process, as in ps and top.
func treeRSS(root int) (rss, anon int64, err error) {
	t, err := tree(root)
	if err != nil {
		return 0, 0, err
	}
	for pid := range t {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		kb, err := parseStatusKB(string(b), "VmRSS")
		if err != nil {
			return 0, 0, fmt.Errorf("reading /proc/%d/status: %w", pid, err)
		}
		anonKB, err := parseStatusKB(string(b), "RssAnon")
		if err != nil {
			return 0, 0, fmt.Errorf("reading /proc/%d/status: %w", pid, err)
		}
		rss += kb * 1024
		anon += anonKB * 1024
	}
	return rss, anon, nil
}

// parseStatusKB returns the line of /proc/PID/status named key, in kB.
func parseStatusKB(s, key string) (int64, error) {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", key, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s line", key)
}

// cpuTimes is one CPU's line of /proc/stat, in clock ticks.
type cpuTimes struct{ busy, total int64 }

// readCPUTimes returns each CPU's busy and total time from /proc/stat, to
// tell whether a core was saturated and whether anything else ran on it.
func readCPUTimes() (map[int]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUTimes(string(b))
}

// parseCPUTimes reads the "cpuN user nice system idle iowait irq softirq
// steal ..." lines; busy is everything but idle and iowait.
func parseCPUTimes(s string) (map[int]cpuTimes, error) {
	out := map[int]cpuTimes{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var t cpuTimes
		// guest and guest_nice (fields 10, 11) are already in user and nice.
		for i := 1; i < len(f) && i <= 8; i++ {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			t.total += v
			if i != 4 && i != 5 { // idle, iowait
				t.busy += v
			}
		}
		out[n] = t
	}
	if len(out) == 0 {
		return nil, errors.New("no cpuN lines in /proc/stat")
	}
	return out, nil
}

// poll calls probe every 50 ms until it succeeds, giving up after 15 s or
// as soon as p exits; what names what readiness means, for the error.
func (p *process) poll(ctx context.Context, what string, probe func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before serving (%v):\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not %s within 15s (last: %v):\n%s", p.name, what, err, p.logTail())
		}
	}
}
