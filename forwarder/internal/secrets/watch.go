package secrets

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
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

// Reload triggers, logged with each reload; a request names its own.
const (
	reloadOnEvent    = "file event"
	reloadOnInterval = "interval"
	reloadOnStart    = "watch started"
)

// Watcher re-reads the webhook secret files when their directory
// changes, on request (main asks on SIGHUP) and every minute. It watches
// directories rather than files because Kubernetes updates a mounted secret
// by swapping a symlink: the file itself is never written, so a watch on it
// would see nothing (or lose the watch with the old inode).
type Watcher struct {
	secrets  *Set
	log      *zap.Logger
	metrics  *telemetry.Metrics
	interval time.Duration
	requests chan string // triggers of Request, at most one pending
	onChange func()      // called after a reload that changed the set of secrets
}

// NewWatcher returns a watcher of s; Run watches. metrics may be nil.
func NewWatcher(s *Set, log *zap.Logger, m *telemetry.Metrics) *Watcher {
	return &Watcher{secrets: s, log: log, metrics: m, interval: secretReloadInterval, requests: make(chan string, 1)}
}

// Request asks Run to re-read the files now; trigger names the cause in the
// log. A request made while another is pending is merged with it.
func (w *Watcher) Request(trigger string) {
	select {
	case w.requests <- trigger:
	default:
	}
}

// Run watches the directories of the secret files and re-reads them on every
// file event (settled), every request and every interval, until ctx ends;
// it closes the watch before it returns. Without secret files it only
// answers requests, with a log line. A failed re-read keeps the secrets in
// use.
func (w *Watcher) Run(ctx context.Context) {
	files := w.secrets.Files()
	events, errs, closeWatch := w.watch(files)
	defer closeWatch()
	if len(files) > 0 {
		// A change made before the watch was in place has sent no event.
		w.reload(reloadOnStart)
	}
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
		case trigger := <-w.requests:
			if len(files) == 0 {
				w.log.Info("reload requested; no webhook secret file is configured, nothing to re-read", zap.String("trigger", trigger))
				continue
			}
			w.reload(trigger)
		case <-tick:
			w.reload(reloadOnInterval)
		}
	}
}

// watch starts an fsnotify watch on the directories of files. If it cannot,
// it logs why and returns nil channels: SIGHUP and the interval remain.
func (w *Watcher) watch(files []string) (<-chan fsnotify.Event, <-chan error, func()) {
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
func (w *Watcher) reload(trigger string) {
	before := w.secrets.Current()
	err := w.secrets.Reload()
	w.metrics.SecretReload(err == nil)
	if err != nil {
		w.log.Warn("re-reading a webhook secret file failed; keeping that file's previous secrets",
			zap.String("trigger", trigger), zap.Int("count", len(w.secrets.Current())), zap.Error(err))
		return
	}
	after := w.secrets.Current()
	if slices.EqualFunc(before, after, bytes.Equal) {
		// Whoever asked wants to see that the request arrived.
		level := zap.InfoLevel
		if trigger == reloadOnEvent || trigger == reloadOnInterval || trigger == reloadOnStart {
			level = zap.DebugLevel
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
func (w *Watcher) OnChange(f func()) {
	w.onChange = f
}
