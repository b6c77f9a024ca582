package test

import (
	"fmt"
	"net"
	"net/http"
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

// TestFullStreamSaysWhatToDo fills a stream of a few KiB (stream.max_bytes,
// discard new): the refused deliveries are answered 503 with a reason
// naming stream.max_bytes and stream.max_age, and the full stream is
// logged once at warn level, not once per request.
func TestFullStreamSaysWhatToDo(t *testing.T) {
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	env["FORWARDER_STREAM_MAX_BYTES"] = "4096"
	p := startForwarder(t, env)
	p.WaitReady(t)
	refused := 0
	for i := 0; i < 200 && refused < 3; i++ {
		got := send(t, p.WebhookURL, webhook{body: sampleEvent(fmt.Sprintf("evt_full_%d", i), "message.sent"), deliveryID: fmt.Sprintf("dlv_full_%d", i)})
		if got.Status == http.StatusOK {
			continue
		}
		refused++
		reason := fmt.Sprint(got.Body["error"])
		if got.Status != http.StatusServiceUnavailable || !strings.Contains(reason, "raise stream.max_bytes, or shorten stream.max_age") || strings.Contains(reason, "nats: nats:") {
			t.Fatalf("delivery into the full stream: got %d %q, want 503 naming stream.max_bytes and stream.max_age", got.Status, reason)
		}
	}
	if refused < 3 {
		t.Fatalf("200 deliveries into a 4 KiB stream: %d refused, want the stream to fill", refused)
	}
	// Log lines are flushed within log.flush_interval.
	natstest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if got := strings.Count(p.Logs(), "the event stream is full"); got == 0 {
			return fmt.Errorf(`no "the event stream is full" line after %d refused deliveries`, refused)
		}
		return nil
	})
	if got := strings.Count(p.Logs(), "the event stream is full"); got != 1 {
		t.Errorf(`"the event stream is full" lines over %d refused deliveries: got %d, want 1:\n%s`, refused, got, trimmed(p.Logs()))
	}
}
