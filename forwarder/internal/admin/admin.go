package admin

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// Config configures the probe, metrics, pprof and inspector listener.
type Config struct {
	Addr  string `yaml:"addr"`
	Pprof bool   `yaml:"pprof"`
	// Token, and the content of TokenFile, are the Bearer tokens the admin
	// paths that return or change data accept; both empty leaves them open.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// MaxConcurrentScans bounds the reads of the stream and the quarantine
	// (lookups, listings) running at once; more are answered 429.
	MaxConcurrentScans int `yaml:"max_concurrent_scans"`
	// MaxConnections bounds the admin listener's open connections, as
	// http.max_connections bounds the webhook port's.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes an idle keep-alive connection to the admin
	// listener: a browser keeps several open per tab, and a few tabs of the
	// inspector would otherwise hold admin.max_connections for
	// http.idle_timeout, keeping the metrics scrape waiting.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultConfig returns the admin section's defaults.
func DefaultConfig() Config {
	return Config{Addr: ":9090", MaxConcurrentScans: 2, MaxConnections: 64, IdleTimeout: 10 * time.Second}
}

// Parts are what the admin listener serves.
type Parts struct {
	Config Config
	View   View
	// Status is the webhook path's: /readyz and the overview report it.
	Status    Status
	Inspector *Inspector
	// Replayer serves the quarantine API; nil when the quarantine is off.
	Replayer *quarantine.Replayer
	// WriteTimeout is http.write_timeout: a replay stops starting entries
	// after three quarters of it, so that its answer is still written.
	WriteTimeout time.Duration
	Gatherer     prometheus.Gatherer
}

// NewHandler returns the admin listener's handler: the probes, /metrics,
// pprof when enabled, the quarantine API and the delivery inspector,
// behind admin.token when one is set. An unreadable or empty
// admin.token_file is an error.
func NewHandler(p Parts, log *zap.Logger) (http.Handler, error) {
	token, err := newAdminToken(p.Config, log)
	if err != nil {
		return nil, err
	}
	scans := newScanSlots(p.Config.MaxConcurrentScans)
	routes := telemetry.NewProbes(p.Config.Pprof, p.Status, p.Gatherer, quarantineRoutes(p.Replayer, p.WriteTimeout, scans))
	return newAdminConsole(p.View, routes, p.Status, p.Inspector, p.Gatherer, token, scans), nil
}
