package quarantine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// errReceivedAt is returned when a quarantined entry has no valid
// Zautic-Received-At header, so its tolerance cannot be measured.
var errReceivedAt = errors.New("missing or malformed " + store.ReceivedAtHeader + " header")

// validate returns an error wrapping adminapi.ErrInvalidReplay that says
// what is wrong with r.
func validate(r adminapi.ReplayRequest) error {
	switch {
	case r.All == (len(r.Seqs) > 0):
		return fmt.Errorf(`%w: give either "seqs" or "all":true`, adminapi.ErrInvalidReplay)
	case len(r.Seqs) > adminapi.MaxReplayEntries:
		return fmt.Errorf("%w: %d seqs, at most %d", adminapi.ErrInvalidReplay, len(r.Seqs), adminapi.MaxReplayEntries)
	case r.Reason != "" && !r.All:
		return fmt.Errorf(`%w: "reason" goes with "all":true`, adminapi.ErrInvalidReplay)
	case r.Reason != "" && !slices.Contains(telemetry.QuarantineReasons(), r.Reason):
		return fmt.Errorf("%w: reason %q is not one of %v", adminapi.ErrInvalidReplay, r.Reason, telemetry.QuarantineReasons())
	}
	return nil
}

// replayStore is what replay needs from NATS; *Reader implements it.
type replayStore interface {
	Entries(ctx context.Context, f Filter) ([]Entry, error)
	Entry(ctx context.Context, seq uint64) (Entry, error)
	Delete(ctx context.Context, seq uint64) error
}

// Redeliverer runs a kept request through the request path again;
// *ingest.Handler implements it.
type Redeliverer interface {
	Redeliver(ctx context.Context, r ingest.Redelivery) ingest.Redelivered
}

// Replayer runs quarantined entries through the normal request path, in
// process: verify against the secrets accepted now, with the tolerance
// measured at the time the request arrived, then parse, subject, allow,
// dedup, publish, mark. An entry that ends published, duplicate or ignored
// leaves the quarantine; the others stay. The Nats-Msg-Id and the dedup
// bucket make replaying twice, or from two replicas at once, publish once.
type Replayer struct {
	h       Redeliverer
	store   replayStore
	log     *zap.Logger
	metrics *telemetry.Metrics
	timeout time.Duration
}

// NewReplayer returns the replayer of h's request path over the entries of
// store, each read bounded by timeout (nats.publish_timeout).
func NewReplayer(h Redeliverer, store replayStore, timeout time.Duration, log *zap.Logger, m *telemetry.Metrics) *Replayer {
	return &Replayer{h: h, store: store, log: log, metrics: m, timeout: timeout}
}

// List returns the entries f selects, without bodies.
func (r *Replayer) List(ctx context.Context, f Filter) ([]Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	f.Bodies = false
	return r.store.Entries(ctx, f)
}

// Replay replays the entries req selects. Errors wrap adminapi.ErrInvalidReplay for
// a bad request and store.ErrNotReady when the quarantine cannot be read; a
// failure of one entry is its result, not an error.
func (r *Replayer) Replay(ctx context.Context, req adminapi.ReplayRequest, trigger string) (adminapi.ReplayAnswer, error) {
	if err := validate(req); err != nil {
		return adminapi.ReplayAnswer{}, err
	}
	answer := adminapi.ReplayAnswer{DryRun: req.DryRun, Results: []adminapi.ReplayResult{}}
	if req.All {
		answer, _, err := r.replayAll(ctx, req, trigger, 0, adminapi.MaxReplayEntries)
		return answer, err
	}
	for _, seq := range req.Seqs {
		e, err := r.entry(ctx, seq)
		if errors.Is(err, ErrEntryNotFound) {
			answer.Results = append(answer.Results, adminapi.ReplayResult{Seq: seq, Outcome: adminapi.OutcomeNotFound, Error: err.Error()})
			continue
		}
		if err != nil {
			return answer, err
		}
		answer.Results = append(answer.Results, r.replayEntry(ctx, e, req, trigger))
	}
	return answer, nil
}

func (r *Replayer) entry(ctx context.Context, seq uint64) (Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.store.Entry(ctx, seq)
}

