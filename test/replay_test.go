package test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// replay is one request of a captured-and-replayed webhook: the captured
// body and signature, with the headers an attacker may change.
type replay struct {
	name       string
	deliveryID string
	signature  func(captured string) string // nil: the captured one
	headers    map[string]string
	status     int
	want       string // the answer's status, or a part of its error
}

// TestHostileReplays captures one signed webhook and replays it under
// forged delivery ids and re-spelt headers, against the real binary with
// each dedup.key: only what is signed decides, so one message is published
// and every replay is a duplicate or refused.
func TestHostileReplays(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"dedup.key event (the default)", nil},
		{"dedup.key delivery", map[string]string{"FORWARDER_DEDUP_KEY": "delivery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			env := forwarderEnv(ns.ClientURL())
			for k, v := range tt.env {
				env[k] = v
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			_, js := connect(t, ns.ClientURL())

			body := sampleEvent("evt_replayed", "message.delivered")
			signedAt := strconv.FormatInt(time.Now().Unix(), 10)
			captured := "t=" + signedAt + ",v1=" + validV1At(body, signedAt)
			for _, r := range replaysOf(signedAt) {
				sig := captured
				if r.signature != nil {
					sig = r.signature(captured)
				}
				got := send(t, p.WebhookURL, webhook{body: body, deliveryID: r.deliveryID, signature: sig, headers: r.headers})
				answer, _ := got.Body["status"].(string)
				if reason, ok := got.Body["error"].(string); ok {
					answer = reason
				}
				if got.Status != r.status || !strings.Contains(answer, r.want) {
					t.Errorf("%s: got %d %v, want %d %s", r.name, got.Status, got.Body, r.status, r.want)
				}
			}
			msgs := streamMessages(t, js, "ZAUTIC")
			if len(msgs) != 1 {
				t.Fatalf("stream holds %d messages, want 1", len(msgs))
			}
			if got := msgs[0].Headers().Get(zautic.MessageDeliveryIDHeader); got != "dlv_orig" {
				t.Errorf("header %s: got %q, want the first delivery's dlv_orig", zautic.MessageDeliveryIDHeader, got)
			}
		})
	}
}

// replaysOf lists the requests sent with one captured signature, in order.
func replaysOf(signedAt string) []replay {
	respelt := func(prefix string) func(string) string {
		return func(captured string) string { return strings.Replace(captured, "t="+signedAt, "t="+prefix+signedAt, 1) }
	}
	return []replay{
		{name: "original", deliveryID: "dlv_orig", status: http.StatusOK, want: "published"},
		{name: "Zautic's retry", deliveryID: "dlv_orig", status: http.StatusOK, want: "duplicate"},
		{name: "forged delivery id", deliveryID: "dlv_forged1", status: http.StatusOK, want: "duplicate"},
		{name: "another forged delivery id", deliveryID: "dlv_forged2", status: http.StatusOK, want: "duplicate"},
		{name: "no delivery id", status: http.StatusOK, want: "duplicate"},
		{name: "unsigned event header changed", deliveryID: "dlv_forged3", headers: map[string]string{"X-Zautic-Event": "message.failed"},
			status: http.StatusOK, want: "duplicate"},
		{name: "t with leading zeros", deliveryID: "dlv_forged4", signature: respelt("00"), status: http.StatusBadRequest, want: "leading zeros"},
		{name: "t with a plus sign", deliveryID: "dlv_forged5", signature: respelt("+"), status: http.StatusBadRequest, want: "digits only"},
	}
}

// validV1At is the v1 of body signed with the test secret at t.
func validV1At(body []byte, t string) string {
	ts, _ := strconv.ParseInt(t, 10, 64)
	return strings.TrimPrefix(zautic.Sign([]byte(testSecret), ts, body), "t="+t+",v1=")
}

// TestHostileIDsAHeaderCannotCarry sends, to the real binary, events whose
// ids differ only in what a header trims or rewrites: each is published,
// under Nats-Msg-Ids that stay distinct.
func TestHostileIDsAHeaderCannotCarry(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	ids := []string{"evt_ws", " evt_ws", "evt_ws ", "evt_ws\r\n", "evt_a b", "evt_a\nb"}
	for _, id := range ids {
		quoted, _ := json.Marshal(id)
		body := sampleEvent(string(quoted[1:len(quoted)-1]), "message.delivered")
		if got := send(t, p.WebhookURL, webhook{body: body}); got.Status != http.StatusOK || got.Body["status"] != "published" {
			t.Errorf("id %q: got %d %v, want 200 published", id, got.Status, got.Body)
		}
	}
	msgIDs := map[string]bool{}
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		msgIDs[m.Headers().Get(zautic.MessageIDHeader)] = true
	}
	if len(msgIDs) != len(ids) {
		t.Fatalf("got %d distinct Nats-Msg-Ids %v, want %d", len(msgIDs), msgIDs, len(ids))
	}
}
