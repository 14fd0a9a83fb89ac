package main

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// The command name holds a space and a parenthesis, as comm may.
	s := "4242 (nginx: a) b) S 4200 4242 4242 0 -1 4194624 1 0 0 0 250 75 0 0 20 0 1 0 100 1000 200 0\n"
	st, err := parseProcStat(s)
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 4200 || st.ticks != 325 {
		t.Errorf("parseProcStat = %+v, want ppid 4200, ticks 325", st)
	}
	if _, err := parseProcStat("4242 (x) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestTreeCPUOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := treeCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, anon, err := treeRSS(os.Getpid())
	if err != nil || rss <= 0 || anon <= 0 || anon > rss {
		t.Fatalf("treeRSS = %d (anon %d), %v", rss, anon, err)
	}
}

func TestParseCPUTimes(t *testing.T) {
	s := "cpu  10 0 10 100 5 0 0 0 0 0\ncpu0 4 1 2 50 3 1 1 1 7 0\ncpu1 6 0 8 50 2 0 0 0 0 0\nintr 1 2 3\n"
	got, err := parseCPUTimes(s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]cpuTimes{0: {busy: 10, total: 63}, 1: {busy: 14, total: 66}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseCPUTimes = %+v, want %+v", got, want)
	}
}
