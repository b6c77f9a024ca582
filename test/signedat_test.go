package test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestSignedAtBeyondRFC3339 keeps requests whose t is past year 9999 (a
// forged one, and one validly signed at the largest int64): the listing
// and the lookup still answer JSON, without a signed_at, and a replay
// ignoring the tolerance refuses the signed one as signed in the future,
// naming its t rather than an overflowed date.
func TestSignedAtBeyondRFC3339(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false"
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	forged := webhook{body: []byte(`{}`), deliveryID: "dlv_year_10000", signature: "t=253402300800,v1=" + strings.Repeat("0", 64)}
	assertQuarantined(t, send(t, p.WebhookURL, forged), "no v1 signature matches")
	const maxT = "9223372036854775807"
	body := sampleEvent("evt_max_t", "message.delivered")
	signed := webhook{body: body, deliveryID: "dlv_max_t", signature: "t=" + maxT + ",v1=" + validV1At(body, maxT)}
	assertQuarantined(t, send(t, p.WebhookURL, signed), "outside tolerance")

	listed := adminJSON(t, p, "/quarantine", "")
	entries, _ := listed.Body["entries"].([]any)
	if listed.Status != http.StatusOK || len(entries) != 2 {
		t.Fatalf("GET /quarantine: got %d %v, want 200 with both entries", listed.Status, listed.Body)
	}
	for _, e := range entries {
		if at, ok := e.(map[string]any)["signed_at"]; ok {
			t.Errorf("listed entry %v: got signed_at %v, want none", e, at)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &adminapi.Client{BaseURL: p.AdminURL, Timeout: 30 * time.Second}
	for _, id := range []string{"dlv_year_10000", "dlv_max_t"} {
		var lookup map[string]any
		raw, err := client.Do(ctx, http.MethodGet, deliveryPath(id), nil, &lookup)
		if err != nil || !strings.Contains(string(raw), `"quarantined"`) || strings.Contains(string(raw), `"signed_at":`) {
			t.Errorf("lookup of %s: got %s (%v), want a quarantined entry without a signed_at", id, raw, err)
		}
	}

	request, _ := json.Marshal(adminapi.ReplayRequest{All: true, IgnoreTolerance: true})
	var answer adminapi.ReplayAnswer
	if _, err := client.Do(ctx, http.MethodPost, "/quarantine/replay", request, &answer); err != nil {
		t.Fatalf("replay: %v", err)
	}
	byDelivery := map[string]adminapi.ReplayResult{}
	for _, r := range answer.Results {
		byDelivery[r.DeliveryID] = r
	}
	if r := byDelivery["dlv_max_t"]; r.Outcome != "rejected" || r.Reason != "signed_in_future" || !strings.Contains(r.Error, "t="+maxT) {
		t.Errorf("replay of dlv_max_t: got %+v, want rejected signed_in_future naming t=%s", r, maxT)
	}
	if r := byDelivery["dlv_year_10000"]; r.Outcome != "rejected" || r.Reason != "signature_mismatch" {
		t.Errorf("replay of dlv_year_10000: got %+v, want rejected signature_mismatch", r)
	}
	if n, err := streamCount(js, eventsStream); err != nil || n != 0 {
		t.Errorf("events stream: got %d (%v), want 0", n, err)
	}
	if n, err := streamCount(js, quarantineStream); err != nil || n != 2 {
		t.Errorf("quarantine: got %d (%v), want both entries kept", n, err)
	}
}
