package ingest

import (
	"fmt"
	"math"
)

// expectedStreamHeader is added by Publish (jetstream.WithExpectStream).
const expectedStreamHeader = "Nats-Expected-Stream"

// maxHeaderBytes is the largest header block JetStream stores: the server
// keeps its length in 16 bits and refuses a publish whose headers, as the
// client sent them, are longer (nats-server v2.15 stream.go,
// "len(hdr) > math.MaxUint16": err_code 10097, "header size exceeds
// maximum allowed of 64k").
const maxHeaderBytes = math.MaxUint16

// headerSize is the length of the header block as nats.go writes it
// ("NATS/1.0\r\n", "Key: value\r\n" each, "\r\n"), with the header
// Publish adds: what the server measures against maxHeaderBytes.
func headerSize(header map[string][]string, stream string) int64 {
	size := len("NATS/1.0\r\n") + len("\r\n") + len(expectedStreamHeader) + len(stream) + 4
	for k, values := range header {
		for _, v := range values {
			size += len(k) + len(v) + 4
		}
	}
	return int64(size)
}

// messageSize is what a message weighs against the server's max_payload:
// the body and the header block.
func messageSize(header map[string][]string, body []byte, stream string) int64 {
	return headerSize(header, stream) + int64(len(body))
}

// fitsPayload refuses, before any NATS call, a message the server would
// refuse: a retry cannot fix it, so it is answered 413, never 503. Its
// headers carry the event id (in Nats-Msg-Id, Zautic-Event-Id, ce-id) and
// the unsigned delivery id, so a body within max_payload can still carry
// more header bytes than JetStream stores.
// maxPayload is 0 while unknown (never connected): the broker is then not
// ready and the request is answered 503 anyway.
// extra counts headers added after the check (the trace context).
func fitsPayload(header map[string][]string, body []byte, stream string, extra, maxPayload int64) error {
	headers := headerSize(header, stream) + extra
	if headers > maxHeaderBytes {
		return fmt.Errorf("%w: %d bytes of message headers (the event id, delivery id and type they carry) exceed JetStream's header limit of %d bytes",
			errMessageHeadersTooLarge, headers, maxHeaderBytes)
	}
	size := headers + int64(len(body))
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
