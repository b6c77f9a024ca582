package quarantine

import (
	"context"
	"errors"
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
	// QuarantineReady is nil when the quarantine stream can be written.
	QuarantineReady() error
	// QuarantineBytes is the stream's size as last seen.
	QuarantineBytes() int64
	Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error)
}

// LargeEntryBytes is the size from which an entry is large: Zautic's events
// are a few KB, so a body this size is rare from Zautic and cheap to forge.
const LargeEntryBytes = 64 << 10

// SmallEntryShare is the fraction of quarantine.max_bytes that large entries
// may never take: however many large forged bodies arrive, this much stays
// for the small entries genuine deliveries are.
const SmallEntryShare = 4 // one quarter

// Keeper keeps rejected requests that may verify later; it is the
// ingest.Keeper of the webhook handler. A token bucket bounds what a flood
// of forged requests can write; the stream refuses new entries when full
// and never discards one it holds; large entries stop at three quarters of
// quarantine.max_bytes. A request that is not kept is answered 503, so that
// Zautic retries it.
type Keeper struct {
	store    Writer
	limiter  *rate.Limiter
	maxLarge int64 // the bytes past which a large entry is refused
	timeout  time.Duration
	log      *zap.Logger
	metrics  *telemetry.Metrics
}

// NewKeeper returns the keeper of cfg, writing through store, each write
// bounded by timeout (nats.publish_timeout). metrics may be nil.
func NewKeeper(cfg Config, timeout time.Duration, store Writer, log *zap.Logger, m *telemetry.Metrics) *Keeper {
	return &Keeper{
		store:    store,
		limiter:  rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		maxLarge: cfg.MaxBytes - cfg.MaxBytes/SmallEntryShare,
		timeout:  timeout,
		log:      log,
		metrics:  m,
	}
}

// Reasons a rejected request is not kept, as its answer names them.
var (
	errOverRate   = errors.New("over quarantine.rate")
	errLargeShare = errors.New("the share of quarantine.max_bytes for entries of 64 KiB and more is used up")
)

// Keep stores the request, or says why it did not. It never waits for NATS
// when the quarantine is not usable, so a rejection stays quick in an
// outage.
func (q *Keeper) Keep(ctx context.Context, r ingest.Rejected) error {
	endpoint := endpointLabel(r.Endpoint)
	if !q.limiter.Allow() {
		q.metrics.QuarantineDropped(endpoint, telemetry.DropRate)
		return errOverRate
	}
	if err := q.store.QuarantineReady(); err != nil {
		q.metrics.QuarantineDropped(endpoint, telemetry.DropUnavailable)
		return err
	}
	// Measured against the stream's size at the last check plus what this
	// process kept since: replicas see each other's entries only at the
	// next check, so the share is approximate by a few seconds of entries;
	// the stream's own limit is exact.
	if len(r.Body) >= LargeEntryBytes && q.store.QuarantineBytes()+int64(len(r.Body)) > q.maxLarge {
		q.metrics.QuarantineDropped(endpoint, telemetry.DropLargeShare)
		return errLargeShare
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	header := quarantineHeader(r.Header, r.ReceivedAt)
	noteEvent(header, r.Body)
	if r.Endpoint != "" {
		// Replay verifies against this endpoint's secrets. Requests cannot
		// set it: only X-Zautic-* headers are kept from them.
		header.Set(zautic.MessageEndpointHeader, r.Endpoint)
	}
	if _, err := q.store.Quarantine(ctx, r.Reason, header, r.Body); err != nil {
		if errors.Is(err, store.ErrQuarantineFull) {
			q.metrics.QuarantineDropped(endpoint, telemetry.DropFull)
			return store.ErrQuarantineFull
		}
		q.metrics.QuarantineDropped(endpoint, telemetry.DropStore)
		q.log.Warn("quarantine store failed; the rejected delivery is not kept and is answered 503",
			zap.String("endpoint", endpoint), zap.String("request_id", r.RequestID), zap.String("delivery_id", r.DeliveryID), zap.Error(err))
		return errors.New("quarantine write failed")
	}
	q.metrics.Quarantined(endpoint, r.Reason)
	return nil
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

// maxNotedField bounds the event id and type noted in an entry's headers:
// they come from an unverified body.
const maxNotedField = 256

// noteEvent adds the body's event id and type, when it has them, to the
// entry's headers: a lookup of the quarantine then reads headers only,
// never the bodies, however large the quarantine. They are read as the
// request path reads them (zautic.ParseEvent, exact member names), so that
// a lookup shows the event id a replay would publish, never "ID" or "Type".
func noteEvent(h http.Header, body []byte) {
	event, err := zautic.ParseEvent(body)
	if err != nil {
		return
	}
	for name, v := range map[string]string{store.QuarantineEventIDHeader: event.ID, store.QuarantineEventTypeHeader: event.Type} {
		if v != "" && len(v) <= maxNotedField && !strings.ContainsAny(v, "\r\n") {
			h.Set(name, v)
		}
	}
}
