package forwarder

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Outcomes of a webhook request, the values of the outcome label.
const (
	outcomePublished   = "published"
	outcomeDuplicate   = "duplicate"
	outcomeIgnored     = "ignored"
	outcomeRejected    = "rejected"
	outcomeUnavailable = "unavailable"
	outcomeOverloaded  = "overloaded"
)

// metricSet holds the forwarder's Prometheus collectors. A nil *metricSet is
// valid and records nothing, which keeps tests that do not look at metrics
// free of registries.
type metricSet struct {
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
	secretReloads   *prometheus.CounterVec
	documentedTypes map[string]bool
	quarantine      quarantineMetrics
}

// newMetricSet creates the collectors and registers them, with the Go and
// process collectors, on reg.
func newMetricSet(reg prometheus.Registerer) *metricSet {
	const ns = "zautic_forwarder"
	m := &metricSet{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "webhook_requests_total",
			Help: "Webhook requests by outcome; reason is set for rejected requests.",
		}, []string{"outcome", "reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "events_published_total",
			Help: "Events stored in the stream, by type (documented types, else other).",
		}, []string{"type"}),
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
		secretReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "secret_reloads_total", Help: "Reloads of the webhook secret files, by result.",
		}, []string{"result"}),
		documentedTypes: map[string]bool{},
	}
	for _, t := range zautic.DocumentedTypes() {
		m.documentedTypes[t] = true
	}
	m.initSeries()
	m.quarantine = newQuarantineMetrics(reg)
	reg.MustRegister(m.requests, m.published, m.requestLatency, m.publishLatency, m.inFlight, m.bodyMemory, m.connections, m.ready,
		m.natsConnected, m.natsReconnects, m.dedupErrors, m.markFailures, m.secretReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// initSeries creates every series at zero, so that dashboards and alerts
// see a flat line instead of no data until the first event of each kind.
func (m *metricSet) initSeries() {
	for _, outcome := range []string{outcomePublished, outcomeDuplicate, outcomeIgnored, outcomeUnavailable, outcomeOverloaded} {
		m.requests.WithLabelValues(outcome, "")
	}
	for _, pair := range labelledOutcomes() {
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

func (m *metricSet) request(outcome, reason string, seconds float64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome, reason).Inc()
	m.requestLatency.Observe(seconds)
}

func (m *metricSet) eventPublished(eventType string, seconds float64) {
	if m == nil {
		return
	}
	if !m.documentedTypes[eventType] {
		eventType = "other"
	}
	m.published.WithLabelValues(eventType).Inc()
	m.publishLatency.Observe(seconds)
}

func (m *metricSet) addInFlight(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

func (m *metricSet) setBodyMemory(bytes int64) {
	if m != nil {
		m.bodyMemory.Set(float64(bytes))
	}
}

func (m *metricSet) addConnections(delta float64) {
	if m != nil {
		m.connections.Add(delta)
	}
}

func (m *metricSet) setReady(ready bool) {
	if m != nil {
		m.ready.Set(boolFloat(ready))
	}
}

func (m *metricSet) setConnected(connected bool) {
	if m != nil {
		m.natsConnected.Set(boolFloat(connected))
	}
}

func (m *metricSet) reconnected() {
	if m != nil {
		m.natsReconnects.Inc()
	}
}

func (m *metricSet) dedupError(op string) {
	if m != nil {
		m.dedupErrors.WithLabelValues(op).Inc()
	}
}

func (m *metricSet) markFailed() {
	if m != nil {
		m.markFailures.Inc()
	}
}

func (m *metricSet) secretReload(ok bool) {
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
