package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

var (
	// ErrNotReady is returned by Broker.Ready, and by Broker operations, while
	// NATS is not connected or the stream or KV bucket is missing.
	ErrNotReady = errors.New("nats not ready")
	// errDedupRead is returned when the KV bucket cannot be read.
	errDedupRead = errors.New("dedup store read failed")
	// errPublish is returned when a publish gets no PubAck.
	errPublish = errors.New("publish failed")
	// ErrMissingResources is returned when stream.manage is false and the
	// stream or the KV bucket does not exist.
	ErrMissingResources = errors.New("JetStream resources missing")
)

const (
	checkIntervalReady    = 5 * time.Second
	checkIntervalNotReady = time.Second
)

// Broker is the NATS side of the forwarder: it owns the connection, keeps
// the stream and the dedup bucket in place, tracks readiness, and performs
// the three JetStream operations of a delivery.
type Broker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	log     *zap.Logger
	metrics *telemetry.Metrics

	kv      atomic.Pointer[dedupBucket]
	state   atomic.Pointer[readiness]
	wake    chan struct{}
	ensured atomic.Bool // created or updated once; later checks only look them up
	closing atomic.Bool // Close has begun: losing the connection is expected

	denied        atomic.Pointer[permissionDenial]
	streamProbe   atomic.Bool            // the stream's publish probe is due: see probeDelivery
	warnedPayload atomic.Int64           // the max_payload last warned about
	warnedStorage atomic.Pointer[string] // the storage shortfall last warned about
	warnedFull    atomic.Bool            // the full event stream was warned about since the last publish stored
	connLog       *natsconn.ErrorLog
	down          *natsconn.Failures     // why the connection is down, logged on connLog
	loggedCause   atomic.Pointer[string] // the not-ready cause last logged, nil once ready

	expectStream []string // the Nats-Expected-Stream value, shared by every publish: never modified
	acks         natsconn.AckReader
	keys         natsconn.KeyReader

	quarantineErr   atomic.Pointer[error] // nil or points to nil: the quarantine is usable
	quarantineBytes atomic.Int64          // the quarantine stream's size, as last seen

	reader     *Reader // nil: background reads use nc
	repairMu   sync.Mutex
	repairFrom time.Time // a mark repair is wanted from then on; zero: none
	repairing  atomic.Bool

	marks *markWriter
}

type readiness struct {
	err error // nil when ready
}

