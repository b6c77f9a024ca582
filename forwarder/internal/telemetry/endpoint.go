package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// EndpointLabel names, on the request, published, verified-signature and
// quarantine counters, the webhook endpoint a request came to.
const EndpointLabel = "endpoint"

// DefaultEndpoint is the endpoint label of the top-level webhook section.
const DefaultEndpoint = "default"

// UnconfiguredEndpoint is the endpoint label of a quarantine entry replayed
// after its endpoint left the configuration. Stored entries may name any
// endpoint ever configured; counting them under one value keeps the label
// to the configured endpoints plus this one. It cannot be an endpoint's
// name, which starts with a letter or a digit.
const UnconfiguredEndpoint = "_unconfigured"

// endpointVecs are the counters that carry the endpoint label, before any
// endpoint is bound, what their series are created with, and the endpoints
// ForEndpoint has bound.
type endpointVecs struct {
	requests, published, signatures *prometheus.CounterVec
	labelled                        [][2]string
	known                           *knownEndpoints
}

// knownEndpoints are the labels ForEndpoint was called with: the
// configured endpoints, and the default one.
type knownEndpoints struct {
	mu     sync.RWMutex
	labels map[string]bool
}

func (k *knownEndpoints) add(label string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.labels[label] = true
}

func (k *knownEndpoints) has(label string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.labels[label]
}

// ForEndpoint returns the metrics of the endpoint name: the same collectors,
// the endpoint label bound, so that the webhook plane records as it did
// before endpoints existed. Its series, the quarantine's among them, are
// created at zero. The Metrics NewMetrics returns are those of
// DefaultEndpoint.
func (m *Metrics) ForEndpoint(name string) *Metrics {
	if m == nil {
		return nil
	}
	m.byEndpoint.known.add(name)
	bound := prometheus.Labels{EndpointLabel: name}
	e := *m
	e.requests = m.byEndpoint.requests.MustCurryWith(bound)
	e.published = m.byEndpoint.published.MustCurryWith(bound)
	e.quarantine.signaturesVerified = m.byEndpoint.signatures.MustCurryWith(bound)
	e.initSeries(m.byEndpoint.labelled)
	e.quarantine.initSeries(name)
	return &e
}

// endpointLabel is the endpoint label the quarantine counters record for
// label: itself when ForEndpoint bound it, else UnconfiguredEndpoint.
func (m *Metrics) endpointLabel(label string) string {
	if m.byEndpoint.known.has(label) {
		return label
	}
	return UnconfiguredEndpoint
}
