package natsconn

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readConsumerIdle lets the server remove a reading consumer that this
// process failed to delete (it died, or the delete timed out).
const readConsumerIdle = 30 * time.Second

// consumerHost is the part of a jetstream.Stream that reading needs.
type consumerHost interface {
	CreateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	DeleteConsumer(ctx context.Context, consumer string) error
}

// WithReadConsumer runs read with a short-lived consumer of cfg's messages
// that acknowledges nothing, so reading changes no state a consumer of the
// stream sees, and deletes it afterwards. The inspector's scans, the
// quarantine's listing and the mark repair read the streams this way.
func WithReadConsumer(ctx context.Context, s consumerHost, cfg jetstream.ConsumerConfig, read func(jetstream.Consumer) error) error {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	cfg.InactiveThreshold = readConsumerIdle
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create reading consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	return read(cons)
}
