package telemetry

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zautic/zautic-forwarder/internal/promtest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestNewMetricsExportsTheContract gathers a fresh registry: every metric the
// dashboard and alerts rely on exists before any traffic, at zero, with the
// Go and process collectors beside them.
func TestNewMetricsExportsTheContract(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg, [][2]string{{OutcomeOverloaded, "body_memory"}, {OutcomeRejected, "signature_mismatch"}})
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomePublished}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeDuplicate}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeIgnored}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeUnavailable}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeOverloaded}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeOverloaded, "reason": "body_memory"}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": OutcomeRejected, "reason": "signature_mismatch"}},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "message.delivered"}},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "other"}},
		{"zautic_forwarder_request_duration_seconds", nil},
		{"zautic_forwarder_publish_duration_seconds", nil},
		{"zautic_forwarder_in_flight_requests", nil},
		{"zautic_forwarder_body_memory_bytes", nil},
		{"zautic_forwarder_webhook_connections", nil},
		{"zautic_forwarder_ready", nil},
		{"zautic_forwarder_nats_connected", nil},
		{"zautic_forwarder_nats_reconnects_total", nil},
		{"zautic_forwarder_dedup_store_errors_total", map[string]string{"op": "get"}},
		{"zautic_forwarder_dedup_store_errors_total", map[string]string{"op": "put"}},
		{"zautic_forwarder_mark_failures_total", nil},
		{"zautic_forwarder_marks_in_flight", nil},
		{"zautic_forwarder_secret_reloads_total", map[string]string{"result": "ok"}},
		{"zautic_forwarder_quarantined_total", map[string]string{EndpointLabel: DefaultEndpoint, "reason": ReasonSignatureMismatch}},
		{"zautic_forwarder_quarantined_total", map[string]string{EndpointLabel: DefaultEndpoint, "reason": ReasonTimestampOld}},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{EndpointLabel: DefaultEndpoint, "cause": "rate"}},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{EndpointLabel: DefaultEndpoint, "cause": "store"}},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{EndpointLabel: DefaultEndpoint, "outcome": OutcomePublished, "trigger": TriggerReload}},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{EndpointLabel: DefaultEndpoint, "outcome": OutcomeWouldPublish, "trigger": TriggerAdmin}},
		{"zautic_forwarder_quarantine_entries", nil},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+fmt.Sprint(tt.labels), func(t *testing.T) {
			promtest.Value(t, reg, tt.name, tt.labels)
		})
	}
	if got, want := len(promtest.LabelValues(t, reg, "zautic_forwarder_events_published_total", "type")), len(zautic.DocumentedTypes())+1; got != want {
		t.Errorf("type label values: got %d, want %d (the documented types and other)", got, want)
	}
}

// TestQuarantineCountsByEndpoint: the quarantine's counters carry the
// endpoint label, each bound endpoint's series exist at zero, and an
// endpoint no longer configured counts under one value, so that stored
// entries cannot grow the label set.
func TestQuarantineCountsByEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	m.ForEndpoint("acme")
	for _, name := range []string{"zautic_forwarder_quarantined_total", "zautic_forwarder_quarantine_dropped_total", "zautic_forwarder_quarantine_replayed_total"} {
		if got := promtest.Value(t, reg, name, map[string]string{EndpointLabel: "acme"}); got != 0 {
			t.Errorf("%s{endpoint=acme} before any traffic: got %v, want 0", name, got)
		}
	}

	m.Quarantined("acme", ReasonSignatureMismatch)
	m.QuarantineDropped("acme", DropRate)
	m.Replayed("acme", OutcomePublished, TriggerReload)
	m.Replayed(DefaultEndpoint, OutcomeRejected, TriggerAdmin)
	m.Replayed("gone", OutcomeRejected, TriggerReload)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zautic_forwarder_quarantined_total", map[string]string{EndpointLabel: "acme", "reason": ReasonSignatureMismatch}, 1},
		{"zautic_forwarder_quarantined_total", map[string]string{EndpointLabel: DefaultEndpoint, "reason": ReasonSignatureMismatch}, 0},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{EndpointLabel: "acme", "cause": DropRate}, 1},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{EndpointLabel: DefaultEndpoint, "cause": DropRate}, 0},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{EndpointLabel: "acme", "outcome": OutcomePublished, "trigger": TriggerReload}, 1},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{EndpointLabel: DefaultEndpoint, "outcome": OutcomeRejected, "trigger": TriggerAdmin}, 1},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{EndpointLabel: UnconfiguredEndpoint, "outcome": OutcomeRejected, "trigger": TriggerReload}, 1},
	}
	for _, tt := range tests {
		if got := promtest.Value(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v: got %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := promtest.LabelValues(t, reg, "zautic_forwarder_quarantine_replayed_total", EndpointLabel); slices.Contains(got, "gone") {
		t.Errorf("endpoint label values: got %v, want no unconfigured name", got)
	}
}
