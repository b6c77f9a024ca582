package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// maxStore limits a test server's file storage, as max_file_store does.
func maxStore(n int64) func(*server.Options) {
	return func(o *server.Options) { o.JetStreamMaxStore = n }
}

// checkedBroker connects a broker to url that runs no loop of its own: the
// test runs the checks.
func checkedBroker(t *testing.T, url string, cfg Config, log *zap.Logger) *Broker {
	t.Helper()
	b, err := Connect(url, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !b.Connected() {
			return errors.New("not connected yet")
		}
		return nil
	})
	return b
}

// TestRestartWithModestStorageIsReady starts the broker twice against one
// server whose max_file_store holds the quarantine's 64 MiB reservation
// once but not twice, as a restart or a second replica does: the second
// start looks the streams up instead of re-creating them, and is ready.
func TestRestartWithModestStorageIsReady(t *testing.T) {
	ns := natstest.Start(t, "", 0, maxStore(100<<20))
	cfg := defaultConfig()
	for i := range 2 {
		b := checkedBroker(t, ns.ClientURL(), cfg, zap.NewNop())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.CheckNow(ctx)
		cancel()
		if err != nil {
			t.Fatalf("start %d: got %v, want ready", i+1, err)
		}
		if err := b.QuarantineReady(); err != nil {
			t.Fatalf("start %d: quarantine got %v, want available", i+1, err)
		}
		b.Close(time.Second)
	}
}

// TestQuarantineOptional: a server too small for the quarantine's
// reservation still serves webhooks. The broker is ready, the quarantine is
// reported unavailable with the server's reason, logged at error level
// once over several checks, and available once it can be created.
func TestQuarantineOptional(t *testing.T) {
	ns := natstest.Start(t, "", 0, maxStore(2<<20))
	cfg := defaultConfig()
	core, logs := observer.New(zap.InfoLevel)
	b := checkedBroker(t, ns.ClientURL(), cfg, zap.New(core))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 4 {
		b.check(ctx)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("ready without room for the quarantine: got %v, want ready", err)
	}
	err := b.QuarantineReady()
	if !errors.Is(err, ErrQuarantineUnavailable) || !strings.Contains(err.Error(), "insufficient storage") ||
		!strings.Contains(err.Error(), "lower quarantine.max_bytes, or set quarantine.enabled: false") {
		t.Fatalf("quarantine: got %v, want unavailable naming insufficient storage and the keys that fix it", err)
	}
	if _, err := b.Quarantine(ctx, "signature_mismatch", http.Header{}, []byte("{}")); err == nil {
		t.Error("a write to the missing quarantine: got nil, want an error")
	}
	if got := logs.FilterMessageSnippet("quarantine unavailable").FilterLevelExact(zap.ErrorLevel).Len(); got != 1 {
		t.Errorf("quarantine unavailable errors over 4 checks: got %d, want 1", got)
	}

	// A smaller quarantine fits: the next check creates it.
	b.cfg.Quarantine.MaxBytes = 1 << 20
	b.check(ctx)
	if err := b.QuarantineReady(); err != nil {
		t.Fatalf("quarantine that fits: got %v, want available", err)
	}
	if got := logs.FilterMessage("quarantine available").Len(); got != 1 {
		t.Errorf(`"quarantine available" logs: got %d, want 1`, got)
	}
}

// startMaxBytesRequiredNATS starts a server whose account requires every
// stream to have max_bytes, and returns a client URL with its user.
func startMaxBytesRequiredNATS(t *testing.T) string {
	t.Helper()
	return startAccountNATS(t, "{max_file: 1G, max_mem: 64M, max_bytes_required: true}")
}

