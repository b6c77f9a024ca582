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

// benchEventType is the type of the events sent over HTTP: the quickstart
// sample's, built by the simulator in the same envelope.
const benchEventType = "message.delivered"

// sendLoad drives url with `zautic-forwarder send` for d and reads its
// machine-readable summary. Every request carries an event of benchEventType
// with an event id and a delivery id of its own, signed anew: a fixed body
// would make every request after the first a duplicate to the forwarder,
// which dedups on the event id by default (dedup.key), while row M publishes
// each delivery id.
func sendLoad(ctx context.Context, bin, url string, clients int, d time.Duration) (loadResult, error) {
	cmd := exec.CommandContext(ctx, bin, "send",
		"--url", url,
		"--secret", benchSecret,
		"--type", benchEventType,
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
