package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/zautic"
)

const (
	// repairBatch is how many message headers one fetch of the repair reads.
	repairBatch = 256
	// repairLoggedIDs bounds the ids the repair's log line names.
	repairLoggedIDs = 10
	// repairFetchBytes caps the bytes of one fetch too: headers only, 256
	// of them fit many times over.
	repairFetchBytes = 1 << 20
	// repairFetchWait bounds a fetch that gets fewer messages than it asked
	// for (the stream lost some to max_age meanwhile).
	repairFetchWait = 2 * time.Second
)

// The mark of a delivery is written after its PubAck, so a process that
// dies between the two leaves an event in the stream without its mark, and
// only the stream's duplicate window then stops a retry. The repair closes
// that gap: at start and after every reconnect it reads the headers of the
// stream's last dedup.repair_window and creates each missing mark. A mark
// that failed, and a publish whose outcome is unknown (a timeout, a lost
// connection: the event may be stored, unmarked), ask for it too, from a
// little before their time, and it runs as soon as NATS answers again,
// with no reconnect needed. KV Create leaves existing marks alone, so
// several replicas repairing at once do no harm.

// requestRepair asks Run to repair the marks of the last
// dedup.repair_window once the broker is ready.
func (b *Broker) requestRepair() { b.requestRepairSince(time.Now().Add(-b.cfg.Dedup.RepairWindow)) }

// requestRepairSince asks Run to repair the marks of the messages stored
// since since, as soon as the broker is ready; requests add up to the
// earliest time asked for. Run is woken, since nothing else may be due to
// wake it: a node that answers again after a freeze is no reconnect.
func (b *Broker) requestRepairSince(since time.Time) {
	b.noteRepairSince(since)
	b.Wake()
}

// noteRepairSince records the request without waking Run: a repair that
// failed is retried at the next periodic check, not in a loop.
func (b *Broker) noteRepairSince(since time.Time) {
	b.repairMu.Lock()
	defer b.repairMu.Unlock()
	if b.repairFrom.IsZero() || since.Before(b.repairFrom) {
		b.repairFrom = since
	}
}

// takeRepairRequest returns the time a repair is wanted from and clears
// the request; zero when none is wanted.
func (b *Broker) takeRepairRequest() time.Time {
	b.repairMu.Lock()
	defer b.repairMu.Unlock()
	since := b.repairFrom
	b.repairFrom = time.Time{}
	return since
}

// startRepair starts a repair in the background when one is wanted, the
// broker is ready and none runs yet; a request arriving during a repair
// starts another one at a later check. Readiness never waits for it.
func (b *Broker) startRepair(ctx context.Context, wg *sync.WaitGroup) {
	if b.cfg.Dedup.RepairWindow <= 0 || b.Ready() != nil || b.repairing.Load() {
		return
	}
	since := b.takeRepairRequest()
	if since.IsZero() {
		return
	}
	b.repairing.Store(true)
	wg.Go(func() {
		defer b.repairing.Store(false)
		b.repairMarks(ctx, since)
	})
}

// repairResult is what one repair did.
type repairResult struct {
	scanned, repaired int
	ids               []string // the first repairLoggedIDs repaired Nats-Msg-Ids
	// inWindow is how many messages the window held when the repair began;
	// coveredFrom the time of the oldest message it read: the repair
	// covered the window from then on, and nothing before.
	inWindow    uint64
	coveredFrom time.Time
}

