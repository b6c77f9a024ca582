package main

import (
	"math"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// TestTuneGC raises the collector's target only under a memory limit sized
// for the forwarder, with an external nats-server, when GOGC does not
// choose one. It changes the process's GC settings, so it restores them and
// does not run in parallel.
func TestTuneGC(t *testing.T) {
	external := forwarder.DefaultConfig()
	external.NATS.URL = "nats://127.0.0.1:4222"
	bound := external.MemoryBound()
	tests := []struct {
		name  string
		cfg   forwarder.Config
		gogc  string
		limit int64
		want  int
	}{
		{"no memory limit: Go's default stays", external, "", math.MaxInt64, 100},
		{"the manifest's limit: target raised", external, "", 200 << 20, gcPercentUnderLimit},
		{"limit at twice the bound: target raised", external, "", 2 * bound, gcPercentUnderLimit},
		{"limit above twice the bound bounds nothing: default stays", external, "", 2*bound + 1, 100},
		{"GOGC set: the operator's choice stays", external, "100", 200 << 20, 100},
		{"embedded nats-server: default stays", forwarder.DefaultConfig(), "", 200 << 20, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			beforeLimit := debug.SetMemoryLimit(tt.limit)
			beforePercent := debug.SetGCPercent(100)
			t.Cleanup(func() {
				debug.SetMemoryLimit(beforeLimit)
				debug.SetGCPercent(beforePercent)
			})
			core, logs := observer.New(zapcore.InfoLevel)
			getenv := func(k string) string {
				if k == "GOGC" {
					return tt.gogc
				}
				return ""
			}
			tuneGC(tt.cfg, getenv, zap.New(core))
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GC percent: got %d, want %d", got, tt.want)
			}
			wantLogs := 0
			if tt.want == gcPercentUnderLimit {
				wantLogs = 1
			}
			if n := logs.Len(); n != wantLogs {
				t.Errorf("log lines: got %d, want %d", n, wantLogs)
			}
		})
	}
}
