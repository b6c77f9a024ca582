package store

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestQuarantineSizeLimitFollowsTheConfiguration: a quarantine stream made
// with another size limit, or one that discards new entries, is brought to
// quarantine.max_bytes with discard new (an entry once kept is never pushed
// out by newer ones), with a warning naming the change;
// an identical one is left alone, silently.
func TestQuarantineSizeLimitFollowsTheConfiguration(t *testing.T) {
	_, js := startTestNATS(t)
	cfg := defaultConfig()
	want := quarantineStreamConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	operator := want
	operator.MaxBytes, operator.Discard = 1<<20, jetstream.DiscardOld
	if _, err := js.CreateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	for range 2 {
		if err := ensureSizeLimit(ctx, js, want, zap.New(core)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, want.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxBytes != cfg.Quarantine.MaxBytes || got.Discard != jetstream.DiscardNew {
		t.Errorf("limits: got max_bytes %d discard %s, want %d and new", got.MaxBytes, got.Discard, cfg.Quarantine.MaxBytes)
	}
	if got := logs.FilterLevelExact(zap.WarnLevel).Len(); got != 1 {
		t.Errorf("warnings: got %d, want 1 (the change, once)", got)
	}
}
