package forwarder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	// errInvalidReplay is returned when a replay request selects nothing, or
	// names an unknown reason.
	errInvalidReplay = errors.New("invalid replay request")
	// errReceivedAt is returned when a quarantined entry has no valid
	// Zautic-Received-At header, so its tolerance cannot be measured.
	errReceivedAt = errors.New("missing or malformed " + quarantineReceivedAtHeader + " header")
)

// maxReplayEntries bounds the entries one replay request (all, or seqs)
// handles; an answer with More set says that entries remain.
const maxReplayEntries = 1000

// ReplayRequest selects quarantined entries and how to replay them.
type ReplayRequest struct {
	Seqs   []uint64 `json:"seqs,omitempty"`
	All    bool     `json:"all,omitempty"`
	Reason string   `json:"reason,omitempty"` // with All: only entries kept for this reason
	// IgnoreTolerance skips the timestamp check: replaying an old signed
	// request is a decision an operator takes, never the default.
	IgnoreTolerance bool `json:"ignore_tolerance,omitempty"`
	// DryRun looks everything up and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// Validate returns an error wrapping errInvalidReplay that says what is
// wrong with r.
func (r ReplayRequest) Validate() error {
	switch {
	case r.All == (len(r.Seqs) > 0):
		return fmt.Errorf(`%w: give either "seqs" or "all":true`, errInvalidReplay)
	case len(r.Seqs) > maxReplayEntries:
		return fmt.Errorf("%w: %d seqs, at most %d", errInvalidReplay, len(r.Seqs), maxReplayEntries)
	case r.Reason != "" && !r.All:
		return fmt.Errorf(`%w: "reason" goes with "all":true`, errInvalidReplay)
	case r.Reason != "" && !slices.Contains(quarantineReasons(), r.Reason):
		return fmt.Errorf("%w: reason %q is not one of %v", errInvalidReplay, r.Reason, quarantineReasons())
	}
	return nil
}

// ReplayResult is the outcome of replaying one entry. Reason is the
// rejection reason of a rejected entry; Error says what failed.
type ReplayResult struct {
	Seq        uint64 `json:"seq"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason,omitempty"`
	Error      string `json:"error,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	Subject    string `json:"subject,omitempty"`
	StreamSeq  uint64 `json:"stream_seq,omitempty"`
}

// outcomeNotFound is the outcome of a requested seq that is not (or no
// longer) in the quarantine; it is not counted in the metrics.
const outcomeNotFound = "not_found"

// ReplayAnswer holds one result per entry, oldest first.
type ReplayAnswer struct {
	DryRun  bool           `json:"dry_run"`
	Results []ReplayResult `json:"results"`
	// More is set when "all" stopped at maxReplayEntries.
	More bool `json:"more,omitempty"`
}

// Unsettled counts the entries that stay in the quarantine, or were not
// there: rejected, unavailable or not found.
func (a ReplayAnswer) Unsettled() int {
	n := 0
	for _, r := range a.Results {
		switch r.Outcome {
		case outcomeRejected, outcomeUnavailable, outcomeNotFound:
			n++
		}
	}
	return n
}

// replayStore is what replay needs from NATS; *natsBroker implements it.
type replayStore interface {
	QuarantineEntries(ctx context.Context, f quarantineFilter) ([]quarantineEntry, error)
	QuarantinedEntry(ctx context.Context, seq uint64) (quarantineEntry, error)
	DeleteQuarantined(ctx context.Context, seq uint64) error
}

// replayer runs quarantined entries through the normal request path, in
// process: verify against the secrets accepted now, with the tolerance
// measured at the time the request arrived, then parse, subject, allow,
// dedup, publish, mark. An entry that ends published, duplicate or ignored
// leaves the quarantine; the others stay. The Nats-Msg-Id and the dedup
// bucket make replaying twice, or from two replicas at once, publish once.
type replayer struct {
	h       *webhookHandler
	store   replayStore
	log     *zap.Logger
	metrics *metricSet
	timeout time.Duration
}

// newReplayer returns the replayer of h's request path over store.
func newReplayer(h *webhookHandler, store replayStore) *replayer {
	return &replayer{h: h, store: store, log: h.log, metrics: h.metrics, timeout: h.cfg.PublishTimeout}
}

// List returns the entries f selects, without bodies.
func (r *replayer) List(ctx context.Context, f quarantineFilter) ([]quarantineEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	f.Bodies = false
	return r.store.QuarantineEntries(ctx, f)
}

// Replay replays the entries req selects. Errors wrap errInvalidReplay for
// a bad request and errNotReady when the quarantine cannot be read; a
// failure of one entry is its result, not an error.
func (r *replayer) Replay(ctx context.Context, req ReplayRequest, trigger string) (ReplayAnswer, error) {
	if err := req.Validate(); err != nil {
		return ReplayAnswer{}, err
	}
	answer := ReplayAnswer{DryRun: req.DryRun, Results: []ReplayResult{}}
	if req.All {
		answer, _, err := r.replayAll(ctx, req, trigger, 0, maxReplayEntries)
		return answer, err
	}
	for _, seq := range req.Seqs {
		e, err := r.entry(ctx, seq)
		if errors.Is(err, errEntryNotFound) {
			answer.Results = append(answer.Results, ReplayResult{Seq: seq, Outcome: outcomeNotFound, Error: err.Error()})
			continue
		}
		if err != nil {
			return answer, err
		}
		answer.Results = append(answer.Results, r.replayEntry(ctx, e, req, trigger))
	}
	return answer, nil
}

func (r *replayer) entry(ctx context.Context, seq uint64) (quarantineEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.store.QuarantinedEntry(ctx, seq)
}

// replayAll replays, page by page and oldest first, up to limit entries of
// req.Reason (every reason when empty) after the sequence after. It returns
// the last sequence it replayed, where a next call continues.
func (r *replayer) replayAll(ctx context.Context, req ReplayRequest, trigger string, after uint64, limit int) (ReplayAnswer, uint64, error) {
	answer := ReplayAnswer{DryRun: req.DryRun, Results: []ReplayResult{}}
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

func (r *replayer) page(ctx context.Context, reason string, after uint64, n int) ([]quarantineEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.store.QuarantineEntries(ctx, quarantineFilter{Reason: reason, AfterSeq: after, Limit: n, Bodies: true})
}

// replayEntry runs one entry through the request path and, unless it is a
// dry run, removes it from the quarantine when it is settled.
func (r *replayer) replayEntry(ctx context.Context, e quarantineEntry, req ReplayRequest, trigger string) ReplayResult {
	d := &delivery{requestID: "replay", deliveryID: e.Header.Get(zautic.RequestDeliveryIDHeader), dryRun: req.DryRun}
	err := r.runEntry(ctx, d, e, req.IgnoreTolerance)
	res := ReplayResult{Seq: e.Seq, Outcome: d.outcome, DeliveryID: d.deliveryID, EventID: d.event.ID, Subject: d.subject}
	res.StreamSeq = d.ack.Seq
	if err != nil {
		r := classify(err)
		res.Outcome, res.Reason, res.Error = r.outcome, r.reason, err.Error()
		if errors.Is(err, errReceivedAt) {
			res.Outcome, res.Reason = outcomeRejected, "received_at_malformed"
		}
	}
	if settled(res.Outcome) && !req.DryRun {
		if err := r.delete(ctx, e.Seq); err != nil {
			res.Error = "replayed, but the entry is still in the quarantine: " + err.Error()
		}
	}
	r.metrics.replayed(res.Outcome, trigger)
	r.logResult(d, res, trigger)
	return res
}

func (r *replayer) runEntry(ctx context.Context, d *delivery, e quarantineEntry, ignoreTolerance bool) error {
	var err error
	if d.receivedAt, err = time.Parse(time.RFC3339Nano, e.Header.Get(quarantineReceivedAtHeader)); err != nil {
		return errReceivedAt
	}
	tolerance := r.h.cfg.Webhook.Tolerance
	if ignoreTolerance {
		tolerance = 0
	}
	return r.h.deliver(ctx, d, e.Body, e.Header.Get(zautic.RequestSignatureHeader), tolerance)
}

// settled reports whether an entry that ended with outcome may leave the
// quarantine.
func settled(outcome string) bool {
	return outcome == outcomePublished || outcome == outcomeDuplicate || outcome == outcomeIgnored
}

func (r *replayer) delete(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	return r.store.DeleteQuarantined(ctx, seq)
}

func (r *replayer) logResult(d *delivery, res ReplayResult, trigger string) {
	fields := []zap.Field{
		zap.Uint64("quarantine_seq", res.Seq), zap.String("trigger", trigger), zap.String("outcome", res.Outcome),
		zap.String("delivery_id", res.DeliveryID), zap.String("event_id", res.EventID), zap.String("subject", res.Subject),
	}
	if d.keyID != "" {
		fields = append(fields, zap.String("key_id", d.keyID))
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
