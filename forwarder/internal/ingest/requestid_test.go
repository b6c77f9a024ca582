package ingest

import (
	"strings"
	"testing"
)

// TestRequestIDsAreUnique draws ids from two generators, as two replicas
// or two runs of one would: no id repeats, and each starts with its
// generator's random prefix.
func TestRequestIDsAreUnique(t *testing.T) {
	const perGenerator = 10000
	seen := map[string]bool{}
	for range 2 {
		g := newRequestIDs()
		for range perGenerator {
			id := g.next()
			if seen[id] {
				t.Fatalf("got id %q twice, want every id once", id)
			}
			seen[id] = true
			if !strings.HasPrefix(id, g.prefix) || len(id) <= requestIDPrefixLen {
				t.Fatalf("got id %q, want prefix %q and a counter", id, g.prefix)
			}
		}
	}
	if len(seen) != 2*perGenerator {
		t.Errorf("got %d ids, want %d", len(seen), 2*perGenerator)
	}
}
