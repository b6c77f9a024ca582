package ingest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestMessageSizeCountsEndpointHeaders checks that the 413 check counts what
// an endpoint adds (Zautic-Endpoint, the ce-* headers): a server whose
// max_payload is exactly the message's size takes it, one byte less refuses
// it, and the check agrees with the server both times.
func TestMessageSizeCountsEndpointHeaders(t *testing.T) {
	ce := &zautic.CloudEventsOptions{Source: "/zautic/acme", TypePrefix: "com.zautic"}
	tmpl, err := zautic.ParseSubjectTemplate("{prefix}.{type}.{data.object.device_id}")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		endpoint Endpoint
	}{
		{"default endpoint with CloudEvents", Endpoint{CloudEvents: ce}},
		{"named endpoint with a template and CloudEvents", Endpoint{Name: "acme", Subject: tmpl, CloudEvents: ce}},
		{"named endpoint without CloudEvents", Endpoint{Name: "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{cfg: Config{SubjectPrefix: "zautic", Endpoint: tt.endpoint}}
			body := []byte(`{"id":"evt 1","type":"message.sent","created":1767432000,"data":{"object":{"device_id":"a.>"}},"pad":"` + strings.Repeat("x", 4096) + `"}`)
			d := delivery{key: "evt 1", event: zautic.Event{ID: "evt 1", Type: "message.sent"}, signed: zautic.Verified{Timestamp: 1767432000}}
			if err := h.render(&d, body); err != nil {
				t.Fatal(err)
			}
			header := messageHeaders.Get().(*messageHeader).build(&d, adminapi.MessageID(d.key))
			bare := messageSize(header, body, "ZAUTIC")
			h.applyEndpoint(header, &d, body)
			size := messageSize(header, body, "ZAUTIC")
			if size <= bare {
				t.Fatalf("the endpoint's headers add nothing: %d bytes, %d without them", size, bare)
			}
			for _, limit := range []int64{size, size - 1} {
				err := publishUnderLimit(t, limit, d.subject, header, body)
				refused := errors.Is(err, nats.ErrMaxPayload)
				checked := fitsPayload(header, body, "ZAUTIC", 0, limit)
				if refused != (limit < size) || (checked != nil) != refused {
					t.Errorf("max_payload %d for a message of %d: got publish error %v, fitsPayload %v", limit, size, err, checked)
				}
			}
		})
	}
}

// publishUnderLimit publishes one message to a new server whose
// max_payload is limit, and returns the publish's error.
func publishUnderLimit(t *testing.T, limit int64, subject string, header map[string][]string, body []byte) error {
	t.Helper()
	ns := natstest.Start(t, "", 0, func(o *server.Options) { o.MaxPayload = int32(limit) })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The body must be large enough that the stream's creation fits the limit.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: body, Header: maps.Clone(header)}, jetstream.WithExpectStream("ZAUTIC"))
	return err
}
