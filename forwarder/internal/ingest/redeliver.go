package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// errBeyondDedupTTL is returned when a replay that ignores the tolerance
// meets a request signed longer than dedup.ttl ago: the mark that would
// catch a second copy of it may have expired, so publishing it could store
// the event twice, and a drifted clock cannot be told from an old capture.
var errBeyondDedupTTL = errors.New("beyond dedup.ttl: the dedup mark that would catch a second copy may be gone; refused even when ignoring the tolerance")

// ReasonBeyondDedupTTL is the reason of a replay refused with
// errBeyondDedupTTL.
const ReasonBeyondDedupTTL = "beyond_dedup_ttl"

// Redelivery is a request kept earlier, run again through the request path
// (the quarantine's replay).
type Redelivery struct {
	DeliveryID string
	ReceivedAt time.Time // the tolerance is measured at this time
	Signature  string    // the request's X-Zautic-Signature
	Body       []byte
	// IgnoreTolerance skips the timestamp check.
	IgnoreTolerance bool
	// DryRun looks up and changes nothing: a new event ends would_publish.
	DryRun bool
	// Endpoint is the named endpoint that received it, "" for the default;
	// Endpoints.Redeliver picks the handler by it.
	Endpoint string
}

// Redelivered is what became of a Redelivery: the outcome label (with the
// reason label and the error of a failed one) and what the event became.
type Redelivered struct {
	Outcome string
	Reason  string
	Err     error
	EventID string
	Subject string
	Seq     uint64 // the stream sequence; 0 unless published
	KeyID   string // the key id of the secret that matched
}

// Redeliver runs r through the rest of the request path: verify, parse,
// subject, allow, dedup, publish, mark. It records no request metric and
// writes no delivery log line: the caller reports its own.
func (h *Handler) Redeliver(ctx context.Context, r Redelivery) Redelivered {
	d := &delivery{requestID: "replay", deliveryID: r.DeliveryID, receivedAt: r.ReceivedAt, dryRun: r.DryRun}
	tolerance := h.cfg.Tolerance
	if r.IgnoreTolerance {
		tolerance = 0
		// Validate keeps dedup.ttl at least webhook.tolerance, so within
		// the tolerance the mark still catches a copy; beyond it, only
		// within dedup.ttl does it.
		if h.cfg.DedupTTL > 0 {
			d.signedAfter = h.now().Add(-h.cfg.DedupTTL)
		}
	}
	err := h.deliver(ctx, d, r.Body, r.Signature, tolerance)
	out := Redelivered{Outcome: d.outcome, Err: err, EventID: d.event.ID, Subject: d.subject, Seq: d.ack.Seq, KeyID: d.keyID}
	switch {
	case errors.Is(err, errBeyondDedupTTL):
		// A replay's refusal only: no request can meet it, so the request
		// path's table does not name it.
		out.Outcome, out.Reason = telemetry.OutcomeRejected, ReasonBeyondDedupTTL
	case err != nil:
		rej := classify(err)
		out.Outcome, out.Reason = rej.outcome, rej.reason
	}
	return out
}
