package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// The readiness probe exercises, every check, what a delivery needs beyond
// a connection and existing resources, so that /readyz fails when every
// webhook would: read the bucket, publish to the stream's subjects, store.
// It must not show up to anyone reading the stream or the bucket, which
// rules out storing a probe message in the stream. In nats-server (2.15,
// processJetStreamMsg) every header check, the duplicate check of a
// Nats-Msg-Id included, runs before the storage limits are checked, so no
// publish can test the storage without being stored when it passes:
//
//   - the stream: a publish to <prefix>._readiness expecting a last subject
//     sequence no stream reaches. The server answers "wrong last sequence"
//     and stores nothing; the answer proves that the user may publish to the
//     subjects and that the stream (its leader) answers. The stream stores
//     nothing, but a core subscriber to <prefix>.> (nats sub 'zautic.>') sees
//     the message, so it is sent only when due: at start, after a reconnect,
//     and after a publish failed for a permission, the storage or a missing
//     stream, until it passes. While deliveries are published, they are the
//     probe.
//   - the storage: a KV delete of probeKey in the dedup bucket. A delete is a
//     stored marker, so it goes through the account's and the server's
//     limits and the disk as a mark does; with the bucket's history of 1 it
//     replaces the previous one, so the bucket does not grow, and key
//     listings and Get ignore deleted keys.
//   - the read: a KV Get of probeKey, which finds it deleted.
const (
	// probeKey cannot meet a dedup key: kept keys have no dot, mapped ones
	// start "sha256.", signature keys "sig.".
	probeKey = "probe.readiness"
	// probeSubjectToken follows stream.subject_prefix in the probe's subject.
	probeSubjectToken = "_readiness"
)

// probeExpectedSeq is a last subject sequence no stream reaches, so that the
// probe publish is always refused. math.MaxInt64 because the server parses
// the header as an int64.
var probeExpectedSeq = strconv.FormatInt(math.MaxInt64, 10)

// ErrCannotStore is wrapped by the readiness reason when the probe finds
// that deliveries cannot be stored: a permission, a storage limit or the
// stream refuses them.
var ErrCannotStore = errors.New("cannot store events")

// probeDelivery runs the probe; see above.
func (b *Broker) probeDelivery(ctx context.Context) error {
	kv, err := b.bucket()
	if err != nil {
		return err
	}
	_, err = natsconn.Retried(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, probeKey) })
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return b.cannotStore(fmt.Errorf("read KV bucket %q: %w", b.cfg.Dedup.Bucket, err))
	}
	if b.streamProbe.Load() {
		if err := b.probeStream(ctx); err != nil {
			return b.cannotStore(err)
		}
		b.streamProbe.Store(false)
	}
	if err := kv.Delete(ctx, probeKey); err != nil {
		return b.cannotStore(fmt.Errorf("write KV bucket %q: %w", b.cfg.Dedup.Bucket, err))
	}
	return nil
}

// probeStream publishes the probe message, which the stream must refuse
// for its expected sequence and nothing else.
func (b *Broker) probeStream(ctx context.Context) error {
	subject := b.cfg.Stream.SubjectPrefix + "." + probeSubjectToken
	msg := nats.NewMsg(subject)
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, probeExpectedSeq)
	msg.Header[jetstream.ExpectedStreamHeader] = b.expectStream // as Publish sets it
	_, err := b.js.PublishMsg(ctx, msg)
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return nil
	case err == nil:
		// Cannot happen while the server checks the header; say so
		// rather than report ready on a probe that did not test anything.
		return fmt.Errorf("publish to %s in stream %q: the probe was stored (the server ignored %s)", subject, b.cfg.Stream.Name, jetstream.ExpectedLastSubjSeqHeader)
	default:
		return fmt.Errorf("publish to %s in stream %q: %w", subject, b.cfg.Stream.Name, err)
	}
}

// cannotStore marks err as a delivery the forwarder cannot make, unless it
// is a timeout, which bounded names as the server not answering.
func (b *Broker) cannotStore(err error) error {
	if natsconn.IsTimeout(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCannotStore, err)
}

// Storage errors of a publish, by JetStream error code.
const (
	errCodeAccountResourcesExceeded = 10002
	errCodeInsufficientResources    = 10023
	errCodeStorageResourcesExceeded = 10047
	errCodeStoreFailed              = 10077
)

// refusedToStore reports whether a publish failed for want of storage.
func refusedToStore(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeAccountResourcesExceeded, errCodeInsufficientResources, errCodeStorageResourcesExceeded, errCodeStoreFailed:
		return true
	}
	return false
}

// permissionDenial is the last permissions violation the server reported.
// The server answers a denied publish with an asynchronous -ERR only, so a
// denied request just times out; the denial names the cause.
type permissionDenial struct {
	err error
	at  time.Time
}

func (b *Broker) notePermissionDenied(err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		b.denied.Store(&permissionDenial{err: err, at: time.Now()})
		b.streamProbe.Store(true)
		// A denied delivery only times out: check now, so that readiness
		// names the permission rather than waiting for the next period.
		b.Wake()
	}
}

// bounded runs step under nats.publish_timeout and names a timeout for what
// it is: a permission the server denied meanwhile, or a server that does not
// answer (hung, partitioned, or a full disk stalling its writes), rather
// than a bare "context deadline exceeded".
func (b *Broker) bounded(ctx context.Context, step func(context.Context) error) error {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.NATS.PublishTimeout)
	defer cancel()
	err := step(ctx)
	if err == nil || !natsconn.IsTimeout(err) {
		return err
	}
	if d := b.denied.Load(); d != nil && !d.at.Before(started) {
		return fmt.Errorf("%w: %s: %w (%w)", ErrCannotStore, natsconn.CausePermissions, err, d.err)
	}
	server := b.nc.ConnectedServerName()
	if server == "" {
		server = natsconn.RedactURLs(b.nc.ConnectedUrlRedacted())
	}
	return fmt.Errorf("nats server %s not answering within %s (nats.publish_timeout): %w", server, b.cfg.NATS.PublishTimeout, err)
}
