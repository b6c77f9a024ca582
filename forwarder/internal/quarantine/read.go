package quarantine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
)

// ErrEntryNotFound is returned when no quarantined entry has the sequence.
var ErrEntryNotFound = errors.New("no quarantined entry")

// Entry is one kept request. Body is nil in listings.
type Entry struct {
	Seq    uint64
	Reason string
	Header http.Header
	Body   []byte
	Size   int
}

// Filter selects entries, oldest first.
type Filter struct {
	Reason   string    // "" for every reason
	Since    time.Time // zero for all
	AfterSeq uint64    // entries after this sequence
	Limit    int       // at most this many
	Bodies   bool      // fetch the bodies too
}

// Reader reads and deletes quarantined entries. The quarantine's listing,
// the replay's reads and its deletes go through it, on a connection of
// their own (see forwarder.Start), never the webhook path's.
type Reader struct {
	js            jetstream.JetStream
	stream        string
	subjectPrefix string
}

// NewReader returns the reader of cfg's stream through js.
func NewReader(js jetstream.JetStream, cfg Config) *Reader {
	return &Reader{js: js, stream: cfg.Stream, subjectPrefix: cfg.SubjectPrefix}
}

func (b *Reader) quarantineStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return nil, fmt.Errorf("%w: quarantine stream %q: %w", store.ErrNotReady, b.stream, err)
	}
	return s, nil
}

// Entry returns the entry with sequence seq, body included. If
// there is none, ErrEntryNotFound is returned.
func (b *Reader) Entry(ctx context.Context, seq uint64) (Entry, error) {
	s, err := b.quarantineStream(ctx)
	if err != nil {
		return Entry{}, err
	}
	raw, err := s.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return Entry{}, fmt.Errorf("%w: seq %d", ErrEntryNotFound, seq)
	case err != nil:
		return Entry{}, fmt.Errorf("%w: get quarantined seq %d: %w", store.ErrNotReady, seq, err)
	}
	return entryOf(raw), nil
}

// entryOf is the entry a message get returned, body included.
func entryOf(raw *jetstream.RawStreamMsg) Entry {
	return Entry{
		Seq:    raw.Sequence,
		Reason: raw.Header.Get(store.QuarantineReasonHeader),
		Header: http.Header(raw.Header),
		Body:   raw.Data,
		Size:   len(raw.Data),
	}
}

// Delete removes the entry seq; an entry already gone (another
// replica replayed it) is not an error.
func (b *Reader) Delete(ctx context.Context, seq uint64) error {
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

// Entries lists entries matching f, oldest first, through a
// short-lived consumer that reads only what is there (no waiting) and, unless
// f.Bodies, only the headers.
func (b *Reader) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	s, err := b.quarantineStream(ctx)
	if err != nil {
		return nil, err
	}
	if s.CachedInfo().State.Msgs == 0 || f.Limit <= 0 {
		return nil, nil
	}
	if f.Bodies {
		return b.entriesByGet(ctx, s, f)
	}
	var entries []Entry
	err = natsconn.WithReadConsumer(ctx, s, listConsumerConfig(b.subjectPrefix, f), func(cons jetstream.Consumer) error {
		var err error
		entries, err = fetchEntries(cons, f)
		return err
	})
	if err != nil {
		return entries, fmt.Errorf("%w: list quarantine: %w", store.ErrNotReady, err)
	}
	return entries, nil
}

// entriesByGet reads entries with bodies (the replay's pages) one message
// get at a time, each the next on f's subjects: no consumer, so a user
// without permission to create one ($JS.API.CONSUMER.>) can still replay,
// and the automatic replay does not retry for ever while entries age out.
// A page is at most fetchBatch entries, each replayed with a publish of its
// own, so a round trip per entry adds little.
func (b *Reader) entriesByGet(ctx context.Context, s jetstream.Stream, f Filter) ([]Entry, error) {
	subject := b.subjectPrefix + ".>"
	if f.Reason != "" {
		subject = b.subjectPrefix + "." + f.Reason
	}
	seq := max(f.AfterSeq+1, s.CachedInfo().State.FirstSeq)
	var entries []Entry
	for len(entries) < f.Limit {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return entries, nil
		case err != nil:
			return entries, fmt.Errorf("%w: read quarantine from seq %d: %w", store.ErrNotReady, seq, err)
		}
		e := entryOf(raw)
		if f.Since.IsZero() || !ReceivedAt(e).Before(f.Since) {
			entries = append(entries, e)
		}
		seq = raw.Sequence + 1
	}
	return entries, nil
}

func listConsumerConfig(prefix string, f Filter) jetstream.ConsumerConfig {
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

// Bounds of one pull: fetchBatch entries, and fetchBytes (bodies are at
// most http.max_body_bytes each, headers a few hundred bytes), whichever
// comes first; a fetch that gets fewer entries than it asked for (the
// stream dropped some meanwhile) waits at most fetchWait.
const (
	fetchBatch = 100
	fetchBytes = 4 << 20
	fetchWait  = 2 * time.Second
)

func fetchEntries(cons jetstream.Consumer, f Filter) ([]Entry, error) {
	var entries []Entry
	pending := cons.CachedInfo().NumPending
	for len(entries) < f.Limit && pending > 0 {
		size := min(fetchBatch, f.Limit-len(entries), int(min(pending, fetchBatch)))
		batch, err := cons.Fetch(size, jetstream.FetchMaxBytes(fetchBytes), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return entries, fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			pending = meta.NumPending
			e := newEntry(m, meta, f.Bodies)
			if f.Since.IsZero() || !ReceivedAt(e).Before(f.Since) {
				entries = append(entries, e)
			}
		}
		if n == 0 || pending == 0 {
			break
		}
	}
	return entries, nil
}

func newEntry(m jetstream.Msg, meta *jetstream.MsgMetadata, withBody bool) Entry {
	h := http.Header(m.Headers())
	e := Entry{Seq: meta.Sequence.Stream, Reason: h.Get(store.QuarantineReasonHeader), Header: h, Size: len(m.Data())}
	if withBody {
		e.Body = m.Data()
	} else if size, err := strconv.Atoi(h.Get(nats.MsgSize)); err == nil {
		e.Size = size
	}
	return e
}

// ReceivedAt is when the entry's request arrived; the zero time when the
// header is missing or malformed.
func ReceivedAt(e Entry) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Header.Get(store.ReceivedAtHeader))
	return t
}
