package natsconn

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRetried drives the retry of lookups with a lookup that stays silent
// (waits out its attempt, as a server electing a leader does) a number of
// times before it answers, or answers slowly.
func TestRetried(t *testing.T) {
	const never = 1 << 30
	refused := errors.New("stream not found")
	tests := []struct {
		name     string
		silent   int           // attempts that get no answer
		early    bool          // a silent attempt reports its timeout at once
		slow     time.Duration // how long an answer takes
		answer   error         // what the answering attempt gets
		deadline time.Duration
		minTries int
		maxTries int
		wantErr  error
	}{
		{"answered at once", 0, false, 0, nil, time.Second, 1, 1, nil},
		{"answered after two silent attempts", 2, false, 0, nil, time.Second, 3, 3, nil},
		// The first try has half of the deadline: a server slower than the
		// shortest try but answering within it is asked once.
		{"a slow answer within half the deadline", 0, false, 150 * time.Millisecond, nil, 400 * time.Millisecond, 1, 1, nil},
		{"an error other than a timeout is not retried", 0, false, 0, refused, time.Second, 1, 1, refused},
		{"a timeout reported early waits its turn", 1, true, 0, nil, time.Second, 2, 2, nil},
		// 200, 100, 50, 25 ms, then the last 25 ms in one try.
		{"silent until the deadline", never, false, 0, nil, 400 * time.Millisecond, 2, 5, context.DeadlineExceeded},
		{"no deadline: one try", 0, false, 0, refused, 0, 1, 1, refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			tries := 0
			got, err := retriedFrom(ctx, 20*time.Millisecond, func(ctx context.Context) (string, error) {
				tries++
				if tries <= tt.silent {
					if tt.early {
						return "", nats.ErrTimeout
					}
					<-ctx.Done()
					return "", fmt.Errorf("stream info: %w", ctx.Err())
				}
				select {
				case <-time.After(tt.slow):
				case <-ctx.Done():
					return "", ctx.Err()
				}
				return "info", tt.answer
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			// The deadline may cut the last try short on a slow machine.
			if tries < tt.minTries || tries > tt.maxTries {
				t.Errorf("tries: got %d, want %d to %d", tries, tt.minTries, tt.maxTries)
			}
			if err == nil && got != "info" {
				t.Errorf("value: got %q, want the answer", got)
			}
		})
	}
}
