package forwarder

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// TestStartAbortedByContext starts an embedded nats-server on an address
// already taken, which the server never becomes ready on: a cancelled
// context ends the start instead of the wait running its course.
func TestStartAbortedByContext(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := DefaultConfig()
	cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", ""
	cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.StoreDir = taken.Addr().String(), t.TempDir()
	cfg.Webhook.Secret = "start-test"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	svc, err := Start(ctx, cfg, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err == nil {
		_ = svc.Wait(ctx)
		t.Fatal("Start: got no error, want the start aborted")
	}
	// Failing at once because the address is taken is as good as aborting.
	if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("got %v, want context.Canceled or an error naming %s", err, taken.Addr())
	}
}
