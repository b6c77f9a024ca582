package ingest

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/promtest"
)

// TestHandlerBodyMemory holds large declared bodies until their share of
// http.max_body_memory is full: the next large one is answered 429 with
// Retry-After before its body is read, ordinary deliveries keep being
// published, and the budget is whole again once the held ones finish.
func TestHandlerBodyMemory(t *testing.T) {
	t.Parallel()
	const maxBody, budget = 256 << 10, 1 << 20 // room for 3 large bodies beside the kept quarter
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) {
		c.HTTP.MaxBodyBytes, c.HTTP.MaxBodyMemory = maxBody, budget
	}})
	const held = 3
	release := h.holdRequests(t, "contact.updated", maxBody, "large_0", "large_1", "large_2")
	if got := promtest.Value(t, h.registry, "zautic_forwarder_body_memory_bytes", nil); got != held*maxBody {
		t.Errorf("body memory while %d large bodies are held: got %v, want %d", held, got, held*maxBody)
	}

	refused := signedRequest(eventBody("evt_large", "contact.updated"), "dlv_large", handlerSecret)
	refused.ContentLength = maxBody
	a := h.serve(refused)
	a.assertError(t, http.StatusTooManyRequests, "overloaded", "http.max_body_memory")
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want %q", got, "1")
	}
	if got := promtest.Value(t, h.registry, "zautic_forwarder_webhook_requests_total",
		map[string]string{"outcome": telemetry.OutcomeOverloaded, "reason": reasonBodyMemory}); got != 1 {
		t.Errorf("requests refused for memory: got %v, want 1", got)
	}
	for i := range 5 {
		id := "evt_ordinary_" + strconv.Itoa(i)
		h.send(eventBody(id, "message.sent"), "dlv_"+id).assertBody(t, publishedBody(float64(i+1), "zautic.message.sent"))
	}

	assertAllPublished(t, release())
	if got := promtest.Value(t, h.registry, "zautic_forwarder_body_memory_bytes", nil); got != 0 {
		t.Errorf("body memory after every answer: got %v, want 0", got)
	}
	again := signedRequest(eventBody("evt_large", "contact.updated"), "dlv_large", handlerSecret)
	again.ContentLength = maxBody
	h.serve(again).assertBody(t, publishedBody(held+6, "zautic.contact.updated"))
}
