package forwarder

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Headers the forwarder adds to a quarantined request.
const (
	quarantineReasonHeader     = "Zautic-Quarantine-Reason"
	quarantineReceivedAtHeader = "Zautic-Received-At"
)

// Reasons a request is quarantined for: the values of the reason label of
// zautic_forwarder_quarantined_total and the last token of the subject.
const (
	reasonSignatureMismatch = "signature_mismatch"
	reasonTimestampOld      = "timestamp_out_of_tolerance"
)

// quarantineReasons are the reasons a rejected request is kept for.
func quarantineReasons() []string {
	return []string{reasonSignatureMismatch, reasonTimestampOld}
}

// Causes of a quarantine drop: the values of the cause label of
// zautic_forwarder_quarantine_dropped_total.
const (
	dropRate  = "rate"
	dropStore = "store"
)

// QuarantineConfig configures the stream that keeps rejected deliveries
// which may verify later, and their replay.
type QuarantineConfig struct {
	Enabled       bool          `yaml:"enabled"`
	Stream        string        `yaml:"stream"`
	SubjectPrefix string        `yaml:"subject_prefix"`
	MaxAge        time.Duration `yaml:"max_age"`
	MaxBytes      int64         `yaml:"max_bytes"`
	Rate          float64       `yaml:"rate"`
	Burst         int           `yaml:"burst"`
	AutoReplay    bool          `yaml:"auto_replay"`
}

// defaultQuarantineConfig returns the quarantine's defaults.
func defaultQuarantineConfig() QuarantineConfig {
	return QuarantineConfig{
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

// subjectsOverlap reports whether a subject under one prefix could also be
// under the other.
func subjectsOverlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}

// quarantineStore is what quarantining needs from NATS, in domain terms;
// *natsBroker implements it.
type quarantineStore interface {
	Ready() error
	Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error)
}

// quarantiner keeps rejected requests that may verify later. A token bucket
// bounds what a flood of forged requests can write, and a store failure or
// timeout is only counted: the request is answered 400 either way.
type quarantiner struct {
	store   quarantineStore
	limiter *rate.Limiter
	timeout time.Duration
	log     *zap.Logger
	metrics *metricSet
}

func newQuarantiner(cfg Config, store quarantineStore, log *zap.Logger, m *metricSet) *quarantiner {
	if !cfg.Quarantine.Enabled {
		return nil
	}
	return &quarantiner{
		store:   store,
		limiter: rate.NewLimiter(rate.Limit(cfg.Quarantine.Rate), cfg.Quarantine.Burst),
		timeout: cfg.NATS.PublishTimeout,
		log:     log,
		metrics: m,
	}
}

// quarantineReason is the reason err is quarantined for, or "" when a
// request rejected with err can never verify and is not kept.
func quarantineReason(err error) string {
	switch {
	case errors.Is(err, zautic.ErrNoValidSignature):
		return reasonSignatureMismatch
	case errors.Is(err, zautic.ErrTooOld):
		return reasonTimestampOld
	}
	return ""
}

// keep stores the request and reports whether it did. It never waits for
// NATS when the broker is not ready, so a rejection stays quick in an
// outage. A nil quarantiner keeps nothing.
func (q *quarantiner) keep(ctx context.Context, d *delivery, reason string, req *http.Request, body []byte) bool {
	if q == nil {
		return false
	}
	if !q.limiter.Allow() {
		q.metrics.quarantineDropped(dropRate)
		return false
	}
	if err := q.store.Ready(); err != nil {
		q.metrics.quarantineDropped(dropStore)
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	if _, err := q.store.Quarantine(ctx, reason, quarantineHeader(req.Header, d.receivedAt), body); err != nil {
		q.metrics.quarantineDropped(dropStore)
		q.log.Warn("quarantine store failed; the rejected delivery is not kept",
			zap.String("request_id", d.requestID), zap.String("delivery_id", d.deliveryID), zap.Error(err))
		return false
	}
	q.metrics.quarantined(reason)
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
	out.Set(quarantineReceivedAtHeader, receivedAt.UTC().Format(time.RFC3339Nano))
	return out
}