// repairMarks runs one repair from since and logs what it scanned and
// repaired.
func (b *Broker) repairMarks(ctx context.Context, since time.Time) {
	start := time.Now()
	r, err := b.repairSince(ctx, since)
	// Durations as text with their unit ("15m0s"), not bare seconds.
	fields := []zap.Field{
		zap.Duration("window", start.Sub(since).Round(time.Millisecond)),
		zap.Uint64("in_window", r.inWindow),
		zap.Int("scanned", r.scanned),
		zap.Int("repaired", r.repaired),
		zap.Strings("repaired_ids", r.ids),
		zap.Stringer("took", time.Since(start)),
	}
	if !r.coveredFrom.IsZero() {
		fields = append(fields, zap.Time("covered_from", r.coveredFrom.UTC()))
	}
	switch want := min(r.inWindow, uint64(b.cfg.Dedup.RepairMax)); {
	case err != nil:
	case uint64(r.scanned) < want:
		// The reading consumer delivered less than the window holds: pulling
		// was refused (a missing $JS.API.CONSUMER.MSG.NEXT permission) or
		// the messages aged out meanwhile. Marks may be left unrepaired.
		b.log.Warn("mark repair read fewer messages than its window holds; check the permission to pull from the stream",
			append(fields, zap.Uint64("expected", want))...)
		return
	case r.inWindow > want:
		// Not an error: the newest marks, the ones a crash loses, are
		// covered; the operator learns that dedup.repair_max is below the
		// traffic of dedup.repair_window.
		fields = append(fields, zap.String("note", "the window held more than dedup.repair_max messages: the oldest were not read"))
	}
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("mark repair stopped; the next check repeats it", append(fields, zap.Error(err))...)
			b.noteRepairSince(since)
		}
		return
	}
	b.log.Info("mark repair finished", fields...)
}

// repairSince creates the missing mark of every message stored since
// since, reading at most dedup.repair_max messages: the newest ones, since a
// crash loses the marks of the last events it published. When the window
// holds more, the reading starts at the stream's last sequence less
// repair_max, and reads forward from there.
func (b *Broker) repairSince(ctx context.Context, since time.Time) (repairResult, error) {
	var r repairResult
	js := b.readJS()
	kv, err := b.readBucket(ctx, js)
	if err != nil {
		return r, err
	}
	stream, err := b.stream(ctx, js)
	if err != nil {
		return r, err
	}
	repairMax := uint64(b.cfg.Dedup.RepairMax)
	cfg := jetstream.ConsumerConfig{
		Description:   "zautic-forwarder mark repair",
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
		HeadersOnly:   true,
	}
	err = natsconn.WithReadConsumer(ctx, stream, cfg, func(cons jetstream.Consumer) error {
		// What is there now; messages stored during the repair have marks.
		r.inWindow = cons.CachedInfo().NumPending
		if r.inWindow > repairMax {
			return nil // read below, from the newest repair_max on
		}
		return b.repairRead(ctx, cons, kv, r.inWindow, &r)
	})
	if err == nil && r.inWindow > repairMax {
		// The window's n messages end at the stream's last sequence, so they
		// start at or before last-n+1, and the messages from last-max+1 on
		// all lie in the window: a start by sequence covers exactly the
		// newest repair_max, read forward by the same code.
		// Looked up after the count, so that last >= inWindow > repairMax.
		infoCtx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
		info, infoErr := stream.Info(infoCtx)
		cancel()
		if infoErr != nil {
			return r, fmt.Errorf("repair on stream %q: stream info: %w", b.cfg.Stream.Name, infoErr)
		}
		last := info.State.LastSeq
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, last-repairMax+1
		err = natsconn.WithReadConsumer(ctx, stream, cfg, func(cons jetstream.Consumer) error {
			return b.repairRead(ctx, cons, kv, min(cons.CachedInfo().NumPending, repairMax), &r)
		})
	}
	if err != nil {
		return r, fmt.Errorf("repair on stream %q: %w", b.cfg.Stream.Name, err)
	}
	return r, nil
}

// repairRead reads up to limit messages of cons and creates their missing
// marks.
func (b *Broker) repairRead(ctx context.Context, cons jetstream.Consumer, kv jetstream.KeyValue, limit uint64, r *repairResult) error {
	for read := uint64(0); read < limit; {
		n, err := b.repairBatch(ctx, cons, kv, int(min(repairBatch, limit-read)), r)
		if err != nil || n == 0 { // n == 0: the stream lost messages to max_age meanwhile
			return err
		}
		read += uint64(n)
	}
	return nil
}

// ReadThrough makes the background readers of the store (the mark repair)
// use r's connection instead of the webhook path's. Call it before Run.
func (b *Broker) ReadThrough(r *Reader) { b.reader = r }

// readJS is the connection background reads go through.
func (b *Broker) readJS() jetstream.JetStream {
	if b.reader != nil {
		return b.reader.JetStream()
	}
	return b.js
}