// startAccountNATS starts a server with one account, APP, whose JetStream
// limits are limits, and returns a client URL with its user.
func startAccountNATS(t *testing.T, limits string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.conf")
	text := fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream: {store_dir: %q}
accounts: {
  APP: {
    jetstream: %s
    users: [{user: app, password: app}]
  }
}
`, filepath.Join(dir, "js"), limits)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { natstest.Stop(ns) })
	return fmt.Sprintf("nats://app:app@%s", ns.Addr().String())
}

// TestMaxBytesRequiredAccount: an account that requires max_bytes refuses
// the default (unlimited) stream, and the cause is logged at error level
// once however many checks fail; with stream.max_bytes and dedup.max_bytes
// the broker is ready, and at the stream's limit a publish fails while
// every event already stored stays (discard new).
func TestMaxBytesRequiredAccount(t *testing.T) {
	url := startMaxBytesRequiredNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	core, logs := observer.New(zap.InfoLevel)
	cfg := defaultConfig()
	b := checkedBroker(t, url, cfg, zap.New(core))
	for range 4 {
		b.check(ctx)
	}
	if err := b.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "10113") ||
		!strings.Contains(err.Error(), "set stream.max_bytes and dedup.max_bytes") {
		t.Fatalf("unlimited stream in a max_bytes account: got %v, want not ready naming err_code=10113 and the keys that fix it", err)
	}
	if got := logs.FilterMessage("nats not ready").FilterLevelExact(zap.ErrorLevel).Len(); got != 1 {
		t.Errorf(`"nats not ready" errors over 4 checks: got %d, want 1`, got)
	}
	b.Close(time.Second)

	const streamBytes = 8 << 10
	cfg.Stream.MaxBytes, cfg.Dedup.MaxBytes, cfg.Quarantine.MaxBytes = streamBytes, 1<<20, 1<<20
	core, logs = observer.New(zap.InfoLevel)
	b = checkedBroker(t, url, cfg, zap.New(core))
	if err := b.CheckNow(ctx); err != nil {
		t.Fatalf("with stream.max_bytes and dedup.max_bytes: got %v, want ready", err)
	}
	if err := b.QuarantineReady(); err != nil {
		t.Fatalf("quarantine: got %v, want available", err)
	}
	var published int
	var pubErr error
	for published = 0; published < 100; published++ {
		if _, _, pubErr = b.Publish(ctx, cfg.Stream.SubjectPrefix+".message.sent", nil, make([]byte, 1<<10)); pubErr != nil {
			break
		}
	}
	if pubErr == nil || !errors.Is(pubErr, errPublish) {
		t.Fatalf("publishing 100 KiB into an %d-byte stream: got %v after %d, want a failed publish", streamBytes, pubErr, published)
	}
	// The refusal says what to do, and is logged once however often it
	// happens.
	if !strings.Contains(pubErr.Error(), "raise stream.max_bytes, or shorten stream.max_age") || strings.Contains(pubErr.Error(), "nats: nats:") {
		t.Errorf("publish into the full stream: got %v, want it to name stream.max_bytes and stream.max_age, without a doubled nats: prefix", pubErr)
	}
	for range 3 {
		_, _, _ = b.Publish(ctx, cfg.Stream.SubjectPrefix+".message.sent", nil, make([]byte, 1<<10))
	}
	if got := logs.FilterMessageSnippet("the event stream is full").FilterLevelExact(zap.WarnLevel).Len(); got != 1 {
		t.Errorf(`"the event stream is full" warnings over 4 refused publishes: got %d, want 1`, got)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Discard != jetstream.DiscardNew || info.Config.MaxBytes != streamBytes {
		t.Errorf("stream limits: got discard %s max_bytes %d, want new and %d", info.Config.Discard, info.Config.MaxBytes, streamBytes)
	}
	if info.State.FirstSeq != 1 || info.State.Msgs != uint64(published) {
		t.Errorf("stream at the limit: first seq %d, %d messages; want 1 and the %d published (none discarded)", info.State.FirstSeq, info.State.Msgs, published)
	}
}

// TestStorageShortfallWarnedOnce: an account whose storage limit cannot
// hold the quarantine's reservation, and which requires max_bytes so that
// the broker never becomes ready, is warned about once over many checks,
// naming the keys that reserve and their values.
func TestStorageShortfallWarnedOnce(t *testing.T) {
	url := startAccountNATS(t, "{max_file: 32M, max_mem: 64M, max_bytes_required: true}")
	core, logs := observer.New(zap.InfoLevel)
	cfg := defaultConfig()
	b := checkedBroker(t, url, cfg, zap.New(core))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 5 {
		b.check(ctx)
	}
	if err := b.Ready(); err == nil {
		t.Fatal("ready in an account that requires max_bytes: want not ready")
	}
	warnings := logs.FilterMessageSnippet("storage limit leaves less room").FilterLevelExact(zap.WarnLevel)
	if got := warnings.Len(); got != 1 {
		t.Fatalf("storage warnings over 5 checks: got %d, want 1", got)
	}
	fields := warnings.All()[0].ContextMap()
	for key, want := range map[string]int64{"quarantine.max_bytes": cfg.Quarantine.MaxBytes, "stream.max_bytes": 0, "dedup.max_bytes": 0} {
		if got, ok := fields[key]; !ok || got != want {
			t.Errorf("warning field %s: got %v, want %d", key, got, want)
		}
	}
}
