package test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// exitWithin bounds a graceful exit: the default http.shutdown_timeout
// (20s) plus the NATS drain, with slack for a loaded machine.
const exitWithin = 40 * time.Second

// TestSIGTERMUnderLoad stops the forwarder with SIGTERM while a retrying
// sender delivers: it exits 0, every delivery answered 2xx is in the stream
// exactly once, and, since the shutdown waits for the marks in flight and
// says how many were left, each has its mark.
func TestSIGTERMUnderLoad(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)

	events := newEvents("sigterm", 1000)
	s := newSender(p.WebhookURL)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	wait := startLoad(ctx, s, events)
	waitCount(t, "acknowledged deliveries", s.Acked, int64(len(events)/3))
	p.Signal(syscall.SIGTERM)
	code := p.Wait(t, exitWithin)
	cancel() // nothing listens any more: stop retrying
	r := wait()

	if code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
	checkStatuses(t, r, http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable)
	_, js := connect(t, ns.ClientURL())
	assertAckedOnce(t, js, r.Acked)
	t.Logf("%d of %d events acknowledged before the exit", len(r.Acked), len(events))
	if want := `"msg":"no mark left in flight: each was stored, or failed as logged above","marks_left":0`; !strings.Contains(p.Logs(), want) {
		t.Errorf("logs after SIGTERM: no line with %s", want)
	}
	kv, err := js.KeyValue(testContext(t), "zautic-dedup")
	if err != nil {
		t.Fatal(err)
	}
	for id := range r.Acked {
		if _, err := kv.Get(testContext(t), id); err != nil {
			t.Fatalf("mark of %s, answered 2xx before the exit: %v", id, err)
		}
	}
}

// waitRefusing polls until the webhook port refuses new connections.
func waitRefusing(t testing.TB, webhookURL string) {
	t.Helper()
	host := hostOf(t, webhookURL)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return errors.New("webhook port still accepts connections after SIGTERM")
	})
}

// TestShutdownFinishesHalfSentRequest sends headers and half a body, then
// SIGTERM, then the rest: new connections are refused, the request is
// answered 200 and stored, and the process exits 0. With the embedded
// nats-server, the event is read back from its store after the exit, which
// shows that the server stopped last and cleanly.
func TestShutdownFinishesHalfSentRequest(t *testing.T) {
	tests := []struct {
		name     string
		embedded bool
	}{
		{"external nats-server", false},
		{"embedded nats-server", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storeDir := t.TempDir()
			env := forwarderEnv("")
			if tt.embedded {
				env["FORWARDER_NATS_EMBEDDED_LISTEN"] = "127.0.0.1:0"
				env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = storeDir
			} else {
				env["FORWARDER_NATS_URL"] = natstest.Start(t, storeDir, 0).ClientURL()
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			ev := newEvents("halfsent", 1)[0]
			finishDuringShutdown(t, p, ev)

			natsURL := env["FORWARDER_NATS_URL"]
			if tt.embedded {
				natsURL = natstest.Start(t, storeDir, 0).ClientURL()
			}
			_, js := connect(t, natsURL)
			assertExactlyOnce(t, js, []zauticEvent{ev})
		})
	}
}

// finishDuringShutdown sends half of ev, SIGTERM, waits until new
// connections are refused, sends the rest and expects 200 and exit 0.
func finishDuringShutdown(t *testing.T, p *forwarderProcess, ev zauticEvent) {
	t.Helper()
	h := sendHalf(t, p.WebhookURL, ev)
	waitInFlight(t, p, 1)
	p.Signal(syscall.SIGTERM)
	waitRefusing(t, p.WebhookURL)

	got, err := h.finish()
	if err != nil || got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("request finished during shutdown: got %d %v (err %v), want 200 published", got.Status, got.Body, err)
	}
	if code := p.Wait(t, exitWithin); code != 0 {
		t.Fatalf("exit code after SIGTERM: got %d, want 0", code)
	}
}

// TestShutdownCutsOffAtTimeout leaves a half-sent request unfinished past
// http.shutdown_timeout: it is cut off without a 2xx, nothing is stored,
// and the process still exits 0.
func TestShutdownCutsOffAtTimeout(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_HTTP_SHUTDOWN_TIMEOUT"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)

	ev := newEvents("cutoff", 1)[0]
	h := sendHalf(t, p.WebhookURL, ev)
	waitInFlight(t, p, 1)
	p.Signal(syscall.SIGTERM)

	if code := p.Wait(t, exitWithin); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
	if got, err := h.response(10 * time.Second); err == nil && got.Status < 300 {
		t.Fatalf("request cut off by shutdown: got %d %v, want no 2xx", got.Status, got.Body)
	}
	_, js := connect(t, ns.ClientURL())
	if n := countByEventID(streamMessages(t, js, "ZAUTIC"))[ev.ID]; n != 0 {
		t.Fatalf("event cut off by shutdown: got %d messages, want 0", n)
	}
}
