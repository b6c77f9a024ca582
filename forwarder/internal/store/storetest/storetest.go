// Package storetest runs the webhook path's store in the tests of the
// packages that use it.
package storetest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// Run connects a store to url and runs its readiness loop until the test
// ends, then closes it.
func Run(t testing.TB, url string, cfg store.Config, log *zap.Logger, m *telemetry.Metrics) *store.Broker {
	t.Helper()
	b, err := store.Connect(url, cfg, log, m)
	if err != nil {
		t.Fatalf("connect store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		b.Close(time.Second)
	})
	return b
}
