package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestMessageSizeIsExact publishes a message of every header shape to
// servers whose max_payload is exactly messageSize, and one byte less: the
// first is accepted and the second refused, so the 413 check neither lets a
// doomed publish through nor refuses one the server would take.
func TestMessageSizeIsExact(t *testing.T) {
	tests := []struct {
		name string
		d    delivery
	}{
		{"with a delivery id", delivery{key: "evt_1", deliveryID: "dlv_1", event: zautic.Event{ID: "evt_1", Type: "message.sent"}, subject: "zautic.message.sent", signed: zautic.Verified{Timestamp: 1767432000}}},
		{"without a delivery id", delivery{key: "evt_2", event: zautic.Event{ID: "evt_2", Type: "message.sent"}, subject: "zautic.message.sent", signed: zautic.Verified{Timestamp: 1767432000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Large enough that the stream's creation fits the limit too.
			body := `{"id":"evt_1","type":"message.sent","pad":"` + strings.Repeat("x", 4096) + `"}`
			header := messageHeaders.Get().(*messageHeader).build(&tt.d, adminapi.MessageID(tt.d.key))
			size := messageSize(header, []byte(body), "ZAUTIC")
			for _, limit := range []int64{size, size - 1} {
				err := publishUnderLimit(t, limit, tt.d.subject, header, []byte(body))
				refused := errors.Is(err, nats.ErrMaxPayload)
				if refused != (limit < size) || fitsPayload(header, []byte(body), "ZAUTIC", 0, limit) == nil == refused {
					t.Errorf("max_payload %d for a message of %d: got publish error %v, fitsPayload %v", limit, size, err, fitsPayload(header, []byte(body), "ZAUTIC", 0, limit))
				}
			}
		})
	}
}
