package telemetry

import "github.com/prometheus/client_golang/prometheus"

// EndpointLabel names, on the request, published and verified-signature
// counters, the webhook endpoint a request came to.
const EndpointLabel = "endpoint"

// DefaultEndpoint is the endpoint label of the top-level webhook section.
const DefaultEndpoint = "default"

// endpointVecs are the counters that carry the endpoint label, before any
// endpoint is bound, and what their series are created with.
type endpointVecs struct {
	requests, published, signatures *prometheus.CounterVec
	labelled                        [][2]string
}

// ForEndpoint returns the metrics of the endpoint name: the same collectors,
// the endpoint label bound, so that the webhook plane records as it did
// before endpoints existed. Its series are created at zero. The Metrics
// NewMetrics returns are those of DefaultEndpoint.
func (m *Metrics) ForEndpoint(name string) *Metrics {
	if m == nil {
		return nil
	}
	bound := prometheus.Labels{EndpointLabel: name}
	e := *m
	e.requests = m.byEndpoint.requests.MustCurryWith(bound)
	e.published = m.byEndpoint.published.MustCurryWith(bound)
	e.quarantine.signaturesVerified = m.byEndpoint.signatures.MustCurryWith(bound)
	e.initSeries(m.byEndpoint.labelled)
	return &e
}
