// Package forwarder receives Zautic webhooks and forwards each event exactly
// once to NATS JetStream.
//
// The request path reads: read the raw body, verify X-Zautic-Signature on those
// bytes, parse the event, map its type to a subject, look the delivery up in a
// JetStream KV bucket, publish with a Nats-Msg-Id and wait for the PubAck, mark
// the delivery as seen, answer. Signature and event handling are pure functions
// (signature.go, event.go); NATS lives in broker.go; HTTP in handler.go and
// server.go; Service ties them together with an optional embedded nats-server.
package forwarder
