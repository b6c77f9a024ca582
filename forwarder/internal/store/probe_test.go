package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// waitReason polls b's readiness until its reason contains every one of
// want ("" in want: until ready).
func waitReason(t testing.TB, b *Broker, want ...string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		err := b.Ready()
		if len(want) == 0 {
			return err
		}
		if err == nil {
			return errors.New("ready, want not ready")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				return fmt.Errorf("reason %q: want it to mention %q", err, w)
			}
		}
		return nil
	})
}

// TestReadinessProbeNamesDeniedPermissions connects as a user who may do
// everything but one thing a delivery needs: readiness fails naming it,
// although the connection and the resources are fine.
func TestReadinessProbeNamesDeniedPermissions(t *testing.T) {
	tests := []struct {
		name string
		deny []string
		want string
	}{
		{"publish to the stream's subjects", []string{"zautic.>"}, `Publish to "zautic._readiness"`},
		{"read the bucket", []string{"$JS.API.DIRECT.GET.KV_zautic-dedup.>", "$JS.API.STREAM.MSG.GET.KV_zautic-dedup"}, "KV_zautic-dedup"},
		{"write the bucket", []string{"$KV.zautic-dedup.>"}, `Publish to "$KV.zautic-dedup.probe.readiness"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0, func(o *server.Options) {
				o.Users = []*server.User{{Username: "fwd", Password: "pw", Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: tt.deny},
				}}}
			})
			cfg := defaultConfig()
			cfg.NATS.User, cfg.NATS.Password = "fwd", "pw"
			cfg.NATS.PublishTimeout = 500 * time.Millisecond
			b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
			waitReason(t, b, ErrCannotStore.Error(), "permission denied", tt.want)
			t.Logf("reason: %v", b.Ready())
			if err := b.Ready(); !errors.Is(err, ErrNotReady) || !errors.Is(err, ErrCannotStore) {
				t.Errorf("reason %v: want it to wrap ErrNotReady and ErrCannotStore", err)
			}
		})
	}
}

// TestReadinessFollowsStorage fills the server's JetStream storage: once
// publishes fail for want of room, readiness fails naming it, and once room
// is made it comes back by itself. The probe itself stores nothing visible:
// the stream holds only what the test published.
func TestReadinessFollowsStorage(t *testing.T) {
	ns := natstest.Start(t, "", 0, func(o *server.Options) { o.JetStreamMaxStore = 1 << 20 })
	cfg := defaultConfig()
	cfg.Quarantine.Enabled = false // its 64 MiB reservation does not fit
	cfg.NATS.PublishTimeout = time.Second
	b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
	waitReason(t, b)

	js := jetStreamAt(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := make([]byte, 32<<10)
	stored := 0
	for ; stored < 100; stored++ {
		if _, err := js.Publish(ctx, "zautic.fill", body); err != nil {
			if !refusedToStore(err) {
				t.Fatalf("publish %d: got %v, want success or a storage error", stored, err)
			}
			break
		}
	}
	if stored == 100 {
		t.Fatal("100 publishes of 32 KiB fit in 1 MiB of storage")
	}
	waitReason(t, b, ErrCannotStore.Error(), "insufficient resources")
	t.Logf("reason: %v", b.Ready())

	stream, err := js.Stream(ctx, cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatalf("purge: %v", err)
	}
	waitReason(t, b)

	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 || info.State.LastSeq != uint64(stored) {
		t.Errorf("stream after the purge: got %d messages, last sequence %d; want 0 and %d (the probe stores nothing)",
			info.State.Msgs, info.State.LastSeq, stored)
	}
	kv, err := js.KeyValue(ctx, cfg.Dedup.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Errorf("bucket keys: got %v, %v; want none (the probe's key is deleted)", keys, err)
	}
}
