package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/zautic"
)

var fixedNow = time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)

// decoded is an event with data.object as a generic map.
type decoded struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Created   int64  `json:"created"`
	CreatedAt string `json:"created_at"`
	Livemode  *bool  `json:"livemode"`
	Data      struct {
		Object map[string]any `json:"object"`
	} `json:"data"`
}

func decode(t *testing.T, body []byte) decoded {
	t.Helper()
	var ev decoded
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, body)
	}
	return ev
}

func TestPayloadEnvelopeForEveryType(t *testing.T) {
	g := NewSeededGenerator(1, func() time.Time { return fixedNow })
	for i, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			body, err := g.Payload(typ, uint64(i))
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			parsed, err := zautic.ParseEvent(body)
			if err != nil {
				t.Fatalf("the forwarder rejects the payload: %v", err)
			}
			if parsed.Type != typ || parsed.ID != g.EventID(uint64(i)) {
				t.Errorf("got id %q type %q, want %q %q", parsed.ID, parsed.Type, g.EventID(uint64(i)), typ)
			}
			ev := decode(t, body)
			if ev.Created != fixedNow.Unix() || ev.CreatedAt != "2026-01-03T00:00:00.000Z" {
				t.Errorf("got created %d %q, want %d 2026-01-03T00:00:00.000Z", ev.Created, ev.CreatedAt, fixedNow.Unix())
			}
			if ev.Livemode == nil || *ev.Livemode {
				t.Errorf("got livemode %v, want false", ev.Livemode)
			}
			if len(ev.Data.Object) == 0 {
				t.Errorf("data.object is empty")
			}
		})
	}
}

// TestPayloadFamilyFields checks the fields each family's consumers rely on.
func TestPayloadFamilyFields(t *testing.T) {
	tests := []struct {
		typ    string
		fields []string
		want   map[string]any
	}{
		{"message.sent", []string{"message_id", "phone", "device_id", "text", "timestamp"}, map[string]any{"status": "sent", "direction": "outgoing"}},
		{"message.delivered", []string{"message_id", "phone", "device_id"}, map[string]any{"status": "delivered", "direction": "outgoing"}},
		{"message.read", []string{"message_id", "phone", "device_id"}, map[string]any{"status": "read", "direction": "outgoing"}},
		{"message.failed", []string{"message_id", "phone", "device_id", "error"}, map[string]any{"status": "failed", "direction": "outgoing"}},
		{"message.received", []string{"message_id", "phone", "device_id", "text"}, map[string]any{"status": "received", "direction": "incoming"}},
		{"device.connected", []string{"device_id", "phone", "name"}, map[string]any{"status": "connected"}},
		{"device.disconnected", []string{"device_id", "phone", "reason"}, map[string]any{"status": "disconnected"}},
		{"contact.created", []string{"contact_id", "phone", "name", "email", "tags", "created_at"}, nil},
		{"contact.updated", []string{"contact_id", "phone", "name", "updated_at"}, nil},
		{"contact.deleted", []string{"contact_id", "phone"}, map[string]any{"deleted": true}},
		{"group.created", []string{"group_id", "name", "contacts_count"}, nil},
		{"group.updated", []string{"group_id", "name", "contacts_count"}, nil},
		{"group.deleted", []string{"group_id", "name"}, map[string]any{"deleted": true}},
		{"template.created", []string{"template_id", "name", "category", "language", "body"}, map[string]any{"status": "pending"}},
		{"template.updated", []string{"template_id", "name", "body"}, map[string]any{"status": "approved"}},
		{"template.deleted", []string{"template_id", "name"}, map[string]any{"status": "deleted", "deleted": true}},
		{"campaign.started", []string{"campaign_id", "name", "device_id", "progress"}, map[string]any{"status": "running"}},
		{"campaign.paused", []string{"campaign_id", "progress"}, map[string]any{"status": "paused"}},
		{"campaign.resumed", []string{"campaign_id", "progress"}, map[string]any{"status": "running"}},
		{"campaign.stopped", []string{"campaign_id", "progress"}, map[string]any{"status": "stopped"}},
		{"campaign.cancelled", []string{"campaign_id", "progress"}, map[string]any{"status": "cancelled"}},
		{"campaign.completed", []string{"campaign_id", "progress"}, map[string]any{"status": "completed"}},
		{"webhook.test", []string{"webhook_id", "message"}, map[string]any{"test": true}},
	}
	if len(tests) != len(zautic.DocumentedTypes()) {
		t.Fatalf("table covers %d types, want all %d", len(tests), len(zautic.DocumentedTypes()))
	}
	g := NewSeededGenerator(7, nil)
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			body, err := g.Payload(tt.typ, 3)
			if err != nil {
				t.Fatal(err)
			}
			obj := decode(t, body).Data.Object
			for _, f := range tt.fields {
				if _, ok := obj[f]; !ok {
					t.Errorf("data.object lacks %q: %s", f, body)
				}
			}
			for k, want := range tt.want {
				if got := obj[k]; got != want {
					t.Errorf("data.object.%s: got %v, want %v", k, got, want)
				}
			}
		})
	}
}

