package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// errEntryNotFound is returned when no quarantined entry has the sequence.
var errEntryNotFound = errors.New("no quarantined entry")

// quarantineEntry is one kept request. Body is nil in listings.
type quarantineEntry struct {
	Seq    uint64
	Reason string
	Header http.Header
	Body   []byte
	Size   int
}

// quarantineFilter selects entries, oldest first.
type quarantineFilter struct {
	Reason   string    // "" for every reason
	Since    time.Time // zero for all
	AfterSeq uint64    // entries after this sequence
	Limit    int       // at most this many
	Bodies   bool      // fetch the bodies too
}

// quarantineStreamConfig is the stream that keeps rejected deliveries: under
// its own prefix, never under stream.subject_prefix, bounded by age and
// size, the oldest dropped first.
func quarantineStreamConfig(cfg brokerConfig) jetstream.StreamConfig {
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
func (b *natsBroker) ensureQuarantine(ctx context.Context) error {
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
func (b *natsBroker) missingQuarantine(ctx context.Context) (string, error) {
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
	b.metrics.setQuarantineEntries(s.CachedInfo().State.Msgs)
	return "", nil
}

// Quarantine stores a rejected request under <quarantine.subject_prefix>.<reason>
// and returns its sequence.
func (b *natsBroker) Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error) {
	msg := &nats.Msg{Subject: b.cfg.Quarantine.SubjectPrefix + "." + reason, Data: body, Header: nats.Header(header)}
	msg.Header.Set(quarantineReasonHeader, reason)
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.cfg.Quarantine.Stream))
	if err != nil {
		return 0, fmt.Errorf("quarantine %s: %w", msg.Subject, err)
	}
	return ack.Sequence, nil
}

func (b *natsBroker) quarantineStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, b.cfg.Quarantine.Stream)
	if err != nil {
		return nil, fmt.Errorf("%w: quarantine stream %q: %w", errNotReady, b.cfg.Quarantine.Stream, err)
	}
	return s, nil
}

// QuarantinedEntry returns the entry with sequence seq, body included. If
// there is none, errEntryNotFound is returned.
func (b *natsBroker) QuarantinedEntry(ctx context.Context, seq uint64) (quarantineEntry, error) {
	s, err := b.quarantineStream(ctx)
	if err != nil {
		return quarantineEntry{}, err
	}
	raw, err := s.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return quarantineEntry{}, fmt.Errorf("%w: seq %d", errEntryNotFound, seq)
	case err != nil:
		return quarantineEntry{}, fmt.Errorf("%w: get quarantined seq %d: %w", errNotReady, seq, err)
	}
	return quarantineEntry{
		Seq:    raw.Sequence,
		Reason: raw.Header.Get(quarantineReasonHeader),
		Header: http.Header(raw.Header),
		Body:   raw.Data,
		Size:   len(raw.Data),
	}, nil
}

// DeleteQuarantined removes the entry seq; an entry already gone (another
// replica replayed it) is not an error.
func (b *natsBroker) DeleteQuarantined(ctx context.Context, seq uint64) error {
	s, err := b.quarantineStream(ctx)
	if err != nil {
		return err
	}
	err = s.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The server answers a missing message with a generic failure: look
	// the entry up to tell "already gone" from a real error.
	if _, getErr := s.GetMsg(ctx, seq); errors.Is(getErr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("delete quarantined seq %d: %w", seq, err)
}

// QuarantineEntries lists entries matching f, oldest first, through a
// short-lived consumer that reads only what is there (no waiting) and, unless
// f.Bodies, only the headers.
func (b *natsBroker) QuarantineEntries(ctx context.Context, f quarantineFilter) ([]quarantineEntry, error) {
	s, err := b.quarantineStream(ctx)
	if err != nil {
		return nil, err
	}
	if s.CachedInfo().State.Msgs == 0 || f.Limit <= 0 {
		return nil, nil
	}
	var entries []quarantineEntry
	err = withReadConsumer(ctx, s, listConsumerConfig(b.cfg.Quarantine.SubjectPrefix, f), func(cons jetstream.Consumer) error {
		var err error
		entries, err = fetchEntries(cons, f)
		return err
	})
	if err != nil {
		return entries, fmt.Errorf("%w: list quarantine: %w", errNotReady, err)
	}
	return entries, nil
}

func listConsumerConfig(prefix string, f quarantineFilter) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: prefix + ".>",
		HeadersOnly:   !f.Bodies,
	}
	if f.Reason != "" {
		cfg.FilterSubject = prefix + "." + f.Reason
	}
	switch {
	case f.AfterSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.AfterSeq+1
	case !f.Since.IsZero():
		// The stream's clock is close to the forwarder's: start a little
		// early and let the Zautic-Received-At check decide.
		start := f.Since.Add(-time.Minute)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	return cfg
}

// fetchBatch bounds one pull; bodies are at most http.max_body_bytes each.
const fetchBatch = 100

func fetchEntries(cons jetstream.Consumer, f quarantineFilter) ([]quarantineEntry, error) {
	var entries []quarantineEntry
	for len(entries) < f.Limit {
		batch, err := cons.FetchNoWait(min(fetchBatch, f.Limit-len(entries)))
		if err != nil {
			return entries, fmt.Errorf("fetch: %w", err)
		}
		n, pending := 0, uint64(0)
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			pending = meta.NumPending
			e := newEntry(m, meta, f.Bodies)
			if f.Since.IsZero() || !receivedAt(e).Before(f.Since) {
				entries = append(entries, e)
			}
		}
		if n == 0 || pending == 0 {
			break
		}
	}
	return entries, nil
}

func newEntry(m jetstream.Msg, meta *jetstream.MsgMetadata, withBody bool) quarantineEntry {
	h := http.Header(m.Headers())
	e := quarantineEntry{Seq: meta.Sequence.Stream, Reason: h.Get(quarantineReasonHeader), Header: h, Size: len(m.Data())}
	if withBody {
		e.Body = m.Data()
	} else if size, err := strconv.Atoi(h.Get(nats.MsgSize)); err == nil {
		e.Size = size
	}
	return e
}

// receivedAt is when the entry's request arrived; the zero time when the
// header is missing or malformed.
func receivedAt(e quarantineEntry) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Header.Get(quarantineReceivedAtHeader))
	return t
}
