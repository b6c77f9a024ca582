package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/nats-io/nats.go"
)

// TestCloudEventsReadBySDK turns publish.cloudevents on and reads each
// stored message with the CloudEvents Go SDK's binding package, through a
// reader of the NATS protocol binding's binary content mode: the SDK's own
// NATS JetStream binding is a module of its own that the test does not use.
func TestCloudEventsReadBySDK(t *testing.T) {
	p, js := startRouted(t, map[string]string{
		"FORWARDER_PUBLISH_CLOUDEVENTS":             "true",
		"FORWARDER_PUBLISH_CLOUDEVENTS_TYPE_PREFIX": "io.example.zautic",
		"FORWARDER_WEBHOOK_CLOUDEVENTS_SOURCE":      "https://zautic.example/accounts/1",
		"FORWARDER_WEBHOOK_SUBJECT":                 "{prefix}.{type}.{data.object.device_id}",
	})

	tests := []struct {
		name     string
		id       string
		created  string // the JSON of created
		wantTime string // "" when ce-time is left out
	}{
		{"quickstart event", "evt_ce_1", "1767432000", "2026-01-03T09:20:00Z"},
		{"id that needs percent-encoding", `evt ce "2" é%`, "1767432000", "2026-01-03T09:20:00Z"},
		{"created that is no time", "evt_ce_3", `"yesterday"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Appendf(nil, `{"id":%q,"type":"message.delivered","created":%s,"data":{"object":{"device_id":114}}}`, tt.id, tt.created)
			if got := send(t, p.WebhookURL, webhook{body: body}); got.Status != http.StatusOK || got.Body["status"] != "published" {
				t.Fatalf("got %d %v, want 200 published", got.Status, got.Body)
			}
			msg := streamMessageByEventID(t, js, strings.TrimSpace(tt.id))
			if string(msg.Data()) != string(body) {
				t.Errorf("data %q, want the signed body %q", msg.Data(), body)
			}
			ev, err := binding.ToEvent(context.Background(), natsBinaryMessage{header: msg.Headers(), data: msg.Data()})
			if err != nil {
				t.Fatalf("the SDK does not read the message as a CloudEvent: %v (headers %v)", err, msg.Headers())
			}
			if err := ev.Validate(); err != nil {
				t.Errorf("the SDK finds the event invalid: %v", err)
			}
			checks := []struct{ attr, got, want string }{
				{"specversion", ev.SpecVersion(), "1.0"},
				{"id", ev.ID(), tt.id},
				{"source", ev.Source(), "https://zautic.example/accounts/1"},
				{"type", ev.Type(), "io.example.zautic.message.delivered"},
				{"subject", ev.Subject(), "114"},
				{"datacontenttype", ev.DataContentType(), "application/json"},
				{"data", string(ev.Data()), string(body)},
				{"time", formatTime(ev.Time()), tt.wantTime},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.attr, c.got, c.want)
				}
			}
			if got := msg.Headers().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q, want application/json (binary mode)", got)
			}
		})
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ceHeaders are the attribute headers of the NATS protocol binding.
var ceHeaders = spec.WithPrefix("ce-")

// natsBinaryMessage reads a NATS message as the CloudEvents NATS protocol
// binding says: structured when its Content-Type is application/cloudevents,
// else binary when it has ce-specversion; each ce-* header, its name
// case-insensitive and its value percent-decoded, is an attribute or an
// extension, and the data is the message's.
type natsBinaryMessage struct {
	header nats.Header
	data   []byte
}

func (m natsBinaryMessage) ReadEncoding() binding.Encoding {
	switch {
	case strings.HasPrefix(m.header.Get("Content-Type"), "application/cloudevents"):
		return binding.EncodingStructured
	case m.get("ce-specversion") != "":
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m natsBinaryMessage) get(name string) string {
	for k, v := range m.header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (m natsBinaryMessage) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (m natsBinaryMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	version := ceHeaders.Version(m.get("ce-specversion"))
	if version == nil {
		return fmt.Errorf("unknown ce-specversion %q", m.get("ce-specversion"))
	}
	for name, values := range m.header {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "ce-") || len(values) == 0 {
			continue
		}
		value, err := url.PathUnescape(values[0])
		if err != nil {
			return fmt.Errorf("header %s: %w", name, err)
		}
		if attr := version.Attribute(lower); attr != nil {
			err = w.SetAttribute(attr, value)
		} else {
			err = w.SetExtension(strings.TrimPrefix(lower, "ce-"), value)
		}
		if err != nil {
			return fmt.Errorf("header %s: %w", name, err)
		}
	}
	return w.SetData(bytes.NewReader(m.data))
}

// GetAttribute and GetExtension make it a binding.MessageMetadataReader,
// which binding.ToEvent asks of a binary message.
func (m natsBinaryMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	version := ceHeaders.Version(m.get("ce-specversion"))
	if version == nil {
		return nil, nil
	}
	attr := version.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	if value := m.decoded(attr.PrefixedName()); value != "" {
		return attr, value
	}
	return attr, nil
}

func (m natsBinaryMessage) GetExtension(name string) any {
	if value := m.decoded("ce-" + name); value != "" {
		return value
	}
	return nil
}

// decoded is the header's value percent-decoded, or "" when it has none
// or it does not decode.
func (m natsBinaryMessage) decoded(name string) string {
	value, err := url.PathUnescape(m.get(name))
	if err != nil {
		return ""
	}
	return value
}

func (m natsBinaryMessage) Finish(error) error { return nil }