// Connect connects to url (comma-separated for a cluster) with extra
// options appended to the configured ones. It returns at once even when NATS
// is unreachable: the connection keeps retrying in the background and Run
// reports readiness once it succeeds. The broker is complete before the
// connection exists, since the connection's callbacks may run at once.
func Connect(url string, cfg Config, log *zap.Logger, m *telemetry.Metrics, extra ...nats.Option) (*Broker, error) {
	b := &Broker{cfg: cfg, log: log, metrics: m, wake: make(chan struct{}, 1), connLog: natsconn.NewErrorLog(log, natsconn.ErrorLogEvery)}
	b.down = natsconn.NewFailures(b.connLog)
	b.setNotReady(errors.New("not checked yet"))
	notChecked := fmt.Errorf("%w: not checked yet", ErrQuarantineUnavailable)
	b.quarantineErr.Store(&notChecked)
	b.requestRepair()
	b.streamProbe.Store(true)
	b.expectStream = []string{cfg.Stream.Name}
	b.acks, b.keys = natsconn.NewAckReader(cfg.Stream.Name), natsconn.NewKeyReader(cfg.Dedup.Bucket)
	nc, err := natsconn.Connect(url, cfg.NATS, natsconn.Name(cfg.NATS), append(b.connectionHandlers(), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if b.marks, err = newMarkWriter(nc, b); err != nil {
		nc.Close()
		return nil, err
	}
	b.nc, b.js = nc, js
	return b, nil
}

// Ready returns nil when connected and the stream and bucket existed at the
// last check; otherwise an error wrapping ErrNotReady says why. It never
// touches the network: probes and requests may call it freely.
func (b *Broker) Ready() error {
	return b.state.Load().err
}

func (b *Broker) setReady() {
	if b.Ready() != nil {
		b.log.Info("nats ready", zap.String("stream", b.cfg.Stream.Name), zap.String("bucket", b.cfg.Dedup.Bucket))
	}
	b.state.Store(&readiness{})
	b.loggedCause.Store(nil)
	b.metrics.SetReady(true)
}

// setNotReady records why the broker is not ready, and logs it at error
// level once when it starts and once each time the cause changes: the
// check repeats every second while not ready, and an operator needs the
// cause (a JetStream API error, missing resources, a refused reservation)
// in the log, not a line a second. Closing is expected and not logged.
func (b *Broker) setNotReady(cause error) {
	cause = undouble(cause)
	err := fmt.Errorf("%w: %w", ErrNotReady, cause)
	prev := b.state.Swap(&readiness{err: err})
	b.metrics.SetReady(false)
	if prev == nil || b.closing.Load() || errors.Is(cause, natsconn.ErrNotConnectedYet) {
		return
	}
	// Compared with the cause last logged, not the previous state: a
	// moment without a known cause between two failed attempts is not a
	// change, nor is the case of the server's "Authorization Violation".
	msg := cause.Error()
	if last := b.loggedCause.Load(); last != nil && strings.EqualFold(*last, msg) {
		return
	}
	b.loggedCause.Store(&msg)
	b.log.Error("nats not ready", zap.Error(cause))
}

// CheckNow runs one readiness check and returns its result; Start uses it
// to refuse to start when NATS answers but the resources are missing.
func (b *Broker) CheckNow(ctx context.Context) error {
	b.check(ctx)
	return b.Ready()
}

// Wake asks Run to check readiness now, e.g. after a reconnect.
func (b *Broker) Wake() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Run keeps the readiness state current until ctx ends: it ensures (or, with
// stream.manage false, checks) the stream and bucket after every connect and
// every few seconds, so that a deleted stream or bucket drops readiness.
func (b *Broker) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var repairs sync.WaitGroup
	defer repairs.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-b.wake:
		}
		b.check(ctx)
		b.startRepair(ctx, &repairs)
		next := checkIntervalReady
		if b.Ready() != nil {
			next = checkIntervalNotReady
		}
		timer.Reset(next)
	}
}

// check runs the readiness check: the resources, then the probe of what a
// delivery needs (probe.go), each step bounded on its own. A connection
// that is down, or dropped during a step, is the cause rather than the
// step's error (a request sent while reconnecting fails with "outbound
// buffer limit exceeded").
func (b *Broker) check(ctx context.Context) {
	for _, step := range []func(context.Context) error{b.ensureResources, b.probeDelivery} {
		var err error
		if b.nc.IsConnected() {
			err = b.bounded(ctx, step)
		}
		switch {
		case ctx.Err() != nil:
			return // our own stop (a start that failed, a shutdown) cut it short: it says nothing about NATS
		case !b.nc.IsConnected():
			b.setNotReady(b.down.Reason(b.nc))
			return
		case err != nil:
			b.setNotReady(withHint(err, "stream.max_bytes or dedup.max_bytes, or raise the account's or the server's storage limit"))
			return
		}
	}
	b.setReady()
}

// ensureResources makes sure the stream and bucket exist. With
// stream.manage it creates or updates them once and then only checks that
// they still exist, recreating them when they vanish; without it, it only
// checks.
func (b *Broker) ensureResources(ctx context.Context) error {
	if !b.cfg.Stream.Manage {
		if err := b.checkResources(ctx); err != nil {
			return fmt.Errorf("%w (stream.manage is false: create or correct them, or enable stream.manage)", err)
		}
		return nil
	}
	if b.ensured.Load() {
		err := b.checkResources(ctx)
		if err == nil || natsconn.IsTimeout(err) {
			// A lookup that timed out says nothing about the resources:
			// creating them would only time out too, under a misleading name.
			return err
		}
		b.reportDrift(err)
	}
	if !b.ensured.Load() {
		b.warnStorage(ctx)
	}
	if err := ensureStream(ctx, b.js, streamConfig(b.cfg), b.log); err != nil {
		return err
	}
	kv, err := ensureBucket(ctx, b.js, bucketConfig(b.cfg), b.log)
	if err != nil {
		return err
	}
	if err := b.keepBucket(ctx, kv); err != nil {
		return err
	}
	b.checkQuarantine(ctx)
	b.ensured.Store(true)
	return nil
}

