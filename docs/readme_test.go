package docs

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeIsAFrontDoor keeps README.md short enough to read first: at most
// 300 lines, with the first success (a published answer) in its first 60;
// the details live in the pages of docs/.
func TestReadmeIsAFrontDoor(t *testing.T) {
	raw, err := os.ReadFile(repoRoot + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) > 300 {
		t.Errorf("README.md has %d lines, want at most 300: move details into docs/", len(lines))
	}
	first := -1
	for i, line := range lines {
		if strings.Contains(line, `"status":"published"`) {
			first = i + 1
			break
		}
	}
	if first < 0 || first > 60 {
		t.Errorf("first published answer on line %d of README.md, want within the first 60", first)
	}
}
