package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// startTestNATS starts a JetStream nats-server in a temp dir and returns a
// JetStream handle on it.
func startTestNATS(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	return ns, jetStreamAt(t, ns.ClientURL())
}

// jetStreamAt connects a test client to url, closed at cleanup.
func jetStreamAt(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestEnsureResourcesConverge runs the create-or-compare logic from several
// goroutines at once, as several replicas starting together do: none fails
// and none logs a change.
func TestEnsureResourcesConverge(t *testing.T) {
	_, js := startTestNATS(t)
	cfg := defaultConfig()
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			if err := ensureStream(ctx, js, streamConfig(cfg), log); err != nil {
				errs <- err
			}
			if _, err := ensureBucket(ctx, js, bucketConfig(cfg), log); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent ensure: %v", err)
	}
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if len(streams) != 2 {
		t.Errorf("streams: got %v, want the stream and the bucket's", streams)
	}
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 0 {
		t.Errorf("got %d warnings (settings changes), want 0: %v", n, logs.All())
	}
}

// TestEnsureStreamLogsChanges: an operator's different setting is changed
// back only with a warning that names it, and settings the forwarder does
// not own are kept.
func TestEnsureStreamLogsChanges(t *testing.T) {
	_, js := startTestNATS(t)
	cfg := defaultConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	operator := streamConfig(cfg)
	operator.MaxAge = time.Hour
	operator.MaxMsgs = 12345
	if _, err := js.CreateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	if err := ensureStream(ctx, js, streamConfig(cfg), zap.New(core)); err != nil {
		t.Fatal(err)
	}
	warned := logs.FilterMessage("stream settings changed to match the configuration").All()
	if len(warned) != 1 {
		t.Fatalf("got %d change warnings, want 1", len(warned))
	}
	changes := warned[0].ContextMap()["changes"]
	if got, want := changes, []any{"max_age 1h0m0s -> 168h0m0s"}; !equalAny(got, want) {
		t.Errorf("changes: got %v, want %v", got, want)
	}
	s, err := js.Stream(ctx, cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != cfg.Stream.MaxAge || got.MaxMsgs != 12345 {
		t.Errorf("stream after ensure: max_age %s max_msgs %d, want %s and the operator's 12345", got.MaxAge, got.MaxMsgs, cfg.Stream.MaxAge)
	}
}

// TestUnmanagedResourcesUntouched: with stream.manage false the forwarder
// checks existence only, never changes a stream, and reports what is missing.
func TestUnmanagedResourcesUntouched(t *testing.T) {
	ns, js := startTestNATS(t)
	cfg := defaultConfig()
	cfg.Stream.Manage = false
	b, err := Connect(ns.ClientURL(), cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	b.check(ctx)
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), `missing: stream "ZAUTIC"`) {
		t.Fatalf("ready with nothing created: got %v, want the missing stream named", err)
	}
	operator := streamConfig(cfg)
	operator.MaxAge = time.Hour
	if _, err := js.CreateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}
	b.check(ctx)
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), `missing: KV bucket "zautic-dedup"`) {
		t.Fatalf("ready without bucket: got %v, want the missing bucket named", err)
	}
	if _, err := js.CreateKeyValue(ctx, bucketConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	// The quarantine is optional: its absence never fails readiness, and
	// is reported on its own.
	b.check(ctx)
	if err := b.Ready(); err != nil {
		t.Fatalf("ready without the quarantine stream: got %v, want ready", err)
	}
	if err := b.QuarantineReady(); !errors.Is(err, ErrQuarantineUnavailable) || !strings.Contains(err.Error(), `missing: stream "ZAUTIC_QUARANTINE"`) {
		t.Fatalf("quarantine without its stream: got %v, want it named missing", err)
	}
	if _, err := js.CreateStream(ctx, quarantineStreamConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	b.check(ctx)
	if err := b.Ready(); err != nil {
		t.Fatalf("ready with both: got %v, want nil", err)
	}
	if err := b.QuarantineReady(); err != nil {
		t.Fatalf("quarantine with its stream: got %v, want nil", err)
	}
	s, err := js.Stream(ctx, cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Errorf("unmanaged stream max_age: got %s, want the operator's 1h", got)
	}
}

func equalAny(got any, want []any) bool {
	list, ok := got.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}