// checkResources looks the stream and the bucket up without creating them,
// and names every one that is missing, so that an operator sees at once all
// that must be created.
func (b *Broker) checkResources(ctx context.Context) error {
	var missing []string
	stream, err := natsconn.LookupStream(ctx, b.js, b.cfg.Stream.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		missing = append(missing, fmt.Sprintf("stream %q", b.cfg.Stream.Name))
	case err != nil:
		return fmt.Errorf("look up stream %q: %w", b.cfg.Stream.Name, err)
	}
	kv, err := natsconn.LookupBucket(ctx, b.js, b.cfg.Dedup.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		missing = append(missing, fmt.Sprintf("KV bucket %q", b.cfg.Dedup.Bucket))
	case err != nil:
		return fmt.Errorf("look up KV bucket %q: %w", b.cfg.Dedup.Bucket, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingResources, strings.Join(missing, ", "))
	}
	if err := b.checkStreamDrift(stream); err != nil {
		return err
	}
	if err := b.keepBucket(ctx, kv); err != nil {
		return err
	}
	b.checkQuarantine(ctx)
	return nil
}

// dedupBucket is the dedup bucket as the last check found it.
type dedupBucket struct {
	kv     jetstream.KeyValue
	direct bool // its stream answers direct gets
}

// keepBucket keeps kv for the webhook path, with whether its stream answers
// direct gets. The dedup lookup reads it the way KV Get would: a NATS user
// may be allowed only that way (docs/nats.md).
func (b *Broker) keepBucket(ctx context.Context, kv jetstream.KeyValue) error {
	status, err := natsconn.Retried(ctx, kv.Status)
	if err != nil {
		return fmt.Errorf("KV bucket %q status: %w", b.cfg.Dedup.Bucket, err)
	}
	direct := status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.AllowDirect
	b.kv.Store(&dedupBucket{kv: kv, direct: direct})
	return nil
}

func (b *Broker) bucket() (jetstream.KeyValue, error) {
	bucket := b.kv.Load()
	if bucket == nil {
		return nil, b.Ready()
	}
	return bucket.kv, nil
}

// Seen reports whether key is in the dedup bucket, or its mark is on its
// way there from this process. Errors wrap errDedupRead.
func (b *Broker) Seen(ctx context.Context, key string) (bool, error) {
	if b.marks.inFlight(key) {
		return true, nil
	}
	bucket := b.kv.Load()
	if bucket == nil {
		return false, fmt.Errorf("%w: %w", errDedupRead, b.Ready())
	}
	if bucket.direct {
		found, err := b.keys.Exists(ctx, b.nc, key)
		return found, b.dedupReadFailed(key, err)
	}
	_, err := bucket.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, b.dedupReadFailed(key, err)
}

// dedupReadFailed counts and wraps a failed lookup of key; nil stays nil.
func (b *Broker) dedupReadFailed(key string, err error) error {
	if err == nil {
		return nil
	}
	b.metrics.DedupError("get")
	return fmt.Errorf("%w: get %q: %w", errDedupRead, key, err)
}

// Publish sends body with header to subject on the stream and waits for the
// PubAck. Errors wrap errPublish; a PubAck with Duplicate set is not an error.
// A publish whose outcome is unknown asks for the mark repair from a little
// before it began: the event may be stored without a mark, and a retry
// after the duplicate window would then be stored again.
func (b *Broker) Publish(ctx context.Context, subject string, header map[string][]string, body []byte) (seq uint64, duplicate bool, err error) {
	start := time.Now()
	// The expected stream is set here rather than as a PublishOpt: options
	// cost nats.go two allocations per publish (their struct and a Set).
	if header == nil {
		header = make(map[string][]string, 1)
	}
	header[jetstream.ExpectedStreamHeader] = b.expectStream
	msg := publishMsgs.Get().(*nats.Msg)
	*msg = nats.Msg{Subject: subject, Header: nats.Header(header), Data: body}
	seq, duplicate, err = b.acks.Request(ctx, b.nc, msg)
	*msg = nats.Msg{}
	publishMsgs.Put(msg)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrNoStreamResponse) || refusedToStore(err):
		// No stream listens on the subject (it was removed or its subjects
		// changed), or the storage is full: check now rather than at the
		// next period, so that readiness fails with the cause at once.
		b.streamProbe.Store(true)
		b.Wake()
	case outcomeUnknown(err):
		b.requestRepairSince(start.Add(-repairLookBack))
	}
	if b.streamFull(err) {
		err = fmt.Errorf("%w (stream %q holds stream.max_bytes, %d, and refuses new events until some age out: raise stream.max_bytes, or shorten stream.max_age)",
			err, b.cfg.Stream.Name, b.cfg.Stream.MaxBytes)
		if !b.warnedFull.Swap(true) {
			b.log.Warn("the event stream is full; deliveries are answered 503 until it has room", zap.Error(err))
		}
	}
	if err != nil {
		return 0, false, undouble(fmt.Errorf("%w: %s: %w", errPublish, subject, err))
	}
	if b.warnedFull.Load() {
		b.warnedFull.Store(false) // room again: the next full stream warns again
	}
	return seq, duplicate, nil
}

