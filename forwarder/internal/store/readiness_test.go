package store

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestCheckKeepsTheConnectReason runs the readiness check while NATS is
// unreachable: the reason the connection callbacks recorded stays, instead
// of flipping to a generic one (and being logged again) on every check.
func TestCheckKeepsTheConnectReason(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now

	core, logs := observer.New(zap.WarnLevel)
	b, err := Connect(url, defaultConfig(), zap.New(core), nil)
	if err != nil {
		t.Fatalf("ConnectBroker: got %v, want it to return and keep retrying", err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.Ready().Error(), "connect:") {
		if time.Now().After(deadline) {
			t.Fatalf("readiness reason: got %v, want the failed connection attempt", b.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}

	notReadyLogs := logs.FilterMessage("nats not ready").Len()
	for range 3 {
		b.check(context.Background())
	}
	if err := b.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "connect:") {
		t.Errorf("reason after checks: got %v, want the connection attempt's error", err)
	}
	// A reconnect attempt may fail, and be logged, meanwhile; the checks
	// themselves add nothing.
	if got := logs.FilterMessage("nats not ready").Len(); got > notReadyLogs+1 {
		t.Errorf("\"nats not ready\" logs during the checks: got %d, want at most 1", got-notReadyLogs)
	}
}

// TestCheckCancelledIsNoCause: a check cut short by the caller's own
// cancellation (a start that failed to bind a listener, a shutdown) logs
// no "nats not ready" cause and records none.
func TestCheckCancelledIsNoCause(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	core, logs := observer.New(zap.InfoLevel)
	b := checkedBroker(t, ns.ClientURL(), defaultConfig(), zap.New(core))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.check(ctx)
	if got := logs.FilterMessage("nats not ready").Len(); got != 0 {
		t.Errorf(`"nats not ready" logs after a cancelled check: got %d, want 0: %v`, got, logs.All())
	}
	if err := b.Ready(); err == nil || strings.Contains(err.Error(), "context canceled") {
		t.Errorf("readiness after a cancelled check: got %v, want the state before it (not checked yet)", err)
	}
}