// readBucket is the dedup bucket on js, bounded by nats.publish_timeout.
func (b *Broker) readBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	if js == b.js {
		return b.bucket()
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	kv, err := natsconn.LookupBucket(ctx, js, b.cfg.Dedup.Bucket)
	if err != nil {
		return nil, fmt.Errorf("look up KV bucket %q: %w", b.cfg.Dedup.Bucket, err)
	}
	return kv, nil
}

// stream looks the stream up on js, bounded by nats.publish_timeout.
func (b *Broker) stream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	s, err := natsconn.LookupStream(ctx, js, b.cfg.Stream.Name)
	if err != nil {
		return nil, fmt.Errorf("look up stream %q: %w", b.cfg.Stream.Name, err)
	}
	return s, nil
}

// repairBatch fetches up to size messages and creates their missing marks;
// it returns how many messages it read.
func (b *Broker) repairBatch(ctx context.Context, cons jetstream.Consumer, kv jetstream.KeyValue, size int, r *repairResult) (int, error) {
	batch, err := cons.Fetch(size, jetstream.FetchMaxBytes(repairFetchBytes), jetstream.FetchMaxWait(repairFetchWait))
	if err != nil {
		return 0, fmt.Errorf("fetch: %w", err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		r.scanned++
		if r.coveredFrom.IsZero() {
			if meta, err := msg.Metadata(); err == nil {
				r.coveredFrom = meta.Timestamp
			}
		}
		repaired, err := b.repairMark(ctx, kv, msg)
		if err != nil {
			return n, err
		}
		if repaired != "" {
			r.repaired++
			if len(r.ids) < repairLoggedIDs {
				r.ids = append(r.ids, repaired)
			}
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return n, fmt.Errorf("fetch: %w", err)
	}
	return n, nil
}

// repairMark creates the marks of msg that it lacks, keyed as the request
// path keys them, and returns the Nats-Msg-Id it repaired ("" when the marks
// were there or the message carries no id). A message published under
// dedup.key "delivery" carries its signature's key as Nats-Msg-Id, and has
// the mark of its delivery id (its event id without one) too.
func (b *Broker) repairMark(ctx context.Context, kv jetstream.KeyValue, msg jetstream.Msg) (string, error) {
	h := msg.Headers()
	id := h.Get(jetstream.MsgIDHeader)
	if id == "" {
		return "", nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	// A named endpoint's message carries its name, and its keys are scoped
	// to it ("<endpoint>.<key>") as the request path scopes them.
	endpoint := h.Get(zautic.MessageEndpointHeader)
	base := id
	if endpoint != "" {
		base = strings.TrimPrefix(id, endpoint+".")
	}
	keys := [2]string{adminapi.EndpointKey(endpoint, adminapi.KVKeyOfMessageID(base))}
	if strings.HasPrefix(base, adminapi.SignatureKeyPrefix) {
		keys[1] = h.Get(zautic.MessageDeliveryIDHeader)
		if keys[1] == "" {
			keys[1] = h.Get(zautic.MessageEventIDHeader)
		}
		if keys[1] != "" {
			keys[1] = adminapi.EndpointKey(endpoint, adminapi.KVKey(keys[1]))
		}
	}
	repaired := ""
	for _, key := range keys {
		if key == "" {
			continue
		}
		created, err := b.repairKey(ctx, kv, key, repairedMarkValue(meta.Sequence.Stream, meta.Timestamp))
		if err != nil {
			return repaired, err
		}
		if created {
			repaired = id
		}
	}
	return repaired, nil
}

// repairKey creates the mark key with value unless it exists, and reports
// whether it did.
func (b *Broker) repairKey(ctx context.Context, kv jetstream.KeyValue, key string, value []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	// Most marks exist: one lookup settles them, where Create would take two
	// round trips to fail.
	switch _, err := kv.Get(ctx, key); {
	case err == nil:
		return false, nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("look up mark %q: %w", key, err)
	}
	_, err := kv.Create(ctx, key, value)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	default:
		return false, fmt.Errorf("create mark %q: %w", key, err)
	}
}
