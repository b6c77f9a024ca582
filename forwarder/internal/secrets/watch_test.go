package secrets

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/promtest"
	"github.com/zautic/zautic-forwarder/internal/secretvolume"
	"github.com/zautic/zautic-forwarder/internal/testfile"
)

// runWatcher runs a watcher of s with the given interval until the test ends
// and returns it.
func runWatcher(t *testing.T, s *Set, log *zap.Logger, m *telemetry.Metrics, interval time.Duration) *Watcher {
	t.Helper()
	w := NewWatcher(s, log, m)
	w.interval = interval
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// wantSecrets polls until s accepts exactly want.
func wantSecrets(t testing.TB, s *Set, want ...string) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got := secretStrings(s); !slices.Equal(got, want) {
			return fmt.Errorf("%d secrets accepted, want %d (values not shown)", len(got), len(want))
		}
		return nil
	})
}

const noInterval = time.Hour

// TestWatcherFollowsKubernetesSymlinkSwap rotates a secrets_file and a
// secret_file in a kubelet-style volume: each swap of ..data is picked up
// from the directory's events alone (no SIGHUP, no interval), and a secret
// removed from the file stops being accepted.
func TestWatcherFollowsKubernetesSymlinkSwap(t *testing.T) {
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": "old-secret\n", "webhook-secret": "single-a"})
	s, err := New(WebhookConfig{SecretFile: vol.Path("webhook-secret"), SecretsFile: vol.Path("webhook-secrets")})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	runWatcher(t, s, zap.NewNop(), telemetry.NewMetrics(reg, nil), noInterval)
	wantSecrets(t, s, "single-a", "old-secret")

	steps := []struct {
		name    string
		secret  string
		secrets string
		want    []string
	}{
		{"overlap", "single-a", "old-secret\nnew-secret\n", []string{"single-a", "old-secret", "new-secret"}},
		{"old removed", "single-a", "new-secret\n", []string{"single-a", "new-secret"}},
		{"single secret rotated", "single-b", "new-secret\n", []string{"single-b", "new-secret"}},
	}
	for _, step := range steps {
		vol.Update(t, map[string]string{"webhook-secret": step.secret, "webhook-secrets": step.secrets})
		wantSecrets(t, s, step.want...)
	}
	if got := promtest.Value(t, reg, "zautic_forwarder_secret_reloads_total", map[string]string{"result": "ok"}); got < float64(len(steps)) {
		t.Errorf("successful reloads: got %v, want at least %d", got, len(steps))
	}
}

// TestWatcherReloadsOnHangup points the secret file at a file in another
// directory, whose changes the directory watch cannot see: the new content
// is read on SIGHUP.
func TestWatcherReloadsOnHangup(t *testing.T) {
	elsewhere := testfile.Write(t, t.TempDir(), "real-secret", []byte("before-hup"))
	link := filepath.Join(t.TempDir(), "secret")
	fatalIf(t, os.Symlink(elsewhere, link))
	s, err := New(WebhookConfig{SecretFile: link})
	if err != nil {
		t.Fatal(err)
	}
	w := runWatcher(t, s, zap.NewNop(), nil, noInterval)

	testfile.Replace(t, elsewhere, []byte("after-hup"))
	w.Request("SIGHUP")
	wantSecrets(t, s, "after-hup")
}

// TestWatcherRereadsOnInterval is the safety net: with no event and no
// signal, the periodic re-read picks the change up.
func TestWatcherRereadsOnInterval(t *testing.T) {
	elsewhere := testfile.Write(t, t.TempDir(), "real-secret", []byte("first"))
	link := filepath.Join(t.TempDir(), "secret")
	fatalIf(t, os.Symlink(elsewhere, link))
	s, err := New(WebhookConfig{SecretFile: link})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, s, zap.NewNop(), nil, 100*time.Millisecond)
	testfile.Replace(t, elsewhere, []byte("second"))
	wantSecrets(t, s, "second")
}

// TestWatcherKeepsSecretsOnFailedReload removes the file, then empties it:
// both re-reads fail, are counted and logged without values, and the
// secrets in use stay.
func TestWatcherKeepsSecretsOnFailedReload(t *testing.T) {
	dir := t.TempDir()
	path := testfile.Write(t, dir, "secrets", []byte("keep-me-1\nkeep-me-2\n"))
	// Another source too: the emptied file must not be taken for one that
	// gives up its secrets because others remain.
	s, err := New(WebhookConfig{Secret: "fixed", SecretsFile: path})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	w := runWatcher(t, s, zap.New(core), telemetry.NewMetrics(reg, nil), noInterval)

	breakages := []struct {
		name  string
		apply func()
	}{
		{"file removed", func() { fatalIf(t, os.Remove(path)) }},
		{"file empty", func() { fatalIf(t, os.WriteFile(path, nil, 0o600)) }},
	}
	for i, b := range breakages {
		b.apply()
		w.Request("SIGHUP")
		natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if got := promtest.Value(t, reg, "zautic_forwarder_secret_reloads_total", map[string]string{"result": "error"}); got < float64(i+1) {
				return fmt.Errorf("%s: %v failed reloads counted", b.name, got)
			}
			return nil
		})
		if got := secretStrings(s); !slices.Equal(got, []string{"fixed", "keep-me-1", "keep-me-2"}) {
			t.Fatalf("%s: secrets in use changed (%d now)", b.name, len(got))
		}
	}
	assertNoSecretInLogs(t, logs, "keep-me-1", "keep-me-2")
	if logs.FilterMessage("re-reading a webhook secret file failed; keeping that file's previous secrets").Len() == 0 {
		t.Error("no log line for the failed re-reads")
	}
}

// TestWatcherLogsWithoutValues rotates secrets and checks that the log
// lines count secrets and never show them.
func TestWatcherLogsWithoutValues(t *testing.T) {
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": "very-secret-1\n"})
	s, err := New(WebhookConfig{SecretsFile: vol.Path("webhook-secrets")})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	runWatcher(t, s, zap.New(core), nil, noInterval)
	vol.Update(t, map[string]string{"webhook-secrets": "very-secret-1\nvery-secret-2\n"})
	wantSecrets(t, s, "very-secret-1", "very-secret-2")
	reloaded := logs.FilterMessage("webhook secrets reloaded").All()
	if len(reloaded) == 0 || reloaded[0].ContextMap()["count"] != int64(2) {
		t.Fatalf("reload log lines: got %v, want one with count 2", reloaded)
	}
	assertNoSecretInLogs(t, logs, "very-secret-1", "very-secret-2")
}

// TestWatcherHangupWithoutFiles answers SIGHUP with a log line when no file
// is configured, instead of letting the signal end the process.
func TestWatcherHangupWithoutFiles(t *testing.T) {
	s, err := New(WebhookConfig{Secret: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	w := runWatcher(t, s, zap.New(core), nil, noInterval)
	w.Request("SIGHUP")
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if logs.FilterMessageSnippet("nothing to re-read").Len() == 0 {
			return fmt.Errorf("no log line yet")
		}
		return nil
	})
	wantSecrets(t, s, "fixed")
}

func assertNoSecretInLogs(t testing.TB, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	var all bytes.Buffer
	for _, e := range logs.All() {
		fmt.Fprintf(&all, "%s %v\n", e.Message, e.ContextMap())
	}
	for _, secret := range secrets {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a secret value appears in the logs")
		}
	}
}

func fatalIf(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("test setup: %v", err)
	}
}
