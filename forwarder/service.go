package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zautic/zautic-forwarder/forwarder/internal/admin"
	"github.com/zautic/zautic-forwarder/forwarder/internal/connlimit"
	"github.com/zautic/zautic-forwarder/forwarder/internal/embedded"
	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
	"go.uber.org/zap"
)

// adminShutdownTimeout bounds the admin listener's shutdown; probes and
// scrapes are short.
const adminShutdownTimeout = 2 * time.Second

// Service is a running forwarder: the optional embedded nats-server, the
// store, the secret watcher, the webhook listener and the admin listener.
// Whoever calls Start owns it and ends it with Wait.
type Service struct {
	cfg       Config
	log       *zap.Logger
	endpoints []*endpoint // the default one first, when it is one
	store     *store.Broker
	reader    *store.Reader // the admin plane's and background readers' connection
	ns        *server.Server

	web, admin     *http.Server
	webLn, adminLn net.Listener
	stopLoops      context.CancelFunc       // ends the store's, the watcher's and the automatic replay's loops
	autoReplay     *quarantine.AutoReplayer // nil: quarantine.auto_replay is off
	serveErr       chan error
	wg             sync.WaitGroup
}

// Start validates the secrets, starts the embedded nats-server when
// nats.url is empty, connects, and starts both listeners. NATS need not be
// reachable: the service then serves 503s and stays not ready until it is.
// Cancelling ctx aborts a start that is still waiting (for the embedded
// server, or for the check of unmanaged resources); once Start has returned,
// ctx no longer matters: Wait stops the service. reg receives the metrics and
// is served on /metrics. WithTracerProvider turns tracing on.
func Start(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry, opts ...Option) (svc *Service, err error) {
	s := &Service{cfg: cfg, log: log, serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.endpoints, err = loadEndpoints(cfg); err != nil {
		return nil, err
	}
	metrics := telemetry.NewMetrics(reg, ingest.LabelledOutcomes())
	if err := s.connect(ctx, metrics); err != nil {
		return nil, err
	}
	if err := s.refuseMissingResources(ctx); err != nil {
		return nil, err
	}
	s.startEndpoints(metrics, applyOptions(opts).tracerProvider)
	replayer := s.setUpQuarantine(metrics)
	s.runLoops()
	web := ingest.NewRoutedServer(cfg.HTTP, s.routes(), metrics)
	ingest.AddProbes(web, s.store)
	s.web = ingest.NewHTTPServer(cfg.HTTP, web, log)
	if s.webLn, err = listen("http.addr", cfg.HTTP.Addr); err != nil {
		return nil, err
	}
	s.webLn = connlimit.Limit(s.webLn, cfg.HTTP.MaxConnections, metrics)
	ingest.LogMemoryBound(cfg.MemoryBound(), log)
	s.serve(s.web, s.webLn, "webhook")
	if cfg.Admin.Addr != "" {
		if err := s.startAdmin(reg, replayer); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startAdmin starts the admin listener.
func (s *Service) startAdmin(reg *prometheus.Registry, replayer *quarantine.Replayer) error {
	endpoints := EndpointLabels(s.cfg)
	inspector := admin.NewInspector(s.reader.JetStream(), admin.InspectConfig{
		Stream: s.cfg.Stream.Name, SubjectPrefix: s.cfg.Stream.SubjectPrefix, Bucket: s.cfg.Dedup.Bucket,
		QuarantineStream: s.cfg.Quarantine.Stream, Endpoints: endpoints,
		HeaderFilter: len(s.cfg.Endpoints) > 0 || s.cfg.Webhook.Subject != zautic.DefaultSubjectTemplate,
	}, s.reader.Ready)
	handler, err := admin.NewHandler(admin.Parts{
		Config: s.cfg.Admin, Status: s.store, Inspector: inspector, Replayer: replayer,
		View:         admin.View{Stream: s.cfg.Stream.Name, DedupKey: s.cfg.Dedup.Key, Quarantine: s.cfg.Quarantine.Enabled, Endpoints: endpoints},
		WriteTimeout: s.cfg.HTTP.WriteTimeout, Gatherer: reg,
	}, s.log)
	if err != nil {
		return err
	}
	timeouts := s.cfg.HTTP
	timeouts.IdleTimeout = min(timeouts.IdleTimeout, s.cfg.Admin.IdleTimeout)
	s.admin = ingest.NewHTTPServer(timeouts, handler, s.log)
	if s.adminLn, err = listen("admin.addr", s.cfg.Admin.Addr); err != nil {
		return err
	}
	// Its own ceiling: a flood of connections to the admin port is held in
	// the kernel's accept queue, and never takes the webhook port's slots.
	s.adminLn = connlimit.Limit(s.adminLn, s.cfg.Admin.MaxConnections, nil)
	s.serve(s.admin, s.adminLn, "admin")
	return nil
}

// setUpQuarantine lets the handler keep rejected requests, returns the
// replayer of the quarantine (nil when disabled), prepares the automatic
// replay, and sets what a change of the secrets triggers.
func (s *Service) setUpQuarantine(m *telemetry.Metrics) *quarantine.Replayer {
	var r *quarantine.Replayer
	if s.cfg.Quarantine.Enabled {
		// One keeper: its rate bounds what all endpoints together keep.
		keeper := quarantine.NewKeeper(s.cfg.Quarantine, s.cfg.NATS.PublishTimeout, s.store, s.log, m)
		for _, ep := range s.endpoints {
			ep.handler.KeepRejected(keeper)
		}
		reader := quarantine.NewReader(s.reader.JetStream(), s.cfg.Quarantine)
		r = quarantine.NewReplayer(s.handlers(), reader, s.cfg.NATS.PublishTimeout, s.log, m)
		if s.cfg.Quarantine.AutoReplay {
			s.autoReplay = quarantine.NewAutoReplayer(r, s.store.QuarantineReady, s.log)
		}
	}
	for _, ep := range s.endpoints {
		showKeyIDs := func() { ep.metrics.KnownKeyIDs(secrets.KeyIDs(ep.secrets.Current())) }
		showKeyIDs()
		ep.watcher.OnChange(func() {
			showKeyIDs()
			if s.autoReplay != nil {
				s.autoReplay.Trigger()
			}
		})
	}
	return r
}

// connect starts the embedded nats-server when configured, and the store.
func (s *Service) connect(ctx context.Context, metrics *telemetry.Metrics) (err error) {
	url, extra := s.cfg.NATS.URL, []nats.Option(nil)
	if s.cfg.Embedded() {
		if s.ns, err = embedded.Start(ctx, s.cfg.NATS.Embedded, s.log); err != nil {
			return err
		}
		url, extra = s.ns.ClientURL(), []nats.Option{nats.InProcessServer(s.ns)}
		s.log.Info("embedded nats-server started", zap.String("url", url), zap.String("store_dir", s.cfg.NATS.Embedded.StoreDir),
			zap.String("sync_interval", embedded.SyncInEffect(s.ns)))
		embedded.WarnStorage(s.ns, store.Reservation(s.cfg.storeConfig()), s.log)
	}
	if s.store, err = store.Connect(url, s.cfg.storeConfig(), s.log, metrics, extra...); err != nil {
		return err
	}
	// The admin plane and the background readers get a connection of their
	// own: nothing they read can make the server drop or slow the webhook
	// path's.
	if s.reader, err = store.ConnectReader(url, s.cfg.NATS, s.log, extra...); err != nil {
		return err
	}
	s.store.ReadThrough(s.reader)
	return nil
}

// runLoops starts the store's readiness loop and the secret watcher; close
// stops them.
func (s *Service) runLoops() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopLoops = cancel
	s.wg.Go(func() { s.store.Run(ctx) })
	s.runWatchers(ctx)
	if s.autoReplay != nil {
		s.wg.Go(func() { s.autoReplay.Run(ctx) })
	}
}

// refuseMissingResources fails the start when stream.manage is false and
// NATS answers but the stream or bucket does not exist: a configuration
// error, not an outage. When NATS is not reachable yet, the service starts
// and the check happens once connected.
func (s *Service) refuseMissingResources(ctx context.Context) error {
	if s.cfg.Stream.Manage || !s.store.Connected() {
		return nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, s.cfg.NATS.PublishTimeout)
	defer cancel()
	if err := s.store.CheckNow(checkCtx); errors.Is(err, store.ErrMissingResources) {
		return err
	}
	return ctx.Err()
}

func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (choose another with %s)", key, addr, err, envOf(key))
	}
	return ln, nil
}

