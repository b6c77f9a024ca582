package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

func placement(cfg Config) *jetstream.Placement {
	p := cfg.Stream.Placement
	if p.Cluster == "" && len(p.Tags) == 0 {
		return nil
	}
	return &jetstream.Placement{Cluster: p.Cluster, Tags: p.Tags}
}

// streamConfig is the stream the forwarder publishes to: every subject under
// the prefix, on disk, bounded in size only when stream.max_bytes is set.
func streamConfig(cfg Config) jetstream.StreamConfig {
	s := jetstream.StreamConfig{
		Name:        cfg.Stream.Name,
		Description: "Zautic webhook events, forwarded by zautic-forwarder",
		Subjects:    []string{cfg.Stream.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.Stream.MaxAge,
		Duplicates:  cfg.Stream.DuplicateWindow,
		Replicas:    cfg.Stream.Replicas,
		Placement:   placement(cfg),
	}
	if cfg.Stream.MaxBytes > 0 {
		// At the limit, a new publish fails (the request is answered 503 and
		// retried) rather than an event already acknowledged being dropped.
		s.MaxBytes, s.Discard = cfg.Stream.MaxBytes, jetstream.DiscardNew
	}
	return s
}

func bucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      cfg.Dedup.Bucket,
		Description: "Zautic deliveries already forwarded",
		TTL:         cfg.Dedup.TTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Dedup.Replicas,
		Placement:   placement(cfg),
		// 0: unlimited. A KV bucket discards nothing to make room: at the
		// limit a new mark fails, which the stream's duplicate window and the
		// mark repair cover.
		MaxBytes: cfg.Dedup.MaxBytes,
	}
}

// ensureStream looks the stream up, creates it only when it does not exist,
// and brings the settings the forwarder owns into line. It never asks the
// server to create a stream that exists: a create of an existing stream
// counts its max_bytes against the storage limits again, and a server with
// modest max_file_store refuses it (insufficient storage, 10047), so that a
// restart or a second replica would never become ready. Several replicas
// may race to create it: "already in use" is the normal outcome for all but
// one, and they then compare instead of overwriting. Every change to an
// existing stream is logged with the old and new values, so an operator's
// setting is never changed silently.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *zap.Logger) error {
	stream, err := natsconn.LookupStream(ctx, js, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		if err == nil {
			log.Info("stream created", zap.String("stream", want.Name), zap.Strings("subjects", want.Subjects), zap.Int64("max_bytes", want.MaxBytes))
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %q: %w", want.Name, err)
		}
		stream, err = natsconn.LookupStream(ctx, js, want.Name)
	}
	if err != nil {
		return fmt.Errorf("look up stream %q: %w", want.Name, err)
	}
	have := stream.CachedInfo().Config
	changes := streamChanges(have, want)
	if len(changes) == 0 {
		return nil
	}
	updated := have
	updated.Subjects, updated.MaxAge, updated.Duplicates, updated.Replicas = want.Subjects, want.MaxAge, want.Duplicates, want.Replicas
	if want.MaxBytes > 0 {
		updated.MaxBytes, updated.Discard = want.MaxBytes, want.Discard
	}
	if _, err := js.UpdateStream(ctx, updated); err != nil {
		return fmt.Errorf("update stream %q (%v): %w", want.Name, changes, err)
	}
	log.Warn("stream settings changed to match the configuration", zap.String("stream", want.Name), zap.Strings("changes", changes))
	return nil
}

// streamChanges lists the owned settings in which have differs from want.
func streamChanges(have, want jetstream.StreamConfig) []string {
	var changes []string
	if !slices.Equal(have.Subjects, want.Subjects) {
		changes = append(changes, fmt.Sprintf("subjects %v -> %v", have.Subjects, want.Subjects))
	}
	if have.MaxAge != want.MaxAge {
		changes = append(changes, fmt.Sprintf("max_age %s -> %s", have.MaxAge, want.MaxAge))
	}
	// 0 asks for the server's default (2m, or max_age when shorter), which
	// the server stores in its place: compared, it would be "changed" at
	// every start. The quarantine asks for it; it has no Nats-Msg-Id.
	if want.Duplicates > 0 && have.Duplicates != want.Duplicates {
		changes = append(changes, fmt.Sprintf("duplicate_window %s -> %s", have.Duplicates, want.Duplicates))
	}
	if have.Replicas != want.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", have.Replicas, want.Replicas))
	}
	// max_bytes is owned only when configured: 0 leaves an operator's own
	// limit alone, as before the setting existed.
	if want.MaxBytes > 0 && (have.MaxBytes != want.MaxBytes || have.Discard != want.Discard) {
		changes = append(changes, fmt.Sprintf("max_bytes %d -> %d, discard %s -> %s", have.MaxBytes, want.MaxBytes, have.Discard, want.Discard))
	}
	return changes
}

