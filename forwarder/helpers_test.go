package forwarder

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store/storetest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// The tests of this package run the planes together, as Start wires them.

// runBroker connects the webhook path's store to url and runs its
// readiness loop until the test ends.
func runBroker(t testing.TB, url string, cfg Config, log *zap.Logger, m *telemetry.Metrics) *store.Broker {
	t.Helper()
	return storetest.Run(t, url, cfg.storeConfig(), log, m)
}

// newAdminHandler is the admin listener's probes and routes, without the
// inspector.
func newAdminHandler(pprof bool, ready telemetry.Readiness, gatherer prometheus.Gatherer, routes ...func(*http.ServeMux)) http.Handler {
	return telemetry.NewProbes(pprof, ready, gatherer, routes...)
}

// checkedOnceBroker connects and polls the readiness check until ready,
// without Run: nothing checks again unless the test asks.
func checkedOnceBroker(t *testing.T, cfg Config, log *zap.Logger, m *telemetry.Metrics) *store.Broker {
	t.Helper()
	b, err := store.Connect(cfg.NATS.URL, cfg.storeConfig(), log, m)
	if err != nil {
		t.Fatalf("connect store: %v", err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		return b.CheckNow(context.Background())
	})
	return b
}

// testEvent is a minimal event body.
func testEvent(id, eventType string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + eventType + `","data":{}}`)
}
