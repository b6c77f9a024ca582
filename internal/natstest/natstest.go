// Package natstest runs in-process nats-servers with JetStream for tests, as
// nats-server's own tests do: loopback, a temp store dir, shut down at
// cleanup, and conditions polled rather than slept on.
package natstest

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start starts a nats-server with JetStream on 127.0.0.1, storing in
// storeDir (a new temp dir when empty) on port (random when 0), with opts
// applied to its options. It is shut down at cleanup.
func Start(t testing.TB, storeDir string, port int, opts ...func(*server.Options)) *server.Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	o := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true}
	for _, opt := range opts {
		opt(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("new nats-server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server on port %d not ready after 10s", port)
	}
	t.Cleanup(func() { Stop(ns) })
	return ns
}

// Stop shuts ns down and waits until it has; stopping twice is harmless.
func Stop(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// AuthFailures counts ns's connections closed for failed authentication:
// one per rejected client attempt.
func AuthFailures(t testing.TB, ns *server.Server) int {
	t.Helper()
	connz, err := ns.Connz(&server.ConnzOptions{State: server.ConnClosed, Limit: 10000})
	if err != nil {
		t.Fatalf("connz: %v", err)
	}
	n := 0
	for _, c := range connz.Conns {
		if strings.Contains(c.Reason, "Authentication") {
			n++
		}
	}
	return n
}

// CheckFor calls fn every sleep until it returns nil, and fails t with its
// last error when total has passed.
func CheckFor(t testing.TB, total, sleep time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", total, err)
		}
		time.Sleep(sleep)
	}
}
