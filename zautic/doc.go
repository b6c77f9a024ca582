// Package zautic is the Zautic webhook protocol, with the standard library
// only, for any Go HTTP stack:
//
//   - Zautic POSTs a JSON event ({"id", "type", "created", "data"}) with the
//     headers X-Zautic-Event, X-Zautic-Delivery-Id, X-Zautic-Timestamp and
//     X-Zautic-Signature: "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>".
//   - VerifySignature checks the raw bytes against every accepted secret (for
//     rotation) within a tolerance; Sign and ComputeSignature sign the same way,
//     for tests and simulators.
//   - ParseEvent reads the id and type; SubjectFor maps the type to a NATS
//     subject; DocumentedTypes lists the 23 documented types.
//   - ParseSubjectTemplate reads a template such as
//     "{prefix}.{type}.{data.object.device_id}", whose Subject adds signed body
//     values to the subject, one token each; SubjectTokenForString,
//     SubjectTokenForInt and SubjectTokenForJSON give a consumer the token of
//     a value, so that it can filter on it.
//   - NewCloudEvent and SetHeaders give the CloudEvents attributes of an
//     event as the ce-* headers of the NATS protocol binding's binary content
//     mode, with the body as the data.
//   - Request* names the request's headers, Message* the headers zautic-forwarder
//     sets on each published message, so that a consumer can read them.
//   - Zautic retries on timeouts, 5xx and 429, never on other 4xx.
package zautic
