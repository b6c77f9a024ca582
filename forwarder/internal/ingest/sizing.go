package ingest

import (
	"math"
	"runtime/debug"

	"go.uber.org/zap"
)

// The memory sizing rule of the README's "Hostile load" section.
const (
	// baselineMemory bounds what the process holds apart from request
	// bodies and connections: the Go runtime, the NATS client and its
	// buffers, metrics, logs: 20-25 MiB idle or under ordinary load.
	baselineMemory = 32 << 20
	// connectionOverhead bounds what an open connection holds beside its
	// headers: net/http's slack above http.max_header_bytes (4 KiB of ours
	// and 4 KiB of its own), its 4 KiB read and write buffers, the
	// goroutine's stack and the request's structures.
	connectionOverhead = 32 << 10
)

// MemoryBound is the most memory the webhook port's limits let the
// forwarder hold: baselineMemory, plus http.max_body_memory of request
// bodies, plus http.max_connections connections each holding up to
// http.max_header_bytes of headers and connectionOverhead. Set GOMEMLIMIT
// at or above it, and the pod's memory limit a quarter above GOMEMLIMIT.
func (c HTTPConfig) MemoryBound() int64 {
	return baselineMemory + c.MaxBodyMemory + c.ConnectionsMemory(c.MaxConnections)
}

// ConnectionsMemory is what n open connections served with c's limits may
// hold: http.max_header_bytes of headers and connectionOverhead each. The
// admin listener is served with the same limits.
func (c HTTPConfig) ConnectionsMemory(n int) int64 {
	return int64(n) * (int64(c.MaxHeaderBytes) + connectionOverhead)
}

// LogMemoryBound logs bound, the memory the listeners' limits let the
// process hold, at start, and warns when GOMEMLIMIT is set below it: the
// garbage collector would then run without pause while the ports are full,
// instead of only letting the process grow to it.
func LogMemoryBound(bound int64, log *zap.Logger) {
	limit := debug.SetMemoryLimit(-1)
	fields := []zap.Field{zap.Int64("memory_bound_bytes", bound)}
	if limit == math.MaxInt64 {
		log.Info("memory bound of the listeners; GOMEMLIMIT is not set", fields...)
		return
	}
	fields = append(fields, zap.Int64("gomemlimit_bytes", limit))
	if limit < bound {
		log.Warn("GOMEMLIMIT is below the memory bound of the listeners; raise it, or lower http.max_body_memory, http.max_connections or admin.max_connections", fields...)
		return
	}
	log.Info("memory bound of the listeners", fields...)
}
