package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

func placement(cfg Config) *jetstream.Placement {
	p := cfg.Stream.Placement
	if p.Cluster == "" && len(p.Tags) == 0 {
		return nil
	}
	return &jetstream.Placement{Cluster: p.Cluster, Tags: p.Tags}
}

// streamConfig is the stream the forwarder publishes to: every subject under
// the prefix, on disk.
func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream.Name,
		Description: "Zautic webhook events, forwarded by zautic-forwarder",
		Subjects:    []string{cfg.Stream.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.Stream.MaxAge,
		Duplicates:  cfg.Stream.DuplicateWindow,
		Replicas:    cfg.Stream.Replicas,
		Placement:   placement(cfg),
	}
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
	}
}

// ensureStream creates the stream, or brings the settings the forwarder owns
// into line. Several replicas may race to create it: "already in use" is the
// normal outcome for all but one, and they then compare instead of
// overwriting. Every change to an existing stream is logged with the old and
// new values, so an operator's setting is never changed silently.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *zap.Logger) error {
	_, err := js.CreateStream(ctx, want)
	if err == nil {
		// Also the answer when an identical stream exists: creation is idempotent.
		log.Info("stream in place", zap.String("stream", want.Name), zap.Strings("subjects", want.Subjects))
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %q: %w", want.Name, err)
	}
	stream, err := js.Stream(ctx, want.Name)
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
	if have.Duplicates != want.Duplicates {
		changes = append(changes, fmt.Sprintf("duplicate_window %s -> %s", have.Duplicates, want.Duplicates))
	}
	if have.Replicas != want.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", have.Replicas, want.Replicas))
	}
	return changes
}

// ensureBucket creates the dedup bucket, or updates its TTL and replicas
// when they differ from the configuration, logging the change.
func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig, log *zap.Logger) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, want)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("create KV bucket %q: %w", want.Bucket, err)
	}
	kv, err = js.KeyValue(ctx, want.Bucket)
	if err != nil {
		return nil, fmt.Errorf("look up KV bucket %q: %w", want.Bucket, err)
	}
	status, err := kv.Status(ctx)
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
