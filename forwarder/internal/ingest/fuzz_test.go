package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Plain `go test` runs the f.Add seeds and testdata/fuzz/<FuzzName>/; run a
// target with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzHandler$' -fuzztime 2m ./forwarder/internal/ingest/

// Fuzz modes: how FuzzHandler turns its input into a request.
const (
	modeRaw           = iota // the body and the signature header as given
	modeSigned               // the body, correctly signed now
	modeSignedEvent          // an event with the input as id and type, correctly signed now
	modeSignedPlusRaw        // a correct signature followed by the header as given
	modeSignedTooOld         // the body, correctly signed an hour ago
	fuzzModes
)

// fuzzRequest builds the body and the X-Zautic-Signature header of one
// FuzzHandler input.
func fuzzRequest(data []byte, header string, mode uint8) ([]byte, string) {
	now := time.Now().Unix()
	secret := []byte(handlerSecret)
	switch mode % fuzzModes {
	case modeSigned:
		return data, zautic.Sign(secret, now, data)
	case modeSignedEvent:
		body, _ := json.Marshal(map[string]any{"id": string(data), "type": header, "data": map[string]int{"n": len(data)}})
		return body, zautic.Sign(secret, now, body)
	case modeSignedPlusRaw:
		return data, zautic.Sign(secret, now, data) + "," + header
	case modeSignedTooOld:
		return data, zautic.Sign(secret, now-3600, data)
	default:
		return data, header
	}
}

// headerValue keeps what net/http lets through as a header value: no
// control characters, no surrounding white space.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.Trim(s, " \t")
}

// handlerStatuses are the only statuses a POST may get from one client.
var handlerStatuses = map[int]bool{
	http.StatusOK:                          true,
	http.StatusBadRequest:                  true,
	http.StatusRequestEntityTooLarge:       true,
	http.StatusRequestHeaderFieldsTooLarge: true,
	http.StatusServiceUnavailable:          true,
}

// FuzzHandler drives the whole handler, against one in-process nats-server
// per fuzz process, with random bodies and signature headers, and with
// correctly signed bodies derived from the input so that the publishing
// path runs too.
func FuzzHandler(f *testing.F) {
	sample := eventBody("evt_fuzz_1", "message.delivered")
	sig := strings.Repeat("00", 32)
	f.Add(sample, "", "dlv_fuzz_1", uint8(modeSigned))
	f.Add(sample, "", "dlv_fuzz_1", uint8(modeSigned)) // the same delivery: a duplicate
	f.Add(sample, "t=1,v1="+sig, "dlv_fuzz_2", uint8(modeRaw))
	f.Add(sample, "v0=x,v1=zz", "dlv_fuzz_3", uint8(modeSignedPlusRaw))
	f.Add(sample, "t=1", "dlv_fuzz_4", uint8(modeSignedPlusRaw))
	f.Add(sample, "", "dlv_fuzz_5", uint8(modeSignedTooOld))
	f.Add([]byte("evt_fuzz_2"), "campaign.completed", "", uint8(modeSignedEvent))
	f.Add([]byte("evt fuzz ✓"), "invoice.paid", "dlv with spaces ✓", uint8(modeSignedEvent))
	f.Add([]byte("evt_fuzz_3"), "message.>", "dlv_fuzz_6", uint8(modeSignedEvent))
	f.Add([]byte(""), "webhook.test", "", uint8(modeSignedEvent))
	f.Add([]byte("{\"id\":\"\xff\"}"), "", "", uint8(modeSigned))
	f.Add([]byte(`[1,2]`), "t=99999999999999999999,v1="+sig, "\x00\r\n", uint8(modeRaw))

	h := newHandlerHarness(f, harnessOptions{log: zap.NewNop()})
	f.Fuzz(func(t *testing.T, data []byte, header, deliveryID string, mode uint8) {
		h := *h
		h.t = t
		body, sigHeader := fuzzRequest(data, header, mode)
		deliveryID = headerValue(deliveryID)
		_, verifyErr := zautic.VerifySignature(body, sigHeader, [][]byte{[]byte(handlerSecret)}, h.cfg.Webhook.Tolerance, time.Now())

		req := httptest.NewRequest(http.MethodPost, h.cfg.HTTP.Path, bytes.NewReader(body))
		req.Header.Set(zautic.RequestSignatureHeader, sigHeader)
		if deliveryID != "" {
			req.Header.Set(zautic.RequestDeliveryIDHeader, deliveryID)
		}
		before := h.count()
		a := h.serve(req)
		published := h.count() - before

		if !handlerStatuses[a.status] {
			t.Fatalf("got status %d (%s), want one of 200, 400, 413, 431, 503", a.status, a.raw)
		}
		if a.status != http.StatusOK {
			a.errorText(t)
		}
		if verifyErr != nil && (a.status == http.StatusOK || published != 0) {
			t.Fatalf("signature does not verify (%v) but got %d %s and %d messages published", verifyErr, a.status, a.raw, published)
		}
		wantPublished := uint64(0)
		if a.status == http.StatusOK && a.body["status"] == "published" {
			wantPublished = 1
		}
		if published != wantPublished {
			t.Fatalf("got %d messages published with answer %d %s, want %d", published, a.status, a.raw, wantPublished)
		}
	})
}
