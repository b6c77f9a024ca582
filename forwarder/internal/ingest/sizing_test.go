package ingest

import (
	"math"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMemoryBound(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*HTTPConfig)
		want   int64
	}{
		{"defaults: 32 MiB + 64 MiB + 1024 x (16 KiB + 32 KiB)", func(*HTTPConfig) {}, 144 << 20},
		{"fewer connections", func(c *HTTPConfig) { c.MaxConnections = 256 }, (32 + 64 + 12) << 20},
		{"smaller body budget", func(c *HTTPConfig) { c.MaxBodyMemory = 16 << 20 }, (32 + 16 + 48) << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultSettings().HTTP
			tt.modify(&cfg)
			if got := cfg.MemoryBound(); got != tt.want {
				t.Errorf("got %d MiB, want %d MiB", got>>20, tt.want>>20)
			}
		})
	}
}

// TestLogMemoryBound warns when GOMEMLIMIT is below the bound. It changes
// the process's memory limit, so it does not run in parallel.
func TestLogMemoryBound(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	cfg := defaultSettings().HTTP
	tests := []struct {
		name  string
		limit int64
		level zapcore.Level
	}{
		{"unset", math.MaxInt64, zapcore.InfoLevel},
		{"above the bound", cfg.MemoryBound() + 1, zapcore.InfoLevel},
		{"below the bound", cfg.MemoryBound() - 1, zapcore.WarnLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(tt.limit)
			core, logs := observer.New(zapcore.InfoLevel)
			LogMemoryBound(cfg.MemoryBound(), zap.New(core))
			entries := logs.All()
			if len(entries) != 1 || entries[0].Level != tt.level {
				t.Fatalf("got %v, want one entry at %v", entries, tt.level)
			}
			if got := entries[0].ContextMap()["memory_bound_bytes"]; got != cfg.MemoryBound() {
				t.Errorf("memory_bound_bytes: got %v, want %d", got, cfg.MemoryBound())
			}
		})
	}
}