// publishMsgs recycles the messages of Publish: the request has encoded the
// message when it returns, and keeps nothing of it.
var publishMsgs = sync.Pool{New: func() any { return new(nats.Msg) }}

// outcomeUnknown reports whether a failed publish may still have been
// stored: anything but the stream's refusal and a message that was never
// sent (no stream, no connection).
func outcomeUnknown(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) &&
		!errors.Is(err, nats.ErrConnectionReconnecting) && !errors.Is(err, nats.ErrConnectionClosed) &&
		!errors.Is(err, nats.ErrConnectionDraining)
}

// markValue is the value of a mark sent as its event is published: the
// stream sequence. When it was marked is the entry's own time, which NATS
// stores with every message; a copy in the value made each mark 174 bytes in
// the bucket instead of 143, kept for dedup.ttl, and cost nats-server CPU on
// every mark (BENCHMARKS.md).
func markValue(seq uint64) []byte {
	return strconv.AppendUint(make([]byte, 0, 20), seq, 10)
}

// repairedMarkValue is the value of a mark the repair recreates: the stream
// sequence, a space and the time the event was stored, since the entry's own
// time is then the repair's. Earlier versions wrote every mark this way.
func repairedMarkValue(seq uint64, stored time.Time) []byte {
	value := append(markValue(seq), ' ')
	return stored.UTC().AppendFormat(value, time.RFC3339Nano)
}

// Close drains the connection so that nothing buffered is lost, bounded by
// timeout. It returns once the connection's callbacks have run, so that none
// of them logs after the caller has moved on.
func (b *Broker) Close(timeout time.Duration) {
	if b.nc.IsClosed() {
		return
	}
	b.closing.Store(true)
	closed := make(chan struct{})
	b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := b.nc.Drain(); err != nil {
		// Not connected (reconnecting): there is nothing to drain.
		b.nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		b.nc.Close()
	}
}

// messageHeaderAllowance is what the warning at connect reserves for a
// message's headers: the forwarder's own come to a few hundred bytes for
// Zautic's ids. The answer to a request counts them exactly.
const messageHeaderAllowance = 1 << 10

// MaxPayload is the connected server's max_payload, 0 before the first
// connect.
func (b *Broker) MaxPayload() int64 {
	return b.nc.MaxPayload()
}

// warnSmallPayload logs, once per value, a server whose max_payload cannot
// hold a body of http.max_body_bytes with its headers: such bodies will be
// answered 413, and the effective limit is what an operator must know.
func (b *Broker) warnSmallPayload(nc *nats.Conn) {
	limit := nc.MaxPayload()
	if limit <= 0 || limit >= b.cfg.MaxBodyBytes+messageHeaderAllowance || b.warnedPayload.Swap(limit) == limit {
		return
	}
	b.log.Warn("the NATS server's max_payload is below http.max_body_bytes plus the message headers; larger bodies answer 413",
		zap.Int64("max_payload", limit), zap.Int64("http.max_body_bytes", b.cfg.MaxBodyBytes),
		zap.Int64("effective_max_body_bytes", limit-messageHeaderAllowance))
}

// Connection reports the NATS connection's state without touching the
// network; the URL has its user information removed.
func (b *Broker) Connection() natsconn.State { return natsconn.StateOf(b.nc) }

// Connected reports whether the connection is up now; it never waits.
func (b *Broker) Connected() bool { return b.nc.IsConnected() }
