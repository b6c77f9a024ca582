package quarantine

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Config configures the stream that keeps rejected deliveries
// which may verify later, and their replay.
type Config struct {
	Enabled       bool          `yaml:"enabled"`
	Stream        string        `yaml:"stream"`
	SubjectPrefix string        `yaml:"subject_prefix"`
	MaxAge        time.Duration `yaml:"max_age"`
	MaxBytes      int64         `yaml:"max_bytes"`
	Rate          float64       `yaml:"rate"`
	Burst         int           `yaml:"burst"`
	AutoReplay    bool          `yaml:"auto_replay"`
}

// DefaultConfig returns the quarantine's defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:       true,
		Stream:        "ZAUTIC_QUARANTINE",
		SubjectPrefix: "zautic-quarantine",
		MaxAge:        72 * time.Hour,
		MaxBytes:      64 << 20,
		Rate:          10,
		Burst:         100,
		AutoReplay:    true,
	}
}

// SubjectsOverlap reports whether a subject under one prefix could also be
// under the other.
func SubjectsOverlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}

// Writer is what keeping needs from NATS, in domain terms; *store.Broker
// implements it.
type Writer interface {
	Ready() error
	Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error)
}

// Keeper keeps rejected requests that may verify later; it is the
// ingest.Keeper of the webhook handler. A token bucket bounds what a flood
// of forged requests can write, and a store failure or timeout is only
// counted: the request is answered 400 either way.
type Keeper struct {
	store   Writer
	limiter *rate.Limiter
	timeout time.Duration
	log     *zap.Logger
	metrics *telemetry.Metrics
}

// NewKeeper returns the keeper of cfg, writing through store, each write
// bounded by timeout (nats.publish_timeout). metrics may be nil.
func NewKeeper(cfg Config, timeout time.Duration, store Writer, log *zap.Logger, m *telemetry.Metrics) *Keeper {
	return &Keeper{
		store:   store,
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		timeout: timeout,
		log:     log,
		metrics: m,
	}
}

// Keep stores the request and reports whether it did. It never waits for
// NATS when the store is not ready, so a rejection stays quick in an
// outage.
func (q *Keeper) Keep(ctx context.Context, r ingest.Rejected) bool {
	if !q.limiter.Allow() {
		q.metrics.QuarantineDropped(telemetry.DropRate)
		return false
	}
	if err := q.store.Ready(); err != nil {
		q.metrics.QuarantineDropped(telemetry.DropStore)
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	header := quarantineHeader(r.Header, r.ReceivedAt)
	if r.Endpoint != "" {
		// Replay verifies against this endpoint's secrets. Requests cannot
		// set it: only X-Zautic-* headers are kept from them.
		header.Set(zautic.MessageEndpointHeader, r.Endpoint)
	}
	if _, err := q.store.Quarantine(ctx, r.Reason, header, r.Body); err != nil {
		q.metrics.QuarantineDropped(telemetry.DropStore)
		q.log.Warn("quarantine store failed; the rejected delivery is not kept",
			zap.String("request_id", r.RequestID), zap.String("delivery_id", r.DeliveryID), zap.Error(err))
		return false
	}
	q.metrics.Quarantined(r.Reason)
	return true
}

// quarantineHeader keeps the request's X-Zautic-* headers as received (the
// signature too: it is verified again at replay), the Content-Type, and
// when the request arrived.
func quarantineHeader(in http.Header, receivedAt time.Time) http.Header {
	out := http.Header{}
	for name, values := range in {
		if strings.HasPrefix(name, "X-Zautic-") || name == "Content-Type" {
			out[name] = values
		}
	}
	out.Set(store.ReceivedAtHeader, receivedAt.UTC().Format(time.RFC3339Nano))
	return out
}
