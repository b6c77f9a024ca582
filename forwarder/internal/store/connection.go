package store

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// connectionHandlers are the webhook connection's callbacks: readiness and
// the connected gauge follow the connection, a reconnect asks for the mark
// repair, and b.down keeps the reason while the connection is down.
func (b *Broker) connectionHandlers() []nats.Option {
	return []nats.Option{
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.down.Connected()
			b.log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.warnSmallPayload(nc)
			b.metrics.SetConnected(true)
			b.Wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.down.Connected()
			b.log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.warnSmallPayload(nc)
			b.metrics.SetConnected(true)
			b.metrics.Reconnected()
			b.requestRepair()
			b.streamProbe.Store(true) // perhaps another server, with other limits
			b.Wake()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.metrics.SetConnected(false)
			if err == nil {
				err = errors.New("connection closed")
			}
			b.setNotReady(fmt.Errorf("disconnected: %w", err))
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			b.down.Failed(err)
			b.setNotReady(b.down.Reason(nc))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.notePermissionDenied(err)
			// Shares the log with b.down: a rejected reconnection reaches
			// both, and is logged once.
			b.connLog.Report("nats error", natsconn.AsyncCause(err), err)
		}),
	}
}
