package forwarder

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// endpoint is one running endpoint: its secrets and their watcher, its
// handler and the metrics bound to its label.
type endpoint struct {
	label   string // "default" or the name
	name    string // "" for the default endpoint
	path    string
	ingest  ingest.Config
	secrets *secrets.Set
	watcher *secrets.Watcher
	handler *ingest.Handler
	metrics *telemetry.Metrics
}

// loadEndpoints reads the secrets of every endpoint, the default one first
// when it is enabled. If an endpoint has no secret, or a file cannot be
// read, the error that would stop the start is returned.
func loadEndpoints(cfg Config) ([]*endpoint, error) {
	var eps []*endpoint
	if cfg.DefaultEndpointEnabled() {
		set, err := secrets.New(cfg.Webhook)
		if err != nil {
			return nil, err
		}
		eps = append(eps, &endpoint{label: ingest.DefaultEndpoint, path: cfg.HTTP.Path, ingest: cfg.ingestConfig(), secrets: set})
	}
	for i, ep := range cfg.NamedEndpoints() {
		set, err := secrets.New(ep.secretsConfig(i))
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ep.Name, err)
		}
		eps = append(eps, &endpoint{label: ep.Name, name: ep.Name, path: ep.Path, ingest: cfg.endpointIngestConfig(ep), secrets: set})
	}
	return eps, nil
}

// EndpointKeyIDs reads the secrets of every endpoint as Start does and
// returns their key ids by endpoint label ("default" for the top-level
// webhook section, when it is an endpoint), or the error that would stop it.
func EndpointKeyIDs(cfg Config) (map[string][]string, error) {
	eps, err := loadEndpoints(cfg)
	if err != nil {
		return nil, err
	}
	ids := make(map[string][]string, len(eps))
	for _, ep := range eps {
		ids[ep.label] = secrets.KeyIDs(ep.secrets.Current())
	}
	return ids, nil
}

// EndpointLabels returns the endpoint labels of cfg in the order Start
// serves them: "default" first when the top-level section is an endpoint.
func EndpointLabels(cfg Config) []string {
	var labels []string
	if cfg.DefaultEndpointEnabled() {
		labels = append(labels, ingest.DefaultEndpoint)
	}
	for _, ep := range cfg.Endpoints {
		labels = append(labels, ep.Name)
	}
	return labels
}

// startEndpoints builds each endpoint's watcher and handler, its log lines
// and metrics carrying its label.
func (s *Service) startEndpoints(m *telemetry.Metrics, tp trace.TracerProvider) {
	for _, ep := range s.endpoints {
		log := s.log.With(zap.String("endpoint", ep.label))
		ep.metrics = m.ForEndpoint(ep.label)
		ep.watcher = secrets.NewWatcher(ep.secrets, log, ep.metrics)
		ep.handler = ingest.NewHandler(ep.ingest, ep.secrets, s.store, log, ep.metrics, tp)
	}
}

// routes are the webhook port's routes, one per endpoint.
func (s *Service) routes() []ingest.Route {
	routes := make([]ingest.Route, len(s.endpoints))
	for i, ep := range s.endpoints {
		routes[i] = ingest.Route{Path: ep.path, Handler: ep.handler, Metrics: ep.metrics}
	}
	return routes
}

// handlers are the endpoints' handlers by name, which replay picks from.
func (s *Service) handlers() ingest.Endpoints {
	hs := make(ingest.Endpoints, len(s.endpoints))
	for _, ep := range s.endpoints {
		hs[ep.name] = ep.handler
	}
	return hs
}

// runWatchers runs every endpoint's secret watcher until ctx ends.
func (s *Service) runWatchers(ctx context.Context) {
	for _, ep := range s.endpoints {
		s.wg.Go(func() { ep.watcher.Run(ctx) })
	}
}

// DefaultEndpoint is the label of the top-level webhook section's endpoint
// in metrics, logs and EndpointKeyIDs.
const DefaultEndpoint = ingest.DefaultEndpoint
