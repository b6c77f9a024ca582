package zautic

// The request headers Zautic sends with every webhook. Only the signature is
// authenticated: the others are copies of signed body fields or transport
// details, and a receiver must not decide on them alone.
const (
	// RequestSignatureHeader carries "t=<unix>,v1=<hex>[,v1=<hex>…]".
	RequestSignatureHeader = "X-Zautic-Signature"
	// RequestDeliveryIDHeader is unique per delivery, "the idempotency key"
	// in Zautic's words; it is not signed.
	RequestDeliveryIDHeader = "X-Zautic-Delivery-Id"
	// RequestEventHeader repeats the body's type, unsigned.
	RequestEventHeader = "X-Zautic-Event"
	// RequestTimestampHeader repeats the signed t, unsigned.
	RequestTimestampHeader = "X-Zautic-Timestamp"
)

// The headers zautic-forwarder sets on every message it publishes to NATS.
// Their values come from the verified request: the body's id and type, the
// signed t and the delivery id.
const (
	// MessageIDHeader is JetStream's de-duplication header (Nats-Msg-Id),
	// carrying the dedup key.
	MessageIDHeader = "Nats-Msg-Id"
	// MessageEventTypeHeader carries the body's type.
	MessageEventTypeHeader = "Zautic-Event-Type"
	// MessageEventIDHeader carries the body's id, where a header can carry it
	// exactly; the body's id is the truth.
	MessageEventIDHeader = "Zautic-Event-Id"
	// MessageDeliveryIDHeader carries X-Zautic-Delivery-Id, when the request
	// had one.
	MessageDeliveryIDHeader = "Zautic-Delivery-Id"
	// MessageTimestampHeader carries the signed t, in unix seconds.
	MessageTimestampHeader = "Zautic-Timestamp"
	// MessageEndpointHeader names the forwarder endpoint (one Zautic
	// account) that received the event; absent for the default endpoint.
	MessageEndpointHeader = "Zautic-Endpoint"
)

// The W3C Trace Context headers zautic-forwarder adds to a message when
// tracing is on: the context of its publish span, so that a consumer's span
// can be that span's child. The names are lower case, as the W3C
// specification writes them, and NATS keeps the case of a header name.
const (
	// MessageTraceparentHeader carries "00-<trace id>-<span id>-<flags>".
	MessageTraceparentHeader = "traceparent"
	// MessageTracestateHeader carries the vendor state of the trace, when
	// there is any.
	MessageTracestateHeader = "tracestate"
)

// SecretEnv is the environment variable Zautic's documentation names for the
// webhook secret.
const SecretEnv = "ZAUTIC_WEBHOOK_SECRET"
