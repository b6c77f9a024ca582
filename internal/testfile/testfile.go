// Package testfile writes the files tests hand to the code under test:
// secrets, tokens, credentials.
package testfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes content to dir/name, readable by the owner only, and
// returns the path.
func Write(t testing.TB, dir, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Replace replaces the file at path with content in one rename, as an
// editor or a deployment tool does: a reader sees the old or the new file,
// never a part.
func Replace(t testing.TB, path string, content []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
