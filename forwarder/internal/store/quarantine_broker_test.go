package forwarder

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
// quarantine.max_bytes with discard old, with a warning naming the change;
// an identical one is left alone, silently.
func TestQuarantineSizeLimitFollowsTheConfiguration(t *testing.T) {
	_, js := startTestNATS(t)
	cfg := DefaultConfig().brokerConfig()
	want := quarantineStreamConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	operator := want
	operator.MaxBytes, operator.Discard = 1<<20, jetstream.DiscardNew
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
	if got := s.CachedInfo().Config; got.MaxBytes != cfg.Quarantine.MaxBytes || got.Discard != jetstream.DiscardOld {
		t.Errorf("limits: got max_bytes %d discard %s, want %d and old", got.MaxBytes, got.Discard, cfg.Quarantine.MaxBytes)
	}
	if got := logs.FilterLevelExact(zap.WarnLevel).Len(); got != 1 {
		t.Errorf("warnings: got %d, want 1 (the change, once)", got)
	}
}

// TestDisabledQuarantineIsNotPartOfReadiness: with quarantine.enabled false
// and stream.manage false, the stream and the bucket are all it takes to be
// ready, and a forged request is a plain 400.
func TestDisabledQuarantineIsNotPartOfReadiness(t *testing.T) {
	h := newQuarantineHarness(t, func(c *Config) {
		c.Quarantine.Enabled = false
	})
	if _, err := h.js.Stream(context.Background(), h.cfg.Quarantine.Stream); err == nil {
		t.Errorf("quarantine stream %s exists, want none while disabled", h.cfg.Quarantine.Stream)
	}
	status, answer := h.post(secretB, time.Now(), "dlv_disabled", testEvent("evt_disabled", "message.delivered"))
	if status != 400 || answer["quarantined"] != nil {
		t.Errorf("answer: got %d %v, want 400 without quarantined", status, answer)
	}

	unmanaged := h.cfg
	unmanaged.Stream.Manage = false
	b := runBroker(t, h.cfg.NATS.URL, unmanaged, zap.NewNop(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.CheckNow(ctx); err != nil {
		t.Errorf("unmanaged, quarantine disabled: got %v, want ready", err)
	}
}
