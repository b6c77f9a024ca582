package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/zautic"
)

// replayStep is one request of a replay run: the captured signature (or one
// made anew at another second) with a chosen delivery id.
type replayStep struct {
	deliveryID string
	resigned   bool // signed anew, as Zautic does for a genuine re-delivery
	want       string
}

// TestHandlerReplayWithAnotherDeliveryID replays one captured request under
// forged delivery ids: under either dedup.key only the signed content
// decides, so the replays are duplicates and one message is published. Under
// "delivery", a re-delivery signed anew with a new delivery id goes through.
func TestHandlerReplayWithAnotherDeliveryID(t *testing.T) {
	t.Parallel()
	captured := []replayStep{
		{deliveryID: "dlv_orig", want: "published"},
		{deliveryID: "dlv_orig", want: "duplicate"},
		{deliveryID: "dlv_forged1", want: "duplicate"},
		{deliveryID: "dlv_forged2", want: "duplicate"},
		{deliveryID: "", want: "duplicate"},
	}
	tests := []struct {
		name         string
		key          string
		steps        []replayStep
		wantMessages uint64
	}{
		{"event (the default)", DedupKeyEvent,
			append(captured, replayStep{deliveryID: "dlv_again", resigned: true, want: "duplicate"}), 1},
		{"delivery", DedupKeyDelivery,
			append(captured, replayStep{deliveryID: "dlv_again", resigned: true, want: "published"}), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.Dedup.Key = tt.key }})
			body := eventBody("evt_replayed", "message.delivered")
			signedAt := time.Now().Unix()
			for i, step := range tt.steps {
				at := signedAt
				if step.resigned {
					at--
				}
				req := signedRequest(body, step.deliveryID, handlerSecret)
				req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(handlerSecret), at, body))
				a := h.serve(req)
				a.assertStatus(t, http.StatusOK)
				if got := a.body["status"]; got != step.want {
					t.Errorf("request %d (delivery %q): got %v, want %s", i, step.deliveryID, got, step.want)
				}
			}
			h.assertCount(tt.wantMessages)
		})
	}
}

// TestHandlerFailedPublishLeavesSignatureRetryable moves the stream off the
// forwarder's subjects for the first attempt: it fails, nothing is marked,
// so the sender's retry of the same signed request is published, not taken
// for a replay.
func TestHandlerFailedPublishLeavesSignatureRetryable(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.Dedup.Key = DedupKeyDelivery }})
	body := eventBody("evt_retry", "message.sent")
	req := func() *http.Request { return signedRequest(body, "dlv_retry", handlerSecret) }
	sig := req().Header.Get(zautic.RequestSignatureHeader)
	withSig := func() *http.Request {
		r := req()
		r.Header.Set(zautic.RequestSignatureHeader, sig)
		return r
	}
	h.setStreamSubjects("elsewhere.>")
	h.serve(withSig()).assertStatus(t, http.StatusServiceUnavailable)
	h.setStreamSubjects(h.cfg.Stream.SubjectPrefix + ".>")
	h.serve(withSig()).assertBody(t, publishedBody(1, "zautic.message.sent"))
	h.serve(withSig()).assertBody(t, duplicateBody)
	h.assertCount(1)
}

// setStreamSubjects changes the stream's subjects behind the forwarder's back.
func (h *handlerHarness) setStreamSubjects(subjects ...string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := h.stream(ctx).CachedInfo().Config
	cfg.Subjects = subjects
	if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
		h.t.Fatalf("update stream subjects to %v: %v", subjects, err)
	}
}

// TestHandlerIDsAHeaderCannotCarry sends event ids that a header would
// trim or rewrite: each is its own event, published once, and the ones a
// header cannot carry exactly travel in the mapped form of their KV key.
func TestHandlerIDsAHeaderCannotCarry(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	tests := []struct {
		id     string
		mapped bool
	}{
		{"evt_ws", false},
		{" evt_ws", true},
		{"evt_ws ", true},
		{"evt_ws\r\n", true},
		{"evt_ws\t", true},
		{"evt_a b", false},
		{"evt_a\nb", true},
		{"evt_\u0001", true},
		{"evt_\u00a0", true},
		{adminapi.KVKey(" evt_ws"), true},
	}
	for i, tt := range tests {
		seq := uint64(i + 1)
		body := eventBody("placeholder", "message.sent")
		quoted, _ := json.Marshal(tt.id)
		body = bytes.Replace(body, []byte(`"placeholder"`), quoted, 1)
		h.send(body, "").assertBody(t, publishedBody(float64(seq), "zautic.message.sent"))
		want := tt.id
		if tt.mapped {
			want = adminapi.KVKey(tt.id)
			if !strings.HasPrefix(want, "sha256.") || want == tt.id {
				t.Fatalf("%q: KV key %q is not the mapped form", tt.id, want)
			}
		}
		if got := h.message(seq).Header.Get(zautic.MessageIDHeader); got != want {
			t.Errorf("%q: got Nats-Msg-Id %q, want %q", tt.id, got, want)
		}
	}
	h.assertCount(uint64(len(tests)))
}

// TestMessageIDLeadsBackToTheKVKey: the mark repair derives the KV key from
// the Nats-Msg-Id, so for every key the two must lead to the same mark.
func TestMessageIDLeadsBackToTheKVKey(t *testing.T) {
	for _, key := range []string{"evt_1", "dlv with spaces", " evt_ws", "evt_ws\r\n", "evt_\u0001", "urn:zautic:1", strings.Repeat("k", 500), adminapi.KVKey(" evt_ws")} {
		if got, want := adminapi.KVKeyOfMessageID(adminapi.MessageID(key)), adminapi.KVKey(key); got != want {
			t.Errorf("%q: got KV key %q from its Nats-Msg-Id, want %q", key, got, want)
		}
	}
}
