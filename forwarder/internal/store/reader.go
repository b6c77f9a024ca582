package store

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// readerNameSuffix ends the name of the readers' connection: the server's
// connection report tells it from the webhook path's at a glance.
const readerNameSuffix = "-admin"

// Reader is the NATS connection of the admin plane and of every
// background reader: the inspector's scans, the quarantine's listing and
// replay reads, the mark repair. It is a connection of its own, named
// <nats.name>-admin, so that nothing they read (slow consumers, large
// fetches) can make the server drop or slow the webhook path's
// connection; and its state never touches the webhook path's readiness.
type Reader struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// ConnectReader connects the readers' connection to url with cfg's
// credentials and the extra options. Like Connect, it returns at once and
// keeps retrying in the background.
func ConnectReader(url string, cfg natsconn.Config, log *zap.Logger, extra ...nats.Option) (*Reader, error) {
	connLog := natsconn.NewErrorLog(log, natsconn.ErrorLogEvery)
	handlers := []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				connLog.Report("admin nats connection lost; the webhook path keeps its own", natsconn.Cause(err), err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			connLog.Report("admin nats error", natsconn.AsyncCause(err), err)
		}),
	}
	nc, err := natsconn.Connect(url, cfg, natsconn.Name(cfg)+readerNameSuffix, append(handlers, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect the admin connection to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Reader{nc: nc, js: js}, nil
}

// JetStream is the readers' JetStream context.
func (r *Reader) JetStream() jetstream.JetStream { return r.js }

// Ready returns nil while the readers' connection is up; it never touches
// the network.
func (r *Reader) Ready() error {
	if !r.nc.IsConnected() {
		return fmt.Errorf("%w: the admin connection is %s", ErrNotReady, strings.ToLower(r.nc.Status().String()))
	}
	return nil
}

// Close closes the connection: readers hold nothing that must be flushed.
func (r *Reader) Close() { r.nc.Close() }