// replayAll replays, page by page and oldest first, up to limit entries of
// req.Reason (every reason when empty) after the sequence after. It returns
// the last sequence it replayed, where a next call continues.
func (r *Replayer) replayAll(ctx context.Context, req adminapi.ReplayRequest, trigger string, after uint64, limit int) (adminapi.ReplayAnswer, uint64, error) {
	answer := adminapi.ReplayAnswer{DryRun: req.DryRun, Results: []adminapi.ReplayResult{}}
	for len(answer.Results) < limit {
		if err := ctx.Err(); err != nil {
			// Out of time: what was replayed is the answer, and the rest
			// remains for the next call.
			answer.More = len(answer.Results) > 0
			if !answer.More {
				return answer, after, err
			}
			return answer, after, nil
		}
		page, err := r.page(ctx, req.Reason, after, min(fetchBatch, limit-len(answer.Results)))
		if err != nil {
			return answer, after, err
		}
		for _, e := range page {
			answer.Results = append(answer.Results, r.replayEntry(ctx, e, req, trigger))
			after = e.Seq
		}
		if len(page) == 0 {
			return answer, after, nil
		}
	}
	more, err := r.page(ctx, req.Reason, after, 1)
	answer.More = err == nil && len(more) > 0
	return answer, after, nil
}

func (r *Replayer) page(ctx context.Context, reason string, after uint64, n int) ([]Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.store.Entries(ctx, Filter{Reason: reason, AfterSeq: after, Limit: n, Bodies: true})
}

// replayEntry runs one entry through the request path and, unless it is a
// dry run, removes it from the quarantine when it is settled.
func (r *Replayer) replayEntry(ctx context.Context, e Entry, req adminapi.ReplayRequest, trigger string) adminapi.ReplayResult {
	deliveryID := e.Header.Get(zautic.RequestDeliveryIDHeader)
	endpoint := e.Header.Get(zautic.MessageEndpointHeader)
	res := adminapi.ReplayResult{Seq: e.Seq, DeliveryID: deliveryID, Endpoint: EndpointOf(e)}
	var keyID string
	if receivedAt, err := time.Parse(time.RFC3339Nano, e.Header.Get(store.ReceivedAtHeader)); err != nil {
		res.Outcome, res.Reason, res.Error = telemetry.OutcomeRejected, "received_at_malformed", errReceivedAt.Error()
	} else {
		out := r.h.Redeliver(ctx, ingest.Redelivery{
			DeliveryID: deliveryID, ReceivedAt: receivedAt, Signature: e.Header.Get(zautic.RequestSignatureHeader),
			Body: e.Body, IgnoreTolerance: req.IgnoreTolerance, DryRun: req.DryRun, Endpoint: endpoint,
		})
		res.Outcome, res.Reason, res.EventID, res.Subject, res.StreamSeq, keyID = out.Outcome, out.Reason, out.EventID, out.Subject, out.Seq, out.KeyID
		if out.Err != nil {
			res.Error = out.Err.Error()
		}
	}
	if settled(res.Outcome) && !req.DryRun {
		if err := r.delete(ctx, e.Seq); err != nil {
			res.Error = "replayed, but the entry is still in the quarantine: " + err.Error()
		}
	}
	r.metrics.Replayed(res.Endpoint, res.Outcome, trigger)
	r.logResult(keyID, res, trigger)
	return res
}

// settled reports whether an entry that ended with outcome may leave the
// quarantine.
func settled(outcome string) bool {
	return outcome == telemetry.OutcomePublished || outcome == telemetry.OutcomeDuplicate || outcome == telemetry.OutcomeIgnored
}

func (r *Replayer) delete(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	return r.store.Delete(ctx, seq)
}

func (r *Replayer) logResult(keyID string, res adminapi.ReplayResult, trigger string) {
	fields := []zap.Field{
		zap.Uint64("quarantine_seq", res.Seq), zap.String("endpoint", res.Endpoint), zap.String("trigger", trigger), zap.String("outcome", res.Outcome),
		zap.String("delivery_id", res.DeliveryID), zap.String("event_id", res.EventID), zap.String("subject", res.Subject),
	}
	if keyID != "" {
		fields = append(fields, zap.String("key_id", keyID))
	}
	if res.StreamSeq != 0 {
		fields = append(fields, zap.Uint64("seq", res.StreamSeq))
	}
	// reason is the documented code (signature_mismatch, …), as in the
	// metrics and the answer; error says what failed in words.
	if res.Reason != "" {
		fields = append(fields, zap.String("reason", res.Reason))
	}
	if res.Error != "" {
		fields = append(fields, zap.String("error", res.Error))
	}
	r.log.Info("replay", fields...)
}
