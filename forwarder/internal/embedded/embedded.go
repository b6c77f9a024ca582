// Package embedded runs the forwarder's own nats-server, in process, when
// nats.url is empty: JetStream on disk in nats.embedded.store_dir, listening
// on nats.embedded.listen so that the nats CLI can watch, and its durability
// policy, nats.embedded.sync_interval. The caller owns the server: it
// connects to it (ClientURL, or nats.InProcessServer) and shuts it down.
// The package knows no other package of the service.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// Start starts an in-process nats-server with JetStream, storing in
// cfg.StoreDir and listening on cfg.Listen so that the nats CLI can watch.
// Port 0 picks a free port. cfg.SyncInterval decides whether a PubAck waits
// for the fsync. It waits up to startTimeout for the server to accept
// connections, less if ctx ends first.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.listen %q: port: %w", cfg.Listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
	}
	sync, err := parseSyncInterval(cfg.SyncInterval)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "zautic-forwarder-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		// nats-server leaves SyncInterval at its 2m default when it is 0;
		// with SyncAlways it is only the background flush of idle files.
		SyncAlways:   sync.Always,
		SyncInterval: sync.Interval,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	logger := natsLogger{s: log.Named("nats-server").Sugar(), fatal: make(chan string, 1)}
	ns.SetLoggerV2(logger, false, false, false)
	ns.Start()
	if err := waitForConnections(ctx, ns, logger.fatal); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("nats.embedded.listen %s: %w (choose another with FORWARDER_NATS_EMBEDDED_LISTEN, or an external server with FORWARDER_NATS_URL)", cfg.Listen, err)
	}
	return ns, nil
}

// startTimeout bounds the wait for the embedded server.
const startTimeout = 10 * time.Second

// waitForConnections polls ns in short steps so that a cancelled ctx ends
// the wait at once, and so does the server's own fatal error (the port
// taken, say) instead of the timeout.
func waitForConnections(ctx context.Context, ns *server.Server, fatal <-chan string) error {
	deadline := time.Now().Add(startTimeout)
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("start aborted: %w", err)
		}
		select {
		case msg := <-fatal:
			return errors.New(msg)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s (port in use?)", startTimeout)
		}
	}
	return nil
}

// natsLogger adapts zap to the nats-server logger interface. The server
// reports a failure to listen through Fatalf, without stopping the process
// (NoSigs): the first such message is handed to the start on fatal.
type natsLogger struct {
	s     *zap.SugaredLogger
	fatal chan string
}

func (l natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.s.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

func (l natsLogger) Noticef(format string, v ...any) { l.s.Debugf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.s.Warnf(format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.s.Debugf(format, v...) }

// WarnStorage logs a warning when the embedded server's storage limit (its
// max_file_store: by default three quarters of the free space of
// nats.embedded.store_dir's volume) is below reserved, what the forwarder's
// resources reserve (store.Reservation): they could not be created, or
// created once but never again.
func WarnStorage(ns *server.Server, reserved int64, log *zap.Logger) {
	if js := ns.JetStreamConfig(); js != nil && js.MaxStore > 0 && js.MaxStore < reserved {
		log.Warn("the embedded nats-server's storage limit is below what the forwarder's streams reserve; give nats.embedded.store_dir a larger volume",
			zap.Int64("max_store", js.MaxStore), zap.Int64("reserved", reserved))
	}
}
