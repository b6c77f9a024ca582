package store

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
// times before it answers.
func TestRetried(t *testing.T) {
	const never = 1 << 30
	refused := errors.New("stream not found")
	tests := []struct {
		name      string
		silent    int   // attempts that get no answer
		early     bool  // a silent attempt reports its timeout at once
		answer    error // what the next attempt gets
		deadline  time.Duration
		wantTries int // at most, when the deadline ends the tries
		wantErr   error
	}{
		{"answered at once", 0, false, nil, time.Second, 1, nil},
		{"answered after two silent attempts", 2, false, nil, time.Second, 3, nil},
		{"an error other than a timeout is not retried", 0, false, refused, time.Second, 1, refused},
		{"a timeout reported early waits its turn", 1, true, nil, time.Second, 2, nil},
		// 10+20+40+80 ms, then the fifth try meets the deadline.
		{"silent until the deadline", never, false, nil, 300 * time.Millisecond, 5, context.DeadlineExceeded},
		{"no deadline: one try", 0, false, refused, 0, 1, refused},
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
			got, err := retriedFrom(ctx, 10*time.Millisecond, func(ctx context.Context) (string, error) {
				tries++
				if tries <= tt.silent {
					if tt.early {
						return "", nats.ErrTimeout
					}
					<-ctx.Done()
					return "", fmt.Errorf("stream info: %w", ctx.Err())
				}
				return "info", tt.answer
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			// The deadline may cut the last try short on a slow machine.
			tooFew := tries < tt.wantTries && (tt.silent != never || tries < 2)
			if tooFew || tries > tt.wantTries {
				t.Errorf("tries: got %d, want %d", tries, tt.wantTries)
			}
			if err == nil && got != "info" {
				t.Errorf("value: got %q, want the answer", got)
			}
		})
	}
}
