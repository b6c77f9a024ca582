package ingest

import (
	"fmt"
)

// expectedStreamHeader is added by Publish (jetstream.WithExpectStream).
const expectedStreamHeader = "Nats-Expected-Stream"

// messageSize is what a message weighs against the server's max_payload:
// the body and the headers as nats.go writes them ("NATS/1.0\r\n",
// "Key: value\r\n" each, "\r\n"), with the header Publish adds.
func messageSize(header map[string][]string, body []byte, stream string) int64 {
	size := len("NATS/1.0\r\n") + len("\r\n") + len(expectedStreamHeader) + len(stream) + 4
	for k, values := range header {
		for _, v := range values {
			size += len(k) + len(v) + 4
		}
	}
	return int64(size + len(body))
}

// fitsPayload refuses, before any NATS call, a message the server would
// refuse: a retry cannot fix it, so it is answered 413, never 503.
// maxPayload is 0 while unknown (never connected): the broker is then not
// ready and the request is answered 503 anyway.
// extra counts headers added after the check (the trace context).
func fitsPayload(header map[string][]string, body []byte, stream string, extra, maxPayload int64) error {
	size := messageSize(header, body, stream) + extra
	if maxPayload > 0 && size > maxPayload {
		return fmt.Errorf("%w: %d bytes with the message headers exceed the NATS server's max_payload of %d bytes",
			errBodyTooLarge, size, maxPayload)
	}
	return nil
}

// traceparentLength is the length of a W3C traceparent value,
// "00-<32 hex>-<16 hex>-<2 hex>".
const traceparentLength = 55

// traceHeaderBytes bounds what tracing adds to the message's headers after
// the payload check: a traceparent, and the tracestate, which comes from the
// request's own (and only shrinks on the way).
func (h *Handler) traceHeaderBytes(tracestate string) int64 {
	if h.tracer == nil {
		return 0
	}
	n := len("traceparent: \r\n") + traceparentLength
	if ts := tracestate; ts != "" {
		n += len("tracestate: \r\n") + len(ts)
	}
	return int64(n)
}
