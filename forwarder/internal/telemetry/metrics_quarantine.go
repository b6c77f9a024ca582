package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Reasons a request is quarantined for: the values of the reason label of
// zautic_forwarder_quarantined_total and the last token of the subject.
const (
	ReasonSignatureMismatch = "signature_mismatch"
	ReasonTimestampOld      = "timestamp_out_of_tolerance"
)

// QuarantineReasons are the reasons a rejected request is kept for.
func QuarantineReasons() []string {
	return []string{ReasonSignatureMismatch, ReasonTimestampOld}
}

// Causes of a quarantine drop: the values of the cause label of
// zautic_forwarder_quarantine_dropped_total.
const (
	DropRate        = "rate"        // over quarantine.rate and quarantine.burst
	DropStore       = "store"       // the write failed or timed out
	DropFull        = "full"        // the stream holds quarantine.max_bytes
	DropLargeShare  = "large_share" // a large entry, and the share for large entries is used up
	DropUnavailable = "unavailable" // the quarantine stream is missing or NATS is not ready
)

// DropCauses are the values of the cause label of
// zautic_forwarder_quarantine_dropped_total.
func DropCauses() []string {
	return []string{DropRate, DropStore, DropFull, DropLargeShare, DropUnavailable}
}

// Replay outcomes beyond the request outcomes, and what started a replay:
// the values of the outcome and trigger labels of
// zautic_forwarder_quarantine_replayed_total.
const (
	OutcomeWouldPublish = "would_publish"

	TriggerReload = "reload"
	TriggerAdmin  = "admin"
)

// ReplayOutcomes are the outcomes of replaying one entry.
func ReplayOutcomes() []string {
	return []string{OutcomePublished, OutcomeDuplicate, OutcomeIgnored, OutcomeRejected, OutcomeUnavailable, OutcomeWouldPublish}
}

// quarantineMetrics counts what the quarantine keeps, drops and replays,
// and which secret verified each request.
type quarantineMetrics struct {
	quarantined        *prometheus.CounterVec
	dropped            *prometheus.CounterVec
	replayed           *prometheus.CounterVec
	signaturesVerified *prometheus.CounterVec
	entries            prometheus.Gauge
	available          prometheus.Gauge
}

func newQuarantineMetrics(reg prometheus.Registerer) quarantineMetrics {
	const ns = "zautic_forwarder"
	q := quarantineMetrics{
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantined_total",
			Help: "Rejected deliveries kept in the quarantine stream, by endpoint and reason.",
		}, []string{EndpointLabel, "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantine_dropped_total",
			Help: "Rejected deliveries that could have been kept but were not (answered 503), by endpoint and cause (rate, store, full, large_share, unavailable).",
		}, []string{EndpointLabel, "cause"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quarantine_replayed_total",
			Help: "Quarantined entries replayed, by the endpoint that received them, outcome and trigger (reload, admin).",
		}, []string{EndpointLabel, "outcome", "trigger"}),
		signaturesVerified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "signatures_verified_total",
			Help: "Verified signatures by key_id, the first 8 hex characters of SHA-256 of the secret that matched.",
		}, []string{EndpointLabel, "key_id"}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "quarantine_entries",
			Help: "Entries in the quarantine stream at the last readiness check (every replica reports the shared stream).",
		}),
		available: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "quarantine_available",
			Help: "1 when the quarantine stream was in place at the last readiness check, 0 when it is missing or could not be created (rejected deliveries are then answered 503).",
		}),
	}
	reg.MustRegister(q.quarantined, q.dropped, q.replayed, q.signaturesVerified, q.entries, q.available)
	return q
}

// initSeries creates the series of endpoint at zero, like the others.
func (q quarantineMetrics) initSeries(endpoint string) {
	for _, reason := range QuarantineReasons() {
		q.quarantined.WithLabelValues(endpoint, reason)
	}
	for _, cause := range DropCauses() {
		q.dropped.WithLabelValues(endpoint, cause)
	}
	for _, outcome := range ReplayOutcomes() {
		for _, trigger := range []string{TriggerReload, TriggerAdmin} {
			q.replayed.WithLabelValues(endpoint, outcome, trigger)
		}
	}
}

// Quarantined counts a request kept for reason. endpoint is the label of
// the endpoint that received it; one ForEndpoint did not bind counts as
// UnconfiguredEndpoint.
func (m *Metrics) Quarantined(endpoint, reason string) {
	if m != nil {
		m.quarantine.quarantined.WithLabelValues(m.endpointLabel(endpoint), reason).Inc()
	}
}

// QuarantineDropped counts a request not kept, for cause; endpoint is
// labelled as in Quarantined.
func (m *Metrics) QuarantineDropped(endpoint, cause string) {
	if m != nil {
		m.quarantine.dropped.WithLabelValues(m.endpointLabel(endpoint), cause).Inc()
	}
}

// Replayed counts an entry replayed with outcome; endpoint, the one that
// received it, is labelled as in Quarantined.
func (m *Metrics) Replayed(endpoint, outcome, trigger string) {
	if m != nil {
		m.quarantine.replayed.WithLabelValues(m.endpointLabel(endpoint), outcome, trigger).Inc()
	}
}

func (m *Metrics) SignatureVerified(keyID string) {
	if m != nil {
		m.quarantine.signaturesVerified.WithLabelValues(keyID).Inc()
	}
}

// KnownKeyIDs creates the key_id series of the configured secrets at zero,
// so that a secret nobody signs with shows as a flat line.
func (m *Metrics) KnownKeyIDs(ids []string) {
	if m == nil {
		return
	}
	for _, id := range ids {
		m.quarantine.signaturesVerified.WithLabelValues(id)
	}
}

func (m *Metrics) SetQuarantineEntries(n uint64) {
	if m != nil {
		m.quarantine.entries.Set(float64(n))
	}
}

// SetQuarantineAvailable records whether the quarantine stream can be
// written.
func (m *Metrics) SetQuarantineAvailable(ok bool) {
	if m != nil {
		v := 0.0
		if ok {
			v = 1
		}
		m.quarantine.available.Set(v)
	}
}
