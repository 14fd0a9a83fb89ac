package files

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Dir is a directory of manifest files (*.yaml, *.yml, *.json; not recursive).
type Dir struct {
	Path string
	// Interval between checks for changes; zero means 250ms. Polling (not
	// inotify) is deliberate: editors and ConfigMap mounts replace files by
	// rename and symlink swaps, which polling sees the same way every time.
	Interval time.Duration
	// Options say how the files are read (--compat=emissary, say).
	Options Options

	afterPoll func() // test hook: called after every poll
}

// Load reads every manifest file in the directory, in name order.
func (d Dir) Load() (*Manifests, []Problem, error) {
	snap, err := d.read()
	if err != nil {
		return nil, nil, err
	}
	m, problems := d.parse(snap)
	return m, problems, nil
}

// dirFiles is what one poll read: the files' contents, in name order, and
// a digest of names and contents.
type dirFiles struct {
	names []string
	data  [][]byte
	sum   [32]byte
}

func (d Dir) read() (dirFiles, error) {
	var snap dirFiles
	names, err := d.files()
	if err != nil {
		return snap, err
	}
	h := sha256.New()
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return snap, fmt.Errorf("reading manifests: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		snap.names = append(snap.names, name)
		snap.data = append(snap.data, data)
	}
	copy(snap.sum[:], h.Sum(nil))
	return snap, nil
}

// parse is kept apart from read because it costs far more (every object is
// checked against its schema): Watch reads on every poll but parses only
// what it is about to apply.
func (d Dir) parse(snap dirFiles) (*Manifests, []Problem) {
	all := &Manifests{}
	var problems []Problem
	for i, name := range snap.names {
		m, ps := ParseWith(name, snap.data[i], d.Options)
		all.Append(m)
		problems = append(problems, ps...)
	}
	return all, problems
}

func (d Dir) files() ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // editor swap files and the like
		}
		switch filepath.Ext(name) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		full := filepath.Join(d.Path, name)
		// Stat follows symlinks, which is what ConfigMap mounts use.
		if st, err := os.Stat(full); err != nil || st.IsDir() {
			continue
		}
		names = append(names, full)
	}
	sort.Strings(names)
	return names, nil
}

// Watch loads the directory and calls onChange with the result, then again
// each time the directory's content changes, until ctx ends. A change is
// applied only once it has held still for one poll: a file caught half
// written (an editor or a copy in progress) would otherwise be read as
// deleting its Services' routes. A directory that cannot be read is reported
// through onError and retried; what was loaded last stays in force with the
// caller.
func (d Dir) Watch(ctx context.Context, onChange func(*Manifests, []Problem), onError func(error)) {
	interval := d.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var applied, pending [32]byte
	first, havePending := true, false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		snap, err := d.read()
		sum := snap.sum
		switch {
		case err != nil:
			onError(err)
		case first:
			// Nothing serves yet, so there is nothing to protect.
			first, applied = false, sum
			onChange(d.parse(snap))
		case sum == applied:
			havePending = false
		case havePending && sum == pending:
			applied, havePending = sum, false
			onChange(d.parse(snap))
		default:
			pending, havePending = sum, true
		}
		if d.afterPoll != nil {
			d.afterPoll()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
