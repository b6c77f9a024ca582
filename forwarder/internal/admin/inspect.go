package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	// errDeliveryNotFound is returned by the inspector when an id is neither
	// a dedup key nor in the headers of the recent stream messages nor in the
	// quarantine.
	errDeliveryNotFound = errors.New("delivery not found")
	// errInspect is returned when the stream, the bucket or the quarantine
	// cannot be read.
	errInspect = errors.New("inspect failed")
)

// Bounds of the inspector's reads; each one is a number of stream sequences.
const (
	// lookupScanLimit is how far back a lookup reads the stream's headers
	// for an id that is not a dedup key.
	lookupScanLimit = 100_000
	// quarantineScanLimit is how far back a lookup reads the quarantine.
	quarantineScanLimit = 10_000
	// typeScanLimit is how far back one page of a type-filtered listing reads.
	typeScanLimit = 10_000
	// scanBatch is the number of messages of one fetch while scanning: with
	// 1,000 a scan of 100,000 headers took about three times as long.
	scanBatch = 10_000
	// scanFetchBytes caps the bytes of one fetch as well (STYLE.md, nats.go
	// specifics): headers only, a fetch holds about 2,000 messages' worth.
	scanFetchBytes = 1 << 20
	// scanFetchWait bounds a fetch that gets fewer messages than it asked
	// for: the stream lost some to its limits during the scan.
	scanFetchWait = 2 * time.Second
)

// quarantineRecord is one quarantined request whose delivery or event id
// matched a lookup. Reason, ReceivedAt, QuarantineSeq and Size are the
// forwarder's own; the fields Unsigned names come from the request's
// unsigned headers or its unverified body.
type quarantineRecord struct {
	Reason     string `json:"reason"`
	ReceivedAt string `json:"received_at"`
	// SignedAt is the t of the entry's X-Zautic-Signature header, RFC 3339
	// in UTC: what the header claims, unverified like the rest.
	SignedAt      string   `json:"signed_at,omitempty"`
	QuarantineSeq uint64   `json:"quarantine_seq"`
	DeliveryID    string   `json:"delivery_id,omitempty"`
	EventID       string   `json:"event_id,omitempty"`
	EventType     string   `json:"event_type,omitempty"`
	Size          int      `json:"size"`
	Unsigned      []string `json:"unsigned"`
	Endpoint      string   `json:"endpoint"`
}

// quarantineUnsigned names the fields of a quarantineRecord that nothing
// has verified, as GET /quarantine names its own: an answer that mixes
// them with published fields must say which is which.
var quarantineUnsigned = []string{"delivery_id", "event_id", "event_type", "signed_at"}

// expiredMark is a dedup mark whose stream message is gone (stream.max_age,
// a limit or a purge removed it).
type expiredMark struct {
	Key      string `json:"dedup_key"`
	Stream   string `json:"stream"`
	Seq      uint64 `json:"seq"`
	MarkedAt string `json:"marked_at,omitempty"`
}

// deliveryLookup is everything known about one id: at most one of
// Published and Expired, and the quarantine entries, oldest first.
type deliveryLookup struct {
	Published   *adminapi.DeliveryRecord
	Expired     *expiredMark
	Quarantined []quarantineRecord
}

// deliveryQuery selects a page of recent deliveries.
type deliveryQuery struct {
	Limit     int
	Type      string // empty: every type
	BeforeSeq uint64 // 0: from the newest
	Endpoint  string // empty: every endpoint
}

// InspectConfig names what the inspector reads.
type InspectConfig struct {
	Stream        string // stream.name
	SubjectPrefix string // stream.subject_prefix
	Bucket        string // dedup.bucket
	// QuarantineStream is read by a lookup when it exists, the quarantine
	// enabled or not: it may hold entries from when it was.
	QuarantineStream string
	// Endpoints are the endpoint labels a lookup or a listing may name, and
	// HeaderFilter says that subjects are not <stream prefix>.<type> only
	// (named endpoints, a subject template): a type is then filtered by its
	// header.
	Endpoints    []string
	HeaderFilter bool
}

// Inspector answers the deliveries API from the stream, the dedup bucket
// and the quarantine, through js: a connection of the admin plane's own.
type Inspector struct {
	js    jetstream.JetStream
	cfg   InspectConfig
	ready func() error
}

// NewInspector returns the inspector of cfg's resources through js. ready
// says whether reading is worth trying (nil when it is).
func NewInspector(js jetstream.JetStream, cfg InspectConfig, ready func() error) *Inspector {
	return &Inspector{js: js, cfg: cfg, ready: ready}
}

// Ready returns nil when the inspector's connection can read.
func (b *Inspector) Ready() error { return b.ready() }

