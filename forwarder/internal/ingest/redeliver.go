package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	// errBeyondDedupTTL is returned when a replay that ignores the
	// tolerance meets a request signed longer than dedup.ttl −
	// webhook.tolerance ago: the mark that would catch a second copy of it
	// may have expired, so publishing it could store the event twice, and a
	// drifted clock cannot be told from an old capture.
	errBeyondDedupTTL = errors.New("beyond dedup.ttl: the dedup mark that would catch a second copy may be gone; refused even when ignoring the tolerance")
	// errSignedInFuture is returned when a replay that ignores the
	// tolerance meets a request signed more than webhook.tolerance ahead of
	// this clock: once published, its mark could expire before its t is old
	// enough for errBeyondDedupTTL to refuse another copy. It replays once
	// the clocks agree within the tolerance.
	errSignedInFuture = errors.New("signed in the future, more than webhook.tolerance ahead of this clock; refused even when ignoring the tolerance until it is within it")
)

// The reasons of a replay refused with errBeyondDedupTTL or
// errSignedInFuture.
const (
	ReasonBeyondDedupTTL = "beyond_dedup_ttl"
	ReasonSignedInFuture = "signed_in_future"
)

// signedWindow is the signed t, in unix seconds, that a replay ignoring
// the tolerance accepts. It is compared as integers: t is whatever int64 a
// header carries, and time.Unix arithmetic overflows on hostile values.
type signedWindow struct {
	oldest, newest       int64
	hasOldest, hasNewest bool
	ttl, tolerance       time.Duration // for the errors' text
}

// ignoringToleranceWindow is the window of a replay at now that ignores
// the tolerance. Every copy of an event signed at t is published at some
// P >= t − tolerance: a request only within the tolerance, and a replay
// only while t <= P + tolerance (the newest bound). Its mark then lives at
// least until t − tolerance + dedup.ttl, so a replay at now is caught by
// that mark only if t >= now − (dedup.ttl − tolerance): the oldest bound.
// Validate keeps dedup.ttl >= webhook.tolerance; dedup.ttl 0 (marks for
// ever) has no oldest bound. With webhook.tolerance 0 (no check) a request
// may carry any t, so there is no newest bound and the oldest is
// now − dedup.ttl.
func (h *Handler) ignoringToleranceWindow(now time.Time) *signedWindow {
	w := &signedWindow{ttl: h.cfg.DedupTTL, tolerance: h.cfg.Tolerance}
	n, tol := now.Unix(), int64(h.cfg.Tolerance/time.Second)
	if tol > 0 {
		w.newest, w.hasNewest = n+tol, true
	}
	if ttl := int64(h.cfg.DedupTTL / time.Second); ttl > 0 {
		w.oldest, w.hasOldest = n-(ttl-tol), true
	}
	return w
}

// check refuses t outside w; a nil window accepts every t.
func (w *signedWindow) check(t int64) error {
	switch {
	case w == nil:
		return nil
	case w.hasNewest && t > w.newest:
		return fmt.Errorf("%w: signed at %s, more than webhook.tolerance (%s) ahead", errSignedInFuture, describeSignedAt(t), w.tolerance)
	case w.hasOldest && t < w.oldest:
		return fmt.Errorf("%w: signed at %s, more than dedup.ttl (%s) − webhook.tolerance (%s) ago", errBeyondDedupTTL, describeSignedAt(t), w.ttl, w.tolerance)
	}
	return nil
}

// describeSignedAt writes t as RFC 3339 when it can, else as the number.
func describeSignedAt(t int64) string {
	if at, ok := zautic.SignedTime(t); ok {
		return at.Format(time.RFC3339)
	}
	return "t=" + strconv.FormatInt(t, 10)
}

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
		d.window = h.ignoringToleranceWindow(h.now())
	}
	err := h.deliver(ctx, d, r.Body, r.Signature, tolerance)
	out := Redelivered{Outcome: d.outcome, Err: err, EventID: d.event.ID, Subject: d.subject, Seq: d.ack.Seq, KeyID: d.keyID}
	switch {
	case errors.Is(err, errBeyondDedupTTL):
		// A replay's refusals only: no request can meet them, so the
		// request path's table does not name them.
		out.Outcome, out.Reason = telemetry.OutcomeRejected, ReasonBeyondDedupTTL
	case errors.Is(err, errSignedInFuture):
		out.Outcome, out.Reason = telemetry.OutcomeRejected, ReasonSignedInFuture
	case err != nil:
		rej := classify(err)
		out.Outcome, out.Reason = rej.outcome, rej.reason
	}
	return out
}
