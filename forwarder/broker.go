package forwarder

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

var (
	// errNotReady is returned by natsBroker.Ready, and by natsBroker operations, while
	// NATS is not connected or the stream or KV bucket is missing.
	errNotReady = errors.New("nats not ready")
	// errDedupRead is returned when the KV bucket cannot be read.
	errDedupRead = errors.New("dedup store read failed")
	// errPublish is returned when a publish gets no PubAck.
	errPublish = errors.New("publish failed")
	// errMissingResources is returned when stream.manage is false and the
	// stream or the KV bucket does not exist.
	errMissingResources = errors.New("JetStream resources missing")
)

const (
	checkIntervalReady    = 5 * time.Second
	checkIntervalNotReady = time.Second
)

// natsBroker is the NATS side of the forwarder: it owns the connection, keeps
// the stream and the dedup bucket in place, tracks readiness, and performs
// the three JetStream operations of a delivery.
type natsBroker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     brokerConfig
	log     *zap.Logger
	metrics *metricSet

	kv      atomic.Pointer[jetstream.KeyValue]
	state   atomic.Pointer[readiness]
	wake    chan struct{}
	ensured atomic.Bool // created or updated once; later checks only look them up
	closing atomic.Bool // Close has begun: losing the connection is expected

	lastConnErr   atomic.Pointer[error] // the last failed connection attempt's
	warnedPayload atomic.Int64          // the max_payload last warned about
	connLog       *connErrorLog

	expectStream jetstream.PublishOpt // made once: an option per publish is an allocation

	repairPending atomic.Bool // a mark repair is wanted (start, reconnect)
	repairing     atomic.Bool
}

type readiness struct {
	err error // nil when ready
}

// brokerConfig is the part of the configuration the broker reads.
type brokerConfig struct {
	NATS       NATSConfig
	Stream     StreamConfig
	Dedup      DedupConfig
	Quarantine QuarantineConfig
	// MaxBodyBytes is http.max_body_bytes, which the server's max_payload
	// is compared with at connect.
	MaxBodyBytes int64
}

func (c Config) brokerConfig() brokerConfig {
	return brokerConfig{NATS: c.NATS, Stream: c.Stream, Dedup: c.Dedup, Quarantine: c.Quarantine, MaxBodyBytes: c.HTTP.MaxBodyBytes}
}