// bucket looks the dedup bucket up.
func (b *Inspector) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, b.cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%w: dedup bucket %s: %w", errInspect, b.cfg.Bucket, err)
	}
	return kv, nil
}

// LookupDelivery finds id as a dedup key in the bucket, else in the
// Zautic-Delivery-Id and Zautic-Event-Id headers of the last lookupScanLimit
// stream messages, and in the quarantine. If it is nowhere,
// errDeliveryNotFound is returned; read failures wrap errInspect.
func (b *Inspector) LookupDelivery(ctx context.Context, id, endpoint string) (deliveryLookup, error) {
	var found deliveryLookup
	if err := b.checkEndpoint(endpoint); err != nil {
		return found, err
	}
	msg, expired, err := b.findPublished(ctx, id, endpoint)
	if err != nil {
		return found, err
	}
	found.Expired = expired
	if msg != nil {
		rec := b.recordOf(msg.Subject, msg.Header, msg.Sequence, msg.Time, len(msg.Data))
		rec.EventID = bodyEventID(msg.Data, rec.EventID)
		found.Published = &rec
	}
	if found.Quarantined, err = b.scanQuarantine(ctx, id, endpoint); err != nil {
		return found, err
	}
	if found.Published == nil && found.Expired == nil && len(found.Quarantined) == 0 {
		return found, fmt.Errorf("%w: %q", errDeliveryNotFound, id)
	}
	return found, nil
}

// DeliveryBody returns the published body of id and its content type.
// Quarantined bodies are never returned: they are unverified. If id has no
// message in the stream, errDeliveryNotFound is returned.
func (b *Inspector) DeliveryBody(ctx context.Context, id, endpoint string) ([]byte, string, error) {
	if err := b.checkEndpoint(endpoint); err != nil {
		return nil, "", err
	}
	msg, _, err := b.findPublished(ctx, id, endpoint)
	if err != nil {
		return nil, "", err
	}
	if msg == nil {
		return nil, "", fmt.Errorf("%w: %q has no message in stream %s", errDeliveryNotFound, id, b.cfg.Stream)
	}
	contentType := msg.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "application/json"
	}
	return msg.Data, contentType, nil
}

// findPublished returns the stream message of id: through the dedup mark
// when id is a dedup key, else through a scan of the stream's headers. A
// mark whose message is gone is returned as an expiredMark.
func (b *Inspector) findPublished(ctx context.Context, id, endpoint string) (*jetstream.RawStreamMsg, *expiredMark, error) {
	if err := b.Ready(); err != nil {
		return nil, nil, err
	}
	stream, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: stream %s: %w", errInspect, b.cfg.Stream, err)
	}
	mark, err := b.readMark(ctx, id, endpoint)
	if err != nil {
		return nil, nil, err
	}
	if mark != nil {
		msg, err := stream.GetMsg(ctx, mark.Seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, mark, nil
		case err != nil:
			return nil, nil, fmt.Errorf("%w: get message %d: %w", errInspect, mark.Seq, err)
		case !carriesID(msg.Header, id, endpoint):
			// The stream was recreated: the sequence now holds another event.
			// The publisher sends a key a header cannot carry exactly in its
			// mapped form, so compare with what it sent, not the key itself.
			return nil, mark, nil
		}
		return msg, nil, nil
	}
	seq, err := b.scanForID(ctx, stream, id, endpoint)
	if err != nil || seq == 0 {
		return nil, nil, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: get message %d: %w", errInspect, seq, err)
	}
	return msg, nil, nil
}

// carriesID reports whether a message is the one of id at endpoint: its
// Nats-Msg-Id, or under dedup.key "delivery" (whose Nats-Msg-Id is the
// signature's key) its delivery or event id.
func carriesID(h nats.Header, id, endpoint string) bool {
	return h.Get(zautic.MessageIDHeader) == markedMessageID(id, endpoint) ||
		(h.Get(zautic.MessageDeliveryIDHeader) == id || h.Get(zautic.MessageEventIDHeader) == id) && ofEndpoint(h, endpoint)
}

// readMark reads the dedup mark of id, nil when id is not a dedup key. Its
// value is the event's stream sequence; when it was marked is the entry's
// own time, unless the value carries one after a space (a mark the repair
// recreated, or one an earlier version wrote). The key is mapped as the
// request path maps it, so that any id a sender can send is safe here.
func (b *Inspector) readMark(ctx context.Context, id, endpoint string) (*expiredMark, error) {
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	entry, err := kv.Get(ctx, endpointKVKey(id, endpoint))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: dedup bucket: %w", errInspect, err)
	}
	seqText, timeText, _ := strings.Cut(string(entry.Value()), " ")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		return nil, nil // not a mark the forwarder wrote: look in the stream
	}
	markedAt, err := time.Parse(time.RFC3339Nano, timeText)
	if err != nil {
		markedAt = entry.Created()
	}
	return &expiredMark{Key: id, Stream: b.cfg.Stream, Seq: seq, MarkedAt: markedAt.UTC().Format(time.RFC3339Nano)}, nil
}

