package test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestUnmanagedMissingResourcesRefusesToStart: with stream.manage false and
// NATS reachable, missing resources are a configuration error: the process
// exits non-zero with a message naming them.
func TestUnmanagedMissingResourcesRefusesToStart(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_MANAGE"] = "false"
	p := launchForwarder(t, env)
	if code := p.Wait(t, 30*time.Second); code == 0 {
		t.Fatalf("exit code: got 0, want non-zero")
	}
	logs := p.Logs()
	if !strings.Contains(logs, `missing: stream \"ZAUTIC\", KV bucket \"zautic-dedup\"`) || !strings.Contains(logs, "stream.manage is false") {
		t.Errorf("output does not name the missing stream and stream.manage:\n%s", trimmed(logs))
	}
}

// TestEmbeddedPortTakenFailsAtOnce holds the embedded server's port: the
// process exits at once with a message naming the address, instead of
// waiting out the server's start timeout.
func TestEmbeddedPortTakenFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	addr := ln.Addr().String()
	env := forwarderEnv("")
	env["FORWARDER_NATS_EMBEDDED_LISTEN"] = addr
	env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = t.TempDir()
	p := launchForwarder(t, env)
	if code := p.Wait(t, 30*time.Second); code == 0 {
		t.Fatalf("exit code: got 0, want non-zero")
	}
	// The server's own listen error, not the start timeout's message.
	logs := p.Logs()
	if !strings.Contains(logs, "nats.embedded.listen "+addr+": ") || !strings.Contains(logs, "address already in use") || strings.Contains(logs, "not ready after") {
		t.Errorf("output does not name nats.embedded.listen %s and the listen error:\n%s", addr, trimmed(logs))
	}
}

// TestAdminPortTakenNamesOnlyTheListener holds the admin listener's port:
// the process exits non-zero naming admin.addr, and the start's own
// cancellation is not logged as a reason NATS is not ready.
func TestAdminPortTakenNamesOnlyTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_ADMIN_ADDR"] = ln.Addr().String()
	p := launchForwarder(t, env)
	if code := p.Wait(t, 30*time.Second); code == 0 {
		t.Fatalf("exit code: got 0, want non-zero")
	}
	logs := p.Logs()
	if !strings.Contains(logs, "admin.addr "+ln.Addr().String()) || !strings.Contains(logs, "address already in use") {
		t.Errorf("output does not name admin.addr and the listen error:\n%s", trimmed(logs))
	}
	if strings.Contains(logs, "nats not ready") || strings.Contains(logs, "context canceled") {
		t.Errorf("output blames NATS for the start's own cancellation:\n%s", trimmed(logs))
	}
}
