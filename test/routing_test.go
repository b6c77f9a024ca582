package test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestSubjectTemplateFromSignedFields sends events whose device id is
// usual, missing or hostile through a forwarder with a device template, and
// reads each back from the stream: always the template's four tokens, the
// last one the documented token of the value, and never a wildcard.
func TestSubjectTemplateFromSignedFields(t *testing.T) {
	p, js := startRouted(t, map[string]string{"FORWARDER_WEBHOOK_SUBJECT": "{prefix}.{type}.{data.object.device_id}"})

	tests := []struct {
		name   string
		device string // the JSON of data.object.device_id; "" leaves it out
		want   string // the last token; "" means the hashed form
	}{
		{"integer", `114`, "114"},
		{"string", `"dev-7"`, "dev-7"},
		{"missing", ``, "_"},
		{"null", `null`, "_"},
		{"dot", `"a.b"`, ""},
		{"star", `"*"`, ""},
		{"greater than", `">"`, ""},
		{"white space", `" dev 7\t"`, ""},
		{"1 KB", `"` + strings.Repeat("d", 1024) + `"`, ""},
		{"lone surrogate escape", `"\udc80"`, ""},
		{"escaped dot and wildcard", `"\u002e\u003e"`, ""},
		{"escaped non-ASCII", `"\u00e9t\u00e9"`, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("evt_tmpl_%d", i)
			object := `{"status":"delivered"}`
			if tt.device != "" {
				object = `{"status":"delivered","device_id":` + tt.device + `}`
			}
			body := fmt.Appendf(nil, `{"id":%q,"type":"message.delivered","created":1767432000,"data":{"object":%s}}`, id, object)
			want := tt.want
			if want == "" {
				want = zautic.SubjectTokenForJSON([]byte(tt.device))
				if !strings.HasPrefix(want, "~") {
					t.Fatalf("SubjectTokenForJSON(%s) = %q, want a hashed token", tt.device, want)
				}
			}
			wantSubject := "zautic.message.delivered." + want

			got := send(t, p.WebhookURL, webhook{body: body})
			if got.Status != http.StatusOK || got.Body["subject"] != wantSubject {
				t.Fatalf("got %d %v, want 200 published on %s", got.Status, got.Body, wantSubject)
			}
			msg := streamMessageByEventID(t, js, id)
			subject := msg.Subject()
			if subject != wantSubject {
				t.Errorf("stored on %q, want %q", subject, wantSubject)
			}
			tokens := strings.Split(subject, ".")
			if len(tokens) != 4 {
				t.Errorf("subject %q has %d tokens, want the template's 4", subject, len(tokens))
			}
			for _, tok := range tokens {
				if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
					t.Errorf("subject %q has the token %q, which is empty, a wildcard or white space", subject, tok)
				}
			}
			if string(msg.Data()) != string(body) {
				t.Errorf("stored body %q, want the signed bytes %q", msg.Data(), body)
			}
		})
	}
}

// streamMessageByEventID reads the stream's one message of the event id,
// failing unless there is exactly one.
func streamMessageByEventID(t *testing.T, js jetstream.JetStream, id string) jetstream.Msg {
	t.Helper()
	var found []jetstream.Msg
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		if m.Headers().Get(zautic.MessageEventIDHeader) == id {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the stream holds %d messages of %s, want 1", len(found), id)
	}
	return found[0]
}

// startRouted starts a ready forwarder on a nats-server of its own, with
// extra added to its environment, and connects to that server.
func startRouted(t *testing.T, extra map[string]string) (*forwarderProcess, jetstream.JetStream) {
	t.Helper()
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	maps.Copy(env, extra)
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, env["FORWARDER_NATS_URL"])
	return p, js
}