// scanForID returns the sequence of the newest message among the last
// lookupScanLimit whose delivery or event id header is id; 0 if none.
func (b *Inspector) scanForID(ctx context.Context, stream jetstream.Stream, id, endpoint string) (uint64, error) {
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	start := scanStart(state.FirstSeq, state.LastSeq, lookupScanLimit)
	msgID := markedMessageID(id, endpoint)
	var newest uint64
	err := scanRange(ctx, stream, scan{start: start, end: state.LastSeq, headersOnly: true}, func(m jetstream.Msg) {
		h := m.Headers()
		// The Nats-Msg-Id finds a key whose mark is gone, or whose id the
		// other headers carry trimmed (" evt_1" arrives as "evt_1").
		if (h.Get(zautic.MessageDeliveryIDHeader) == id || h.Get(zautic.MessageEventIDHeader) == id || h.Get(zautic.MessageIDHeader) == msgID) && ofEndpoint(h, endpoint) {
			newest = sequenceOf(m)
		}
	})
	return newest, err
}

// scanQuarantine returns the entries of the last quarantineScanLimit
// quarantined requests whose delivery id header or body id is id. A missing
// quarantine stream (the feature is off) is no error.
func (b *Inspector) scanQuarantine(ctx context.Context, id, endpoint string) ([]quarantineRecord, error) {
	name := b.cfg.QuarantineStream
	stream, err := b.js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: quarantine stream %s: %w", errInspect, name, err)
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	var found []quarantineRecord
	start := scanStart(state.FirstSeq, state.LastSeq, quarantineScanLimit)
	err = scanRange(ctx, stream, scan{start: start, end: state.LastSeq, headersOnly: true}, func(m jetstream.Msg) {
		if rec := quarantineRecordOf(m); (rec.DeliveryID == id || rec.EventID == id) && ofEndpoint(m.Headers(), endpoint) {
			found = append(found, rec)
		}
	})
	return found, err
}

// quarantineRecordOf reads an entry's headers only: the event id and type
// the keeper read from the unverified body are among them.
func quarantineRecordOf(m jetstream.Msg) quarantineRecord {
	h := m.Headers()
	rec := quarantineRecord{
		Reason:        h.Get(store.QuarantineReasonHeader),
		ReceivedAt:    h.Get(store.ReceivedAtHeader),
		QuarantineSeq: sequenceOf(m),
		DeliveryID:    h.Get(zautic.RequestDeliveryIDHeader),
		EventID:       h.Get(store.QuarantineEventIDHeader),
		EventType:     h.Get(zautic.RequestEventHeader),
		Size:          bodySize(m),
		Unsigned:      quarantineUnsigned,
		Endpoint:      endpointOf(h),
	}
	if at := signedAt(h.Get(zautic.RequestSignatureHeader)); at != nil {
		rec.SignedAt = at.Format(time.RFC3339)
	}
	if t := h.Get(store.QuarantineEventTypeHeader); t != "" {
		rec.EventType = t
	}
	return rec
}

// bodySize is the size of a message's body: a headers-only read carries it
// in Nats-Msg-Size.
func bodySize(m jetstream.Msg) int {
	if s, err := strconv.Atoi(m.Headers().Get(nats.MsgSize)); err == nil {
		return s
	}
	return len(m.Data())
}

