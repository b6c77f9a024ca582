package telemetry

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Outcomes of a webhook request, the values of the outcome label.
const (
	OutcomePublished   = "published"
	OutcomeDuplicate   = "duplicate"
	OutcomeIgnored     = "ignored"
	OutcomeRejected    = "rejected"
	OutcomeUnavailable = "unavailable"
	OutcomeOverloaded  = "overloaded"
)

// Metrics holds the forwarder's Prometheus collectors. A nil *Metrics is
// valid and records nothing, which keeps tests that do not look at metrics
// free of registries.
type Metrics struct {
	requests        *prometheus.CounterVec
	published       *prometheus.CounterVec
	requestLatency  prometheus.Histogram
	publishLatency  prometheus.Histogram
	inFlight        prometheus.Gauge
	bodyMemory      prometheus.Gauge
	connections     prometheus.Gauge
	ready           prometheus.Gauge
	natsConnected   prometheus.Gauge
	natsReconnects  prometheus.Counter
	dedupErrors     *prometheus.CounterVec
	markFailures    prometheus.Counter
	marksInFlight   prometheus.Gauge
	secretReloads   *prometheus.CounterVec
	documentedTypes map[string]bool
	quarantine      quarantineMetrics

	byEndpoint endpointVecs // the vectors of every endpoint, which ForEndpoint curries
}

// NewMetrics creates the collectors and registers them, with the Go and
// process collectors, on reg.
func NewMetrics(reg prometheus.Registerer, labelled [][2]string) *Metrics {
	const ns = "zautic_forwarder"
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "webhook_requests_total",
			Help: "Webhook requests by outcome; reason is set for rejected requests.",
		}, []string{EndpointLabel, "outcome", "reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "events_published_total",
			Help: "Events stored in the stream, by type (documented types, else other).",
		}, []string{EndpointLabel, "type"}),
		requestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from the start of a webhook request to its answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "publish_duration_seconds",
			Help:    "Time from publish to PubAck.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "in_flight_requests", Help: "Webhook requests in progress.",
		}),
		bodyMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "body_memory_bytes",
			Help: "Bytes reserved for the bodies of webhook requests in progress (http.max_body_memory caps it).",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "webhook_connections",
			Help: "Open connections to the webhook port (http.max_connections caps it).",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "ready", Help: "1 when connected to NATS with the stream and bucket in place.",
		}),
		natsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "nats_connected", Help: "1 while connected to NATS.",
		}),
		natsReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "nats_reconnects_total", Help: "Reconnections to NATS.",
		}),
		dedupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "dedup_store_errors_total", Help: "Failed KV operations, by op (get, put).",
		}, []string{"op"}),
		markFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "mark_failures_total",
			Help: "Published events whose KV mark failed; the stream's duplicate window still guards them.",
		}),
		marksInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "marks_in_flight",
			Help: "KV marks sent and not yet acknowledged or failed; at most dedup.max_pending_marks.",
		}),
		secretReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "secret_reloads_total", Help: "Reloads of the webhook secret files, by result.",
		}, []string{"result"}),
		documentedTypes: map[string]bool{},
	}
	for _, t := range zautic.DocumentedTypes() {
		m.documentedTypes[t] = true
	}
	m.quarantine = newQuarantineMetrics(reg)
	reg.MustRegister(m.requests, m.published, m.requestLatency, m.publishLatency, m.inFlight, m.bodyMemory, m.connections, m.ready,
		m.natsConnected, m.natsReconnects, m.dedupErrors, m.markFailures, m.marksInFlight, m.secretReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.byEndpoint = endpointVecs{requests: m.requests, published: m.published, signatures: m.quarantine.signaturesVerified, labelled: labelled,
		known: &knownEndpoints{labels: map[string]bool{}}}
	return m.ForEndpoint(DefaultEndpoint)
}

// initSeries creates every series at zero, so that dashboards and alerts
// see a flat line instead of no data until the first event of each kind.
func (m *Metrics) initSeries(labelled [][2]string) {
	for _, outcome := range []string{OutcomePublished, OutcomeDuplicate, OutcomeIgnored, OutcomeUnavailable, OutcomeOverloaded} {
		m.requests.WithLabelValues(outcome, "")
	}
	for _, pair := range labelled {
		m.requests.WithLabelValues(pair[0], pair[1])
	}
	for _, t := range append(slices.Clone(zautic.DocumentedTypes()), "other") {
		m.published.WithLabelValues(t)
	}
	m.dedupErrors.WithLabelValues("get")
	m.dedupErrors.WithLabelValues("put")
	m.secretReloads.WithLabelValues("ok")
	m.secretReloads.WithLabelValues("error")
}

func (m *Metrics) Request(outcome, reason string, seconds float64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome, reason).Inc()
	m.requestLatency.Observe(seconds)
}

func (m *Metrics) EventPublished(eventType string, seconds float64) {
	if m == nil {
		return
	}
	if !m.documentedTypes[eventType] {
		eventType = "other"
	}
	m.published.WithLabelValues(eventType).Inc()
	m.publishLatency.Observe(seconds)
}

func (m *Metrics) AddInFlight(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

func (m *Metrics) SetBodyMemory(bytes int64) {
	if m != nil {
		m.bodyMemory.Set(float64(bytes))
	}
}

func (m *Metrics) AddConnections(delta float64) {
	if m != nil {
		m.connections.Add(delta)
	}
}

func (m *Metrics) SetReady(ready bool) {
	if m != nil {
		m.ready.Set(boolFloat(ready))
	}
}

func (m *Metrics) SetConnected(connected bool) {
	if m != nil {
		m.natsConnected.Set(boolFloat(connected))
	}
}

func (m *Metrics) Reconnected() {
	if m != nil {
		m.natsReconnects.Inc()
	}
}

func (m *Metrics) DedupError(op string) {
	if m != nil {
		m.dedupErrors.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) MarkFailed() {
	if m != nil {
		m.markFailures.Inc()
	}
}

// MarksInFlight adds delta to the marks in flight.
func (m *Metrics) MarksInFlight(delta float64) {
	if m != nil {
		m.marksInFlight.Add(delta)
	}
}

func (m *Metrics) SecretReload(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.secretReloads.WithLabelValues(result).Inc()
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RequestTraced is Request with the trace id as the exemplar of the
// duration observation.
func (m *Metrics) RequestTraced(outcome, reason string, seconds float64, sc trace.SpanContext) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome, reason).Inc()
	m.requestLatency.(prometheus.ExemplarObserver).ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
}
