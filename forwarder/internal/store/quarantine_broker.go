package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// Headers the forwarder adds to a quarantined request.
const (
	QuarantineReasonHeader = "Zautic-Quarantine-Reason"
	ReceivedAtHeader       = "Zautic-Received-At"
	// QuarantineEventIDHeader and QuarantineEventTypeHeader carry the id
	// and type read from the unverified body when it was kept, so that a
	// lookup reads headers only.
	QuarantineEventIDHeader   = "Zautic-Quarantine-Event-Id"
	QuarantineEventTypeHeader = "Zautic-Quarantine-Event-Type"
)

// quarantineStreamConfig is the stream that keeps rejected deliveries: under
// its own prefix, never under stream.subject_prefix, bounded by age and
// size. At the size limit a new entry is refused (DiscardNew), never an
// older one dropped: an entry once kept leaves only by replay or by
// quarantine.max_age, so that a flood of forged requests cannot push out a
// genuine delivery kept before it.
func quarantineStreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Quarantine.Stream,
		Description: "Zautic deliveries rejected by zautic-forwarder that may verify later",
		Subjects:    []string{cfg.Quarantine.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.Quarantine.MaxAge,
		MaxBytes:    cfg.Quarantine.MaxBytes,
		Discard:     jetstream.DiscardNew,
		Replicas:    cfg.Stream.Replicas,
		Placement:   placement(cfg),
	}
}

// ensureQuarantine creates or updates the quarantine stream when enabled.
func (b *Broker) ensureQuarantine(ctx context.Context) error {
	if !b.cfg.Quarantine.Enabled {
		return nil
	}
	want := quarantineStreamConfig(b.cfg)
	if err := ensureStream(ctx, b.js, want, b.log); err != nil {
		return err
	}
	return ensureSizeLimit(ctx, b.js, want, b.log)
}

