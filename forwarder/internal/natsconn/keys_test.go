package natsconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestKeyReader compares KeyReader.Exists with KV Get on a real bucket:
// they agree on every key, whatever it holds.
func TestKeyReader(t *testing.T) {
	nc, js := connectJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "marks", History: 1})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	for _, key := range []string{"kept", "sha256.ab", "deleted", "purged", "empty"} {
		value := []byte("7 2026-12-05T00:00:00Z")
		if key == "empty" {
			value = nil
		}
		if _, err := kv.Put(ctx, key, value); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	if err := kv.Delete(ctx, "deleted"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := kv.Purge(ctx, "purged"); err != nil {
		t.Fatalf("purge: %v", err)
	}

	r := NewKeyReader("marks")
	tests := []struct {
		key    string
		exists bool
		err    error
	}{
		{"kept", true, nil},
		{"sha256.ab", true, nil},
		{"empty", true, nil},
		{"never", false, nil},
		{"deleted", false, nil},
		{"purged", false, nil},
		{"a..b", false, jetstream.ErrInvalidKey},
		{".a", false, jetstream.ErrInvalidKey},
		{"a.", false, jetstream.ErrInvalidKey},
		{"a b", false, jetstream.ErrInvalidKey},
		{"a.*", false, jetstream.ErrInvalidKey},
		{">", false, jetstream.ErrInvalidKey},
		{"", false, jetstream.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			exists, err := r.Exists(ctx, nc, tt.key)
			if exists != tt.exists || !errors.Is(err, tt.err) {
				t.Fatalf("Exists: got %v, %v; want %v, %v", exists, err, tt.exists, tt.err)
			}
			_, getErr := kv.Get(ctx, tt.key)
			switch {
			case tt.err != nil:
				if !errors.Is(getErr, tt.err) {
					t.Errorf("KV Get: got %v, want %v as Exists", getErr, tt.err)
				}
			case (getErr == nil) != exists || getErr != nil && !errors.Is(getErr, jetstream.ErrKeyNotFound):
				t.Errorf("KV Get: got %v, Exists %v", getErr, exists)
			}
		})
	}

	// A bucket whose stream does not answer direct gets: Exists says so,
	// and the caller asks KV Get.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KV_nodirect", Subjects: []string{"$KV.nodirect.>"},
		MaxMsgsPerSubject: 1, AllowDirect: false}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := NewKeyReader("nodirect").Exists(ctx, nc, "kept"); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("Exists without direct gets: got %v, want nats.ErrNoResponders", err)
	}
}

// connectJetStream connects to a new nats-server with JetStream.
func connectJetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

func BenchmarkKeyReader(b *testing.B) {
	nc, js := connectJetStream(b)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "marks"})
	if err != nil {
		b.Fatalf("create bucket: %v", err)
	}
	r := NewKeyReader("marks")
	b.Run("KeyReader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = r.Exists(ctx, nc, "evt_absent")
		}
	})
	b.Run("KV Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = kv.Get(ctx, "evt_absent")
		}
	})
}
