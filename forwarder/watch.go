package forwarder

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

const (
	// secretReloadInterval is the safety net: the files are re-read this often
	// even without an event, for changes a directory watch cannot see (a
	// symlink into another directory, some network file systems).
	secretReloadInterval = time.Minute
	// secretSettle lets a burst of events (Kubernetes writes a new directory,
	// then swaps the ..data symlink) settle into a single re-read.
	secretSettle = 100 * time.Millisecond
)

// Reload triggers, logged with each reload.
const (
	reloadOnEvent    = "file event"
	reloadOnHangup   = "SIGHUP"
	reloadOnInterval = "interval"
)

// SecretWatcher re-reads the webhook secret files when their directory
// changes, on SIGHUP and every minute. It watches directories rather than
// files because Kubernetes updates a mounted secret by swapping a symlink:
// the file itself is never written, so a watch on it would see nothing (or
// lose the watch with the old inode).
type SecretWatcher struct {
	secrets  *Secrets
	log      *zap.Logger
	metrics  *Metrics
	interval time.Duration
	onChange func() // called after a reload that changed the set of secrets

	events     <-chan fsnotify.Event
	errs       <-chan error
	closeWatch func()
}

// NewSecretWatcher returns a watcher of s that already watches the
// directories of its files, so that no change after it returns is missed.
// Run must be called to release the watch. metrics may be nil.
func NewSecretWatcher(s *Secrets, log *zap.Logger, m *Metrics) *SecretWatcher {
	w := &SecretWatcher{secrets: s, log: log, metrics: m, interval: secretReloadInterval}
	w.events, w.errs, w.closeWatch = w.watch(s.Files())
	return w
}

// NotifyHangup returns a channel that receives SIGHUP, and the function that
// stops the delivery. While it is registered, SIGHUP no longer terminates the
// process.
func NotifyHangup() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// Run re-reads the secrets on every file event (settled), every value
// received on hangup, and every interval, until ctx ends. Without secret
// files it only answers hangup, with a log line. A failed re-read keeps the
// secrets in use.
func (w *SecretWatcher) Run(ctx context.Context, hangup <-chan os.Signal) {
	defer w.closeWatch()
	files, events, errs := w.secrets.Files(), w.events, w.errs
	var tick <-chan time.Time
	if len(files) > 0 {
		ticker := time.NewTicker(w.interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			settle.Reset(secretSettle)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("watching the webhook secret files failed; SIGHUP and the periodic re-read still apply", zap.Error(err))
		case <-settle.C:
			w.reload(reloadOnEvent)
		case <-hangup:
			if len(files) == 0 {
				w.log.Info("SIGHUP received; no webhook secret file is configured, nothing to re-read")
				continue
			}
			w.reload(reloadOnHangup)
		case <-tick:
			w.reload(reloadOnInterval)
		}
	}
}

// watch starts an fsnotify watch on the directories of files. If it cannot,
// it logs why and returns nil channels: SIGHUP and the interval remain.
func (w *SecretWatcher) watch(files []string) (<-chan fsnotify.Event, <-chan error, func()) {
	if len(files) == 0 {
		return nil, nil, func() {}
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.log.Warn("cannot watch the webhook secret files; relying on SIGHUP and the periodic re-read", zap.Error(err))
		return nil, nil, func() {}
	}
	for _, dir := range secretDirs(files) {
		if err := fw.Add(dir); err != nil {
			w.log.Warn("cannot watch a webhook secret directory; relying on SIGHUP and the periodic re-read",
				zap.String("dir", dir), zap.Error(err))
			continue
		}
		w.log.Info("watching webhook secret directory", zap.String("dir", dir))
	}
	return fw.Events, fw.Errors, func() { _ = fw.Close() }
}

// secretDirs are the distinct directories holding files.
func secretDirs(files []string) []string {
	var dirs []string
	for _, f := range files {
		dir := filepath.Dir(f)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// reload re-reads the files and logs a change at info, by count only: the
// values never reach a log line.
func (w *SecretWatcher) reload(trigger string) {
	before := w.secrets.Current()
	err := w.secrets.Reload()
	w.metrics.secretReload(err == nil)
	if err != nil {
		w.log.Warn("re-reading the webhook secret files failed; keeping the secrets in use",
			zap.String("trigger", trigger), zap.Error(err))
		return
	}
	after := w.secrets.Current()
	if slices.EqualFunc(before, after, bytes.Equal) {
		// Whoever sent SIGHUP wants to see that it arrived.
		level := zap.DebugLevel
		if trigger == reloadOnHangup {
			level = zap.InfoLevel
		}
		w.log.Log(level, "webhook secret files re-read; unchanged", zap.String("trigger", trigger), zap.Int("count", len(after)))
		return
	}
	w.log.Info("webhook secrets reloaded", zap.String("trigger", trigger), zap.Int("count", len(after)))
	if w.onChange != nil && !sameSecretSet(before, after) {
		w.onChange()
	}
}

// OnChange sets f to be called after every reload that changes the set of
// secrets (a new order of the same secrets is no change). Call it before Run.
func (w *SecretWatcher) OnChange(f func()) {
	w.onChange = f
}
