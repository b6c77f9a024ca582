package test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// ambiguousEvent has both "id" and "ID": the forwarder routes and
// deduplicates on the exact name, id, and so must everything that shows or
// consumes the event; encoding/json would read ID.
var ambiguousEvent = []byte(`{"id":"evt_lower","ID":"evt_UPPER","type":"message.delivered","Type":"message.failed"}`)

// TestQuarantineNotesTheExactID keeps the ambiguous event (its signature
// does not match) and looks it up: it is found under evt_lower, the id a
// replay would publish, never under evt_UPPER.
func TestQuarantineNotesTheExactID(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false"
	p := startForwarder(t, env)
	p.WaitReady(t)

	forged := webhook{body: ambiguousEvent, deliveryID: "dlv_ambiguous", signature: zautic.Sign([]byte("not-the-secret"), time.Now().Unix(), ambiguousEvent)}
	assertQuarantined(t, send(t, p.WebhookURL, forged), "no v1 signature matches")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &adminapi.Client{BaseURL: p.AdminURL, Timeout: 30 * time.Second}
	var lookup map[string]any
	raw, err := client.Do(ctx, http.MethodGet, deliveryPath("evt_lower"), nil, &lookup)
	if err != nil || !strings.Contains(string(raw), `"event_id":"evt_lower"`) || !strings.Contains(string(raw), `"event_type":"message.delivered"`) {
		t.Errorf("lookup of evt_lower: got %s (%v), want the quarantined entry with event_id evt_lower, event_type message.delivered", raw, err)
	}
	if status, body := adminGet(t, p, deliveryPath("evt_UPPER"), "", ""); status != http.StatusNotFound {
		t.Errorf("lookup of evt_UPPER: got %d %s, want 404", status, body)
	}
}

// TestConsumerReadsTheExactID publishes the ambiguous event and runs the
// example consumer, the code downstream teams copy: it processes evt_lower,
// the id the forwarder deduplicated and published.
func TestConsumerReadsTheExactID(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	if got := send(t, p.WebhookURL, webhook{body: ambiguousEvent, deliveryID: "dlv_ambiguous"}); got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("got %d %v, want 200 published", got.Status, got.Body)
	}
	out := runConsumer(t, ns.ClientURL(), "--durable", "exact", "--max", "1")
	if want := "processed zautic.message.delivered event=evt_lower delivery=dlv_ambiguous attempt=1"; !strings.Contains(out, want) {
		t.Errorf("output:\n%s\nwant a line %q", out, want)
	}
}
