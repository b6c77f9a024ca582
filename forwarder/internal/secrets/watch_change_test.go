package secrets

import (
	"os"
	"testing"

	"github.com/zautic/zautic-forwarder/internal/testfile"
	"go.uber.org/zap/zaptest"
)

// TestWatcherCallsOnChangeForANewSetOnly rewrites the secrets file between
// reloads: only a change of the set of secrets (not their order, not a
// re-read of the same) triggers the automatic replay.
func TestWatcherCallsOnChangeForANewSetOnly(t *testing.T) {
	path := testfile.Write(t, t.TempDir(), "secrets", []byte("a\nb\n"))
	s, err := New(WebhookConfig{SecretsFile: path})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(s, zaptest.NewLogger(t), nil)
	calls := 0
	w.OnChange(func() { calls++ })
	steps := []struct {
		content   string
		wantCalls int
	}{
		{"a\nb\n", 0},
		{"b\na\n", 0},
		{"a\nb\nc\n", 1},
		{"c\n", 2},
		{"c\n", 2},
	}
	for _, step := range steps {
		if err := os.WriteFile(path, []byte(step.content), 0o600); err != nil {
			t.Fatal(err)
		}
		w.reload("SIGHUP")
		if calls != step.wantCalls {
			t.Errorf("after %q: got %d calls, want %d", step.content, calls, step.wantCalls)
		}
	}
}