// ListDeliveries returns the most recent published events, newest first,
// from their headers only. A type filter reads at most typeScanLimit
// sequences back, so a page of a rare type may be short; NextBeforeSeq still
// says where to go on. An invalid type wraps zautic.ErrInvalidType.
func (b *Inspector) ListDeliveries(ctx context.Context, q deliveryQuery) (adminapi.DeliveryPage, error) {
	page := adminapi.DeliveryPage{Deliveries: []adminapi.DeliveryRecord{}}
	if err := b.checkEndpoint(q.Endpoint); err != nil {
		return page, err
	}
	sc := scan{headersOnly: true}
	window := uint64(q.Limit)
	if q.Endpoint != "" || q.Type != "" && b.cfg.HeaderFilter {
		if err := b.checkType(q.Type); err != nil {
			return page, err
		}
		window = typeScanLimit
	} else if q.Type != "" {
		subject, err := zautic.SubjectFor(b.cfg.SubjectPrefix, q.Type)
		if err != nil {
			return page, err
		}
		sc.filter, window = subject, typeScanLimit
	}
	if err := b.Ready(); err != nil {
		return page, err
	}
	stream, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return page, fmt.Errorf("%w: stream %s: %w", errInspect, b.cfg.Stream, err)
	}
	state := stream.CachedInfo().State
	sc.end = state.LastSeq
	if q.BeforeSeq > 0 {
		sc.end = min(sc.end, q.BeforeSeq-1)
	}
	if state.Msgs == 0 || sc.end < state.FirstSeq {
		return page, nil
	}
	sc.start = scanStart(state.FirstSeq, sc.end, window)
	// Read forward through the window, keeping the newest Limit.
	var kept []adminapi.DeliveryRecord
	err = scanRange(ctx, stream, sc, func(m jetstream.Msg) {
		if !ofEndpoint(m.Headers(), q.Endpoint) || q.Type != "" && m.Headers().Get(zautic.MessageEventTypeHeader) != q.Type {
			return
		}
		kept = append(kept, b.recordOfMsg(m))
		if len(kept) > q.Limit {
			kept = kept[1:]
		}
	})
	if err != nil {
		return page, err
	}
	for i := len(kept) - 1; i >= 0; i-- {
		page.Deliveries = append(page.Deliveries, kept[i])
	}
	page.NextBeforeSeq = sc.start
	if len(kept) == q.Limit {
		page.NextBeforeSeq = kept[0].Seq
	}
	if page.NextBeforeSeq <= state.FirstSeq {
		page.NextBeforeSeq = 0
	}
	return page, nil
}

// bodyEventID is the id of a published body, the truth the Zautic-Event-Id
// header carries only where a header can: nats.go trims white space at
// either end of a header value. fromHeader is kept when the body has none.
func bodyEventID(body []byte, fromHeader string) string {
	var event struct {
		ID *string `json:"id"`
	}
	if json.Unmarshal(body, &event) != nil || event.ID == nil {
		return fromHeader
	}
	return *event.ID
}

func (b *Inspector) recordOfMsg(m jetstream.Msg) adminapi.DeliveryRecord {
	var published time.Time
	if meta, err := m.Metadata(); err == nil {
		published = meta.Timestamp
	}
	return b.recordOf(m.Subject(), m.Headers(), sequenceOf(m), published, bodySize(m))
}

func (b *Inspector) recordOf(subject string, h nats.Header, seq uint64, published time.Time, size int) adminapi.DeliveryRecord {
	return adminapi.DeliveryRecord{
		DeliveryID:  h.Get(zautic.MessageDeliveryIDHeader),
		EventID:     h.Get(zautic.MessageEventIDHeader),
		Type:        h.Get(zautic.MessageEventTypeHeader),
		Subject:     subject,
		Stream:      b.cfg.Stream,
		Seq:         seq,
		PublishedAt: published.UTC(),
		Size:        size,
		Endpoint:    endpointOf(h),
	}
}

// scan is a range of stream sequences to read, inclusive.
type scan struct {
	start, end  uint64
	filter      string // a subject filter; empty reads every subject
	headersOnly bool
}

// scanStart is the first sequence of a window of at most size sequences
// that ends at end and does not start before first.
func scanStart(first, end, size uint64) uint64 {
	if end < size || end-size+1 < first {
		return first
	}
	return end - size + 1
}

// scanRange calls fn with each message of sc, in order, through a reading
// consumer (natsconn.WithReadConsumer).
func scanRange(ctx context.Context, stream jetstream.Stream, sc scan, fn func(jetstream.Msg)) error {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   sc.start,
		HeadersOnly:   sc.headersOnly,
		FilterSubject: sc.filter,
	}
	err := natsconn.WithReadConsumer(ctx, stream, cfg, func(cons jetstream.Consumer) error {
		return scanBatches(ctx, cons, sc.end, fn)
	})
	if err != nil && !errors.Is(err, errInspect) {
		return fmt.Errorf("%w: %w", errInspect, err)
	}
	return err
}

// scanBatches fetches until the message of sequence end, or the end of what
// was there when the consumer was made; each fetch is capped in messages
// and in bytes.
func scanBatches(ctx context.Context, cons jetstream.Consumer, end uint64, fn func(jetstream.Msg)) error {
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(scanBatch, pending)), jetstream.FetchMaxBytes(scanFetchBytes), jetstream.FetchMaxWait(scanFetchWait))
		if err != nil {
			return fmt.Errorf("%w: fetch: %w", errInspect, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			if pending > 0 {
				pending--
			}
			if sequenceOf(m) > end {
				done = true
				continue
			}
			fn(m)
			if sequenceOf(m) == end {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("%w: fetch: %w", errInspect, err)
		}
		if done || n == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: scan stopped at the deadline: %w", errInspect, err)
		}
	}
	return nil
}

// sequenceOf is a consumed message's stream sequence.
func sequenceOf(m jetstream.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}
