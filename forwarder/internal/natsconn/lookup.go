package natsconn

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MinAttempt is the shortest try of a lookup. A JetStream cluster leaves an
// API request unanswered while it elects a leader (a fresh cluster, a
// stream being created, a node lost): one request would wait out all of
// nats.publish_timeout and report a healthy cluster as not answering, where
// a second one, a moment later, reaches the new leader.
const MinAttempt = time.Second

// Retried calls lookup until it answers, fails other than by a timeout, or
// ctx ends. Each try may take half of the time left, so that a slow server
// that answers within the first half is never asked twice; a try shorter
// than MinAttempt takes all that is left. Only for reads: a write that timed
// out may still have been applied. Without a deadline on ctx it tries once,
// as nothing would end the retries.
func Retried[T any](ctx context.Context, lookup func(context.Context) (T, error)) (T, error) {
	return retriedFrom(ctx, MinAttempt, lookup)
}

func retriedFrom[T any](ctx context.Context, shortest time.Duration, lookup func(context.Context) (T, error)) (T, error) {
	deadline, bounded := ctx.Deadline()
	if !bounded {
		return lookup(ctx)
	}
	for {
		wait := time.Until(deadline) / 2
		if wait < shortest {
			wait = time.Until(deadline)
		}
		attempt, cancel := context.WithTimeout(ctx, wait)
		v, err := lookup(attempt)
		if err == nil || !IsTimeout(err) || ctx.Err() != nil {
			cancel()
			return v, err
		}
		<-attempt.Done() // a timeout reported early waits its turn: no busy loop
		cancel()
	}
}

// LookupStream looks a stream up; see Retried.
func LookupStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	return Retried(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, name) })
}

// LookupBucket looks a KV bucket up; see Retried.
func LookupBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	return Retried(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
}

// IsTimeout reports whether err is a NATS request that got no answer in
// time.
func IsTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
