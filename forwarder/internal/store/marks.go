package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// The mark of a delivery promises nothing to the sender: the event is
// stored when its PubAck comes, and a retry inside stream.duplicate_window
// is caught by its Nats-Msg-Id. So Mark sends it without waiting for its
// PubAck, as KV Create would send it (the same subject, and
// Nats-Expected-Last-Subject-Sequence: 0, so that an existing mark is never
// overwritten), and the answer goes out one round trip sooner. Until its
// PubAck comes, the key is remembered here, so that a retry to this process
// is a duplicate without asking NATS; a mark that fails asks for the mark
// repair over its time, which recreates it once NATS answers again.

// markHeader is the header of every mark: shared, since nothing writes to
// it once built (publishing only reads it).
var markHeader = nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}}

// repairLookBack is how far before a failure the repair it asks for starts
// reading: the clocks of the forwarder and the nats-server that stamped the
// message may differ, and the event was published before its mark was sent.
const repairLookBack = time.Minute

// markWriter sends the marks of the webhook path and tracks those in
// flight.
type markWriter struct {
	pub     *natsconn.AsyncPublisher
	metrics *telemetry.Metrics
	slots   chan struct{} // one per mark in flight: dedup.max_pending_marks
	timeout time.Duration // nats.publish_timeout: the longest wait for a slot
	prefix  string        // "$KV.<bucket>.", the subject of a key without it

	mu      sync.Mutex
	pending map[string]int // KV keys whose mark is in flight, with how many
}

func newMarkWriter(nc *nats.Conn, b *Broker) (*markWriter, error) {
	w := &markWriter{
		slots:   make(chan struct{}, b.cfg.Dedup.MaxPendingMarks),
		timeout: b.cfg.NATS.PublishTimeout,
		prefix:  "$KV." + b.cfg.Dedup.Bucket + ".",
		pending: map[string]int{},
		metrics: b.metrics,
	}
	// Every mark ends: acknowledged, refused, cut by a disconnect, or timed
	// out as a synchronous write would have been.
	pub, err := natsconn.NewAsyncPublisher(nc, "KV_"+b.cfg.Dedup.Bucket, b.cfg.NATS.PublishTimeout, func(m *nats.Msg, sent time.Time, err error) {
		if err != nil {
			b.markRefused(m, sent, err)
			return
		}
		w.release(w.key(m))
	})
	if err != nil {
		return nil, fmt.Errorf("marks: %w", err)
	}
	w.pub = pub
	return w, nil
}

func (w *markWriter) key(m *nats.Msg) string { return strings.TrimPrefix(m.Subject, w.prefix) }

// hold takes a slot for key. When none is free it waits for room until ctx
// ends or nats.publish_timeout has passed; the timer is made only then, since
// a slot is free for nearly every mark.
func (w *markWriter) hold(ctx context.Context, key string) error {
	select {
	case w.slots <- struct{}{}:
	default:
		ctx, cancel := context.WithTimeout(ctx, w.timeout)
		defer cancel()
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("no room among %d marks in flight (dedup.max_pending_marks): %w", cap(w.slots), ctx.Err())
		}
	}
	w.mu.Lock()
	w.pending[key]++
	w.mu.Unlock()
	w.metrics.MarksInFlight(1)
	return nil
}

// release ends the flight of a mark of key.
func (w *markWriter) release(key string) {
	w.mu.Lock()
	if w.pending[key] <= 1 {
		delete(w.pending, key)
	} else {
		w.pending[key]--
	}
	w.mu.Unlock()
	w.metrics.MarksInFlight(-1)
	<-w.slots
}

// inFlight reports whether a mark of key has been sent and not yet ended.
func (w *markWriter) inFlight(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[key] > 0
}

// Mark records key as forwarded, with the stream sequence. It returns once
// the mark is sent, waiting only for room among dedup.max_pending_marks,
// until ctx ends or for nats.publish_timeout at most; its outcome is handled
// when it comes. An error means the mark was not sent; the repair is asked
// for either way.
func (b *Broker) Mark(ctx context.Context, key string, seq uint64) error {
	now := time.Now()
	if _, err := b.bucket(); err != nil {
		b.repairBeforeMark(now)
		return fmt.Errorf("mark %q: %w", key, err)
	}
	if err := b.marks.hold(ctx, key); err != nil {
		b.repairBeforeMark(now)
		return fmt.Errorf("mark %q: %w", key, err)
	}
	msg := &nats.Msg{Subject: b.marks.prefix + key, Header: markHeader, Data: markValue(seq)}
	if err := b.marks.pub.Publish(msg); err != nil {
		b.marks.release(key)
		b.metrics.DedupError("put")
		b.repairBeforeMark(now)
		return fmt.Errorf("mark %q: %w", key, err)
	}
	return nil
}

// markRefused handles a mark that got no PubAck. "Wrong last sequence"
// means the key exists, or holds a delete marker that KV Create writes
// over: that is left to Create, off the callback's goroutine, the slot
// still held. Any other failure is logged, counted, and repaired.
func (b *Broker) markRefused(m *nats.Msg, sent time.Time, err error) {
	key := b.marks.key(m)
	if !isWrongLastSequence(err) {
		b.markFailed(key, sent, err)
		b.marks.release(key)
		return
	}
	go func() {
		defer b.marks.release(key)
		kv, kvErr := b.bucket()
		if kvErr != nil {
			b.markFailed(key, sent, kvErr)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.NATS.PublishTimeout)
		defer cancel()
		if _, err := kv.Create(ctx, key, m.Data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			b.markFailed(key, sent, err)
		}
	}()
}

// markFailed logs and counts a mark that was sent and not stored, and asks
// for the repair.
func (b *Broker) markFailed(key string, sent time.Time, err error) {
	b.metrics.DedupError("put")
	b.metrics.MarkFailed()
	b.repairBeforeMark(sent)
	b.log.Warn("mark delivery failed; the stream's duplicate window guards it until the mark repair recreates it",
		zap.String("key", key), zap.Error(err))
}

// repairBeforeMark asks for the repair from a little before the event of a
// mark tried at "at" was published: that was before by up to twice
// nats.publish_timeout, the longest a delivery's marks (two with dedup.key
// delivery) wait for room. Time.Add saturates where a sum of durations could
// overflow.
func (b *Broker) repairBeforeMark(at time.Time) {
	wait := b.cfg.NATS.PublishTimeout
	b.requestRepairSince(at.Add(-wait).Add(-wait).Add(-repairLookBack))
}

// isWrongLastSequence reports whether err is JetStream's refusal of an
// expected last subject sequence; replicated streams answer 10164.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// MarksInFlight is the number of marks sent whose outcome has not come.
func (b *Broker) MarksInFlight() int { return len(b.marks.slots) }

// WaitMarks waits, up to timeout, for every mark in flight to end, and
// returns how many had not. Shutdown calls it before the connection is
// drained, which would drop their PubAcks.
func (b *Broker) WaitMarks(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		left := b.MarksInFlight()
		if left == 0 || !time.Now().Before(deadline) {
			return left
		}
		// A poll: the slots are a channel that nothing else may drain.
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
}
