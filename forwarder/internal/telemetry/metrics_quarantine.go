package forwarder

import "github.com/prometheus/client_golang/prometheus"

// Replay outcomes beyond the request outcomes, and what started a replay:
// the values of the outcome and trigger labels of
// zautic_forwarder_quarantine_replayed_total.
const (
	outcomeWouldPublish = "would_publish"

	triggerReload = "reload"
	triggerAdmin  = "admin"
)

// replayOutcomes are the outcomes of replaying one entry.
func replayOutcomes() []string {
	return []string{outcomePublished, outcomeDuplicate, outcomeIgnored, outcomeRejected, outcomeUnavailable, outcomeWouldPublish}
}

// quarantineMetrics counts what the quarantine keeps, drops and replays,
// and which secret verified each request.
type quarantineMetrics struct {
	quarantined        *prometheus.CounterVec
	dropped            *prometheus.CounterVec
	replayed           *prometheus.CounterVec
	signaturesVerified *prometheus.CounterVec
	entries            prometheus.Gauge
}

func newQuarantineMetrics(reg prometheus.Registerer) quarantineMetrics {
	const ns = "zautic_forwarder"
	q := quarantineMetrics{
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantined_total",
			Help: "Rejected deliveries kept in the quarantine stream, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantine_dropped_total",
			Help: "Rejected deliveries that could have been kept but were not, by cause (rate, store).",
		}, []string{"cause"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantine_replayed_total",
			Help: "Quarantined entries replayed, by outcome and trigger (reload, admin).",
		}, []string{"outcome", "trigger"}),
		signaturesVerified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "signatures_verified_total",
			Help: "Verified signatures by key_id, the first 8 hex characters of SHA-256 of the secret that matched.",
		}, []string{"key_id"}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "quarantine_entries",
			Help: "Entries in the quarantine stream at the last readiness check (every replica reports the shared stream).",
		}),
	}
	// Every series at zero from the start, like the others.
	for _, reason := range quarantineReasons() {
		q.quarantined.WithLabelValues(reason)
	}
	q.dropped.WithLabelValues(dropRate)
	q.dropped.WithLabelValues(dropStore)
	for _, outcome := range replayOutcomes() {
		for _, trigger := range []string{triggerReload, triggerAdmin} {
			q.replayed.WithLabelValues(outcome, trigger)
		}
	}
	reg.MustRegister(q.quarantined, q.dropped, q.replayed, q.signaturesVerified, q.entries)
	return q
}

func (m *metricSet) quarantined(reason string) {
	if m != nil {
		m.quarantine.quarantined.WithLabelValues(reason).Inc()
	}
}

func (m *metricSet) quarantineDropped(cause string) {
	if m != nil {
		m.quarantine.dropped.WithLabelValues(cause).Inc()
	}
}

func (m *metricSet) replayed(outcome, trigger string) {
	if m != nil {
		m.quarantine.replayed.WithLabelValues(outcome, trigger).Inc()
	}
}

func (m *metricSet) signatureVerified(keyID string) {
	if m != nil {
		m.quarantine.signaturesVerified.WithLabelValues(keyID).Inc()
	}
}

// knownKeyIDs creates the key_id series of the configured secrets at zero,
// so that a secret nobody signs with shows as a flat line.
func (m *metricSet) knownKeyIDs(keyIDs []string) {
	if m == nil {
		return
	}
	for _, id := range keyIDs {
		m.quarantine.signaturesVerified.WithLabelValues(id)
	}
}

func (m *metricSet) setQuarantineEntries(n uint64) {
	if m != nil {
		m.quarantine.entries.Set(float64(n))
	}
}
