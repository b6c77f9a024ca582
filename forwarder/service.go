package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// adminShutdownTimeout bounds the admin listener's shutdown; probes and
// scrapes are short.
const adminShutdownTimeout = 2 * time.Second

// Service is a running forwarder: the optional embedded nats-server, the
// broker, the secret watcher, the webhook listener and the admin listener.
type Service struct {
	cfg     Config
	log     *zap.Logger
	Secrets *Secrets
	Broker  *Broker
	ns      *server.Server

	web, admin     *http.Server
	webLn, adminLn net.Listener
	stopBroker     context.CancelFunc
	stopHangup     func()
	secretsChanged func()
	serveErr       chan error
	wg             sync.WaitGroup
}

// Start validates the secrets, starts the embedded nats-server when
// nats.url is empty, connects, and starts both listeners. NATS need not be
// reachable: the service then serves 503s and stays not ready until it is.
func Start(cfg Config, log *zap.Logger, reg *prometheus.Registry) (svc *Service, err error) {
	s := &Service{cfg: cfg, log: log, serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.Secrets, err = NewSecrets(cfg.Webhook); err != nil {
		return nil, err
	}
	metrics := NewMetrics(reg)
	url, extra := cfg.NATS.URL, []nats.Option(nil)
	if cfg.Embedded() {
		if s.ns, err = StartEmbeddedNATS(cfg.NATS.Embedded, log); err != nil {
			return nil, err
		}
		url, extra = s.ns.ClientURL(), []nats.Option{nats.InProcessServer(s.ns)}
		log.Info("embedded nats-server started", zap.String("url", url), zap.String("store_dir", cfg.NATS.Embedded.StoreDir))
	}
	if s.Broker, err = ConnectBroker(url, cfg, log, metrics, extra...); err != nil {
		return nil, err
	}
	if err := s.refuseMissingResources(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBroker = cancel
	s.wg.Go(func() { s.Broker.Run(ctx) })
	handler := NewHandler(cfg, s.Secrets, s.Broker, log, metrics)
	replayer := s.startQuarantine(ctx, handler, metrics)
	hangup, stopHangup := NotifyHangup()
	s.stopHangup = stopHangup
	watcher := NewSecretWatcher(s.Secrets, log, metrics)
	watcher.OnChange(s.secretsChanged)
	s.wg.Go(func() { watcher.Run(ctx, hangup) })

	s.web = NewHTTPServer(cfg.HTTP, NewWebhookServer(cfg.HTTP, handler, metrics), log)
	if s.webLn, err = listen("http.addr", cfg.HTTP.Addr); err != nil {
		return nil, err
	}
	s.serve(s.web, s.webLn, "webhook")
	if cfg.Admin.Addr != "" {
		token, err := NewAdminToken(cfg.Admin, log)
		if err != nil {
			return nil, err
		}
		routes := NewAdminHandler(cfg.Admin, s.Broker, reg, QuarantineRoutes(replayer))
		s.admin = NewHTTPServer(cfg.HTTP, NewAdminConsole(cfg, routes, s.Broker, reg, token), log)
		if s.adminLn, err = listen("admin.addr", cfg.Admin.Addr); err != nil {
			return nil, err
		}
		s.serve(s.admin, s.adminLn, "admin")
	}
	return s, nil
}

// refuseMissingResources fails the start when stream.manage is false and
// NATS answers but the stream or bucket does not exist: a configuration
// error, not an outage. When NATS is not reachable yet, the service starts
// and the check happens once connected.
func (s *Service) refuseMissingResources() error {
	if s.cfg.Stream.Manage || !s.Broker.nc.IsConnected() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.NATS.PublishTimeout)
	defer cancel()
	if err := s.Broker.CheckNow(ctx); errors.Is(err, ErrMissingResources) {
		return err
	}
	return nil
}

func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return ln, nil
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

// Run starts the service and blocks until ctx ends, then shuts it down.
func Run(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) error {
	s, err := Start(cfg, log, reg)
	if err != nil {
		return err
	}
	return s.Wait(ctx)
}

// Wait blocks until ctx ends or a listener fails, then shuts down in order:
// stop accepting and let in-flight requests finish (bounded by
// http.shutdown_timeout), drain NATS, stop the embedded server last.
func (s *Service) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", zap.Duration("timeout", s.cfg.HTTP.ShutdownTimeout))
	case err = <-s.serveErr:
		s.log.Error("listener failed; shutting down", zap.Error(err))
	}
	s.shutdownHTTP()
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

// close releases NATS and the embedded server; safe on a partly started
// service.
func (s *Service) close() {
	if s.stopHangup != nil {
		s.stopHangup()
	}
	if s.stopBroker != nil {
		s.stopBroker()
	}
	if s.Broker != nil {
		s.Broker.Close(s.cfg.NATS.PublishTimeout)
	}
	for _, ln := range []net.Listener{s.webLn, s.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	s.wg.Wait()
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}
