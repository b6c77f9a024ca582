package test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestForwardEndToEnd sends a signed event to the real binary, in embedded
// mode and against a separately started nats-server, and reads it back.
func TestForwardEndToEnd(t *testing.T) {
	tests := []struct {
		name     string
		external bool
	}{
		{"embedded nats-server", false},
		{"external nats-server", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := forwarderEnv("")
			if tt.external {
				env["FORWARDER_NATS_URL"] = natstest.Start(t, "", 0).ClientURL()
			} else {
				env["FORWARDER_NATS_EMBEDDED_LISTEN"] = "127.0.0.1:0"
				env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = t.TempDir()
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			natsURL := env["FORWARDER_NATS_URL"]
			if !tt.external {
				natsURL = p.NATSURL
			}
			_, js := connect(t, natsURL)
			assertForwardedOnce(t, p, js)
		})
	}
}

func assertForwardedOnce(t *testing.T, p *forwarderProcess, js jetstream.JetStream) {
	t.Helper()
	body := sampleEvent("evt_e2e_1", "message.delivered")
	before := time.Now().Unix()
	got := send(t, p.WebhookURL, webhook{body: body, deliveryID: "dlv_e2e_1"})
	if got.Status != http.StatusOK || got.Body["status"] != "published" || got.Body["subject"] != "zautic.message.delivered" || got.Body["stream"] != "ZAUTIC" {
		t.Fatalf("first delivery: got %d %v, want 200 published on zautic.message.delivered in ZAUTIC", got.Status, got.Body)
	}
	again := send(t, p.WebhookURL, webhook{body: body, deliveryID: "dlv_e2e_1"})
	if again.Status != http.StatusOK || again.Body["status"] != "duplicate" {
		t.Fatalf("redelivery: got %d %v, want 200 duplicate", again.Status, again.Body)
	}

	msgs := streamMessages(t, js, "ZAUTIC")
	if len(msgs) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject() != "zautic.message.delivered" {
		t.Errorf("subject: got %q, want zautic.message.delivered", m.Subject())
	}
	if !bytes.Equal(m.Data(), body) {
		t.Errorf("body changed on the way:\ngot  %s\nwant %s", m.Data(), body)
	}
	wantHeaders := map[string]string{
		zautic.MessageIDHeader:         "dlv_e2e_1",
		zautic.MessageEventTypeHeader:  "message.delivered",
		zautic.MessageEventIDHeader:    "evt_e2e_1",
		zautic.MessageDeliveryIDHeader: "dlv_e2e_1",
		"Content-Type":                 "application/json",
	}
	for k, want := range wantHeaders {
		if got := m.Headers().Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	ts, err := strconv.ParseInt(m.Headers().Get(zautic.MessageTimestampHeader), 10, 64)
	if err != nil || ts < before-1 || ts > time.Now().Unix()+1 {
		t.Errorf("header %s: got %q, want the signed unix time", zautic.MessageTimestampHeader, m.Headers().Get(zautic.MessageTimestampHeader))
	}
}
