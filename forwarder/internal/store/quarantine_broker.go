package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
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
// size, the oldest dropped first.
func quarantineStreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Quarantine.Stream,
		Description: "Zautic deliveries rejected by zautic-forwarder that may verify later",
		Subjects:    []string{cfg.Quarantine.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.Quarantine.MaxAge,
		MaxBytes:    cfg.Quarantine.MaxBytes,
		Discard:     jetstream.DiscardOld,
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
	s, err := js.Stream(ctx, want.Name)
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

// missingQuarantine names the quarantine stream when it is enabled and
// missing.
func (b *Broker) missingQuarantine(ctx context.Context) (string, error) {
	if !b.cfg.Quarantine.Enabled {
		return "", nil
	}
	s, err := b.js.Stream(ctx, b.cfg.Quarantine.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Sprintf("stream %q", b.cfg.Quarantine.Stream), nil
	case err != nil:
		return "", fmt.Errorf("look up stream %q: %w", b.cfg.Quarantine.Stream, err)
	}
	// The lookup returns the stream's state: the entries waiting, for the
	// gauge behind the "quarantine not empty" alert.
	b.metrics.SetQuarantineEntries(s.CachedInfo().State.Msgs)
	return "", nil
}

// Quarantine stores a rejected request under <quarantine.subject_prefix>.<reason>
// and returns its sequence.
func (b *Broker) Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error) {
	msg := &nats.Msg{Subject: b.cfg.Quarantine.SubjectPrefix + "." + reason, Data: body, Header: nats.Header(header)}
	msg.Header.Set(QuarantineReasonHeader, reason)
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.cfg.Quarantine.Stream))
	if err != nil {
		return 0, fmt.Errorf("quarantine %s: %w", msg.Subject, err)
	}
	return ack.Sequence, nil
}