// envOf is the environment variable that sets a configuration key.
func envOf(key string) string {
	return "FORWARDER_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func (s *Service) serve(srv *http.Server, ln net.Listener, name string) {
	s.log.Info(name+" listener started", zap.String("addr", ln.Addr().String()))
	s.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("%s listener: %w", name, err)
		}
	})
}

// WebhookAddr is the address the webhook listener is bound to.
func (s *Service) WebhookAddr() string { return s.webLn.Addr().String() }

// Ready returns nil when the service can forward, else why not. It never
// touches the network.
func (s *Service) Ready() error { return s.store.Ready() }

// ReloadSecrets re-reads the webhook secret files soon, as a file change
// would; trigger names the cause in the log (main passes "SIGHUP").
func (s *Service) ReloadSecrets(trigger string) {
	for _, ep := range s.endpoints {
		ep.watcher.Request(trigger)
	}
}

// Wait blocks until ctx ends or a listener fails, then shuts down in order:
// stop accepting and let in-flight requests finish (bounded by
// http.shutdown_timeout), drain NATS, stop the embedded server last.
func (s *Service) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", zap.String("timeout", s.cfg.HTTP.ShutdownTimeout.String()))
	case err = <-s.serveErr:
		s.log.Error("listener failed; shutting down", zap.Error(err))
	}
	deadline := time.Now().Add(s.cfg.HTTP.ShutdownTimeout)
	s.shutdownHTTP()
	s.waitMarks(deadline)
	s.close()
	s.log.Info("stopped")
	return err
}

