package ingest

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store/storetest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// settings are the sections of the configuration the handler tests change:
// the handler's, and those of the store it runs on.
type settings struct {
	HTTP       HTTPConfig
	Webhook    secrets.WebhookConfig
	NATS       natsconn.Config
	Stream     store.StreamConfig
	Dedup      store.DedupConfig
	Events     EventsConfig
	Quarantine store.QuarantineStream
}

// defaultSettings are the defaults, the quarantine's stream off: these
// tests keep nothing.
func defaultSettings() settings {
	dedup := store.DefaultDedupConfig()
	dedup.Key = DedupKeyEvent
	return settings{
		HTTP: DefaultHTTPConfig(), Webhook: secrets.WebhookConfig{Tolerance: 5 * time.Minute},
		NATS: natsconn.DefaultConfig(), Stream: store.DefaultStreamConfig(), Dedup: dedup,
		Quarantine: store.QuarantineStream{Stream: "ZAUTIC_QUARANTINE", SubjectPrefix: "zautic-quarantine"},
	}
}

func (c settings) handlerConfig() Config {
	return Config{
		HTTP: c.HTTP, Tolerance: c.Webhook.Tolerance, DedupTTL: c.Dedup.TTL, Stream: c.Stream.Name, SubjectPrefix: c.Stream.SubjectPrefix,
		DedupKey: c.Dedup.Key, Bucket: c.Dedup.Bucket, Allow: c.Events.Allow, PublishTimeout: c.NATS.PublishTimeout,
	}
}

func (c settings) brokerConfig() store.Config {
	return store.Config{NATS: c.NATS, Stream: c.Stream, Dedup: c.Dedup, Quarantine: c.Quarantine, MaxBodyBytes: c.HTTP.MaxBodyBytes}
}

// runBroker connects a store to url and runs its readiness loop until the
// test ends.
func runBroker(t testing.TB, url string, cfg settings, log *zap.Logger, m *telemetry.Metrics) *store.Broker {
	t.Helper()
	return storetest.Run(t, url, cfg.brokerConfig(), log, m)
}
