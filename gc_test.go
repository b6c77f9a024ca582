package main

import (
	"math"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestTuneGC raises the collector's target only under a memory limit and
// only when GOGC does not choose one. It changes the process's GC settings,
// so it restores them and does not run in parallel.
func TestTuneGC(t *testing.T) {
	tests := []struct {
		name     string
		gogc     string
		limit    int64
		want     int
		wantLogs int
	}{
		{"no memory limit: Go's default stays", "", math.MaxInt64, 100, 0},
		{"memory limit: target raised", "", 200 << 20, gcPercentUnderLimit, 1},
		{"GOGC set: the operator's choice stays", "100", 200 << 20, 100, 0},
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
			tuneGC(getenv, zap.New(core))
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GC percent: got %d, want %d", got, tt.want)
			}
			if n := logs.Len(); n != tt.wantLogs {
				t.Errorf("log lines: got %d, want %d", n, tt.wantLogs)
			}
		})
	}
}
