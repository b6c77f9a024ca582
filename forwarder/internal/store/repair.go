package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/zautic"
	"go.uber.org/zap"
)

const (
	// repairBatch is how many message headers one fetch of the repair reads.
	repairBatch = 256
	// repairLoggedIDs bounds the ids the repair's log line names.
	repairLoggedIDs = 10
)

// The mark of a delivery is written after its PubAck, so a process that
// dies between the two leaves an event in the stream without its mark, and
// only the stream's duplicate window then stops a retry. The repair closes
// that gap for a process that comes back: at start and after every
// reconnect it reads the headers of the stream's last dedup.repair_window
// and creates each missing mark. KV Create leaves existing marks alone, so
// several replicas repairing at once do no harm.

// requestRepair asks Run to repair the marks once the broker is ready.
func (b *Broker) requestRepair() { b.repairPending.Store(true) }

// startRepair starts a repair in the background when one is wanted, the
// broker is ready and none runs yet; a request arriving during a repair
// starts another one at a later check. Readiness never waits for it.
func (b *Broker) startRepair(ctx context.Context, wg *sync.WaitGroup) {
	if b.cfg.Dedup.RepairWindow <= 0 || b.Ready() != nil || b.repairing.Load() || !b.repairPending.Swap(false) {
		return
	}
	b.repairing.Store(true)
	wg.Go(func() {
		defer b.repairing.Store(false)
		b.repairMarks(ctx)
	})
}

// repairResult is what one repair did.
type repairResult struct {
	scanned, repaired int
	ids               []string // the first repairLoggedIDs repaired Nats-Msg-Ids
}

// repairMarks runs one repair and logs what it scanned and repaired.
func (b *Broker) repairMarks(ctx context.Context) {
	start := time.Now()
	since := start.Add(-b.cfg.Dedup.RepairWindow)
	r, err := b.repairSince(ctx, since)
	fields := []zap.Field{
		zap.Duration("window", b.cfg.Dedup.RepairWindow),
		zap.Int("scanned", r.scanned),
		zap.Int("repaired", r.repaired),
		zap.Strings("repaired_ids", r.ids),
		zap.Duration("took", time.Since(start)),
	}
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("mark repair stopped; the next reconnect or restart repeats it", append(fields, zap.Error(err))...)
		}
		return
	}
	b.log.Info("mark repair finished", fields...)
}

// repairSince creates the missing mark of every message stored since
// since, reading at most dedup.repair_max messages.
func (b *Broker) repairSince(ctx context.Context, since time.Time) (repairResult, error) {
	var r repairResult
	kv, err := b.bucket()
	if err != nil {
		return r, err
	}
	stream, err := b.stream(ctx)
	if err != nil {
		return r, err
	}
	cfg := jetstream.ConsumerConfig{
		Description:   "zautic-forwarder mark repair",
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
		HeadersOnly:   true,
	}
	err = WithReadConsumer(ctx, stream, cfg, func(cons jetstream.Consumer) error {
		// What is there now; messages stored during the repair have marks.
		limit := min(cons.CachedInfo().NumPending, uint64(b.cfg.Dedup.RepairMax))
		for uint64(r.scanned) < limit {
			n, err := b.repairBatch(ctx, cons, kv, int(min(repairBatch, limit-uint64(r.scanned))), &r)
			if err != nil || n == 0 { // n == 0: the stream lost messages to max_age meanwhile
				return err
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("repair on stream %q: %w", b.cfg.Stream.Name, err)
	}
	return r, nil
}

// stream looks the stream up, bounded by nats.publish_timeout.
func (b *Broker) stream(ctx context.Context) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	s, err := b.js.Stream(ctx, b.cfg.Stream.Name)
	if err != nil {
		return nil, fmt.Errorf("look up stream %q: %w", b.cfg.Stream.Name, err)
	}
	return s, nil
}

// repairBatch fetches up to size messages and creates their missing marks;
// it returns how many messages it read.
func (b *Broker) repairBatch(ctx context.Context, cons jetstream.Consumer, kv jetstream.KeyValue, size int, r *repairResult) (int, error) {
	batch, err := cons.FetchNoWait(size)
	if err != nil {
		return 0, fmt.Errorf("fetch: %w", err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		r.scanned++
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

// repairMark creates the mark of msg when it lacks one, keyed as the
// request path keys it, and returns the Nats-Msg-Id it repaired ("" when
// the mark was there or the message carries no id).
func (b *Broker) repairMark(ctx context.Context, kv jetstream.KeyValue, msg jetstream.Msg) (string, error) {
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	if id == "" {
		return "", nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	key := adminapi.KVKeyOfEndpointMessageID(msg.Headers().Get(zautic.MessageEndpointHeader), id)
	// Most marks exist: one lookup settles them, where Create would take two
	// round trips to fail.
	switch _, err := kv.Get(ctx, key); {
	case err == nil:
		return "", nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return "", fmt.Errorf("look up mark %q: %w", key, err)
	}
	_, err = kv.Create(ctx, key, markValue(meta.Sequence.Stream, meta.Timestamp))
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return "", nil
	default:
		return "", fmt.Errorf("create mark %q: %w", key, err)
	}
}
