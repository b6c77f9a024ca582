// Package secretvolume lays out a directory the way the kubelet lays out a
// mounted Secret, for tests of secret rotation.
package secretvolume

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Volume is a secret volume: <dir>/..<stamp>/<key> holds the data,
// <dir>/..data links to the current stamped directory and <dir>/<key> links
// to ..data/<key>. Update writes a new stamped directory and renames a fresh
// ..data_tmp link over ..data, then removes the old directory, in the
// kubelet's order, so that a reader sees the old set or the new one, never a
// mix, and a watch on the files themselves sees nothing.
type Volume struct {
	dir     string
	version int
}

// New returns a volume in a temp dir holding files (key → content).
func New(t testing.TB, files map[string]string) *Volume {
	t.Helper()
	v := &Volume{dir: t.TempDir()}
	v.Update(t, files)
	return v
}

// Path is the path a container reads key at.
func (v *Volume) Path(key string) string { return filepath.Join(v.dir, key) }

// Update replaces the volume's content with files.
func (v *Volume) Update(t testing.TB, files map[string]string) {
	t.Helper()
	v.version++
	stamp := fmt.Sprintf("..2026_01_03_00_00_%02d.%09d", v.version, v.version)
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	must(t, os.Mkdir(filepath.Join(v.dir, stamp), 0o755))
	for key, content := range files {
		must(t, os.WriteFile(filepath.Join(v.dir, stamp, key), []byte(content), 0o644))
	}
	must(t, os.Symlink(stamp, filepath.Join(v.dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")))
	for key := range files {
		link := filepath.Join(v.dir, key)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(t, os.Symlink(filepath.Join("..data", key), link))
		}
	}
	if old != "" {
		must(t, os.RemoveAll(filepath.Join(v.dir, old)))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("update secret volume: %v", err)
	}
}
