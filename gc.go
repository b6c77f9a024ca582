package main

import (
	"math"
	"runtime/debug"

	"go.uber.org/zap"
)

// gcPercentUnderLimit is the garbage collector's target that serve sets
// when GOMEMLIMIT is set and GOGC is not. The forwarder's live heap is a
// few MiB, so under Go's default target (100 %) it collects every few MiB
// allocated: about forty times a second at 10,000 events a second, a cost
// paid on every event. Under a memory limit the limit, not the target,
// bounds the heap, so the target can let it grow to five times what is
// live: still far below the limit the manifest sets (200 MiB).
const gcPercentUnderLimit = 400

// tuneGC raises the collector's target under a memory limit, unless the
// operator chose one with GOGC. Without GOMEMLIMIT nothing bounds the heap
// but the target, so Go's default stays.
func tuneGC(getenv func(string) string, log *zap.Logger) {
	if getenv("GOGC") != "" || debug.SetMemoryLimit(-1) == math.MaxInt64 {
		return
	}
	previous := debug.SetGCPercent(gcPercentUnderLimit)
	log.Info("garbage collector target raised under GOMEMLIMIT; set GOGC to choose another",
		zap.Int("gogc", gcPercentUnderLimit), zap.Int("default", previous))
}
