package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestReaderHasItsOwnConnection: the readers' connection is a second
// client named <nats.name>-admin; closing it leaves the webhook path's
// connection and its readiness alone, and the mark repair reads through it.
func TestReaderHasItsOwnConnection(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	cfg := defaultConfig()
	cfg.NATS.Name = "forwarder-under-test"
	log := zaptest.NewLogger(t)
	b := runBroker(t, ns.ClientURL(), cfg, log, nil)
	r, err := ConnectReader(ns.ClientURL(), cfg.NATS, log)
	if err != nil {
		t.Fatal(err)
	}
	b.ReadThrough(r)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, b.Ready)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if names := clientNames(t, ns); !contains(names, "forwarder-under-test") || !contains(names, "forwarder-under-test-admin") {
			return fmt.Errorf("client names %v, want the webhook path's and the readers'", names)
		}
		return r.Ready()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	publishAsCrashed(ctx, t, b, "evt_unmarked", false)
	if res, err := b.repairSince(ctx, time.Now().Add(-time.Minute)); err != nil || res.repaired != 1 {
		t.Fatalf("repair through the readers' connection: got %+v, %v; want 1 mark repaired", res, err)
	}

	r.Close()
	if err := r.Ready(); err == nil {
		t.Error("readers' connection closed: got ready, want an error")
	}
	if err := b.Ready(); err != nil {
		t.Errorf("webhook path after the readers' connection closed: got %v, want ready", err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if names := clientNames(t, ns); contains(names, "forwarder-under-test-admin") || !contains(names, "forwarder-under-test") {
			return fmt.Errorf("client names after closing the readers' connection: %v, want the webhook path's only", names)
		}
		return nil
	})
}
