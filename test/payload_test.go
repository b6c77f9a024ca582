package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// paddedEvent is a valid event of exactly size bytes.
func paddedEvent(id string, size int) []byte {
	head := `{"id":"` + id + `","type":"message.delivered","pad":"`
	tail := `"}`
	return []byte(head + strings.Repeat("p", size-len(head)-len(tail)) + tail)
}

// TestBodiesBeyondTheServersMaxPayload sends bodies that pass
// http.max_body_bytes but cannot fit the NATS server's max_payload with
// their headers: they are answered 413 naming the limit, never a 503 that
// every retry would meet again, and the forwarder warned at connect.
func TestBodiesBeyondTheServersMaxPayload(t *testing.T) {
	tests := []struct {
		name        string
		maxPayload  int32 // 0: the server's default, 1 MiB
		env         map[string]string
		fits        int
		tooLarge    int
		wantLimit   string
		wantWarning bool
	}{
		{"1 MiB body limit on a default server", 0, map[string]string{"FORWARDER_HTTP_MAX_BODY_BYTES": "1048576"},
			1<<20 - 1024, 1_048_476, "max_payload of 1048576", true},
		{"default body limit on a 64 KiB server", 64 << 10, nil, 60 << 10, 65_500, "max_payload of 65536", true},
		{"default body limit on a default server", 0, nil, 256 << 10, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0, func(o *server.Options) {
				if tt.maxPayload > 0 {
					o.MaxPayload = tt.maxPayload
				}
			})
			env := forwarderEnv(ns.ClientURL())
			for k, v := range tt.env {
				env[k] = v
			}
			p := startForwarder(t, env)
			p.WaitReady(t)

			if got := send(t, p.WebhookURL, webhook{body: paddedEvent("evt_fits", tt.fits)}); got.Status != http.StatusOK {
				t.Errorf("body of %d bytes: got %d %v, want 200", tt.fits, got.Status, got.Body)
			}
			if tt.tooLarge > 0 {
				got := send(t, p.WebhookURL, webhook{body: paddedEvent("evt_too_large", tt.tooLarge)})
				reason, _ := got.Body["error"].(string)
				if got.Status != http.StatusRequestEntityTooLarge || got.RetryAfter != "" || !strings.Contains(reason, tt.wantLimit) {
					t.Errorf("body of %d bytes: got %d %q (Retry-After %q), want 413 naming %q without Retry-After",
						tt.tooLarge, got.Status, reason, got.RetryAfter, tt.wantLimit)
				}
			}
			warned := strings.Contains(p.Logs(), "max_payload is below http.max_body_bytes")
			if warned != tt.wantWarning {
				t.Errorf("got warning %v, want %v:\n%s", warned, tt.wantWarning, trimmed(p.Logs()))
			}
		})
	}
	if forwarder.DefaultConfig().HTTP.MaxBodyBytes != 256<<10 {
		t.Errorf("got default http.max_body_bytes %d, want 256 KiB", forwarder.DefaultConfig().HTTP.MaxBodyBytes)
	}
}

// TestIDsBeyondJetStreamsHeaderLimit sends signed events whose id is long
// enough that the message's headers (the id goes into Nats-Msg-Id and
// Zautic-Event-Id, and ce-id with publish.cloudevents) exceed JetStream's
// 64 KiB header limit: each is answered 413 naming the limit, before any
// NATS call, never the 503 that every retry would meet again.
func TestIDsBeyondJetStreamsHeaderLimit(t *testing.T) {
	tests := []struct {
		name        string
		cloudevents bool
		fits        int // an id length that fits
		tooLong     int
	}{
		{"plain headers", false, 30 << 10, 33 << 10},
		{"publish.cloudevents", true, 20 << 10, 22 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			env := forwarderEnv(ns.ClientURL())
			if tt.cloudevents {
				env["FORWARDER_PUBLISH_CLOUDEVENTS"] = "true"
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			_, js := connect(t, ns.ClientURL())

			if got := send(t, p.WebhookURL, webhook{body: sampleEvent("evt_"+strings.Repeat("f", tt.fits), "message.delivered")}); got.Status != http.StatusOK {
				t.Errorf("id of %d bytes: got %d %v, want 200", tt.fits, got.Status, got.Body)
			}
			got := send(t, p.WebhookURL, webhook{body: sampleEvent("evt_"+strings.Repeat("l", tt.tooLong), "message.delivered")})
			reason, _ := got.Body["error"].(string)
			if got.Status != http.StatusRequestEntityTooLarge || got.RetryAfter != "" || !strings.Contains(reason, "JetStream's header limit of 65535 bytes") {
				t.Errorf("id of %d bytes: got %d %q (Retry-After %q), want 413 naming JetStream's header limit",
					tt.tooLong, got.Status, reason, got.RetryAfter)
			}
			if msgs := streamMessages(t, js, "ZAUTIC"); len(msgs) != 1 {
				t.Errorf("stream holds %d messages, want the one that fits", len(msgs))
			}
		})
	}
}