// connectBroker connects to url (comma-separated for a cluster) with extra
// options appended to the configured ones. It returns at once even when NATS
// is unreachable: the connection keeps retrying in the background and Run
// reports readiness once it succeeds. The broker is complete before the
// connection exists, since the connection's callbacks may run at once.
func connectBroker(url string, cfg brokerConfig, log *zap.Logger, m *metricSet, extra ...nats.Option) (*natsBroker, error) {
	b := &natsBroker{cfg: cfg, log: log, metrics: m, wake: make(chan struct{}, 1), connLog: newConnErrorLog(log, connErrorLogEvery)}
	b.setNotReady(errors.New("not checked yet"))
	b.requestRepair()
	b.expectStream = jetstream.WithExpectStream(cfg.Stream.Name)
	opts, err := natsOptions(cfg.NATS, b, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	var urlErr *neturl.Error
	if errors.As(err, &urlErr) {
		// Its message quotes the URL, password included.
		return nil, fmt.Errorf("connect to nats: nats.url %s is not a valid URL list", redactURLs(url))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return b, nil
}

// Ready returns nil when connected and the stream and bucket existed at the
// last check; otherwise an error wrapping errNotReady says why. It never
// touches the network: probes and requests may call it freely.
func (b *natsBroker) Ready() error {
	return b.state.Load().err
}

func (b *natsBroker) setReady() {
	if b.Ready() != nil {
		b.log.Info("nats ready", zap.String("stream", b.cfg.Stream.Name), zap.String("bucket", b.cfg.Dedup.Bucket))
	}
	b.state.Store(&readiness{})
	b.metrics.setReady(true)
}

// setNotReady records why the broker is not ready. It logs the step from
// ready to not ready, and missing resources (at error level: they need an
// operator). Connection causes are logged by connLog, once per cause per
// period, since the client retries twice a second.
func (b *natsBroker) setNotReady(cause error) {
	err := fmt.Errorf("%w: %w", errNotReady, cause)
	prev := b.state.Swap(&readiness{err: err})
	b.metrics.setReady(false)
	switch {
	case errors.Is(cause, errMissingResources), errors.Is(cause, errStreamChanged):
		if prev == nil || prev.err == nil || prev.err.Error() != err.Error() {
			b.log.Error("nats not ready", zap.Error(cause))
		}
	case prev != nil && prev.err == nil && !b.closing.Load():
		b.log.Warn("nats not ready", zap.Error(cause))
	}
}

// CheckNow runs one readiness check and returns its result; Start uses it
// to refuse to start when NATS answers but the resources are missing.
func (b *natsBroker) CheckNow(ctx context.Context) error {
	b.check(ctx)
	return b.Ready()
}

// Wake asks Run to check readiness now, e.g. after a reconnect.
func (b *natsBroker) Wake() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Run keeps the readiness state current until ctx ends: it ensures (or, with
// stream.manage false, checks) the stream and bucket after every connect and
// every few seconds, so that a deleted stream or bucket drops readiness.
func (b *natsBroker) Run(ctx context.Context) {
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

func (b *natsBroker) check(ctx context.Context) {
	if !b.nc.IsConnected() {
		b.setNotReady(b.connectionDown(b.nc))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	if err := b.ensureResources(ctx); err != nil {
		b.setNotReady(err)
		return
	}
	b.setReady()
}

// ensureResources makes sure the stream and bucket exist. With
// stream.manage it creates or updates them once and then only checks that
// they still exist, recreating them when they vanish; without it, it only
// checks.
func (b *natsBroker) ensureResources(ctx context.Context) error {
	if !b.cfg.Stream.Manage {
		if err := b.checkResources(ctx); err != nil {
			return fmt.Errorf("%w (stream.manage is false: create or correct them, or enable stream.manage)", err)
		}
		return nil
	}
	if b.ensured.Load() {
		err := b.checkResources(ctx)
		if err == nil {
			return nil
		}
		b.reportDrift(err)
	}
	if err := ensureStream(ctx, b.js, streamConfig(b.cfg), b.log); err != nil {
		return err
	}
	kv, err := ensureBucket(ctx, b.js, bucketConfig(b.cfg), b.log)
	if err != nil {
		return err
	}
	b.kv.Store(&kv)
	if err := b.ensureQuarantine(ctx); err != nil {
		return err
	}
	b.ensured.Store(true)
	return nil
}

// checkResources looks the stream and the bucket up without creating them,
// and names every one that is missing, so that an operator sees at once all
// that must be created.
func (b *natsBroker) checkResources(ctx context.Context) error {
	var missing []string
	stream, err := b.js.Stream(ctx, b.cfg.Stream.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		missing = append(missing, fmt.Sprintf("stream %q", b.cfg.Stream.Name))
	case err != nil:
		return fmt.Errorf("look up stream %q: %w", b.cfg.Stream.Name, err)
	}
	kv, err := b.js.KeyValue(ctx, b.cfg.Dedup.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		missing = append(missing, fmt.Sprintf("KV bucket %q", b.cfg.Dedup.Bucket))
	case err != nil:
		return fmt.Errorf("look up KV bucket %q: %w", b.cfg.Dedup.Bucket, err)
	}
	quarantine, err := b.missingQuarantine(ctx)
	if err != nil {
		return err
	}
	if quarantine != "" {
		missing = append(missing, quarantine)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", errMissingResources, strings.Join(missing, ", "))
	}
	if err := b.checkStreamDrift(stream); err != nil {
		return err
	}
	b.kv.Store(&kv)
	return nil
}

func (b *natsBroker) bucket() (jetstream.KeyValue, error) {
	kv := b.kv.Load()
	if kv == nil {
		return nil, b.Ready()
	}
	return *kv, nil
}

// Seen reports whether key is in the dedup bucket. Errors wrap errDedupRead.
func (b *natsBroker) Seen(ctx context.Context, key string) (bool, error) {
	kv, err := b.bucket()
	if err != nil {
		return false, fmt.Errorf("%w: %w", errDedupRead, err)
	}
	_, err = kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		b.metrics.dedupError("get")
		return false, fmt.Errorf("%w: get %q: %w", errDedupRead, key, err)
	}
}

// Publish sends body with header to subject on the stream and waits for the
// PubAck. Errors wrap errPublish; a PubAck with Duplicate set is not an error.
func (b *natsBroker) Publish(ctx context.Context, subject string, header map[string][]string, body []byte) (stored, error) {
	msg := &nats.Msg{Subject: subject, Header: nats.Header(header), Data: body}
	ack, err := b.js.PublishMsg(ctx, msg, b.expectStream)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream listens on the subject: it was removed or its subjects
		// changed. Check now rather than at the next period.
		b.Wake()
	}
	if err != nil {
		return stored{}, fmt.Errorf("%w: %s: %w", errPublish, subject, err)
	}
	return stored{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Mark records key as forwarded, with the stream sequence and the time.
func (b *natsBroker) Mark(ctx context.Context, key string, seq uint64) error {
	kv, err := b.bucket()
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, markValue(seq, time.Now())); err != nil {
		b.metrics.dedupError("put")
		return fmt.Errorf("mark %q: %w", key, err)
	}
	return nil
}

// markValue is a mark's value: the stream sequence and the time.
func markValue(seq uint64, at time.Time) []byte {
	value := strconv.AppendUint(make([]byte, 0, 48), seq, 10)
	value = append(value, ' ')
	return at.UTC().AppendFormat(value, time.RFC3339Nano)
}

// Close drains the connection so that nothing buffered is lost, bounded by
// timeout. It returns once the connection's callbacks have run, so that none
// of them logs after the caller has moved on.
func (b *natsBroker) Close(timeout time.Duration) {
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