// ensureBucket looks the dedup bucket up, creates it only when it does not
// exist (for the reason ensureStream does), or updates its TTL, replicas
// and configured max_bytes when they differ from the configuration, logging
// the change.
func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig, log *zap.Logger) (jetstream.KeyValue, error) {
	kv, err := natsconn.LookupBucket(ctx, js, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if err == nil {
			log.Info("KV bucket created", zap.String("bucket", want.Bucket), zap.Int64("max_bytes", want.MaxBytes))
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("create KV bucket %q: %w", want.Bucket, err)
		}
		kv, err = natsconn.LookupBucket(ctx, js, want.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("look up KV bucket %q: %w", want.Bucket, err)
	}
	status, err := natsconn.Retried(ctx, kv.Status)
	if err != nil {
		return nil, fmt.Errorf("KV bucket %q status: %w", want.Bucket, err)
	}
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	var changes []string
	if info.Config.MaxAge != want.TTL {
		changes = append(changes, fmt.Sprintf("ttl %s -> %s", info.Config.MaxAge, want.TTL))
	}
	if info.Config.Replicas != want.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", info.Config.Replicas, want.Replicas))
	}
	if want.MaxBytes > 0 && info.Config.MaxBytes != want.MaxBytes {
		changes = append(changes, fmt.Sprintf("max_bytes %d -> %d", info.Config.MaxBytes, want.MaxBytes))
	}
	if len(changes) == 0 {
		return kv, nil
	}
	if kv, err = js.UpdateKeyValue(ctx, want); err != nil {
		return nil, fmt.Errorf("update KV bucket %q (%v): %w", want.Bucket, changes, err)
	}
	log.Warn("KV bucket settings changed to match the configuration", zap.String("bucket", want.Bucket), zap.Strings("changes", changes))
	return kv, nil
}

// Resources returns the event stream, the dedup bucket and the quarantine
// stream as cfg asks for them: what stream.manage creates, and what an
// operator creates without it.
func Resources(cfg Config) (jetstream.StreamConfig, jetstream.KeyValueConfig, jetstream.StreamConfig) {
	return streamConfig(cfg), bucketConfig(cfg), quarantineStreamConfig(cfg)
}

// reservations are the JetStream file storage each resource reserves when
// it is created: a file stream with max_bytes reserves max_bytes times its
// replicas against the server's max_file_store and the account's limit,
// whether or not it is ever filled; one without max_bytes (the event
// stream and the bucket by default) reserves nothing and grows until a
// limit stops it.
func reservations(cfg Config) map[string]int64 {
	r := map[string]int64{
		cfg.Stream.Name:          cfg.Stream.MaxBytes * int64(cfg.Stream.Replicas),
		"KV_" + cfg.Dedup.Bucket: cfg.Dedup.MaxBytes * int64(cfg.Dedup.Replicas),
	}
	if cfg.Quarantine.Enabled {
		r[cfg.Quarantine.Stream] = cfg.Quarantine.MaxBytes * int64(cfg.Stream.Replicas)
	}
	return r
}

// Reservation is the JetStream file storage the forwarder's resources
// reserve in all: what the server's max_file_store, the account's limit
// and the embedded server's volume must leave room for, beside the events.
func Reservation(cfg Config) int64 {
	var total int64
	for _, n := range reservations(cfg) {
		total += n
	}
	return total
}

// warnStorage logs, before the first creation, an account storage limit
// that leaves less room than the resources still to be created reserve:
// their creation would fail with "insufficient storage resources".
func (b *Broker) warnStorage(ctx context.Context) {
	// Only advice: one short attempt, so that a request a cluster leaves
	// unanswered (see retried) does not take the creation's time.
	ctx, cancel := context.WithTimeout(ctx, natsconn.MinAttempt)
	defer cancel()
	info, err := b.js.AccountInfo(ctx)
	if err != nil || info.Limits.MaxStore <= 0 {
		return // unknown or unlimited: the server's limit is checked where it is known (embedded)
	}
	var missing int64
	for name, n := range reservations(b.cfg) {
		if _, err := b.js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			missing += n
		}
	}
	free := info.Limits.MaxStore - int64(info.ReservedStore)
	if free >= missing {
		return
	}
	// Once per shortfall: the check repeats every second while the
	// creation fails.
	seen := fmt.Sprintf("%d/%d/%d", info.Limits.MaxStore, info.ReservedStore, missing)
	if last := b.warnedStorage.Swap(&seen); last != nil && *last == seen {
		return
	}
	fields := []zap.Field{zap.Int64("account_max_store", info.Limits.MaxStore), zap.Uint64("reserved_store", info.ReservedStore),
		zap.Int64("to_reserve", missing),
		zap.Int64("stream.max_bytes", b.cfg.Stream.MaxBytes), zap.Int64("dedup.max_bytes", b.cfg.Dedup.MaxBytes)}
	if b.cfg.Quarantine.Enabled {
		fields = append(fields, zap.Int64("quarantine.max_bytes", b.cfg.Quarantine.MaxBytes))
	}
	b.log.Warn("the account's JetStream storage limit leaves less room than the forwarder's streams reserve; their creation will fail: "+
		"lower quarantine.max_bytes, stream.max_bytes or dedup.max_bytes (each times its replicas), or raise the account's limit", fields...)
}
