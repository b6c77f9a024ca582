package ingest

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// TestHeaderSizeIsExact publishes to JetStream messages whose header block
// is exactly JetStream's limit, and one byte more: the first is stored and
// the second refused (err_code 10097), and fitsPayload agrees, with the
// trace headers' reserve counted.
func TestHeaderSizeIsExact(t *testing.T) {
	body := []byte(`{"id":"evt_h","type":"message.sent"}`)
	for _, extra := range []int64{0, 200} {
		for _, size := range []int64{maxHeaderBytes, maxHeaderBytes + 1} {
			header := map[string][]string{zautic.MessageIDHeader: {""}}
			header[zautic.MessageIDHeader][0] = strings.Repeat("h", int(size-extra-headerSize(header, "ZAUTIC")))
			if got := headerSize(header, "ZAUTIC") + extra; got != size {
				t.Fatalf("header block: got %d bytes, want %d", got, size)
			}
			fitErr := fitsPayload(header, body, "ZAUTIC", extra, 1<<20)
			if fits := fitErr == nil; fits != (size <= maxHeaderBytes) || (!fits && !errors.Is(fitErr, errMessageHeadersTooLarge)) {
				t.Errorf("header block of %d bytes (reserve %d): got fitsPayload %v", size, extra, fitErr)
			}
			if extra > 0 {
				continue // the reserve is not sent here
			}
			err := publishUnderLimit(t, 1<<20, "zautic.message.sent", header, body)
			var apiErr *jetstream.APIError
			refused := errors.As(err, &apiErr) && apiErr.ErrorCode == 10097
			if refused != (size > maxHeaderBytes) || (err != nil && !refused) {
				t.Errorf("header block of %d bytes: got publish error %v", size, err)
			}
		}
	}
	err := fitsPayload(map[string][]string{zautic.MessageIDHeader: {strings.Repeat("h", 1<<16)}}, body, "ZAUTIC", 0, 1<<20)
	if got := classify(err); got.status != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "header limit of 65535 bytes") {
		t.Errorf("got %d %v, want 413 naming the limit", got.status, err)
	}
}