// ensureSizeLimit brings the quarantine's size limit into line: unlike the
// event stream's, it is the forwarder's own setting (quarantine.max_bytes),
// and what bounds the disk a flood of forged requests can take.
func ensureSizeLimit(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *zap.Logger) error {
	s, err := natsconn.LookupStream(ctx, js, want.Name)
	if err != nil {
		return fmt.Errorf("look up stream %q: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxBytes == want.MaxBytes && have.Discard == want.Discard {
		return nil
	}
	change := fmt.Sprintf("max_bytes %d -> %d, discard %s -> %s", have.MaxBytes, want.MaxBytes, have.Discard, want.Discard)
	updated := have
	updated.MaxBytes, updated.Discard = want.MaxBytes, want.Discard
	if _, err := js.UpdateStream(ctx, updated); err != nil {
		return fmt.Errorf("update stream %q (%s): %w", want.Name, change, err)
	}
	log.Warn("stream settings changed to match the configuration", zap.String("stream", want.Name), zap.Strings("changes", []string{change}))
	return nil
}

// ErrQuarantineUnavailable is returned by QuarantineReady, and by
// Quarantine, while the quarantine stream cannot be written: it is
// disabled, missing, could not be created, or was not checked yet.
var ErrQuarantineUnavailable = errors.New("quarantine unavailable")

// checkQuarantine keeps the quarantine's state current: with stream.manage
// it puts the stream in place when the last check did not find it usable,
// otherwise it only looks it up. The quarantine is optional: its absence
// never fails readiness (webhooks still flow; a rejection that cannot be
// kept is answered 503 so that Zautic retries it), and is reported by
// setQuarantine instead.
func (b *Broker) checkQuarantine(ctx context.Context) {
	if !b.cfg.Quarantine.Enabled {
		return
	}
	if b.cfg.Stream.Manage && b.QuarantineReady() != nil {
		if err := b.ensureQuarantine(ctx); err != nil {
			b.setQuarantine(err)
			return
		}
	}
	s, err := natsconn.LookupStream(ctx, b.js, b.cfg.Quarantine.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && !b.cfg.Stream.Manage:
		b.setQuarantine(fmt.Errorf("%w: stream %q (stream.manage is false: create it, or enable stream.manage)", ErrMissingResources, b.cfg.Quarantine.Stream))
		return
	case err != nil:
		b.setQuarantine(fmt.Errorf("look up stream %q: %w", b.cfg.Quarantine.Stream, err))
		return
	}
	// The lookup returns the stream's state: the entries waiting, for the
	// gauge behind the "quarantine not empty" alert, and the bytes used,
	// which the keeper's share for large entries is measured against.
	state := s.CachedInfo().State
	b.metrics.SetQuarantineEntries(state.Msgs)
	b.quarantineBytes.Store(int64(state.Bytes))
	b.setQuarantine(nil)
}

// setQuarantine records whether the quarantine can be written, and logs a
// change of state or cause once: at error level when it becomes unusable,
// since rejected deliveries are then answered 503 until an operator acts.
func (b *Broker) setQuarantine(cause error) {
	var next error
	if cause != nil {
		cause = withHint(cause, "quarantine.max_bytes, or set quarantine.enabled: false")
		next = fmt.Errorf("%w: %w", ErrQuarantineUnavailable, cause)
	}
	prev := b.quarantineErr.Swap(&next)
	b.metrics.SetQuarantineAvailable(cause == nil)
	switch {
	case cause != nil && (prev == nil || *prev == nil || (*prev).Error() != next.Error()):
		b.log.Error("quarantine unavailable: rejected deliveries that may verify later are answered 503 and not kept; webhooks still flow",
			zap.String("stream", b.cfg.Quarantine.Stream), zap.Error(cause))
	case cause == nil && prev != nil && *prev != nil:
		b.log.Info("quarantine available", zap.String("stream", b.cfg.Quarantine.Stream))
	}
}

// QuarantineReady returns nil when the quarantine stream was usable at the
// last check; otherwise an error wrapping ErrQuarantineUnavailable says
// why. It never touches the network.
func (b *Broker) QuarantineReady() error {
	if err := b.Ready(); err != nil {
		return err
	}
	if p := b.quarantineErr.Load(); p != nil {
		return *p
	}
	return nil
}

// QuarantineBytes is the quarantine stream's size at the last check plus
// what this process kept since; MaxQuarantineBytes is its limit.
func (b *Broker) QuarantineBytes() int64 { return b.quarantineBytes.Load() }

// MaxQuarantineBytes is quarantine.max_bytes.
func (b *Broker) MaxQuarantineBytes() int64 { return b.cfg.Quarantine.MaxBytes }

// Quarantine stores a rejected request under <quarantine.subject_prefix>.<reason>
// and returns its sequence.
func (b *Broker) Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error) {
	msg := &nats.Msg{Subject: b.cfg.Quarantine.SubjectPrefix + "." + reason, Data: body, Header: nats.Header(header)}
	msg.Header.Set(QuarantineReasonHeader, reason)
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.cfg.Quarantine.Stream))
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum bytes"):
		return 0, fmt.Errorf("quarantine %s: %w: %w", msg.Subject, ErrQuarantineFull, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// The stream is gone: check now rather than at the next period.
		b.Wake()
	}
	if err != nil {
		return 0, fmt.Errorf("quarantine %s: %w", msg.Subject, err)
	}
	b.quarantineBytes.Add(int64(storedSize(msg)))
	return ack.Sequence, nil
}

// ErrQuarantineFull is returned by Quarantine when the stream holds
// quarantine.max_bytes and refuses the entry.
var ErrQuarantineFull = errors.New("quarantine full")

// storedSize approximates the bytes msg takes in a file stream: subject,
// headers and data, and the record's fixed overhead.
func storedSize(msg *nats.Msg) int {
	n := len(msg.Subject) + len(msg.Data) + 22
	for k, vs := range msg.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
