// Package forwarder is the zautic-forwarder service: it receives Zautic
// webhooks and forwards each event exactly once to NATS JetStream.
//
// Start builds and starts the parts and returns the running Service; Wait
// stops them in order. The caller owns the lifecycle: it passes the
// configuration as a plain Config, cancels the context, and asks for a
// secret reload (main does on SIGHUP); the package registers no signal.
//
// The request path reads top to bottom: read the raw body, verify
// X-Zautic-Signature on those bytes, parse the event, map its type to a
// subject (the protocol steps are package zautic), look the key up in a
// JetStream KV bucket, publish with a Nats-Msg-Id and wait for the PubAck,
// mark the key as seen, answer. HTTP lives in handler.go and server.go and
// sees NATS only through the eventStore interface; NATS lives in broker.go,
// resources.go and connect.go; rejections.go maps every error to its answer.
//
// A request rejected for signature_mismatch or timestamp_out_of_tolerance is
// kept in a quarantine stream (quarantine.go, quarantine_broker.go) and
// replayed through the same path (replay.go), by itself after a change of
// the secrets (replay_auto.go) or from the admin API (admin_quarantine.go).
//
// The admin listener also serves the delivery inspector: the lookup API,
// its page and the quarantine API (admin_console.go, inspect.go), behind
// admin.token when one is set (admin_token.go).
//
// tracing.go wraps the steps in OpenTelemetry spans and puts the trace
// context on each message, only when Start is given WithTracerProvider.
package forwarder