func (s *Service) shutdownHTTP() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := s.web.Shutdown(ctx); err != nil {
		s.log.Warn("in-flight requests cut off at the shutdown timeout; they got no 2xx and will be retried", zap.Error(err))
		_ = s.web.Close()
	}
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer cancel()
		if err := s.admin.Shutdown(ctx); err != nil {
			_ = s.admin.Close()
		}
	}
}

// waitMarks gives the marks still in flight until the shutdown deadline to
// be stored, since draining the connection would drop their PubAcks. A mark
// left over is only a missing mark: the repair at the next start recreates
// it, and the duplicate window guards it meanwhile.
func (s *Service) waitMarks(deadline time.Time) {
	if left := s.store.WaitMarks(time.Until(deadline)); left > 0 {
		s.log.Warn("marks left unconfirmed at the shutdown timeout; the mark repair at the next start recreates any that were lost",
			zap.Int("marks_left", left))
		return
	}
	s.log.Info("no mark left in flight: each was stored, or failed as logged above", zap.Int("marks_left", 0))
}

// close stops the loops, releases NATS and the embedded server; safe on a
// partly started service.
func (s *Service) close() {
	if s.stopLoops != nil {
		s.stopLoops()
	}
	for _, ln := range []net.Listener{s.webLn, s.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	s.wg.Wait()
	if s.reader != nil {
		s.reader.Close()
	}
	if s.store != nil {
		s.store.Close(s.cfg.NATS.PublishTimeout)
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}
