// Package connlimit bounds the connections a listener holds open, for the
// webhook and the admin listeners alike.
package connlimit

import (
	"net"
	"sync"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// connLimitListener holds at most cap(slots) accepted connections open. At
// the ceiling it stops accepting: further connections wait in the kernel's
// accept queue, where they cost the process nothing, until one closes. Each
// open connection can hold up to http.max_header_bytes of headers, so the
// ceiling bounds what headers take (docs/kubernetes.md, Memory sizing).
type connLimitListener struct {
	net.Listener
	slots   chan struct{}
	closed  chan struct{}
	once    sync.Once
	metrics *telemetry.Metrics
}

// Limit wraps ln so that at most max of its connections are open at once;
// m (nil for none) counts them.
func Limit(ln net.Listener, max int, m *telemetry.Metrics) net.Listener {
	return &connLimitListener{Listener: ln, slots: make(chan struct{}, max), closed: make(chan struct{}), metrics: m}
}

// Accept waits for a free slot, then for a connection.
func (l *connLimitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.metrics.AddConnections(1)
	return &limitedConn{Conn: conn, release: l.release}, nil
}

func (l *connLimitListener) release() {
	l.metrics.AddConnections(-1)
	<-l.slots
}

// Close also wakes an Accept waiting for a slot.
func (l *connLimitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite passes through to the TCP connection: net/http half-closes
// before closing a connection whose request body it left unread, so that
// the client reads the answer (a 429, a 413) instead of a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
