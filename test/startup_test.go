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
	if !strings.Contains(logs, "nats.embedded.listen "+addr+": ") || !strings.Contains(logs, "address already in use") || strings.Contains(logs, "not ready after") ||
		!strings.Contains(logs, "FORWARDER_NATS_EMBEDDED_LISTEN") {
		t.Errorf("output does not name nats.embedded.listen %s, the listen error and the variable to change:\n%s", addr, trimmed(logs))
	}
}

// TestListenerPortTakenSaysWhatToChange: a taken webhook or admin port stops
// the start with an error naming the key and the variable that moves it.
func TestListenerPortTakenSaysWhatToChange(t *testing.T) {
	tests := []struct{ key, variable string }{
		{"http.addr", "FORWARDER_HTTP_ADDR"},
		{"admin.addr", "FORWARDER_ADMIN_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
			env[tt.variable] = ln.Addr().String()
			p := launchForwarder(t, env)
			if code := p.Wait(t, 30*time.Second); code == 0 {
				t.Fatalf("exit code: got 0, want non-zero")
			}
			logs := p.Logs()
			if want := tt.key + " " + ln.Addr().String() + ": "; !strings.Contains(logs, want) || !strings.Contains(logs, "address already in use") ||
				!strings.Contains(logs, "choose another with "+tt.variable) {
				t.Errorf("output does not name %s, the listen error and %s:\n%s", tt.key, tt.variable, trimmed(logs))
			}
		})
	}
}
