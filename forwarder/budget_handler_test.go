package forwarder

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestHandlerBodyMemory holds large declared bodies until their share of
// http.max_body_memory is full: the next large one is answered 429 with
// Retry-After before its body is read, ordinary deliveries keep being
// published, and the budget is whole again once the held ones finish.
func TestHandlerBodyMemory(t *testing.T) {
	t.Parallel()
	const maxBody, budget = 256 << 10, 1 << 20 // room for 3 large bodies beside the kept quarter
	h := newHandlerHarness(t, harnessOptions{configure: func(c *Config) {
		c.HTTP.MaxBodyBytes, c.HTTP.MaxBodyMemory = maxBody, budget
	}})
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	var wg sync.WaitGroup
	t.Cleanup(func() {
		releaseOnce()
		wg.Wait()
	})
	largeRequest := func(id string) (*http.Request, *blockingBody) {
		body := eventBody(id, "contact.updated")
		req := signedRequest(body, "dlv_"+id, handlerSecret)
		bb := &blockingBody{data: bytes.NewReader(body), started: make(chan struct{}), release: release}
		req.Body, req.ContentLength = io.NopCloser(bb), maxBody
		return req, bb
	}
	const held = 3
	answers := make([]answer, held)
	for i := range held {
		req, bb := largeRequest("evt_large_" + strconv.Itoa(i))
		wg.Go(func() { answers[i] = h.serve(req) })
		select {
		case <-bb.started:
		case <-time.After(30 * time.Second):
			t.Fatalf("large request %d never reached its body", i)
		}
	}
	if got := metricValue(t, h.registry, "zautic_forwarder_body_memory_bytes", nil); got != held*maxBody {
		t.Errorf("body memory while %d large bodies are held: got %v, want %d", held, got, held*maxBody)
	}

	refused, _ := largeRequest("evt_refused")
	a := h.serve(refused)
	a.assertError(t, http.StatusTooManyRequests, "overloaded", "http.max_body_memory")
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want %q", got, "1")
	}
	if got := metricValue(t, h.registry, "zautic_forwarder_webhook_requests_total",
		map[string]string{"outcome": outcomeOverloaded, "reason": reasonBodyMemory}); got != 1 {
		t.Errorf("requests refused for memory: got %v, want 1", got)
	}
	for i := range 5 {
		id := "evt_ordinary_" + strconv.Itoa(i)
		h.send(eventBody(id, "message.sent"), "dlv_"+id).assertBody(t, publishedBody(float64(i+1), "zautic.message.sent"))
	}

	releaseOnce()
	wg.Wait()
	for i, a := range answers {
		if a.status != http.StatusOK || a.body["status"] != "published" {
			t.Errorf("held request %d: got %d %s, want published", i, a.status, a.raw)
		}
	}
	if got := metricValue(t, h.registry, "zautic_forwarder_body_memory_bytes", nil); got != 0 {
		t.Errorf("body memory after every answer: got %v, want 0", got)
	}
	again, _ := largeRequest("evt_refused")
	again.Body = io.NopCloser(bytes.NewReader(eventBody("evt_refused", "contact.updated")))
	h.serve(again).assertBody(t, publishedBody(held+6, "zautic.contact.updated"))
}
