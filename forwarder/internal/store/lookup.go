package store

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// firstAttempt bounds the first try of a lookup. A JetStream cluster
// leaves an API request unanswered while it elects a leader (a fresh
// cluster, a stream being created, a node lost): one request would wait out
// all of nats.publish_timeout and report a healthy cluster as not
// answering, where a second one, a moment later, reaches the new leader.
const firstAttempt = time.Second

// retried calls lookup until it answers, fails other than by a timeout, or
// ctx ends; each try may take twice as long as the one before. Only for
// reads: a write that timed out may still have been applied. Without a
// deadline on ctx it tries once, as nothing would end the retries.
func retried[T any](ctx context.Context, lookup func(context.Context) (T, error)) (T, error) {
	return retriedFrom(ctx, firstAttempt, lookup)
}

func retriedFrom[T any](ctx context.Context, first time.Duration, lookup func(context.Context) (T, error)) (T, error) {
	if _, bounded := ctx.Deadline(); !bounded {
		return lookup(ctx)
	}
	for wait := first; ; wait *= 2 {
		attempt, cancel := context.WithTimeout(ctx, wait)
		v, err := lookup(attempt)
		if err == nil || !isTimeout(err) || ctx.Err() != nil {
			cancel()
			return v, err
		}
		<-attempt.Done() // a timeout reported early waits its turn: no busy loop
		cancel()
	}
}

// lookupStream looks a stream up; see retried.
func lookupStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	return retried(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, name) })
}

// lookupBucket looks a KV bucket up; see retried.
func lookupBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	return retried(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
}
