package connlimit

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/promtest"
)

// TestConnLimitListener holds the ceiling's worth of connections: the next
// one waits in the accept queue until one of them closes, and Close wakes
// an Accept waiting for a slot.
func TestConnLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg, nil)
	ln := Limit(inner, 2, m)
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	first := receive(t, accepted)
	receive(t, accepted)
	select {
	case <-accepted:
		t.Fatal("third connection accepted beyond the ceiling of 2")
	case <-time.After(200 * time.Millisecond):
	}
	if got := promtest.Value(t, reg, "zautic_forwarder_webhook_connections", nil); got != 2 {
		t.Errorf("open connections: got %v, want 2", got)
	}
	_ = first.Close()
	_ = first.Close() // a second Close frees nothing more
	receive(t, accepted)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-accepted; ok {
		t.Fatal("Accept went on after Close")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: got %v, want %v", err, net.ErrClosed)
	}
}

func receive(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted within 10s")
		return nil
	}
}