func TestCampaignProgressAddsUp(t *testing.T) {
	g := NewSeededGenerator(11, nil)
	for seq := range uint64(50) {
		for _, action := range []string{"started", "paused", "completed"} {
			body, err := g.Payload("campaign."+action, seq)
			if err != nil {
				t.Fatal(err)
			}
			var ev struct {
				Data struct {
					Object CampaignObject `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatal(err)
			}
			p := ev.Data.Object.Progress
			if p.Sent+p.Pending != p.Total || p.Delivered+p.Failed != p.Sent || p.Read > p.Delivered {
				t.Fatalf("campaign.%s seq %d: inconsistent progress %+v", action, seq, p)
			}
			if action == "started" && p.Sent != 0 || action == "completed" && (p.Pending != 0 || p.Percent != 100) {
				t.Fatalf("campaign.%s seq %d: got progress %+v", action, seq, p)
			}
		}
	}
}

func TestIDsUniquePerSeqAndPerGenerator(t *testing.T) {
	a, b := NewGenerator(), NewGenerator()
	seen := map[string]bool{}
	for seq := range uint64(5000) {
		for _, id := range []string{a.EventID(seq), a.DeliveryID(seq), b.EventID(seq), b.DeliveryID(seq)} {
			if seen[id] {
				t.Fatalf("id %s repeated", id)
			}
			seen[id] = true
		}
	}
	id := a.EventID(0)
	if !strings.HasPrefix(id, "evt_") || len(id) != 36 {
		t.Errorf("got event id %q, want evt_ and 32 hex characters", id)
	}
	if d := a.DeliveryID(0); !strings.HasPrefix(d, "dlv_") || adminapi.KVKey(d) != d {
		t.Errorf("got delivery id %q, want dlv_… stored as a plain KV key", d)
	}
}

func TestSeededGeneratorIsDeterministic(t *testing.T) {
	now := func() time.Time { return fixedNow }
	x, _ := NewSeededGenerator(5, now).Payload("message.sent", 9)
	y, _ := NewSeededGenerator(5, now).Payload("message.sent", 9)
	z, _ := NewSeededGenerator(6, now).Payload("message.sent", 9)
	if string(x) != string(y) {
		t.Errorf("same seed gave different payloads:\n%s\n%s", x, y)
	}
	if string(x) == string(z) {
		t.Errorf("different seeds gave the same payload %s", x)
	}
}

func TestPayloadUnknownType(t *testing.T) {
	for _, typ := range []string{"message.bounced", "order.created", "", "message"} {
		if _, err := Payload(typ, 0); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Payload(%q): got %v, want ErrUnknownType", typ, err)
		}
	}
}

func TestExpandTypes(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
		err  error
	}{
		{"one", []string{"message.sent"}, []string{"message.sent"}, nil},
		{"repeated flag", []string{"message.sent", "device.connected"}, []string{"message.sent", "device.connected"}, nil},
		{"comma separated", []string{"message.sent, message.read"}, []string{"message.sent", "message.read"}, nil},
		{"repeats dropped", []string{"message.sent", "message.sent"}, []string{"message.sent"}, nil},
		{"all", []string{"all"}, zautic.DocumentedTypes(), nil},
		{"all with extras", []string{"webhook.test", "all"}, append([]string{"webhook.test"}, slices.DeleteFunc(slices.Clone(zautic.DocumentedTypes()), func(s string) bool { return s == "webhook.test" })...), nil},
		{"unknown", []string{"message.sent", "nope"}, nil, ErrUnknownType},
		{"empty", []string{""}, nil, ErrUnknownType},
		{"empty among others", []string{"message.sent,,message.read"}, nil, ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandTypes(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func ExamplePayload() {
	g := NewSeededGenerator(42, func() time.Time { return time.Unix(1767432000, 0) })
	body, _ := g.Payload("message.delivered", 0)
	var ev decodedExample
	_ = json.Unmarshal(body, &ev)
	fmt.Println(ev.Type, ev.CreatedAt, ev.Data.Object["status"], ev.Data.Object["direction"])
	fmt.Println(zautic.Sign([]byte("secret"), 1767432000, body)[:13])
	// Output:
	// message.delivered 2026-01-03T09:20:00.000Z delivered outgoing
	// t=1767432000,
}

type decodedExample struct {
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	Data      struct {
		Object map[string]any `json:"object"`
	} `json:"data"`
}
