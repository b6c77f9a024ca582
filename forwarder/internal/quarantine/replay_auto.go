package quarantine

import (
	"context"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"go.uber.org/zap"
)

// Retries of an automatic replay that could not reach NATS, or left
// entries unavailable: doubling from the first delay, at most maxRetries.
const (
	autoReplayFirstRetry = time.Second
	autoReplayMaxRetry   = 30 * time.Second
	autoReplayMaxRetries = 10
)

// AutoReplayer replays the signature_mismatch entries after every secret
// reload that changes the set of secrets, and once at start (a secret
// given in the environment changes with a restart): fix the secret and the
// rejected events arrive by themselves. Runs never overlap; a change during
// a run starts another one after it.
type AutoReplayer struct {
	r     *Replayer
	ready func() error
	kick  chan struct{}
	log   *zap.Logger
	// completed is set once a run has completed: the runs before it are
	// the one at start. Only Run's goroutine uses it.
	completed bool
	// warned is the error of a stopped run last logged, so that one cause
	// is logged once, not at every retry. Only Run's goroutine uses it.
	warned string
}

// NewAutoReplayer returns the automatic replay of r, which waits for ready
// to return nil (the quarantine's readiness: while the quarantine stream
// is unavailable, which the store logs itself, there is nothing to read);
// it is triggered once already, for the start. While ready fails, the
// replay waits and checks again, at most autoReplayMaxRetry apart, however
// long that takes.
func NewAutoReplayer(r *Replayer, ready func() error, log *zap.Logger) *AutoReplayer {
	a := &AutoReplayer{r: r, ready: ready, kick: make(chan struct{}, 1), log: log}
	a.Trigger()
	return a
}

// Trigger asks Run for a replay; it never blocks.
func (a *AutoReplayer) Trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run replays on every Trigger until ctx ends, retrying with a growing
// delay while NATS is not ready or entries ended unavailable.
func (a *AutoReplayer) Run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	attempt := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
			attempt = 0
		case <-retry.C:
		}
		done, waiting := a.runOnce(ctx)
		if done || (!waiting && attempt >= autoReplayMaxRetries) {
			continue
		}
		retry.Reset(min(autoReplayFirstRetry<<min(attempt, 5), autoReplayMaxRetry))
		attempt++
	}
}

// runOnce replays every signature_mismatch entry and reports whether the
// run is complete (false when it must be retried), and whether it waits
// for ready, which is retried for as long as it takes.
func (a *AutoReplayer) runOnce(ctx context.Context) (done, waiting bool) {
	if a.ready() != nil {
		return false, true
	}
	req := adminapi.ReplayRequest{All: true, Reason: telemetry.ReasonSignatureMismatch}
	counts := map[string]int{}
	after := uint64(0)
	for {
		answer, last, err := a.r.replayAll(ctx, req, telemetry.TriggerReload, after, adminapi.MaxReplayEntries)
		for _, res := range answer.Results {
			counts[res.Outcome]++
		}
		if err != nil {
			if err.Error() != a.warned {
				a.warned = err.Error()
				a.log.Warn("automatic replay of the quarantine stopped; it is retried (this cause is logged once)", zap.Error(err))
			}
			return false, false
		}
		if !answer.More {
			break
		}
		after = last
	}
	if len(counts) > 0 {
		cause := "start"
		if a.completed {
			cause = "secret change"
		}
		a.log.Info("automatic replay of the quarantine", zap.String("cause", cause), zap.Any("outcomes", counts))
	}
	a.warned = ""
	done = counts[telemetry.OutcomeUnavailable] == 0
	a.completed = a.completed || done
	return done, false
}
