package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/zautic/zautic-forwarder/simulator"
)

// sendLoad drives url with `zautic-forwarder send` for d and reads its
// machine-readable summary. Every request carries the body in file, signed
// anew, with a delivery id of its own.
func sendLoad(ctx context.Context, bin, file, url string, clients int, d time.Duration) (loadResult, error) {
	cmd := exec.CommandContext(ctx, bin, "send",
		"--url", url,
		"--secret", benchSecret,
		"--file", file,
		"--concurrency", strconv.Itoa(clients),
		"--duration", d.String(),
		"--json")
	out, err := cmd.Output()
	var s simulator.Summary
	if jerr := json.Unmarshal(out, &s); jerr != nil {
		return loadResult{}, fmt.Errorf("send: %v; output %q: %w", err, out, jerr)
	}
	if s.ElapsedSeconds <= 0 {
		return loadResult{}, fmt.Errorf("send: no elapsed time in %q", out)
	}
	return loadResult{ok: s.OK, failed: s.Failed, elapsed: time.Duration(s.ElapsedSeconds * float64(time.Second)),
		perSec: float64(s.OK) / s.ElapsedSeconds, p50: s.Latency.P50, p99: s.Latency.P99, max: s.Latency.Max}, nil
}
