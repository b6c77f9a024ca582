// Package forwarder is the zautic-forwarder service: it receives Zautic
// webhooks and forwards each event exactly once to NATS JetStream.
//
// Start builds and starts the parts and returns the running Service; Wait
// stops them in order. The caller owns the lifecycle: it passes the
// configuration as a plain Config, cancels the context, and asks for a
// secret reload (main does on SIGHUP); the package registers no signal.
// This package is the wiring and nothing a plane needs at run time: each
// plane below owns its configuration section, and Config composes them, so
// no plane imports forwarder.
//
// The planes, under internal/, and what each may import beside zautic:
//
//   - ingest: the webhook plane, the hot path. Server, body, budget,
//     handler, rejections, payload limits, probes for the kubelet,
//     dedup keys. It reads body, verifies, parses, maps the subject, looks
//     up, publishes, marks, answers. It sees NATS only through its Store
//     interface and keeps rejected requests only through its Keeper
//     interface: it imports telemetry, secrets and adminapi, never store,
//     quarantine, admin or a NATS package.
//   - store: NATS for the webhook plane: its connection's handlers and
//     readiness, stream, bucket, publish, marks, resources, drift, mark
//     repair; and the Reader, the second connection (<nats.name>-admin)
//     that the admin plane and every background reader use, so that
//     nothing they read can drop or slow the webhook path's. It imports
//     natsconn, telemetry and adminapi.
//   - natsconn: how the forwarder connects to NATS, the same for both
//     connections: the nats section, connection names, the retry, ping and
//     auth/TLS options, the cause of a failed attempt and a log that repeats
//     each at most once per period, why a connection is down, its state for
//     the admin page, URLs with their user information redacted. It keeps
//     no connection and adds no handler. It imports embedded, for the type
//     of the nats.embedded section only.
//   - embedded: the in-process nats-server started when nats.url is empty,
//     and its durability policy (nats.embedded.sync_interval). This package
//     starts it and hands its URL to store; it imports no other package of
//     the service.
//   - quarantine: keeps a rejected request (the ingest.Keeper) and replays
//     it through ingest's pipeline. It imports ingest, store and telemetry.
//   - admin: the admin listener: token, quarantine API, delivery inspector
//     (headers-only scans, fetches capped in bytes, at most
//     admin.max_concurrent_scans at once), the page and web/; its own
//     connection ceiling, admin.max_connections. It imports quarantine,
//     store, natsconn (a connection's state) and telemetry; nothing imports
//     it but this package.
//   - connlimit: the connection ceiling of a listener, the webhook's
//     (http.max_connections) and the admin's (admin.max_connections). It
//     imports telemetry only.
//   - secrets: the webhook secrets, their files and watcher.
//   - telemetry: metrics and their label values, the probes, logging.
//
// adminapi, public, holds the admin API's JSON types and a small client:
// the server, the quarantine and deliveries commands and any operator's
// script share them. test/layout_test.go enforces these borders.
//
// The webhook plane's spans (ingest/tracing.go) exist only when Start is
// given WithTracerProvider.
package forwarder
