package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// sendLoad drives url with `zautic-forwarder send` for d and reads its
// machine-readable summary.
func sendLoad(ctx context.Context, bin, url string, clients int, d time.Duration) (loadResult, error) {
	cmd := exec.CommandContext(ctx, bin, "send",
		"--url", url,
		"--secret", benchSecret,
		"--type", "message.delivered",
		"--concurrency", strconv.Itoa(clients),
		"--duration", d.String(),
		"--json")
	out, err := cmd.Output()
	var summary sendSummary
	if jerr := json.Unmarshal(out, &summary); jerr != nil {
		return loadResult{}, fmt.Errorf("send: %v; output %q: %w", err, out, jerr)
	}
	return summary.loadResult(), nil
}

// sendSummary is the part of `send --json` the benchmark reads.
type sendSummary struct {
	OK        int     `json:"ok"`
	Failed    int     `json:"failed"`
	Elapsed   float64 `json:"elapsed_seconds"`
	PerSecond float64 `json:"events_per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
}

func (s sendSummary) loadResult() loadResult {
	msd := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return loadResult{ok: s.OK, failed: s.Failed, elapsed: time.Duration(s.Elapsed * float64(time.Second)),
		perSec: s.PerSecond, p50: msd(s.P50), p99: msd(s.P99), max: msd(s.Max)}
}
