package main

import (
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// gcPercentUnderLimit is the garbage collector's target that serve sets
// when a memory limit sized for the forwarder bounds the heap. Its live heap
// is a few MiB, so under Go's default target (100 %) it collects every few
// MiB allocated: about forty times a second at 10,000 events a second, a
// cost paid on every event.
const gcPercentUnderLimit = 400

// maxLimitPerBound is how far above the memory bound GOMEMLIMIT may be and
// still be taken as a bound of the heap: the sizing rule asks for a limit
// at or a little above it (the manifest: 200 MiB for 147 MiB); a much larger
// one (1TiB, "no limit") bounds nothing a container would survive.
const maxLimitPerBound = 2

// tuneGC raises the collector's target when the heap is bounded by a
// GOMEMLIMIT sized for the forwarder, and the operator did not choose a
// target with GOGC. The heap may then grow to the limit under repeated
// floods, which the container's quarter of headroom above GOMEMLIMIT covers
// (docs/kubernetes.md, "Memory sizing"). With the embedded nats-server the
// live heap is the server's too, tens of MiB, so collections are rare
// already and five times it would not be small: Go's default stays.
func tuneGC(cfg forwarder.Config, getenv func(string) string, log *zap.Logger) {
	limit := debug.SetMemoryLimit(-1)
	if getenv("GOGC") != "" || cfg.Embedded() || limit > maxLimitPerBound*cfg.MemoryBound() {
		return
	}
	previous := debug.SetGCPercent(gcPercentUnderLimit)
	log.Info("garbage collector target raised under GOMEMLIMIT; set GOGC to choose another",
		zap.Int("gogc", gcPercentUnderLimit), zap.Int("previous", previous))
}
