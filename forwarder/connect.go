package forwarder

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// connectionName is nats.name, defaulting to zautic-forwarder@<hostname>.
func connectionName(cfg NATSConfig) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return "zautic-forwarder@" + host
}

// natsOptions are the connection options: never give up reconnecting (auth
// errors included, so that fixed credentials bring the forwarder back without
// a restart), no reconnect buffer (a publish while disconnected fails at once
// and is answered 503 instead of waiting), and credentials from cfg.
func natsOptions(cfg NATSConfig, b *Broker, log *zap.Logger) ([]nats.Option, error) {
	logConnErr := rateLimited(30 * time.Second)
	opts := []nats.Option{
		nats.Name(connectionName(cfg)),
		nats.Timeout(cfg.ConnectTimeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.metrics.setConnected(true)
			b.Wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.metrics.setConnected(true)
			b.metrics.reconnected()
			b.Wake()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.metrics.setConnected(false)
			if err == nil {
				err = errors.New("connection closed")
			}
			b.setNotReady(fmt.Errorf("disconnected: %w", err))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if logConnErr() {
				log.Warn("nats connection attempt failed; retrying", zap.Error(err))
			}
			b.setNotReady(fmt.Errorf("connect: %v", err))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if logConnErr() {
				log.Warn("nats error", zap.Error(err))
			}
		}),
	}
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

// authOptions turns the credential keys into connection options.
func authOptions(cfg NATSConfig) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		opts = append(opts, opt)
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	return opts, nil
}

// rateLimited returns a function that reports true at most once per every.
func rateLimited(every time.Duration) func() bool {
	var mu sync.Mutex
	var last time.Time
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= every {
			last = now
			return true
		}
		return false
	}
}
