package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// EndpointHeader names, on every message a named endpoint publishes, the
// endpoint that received it; the default endpoint's messages do not carry it,
// so that they stay exactly as they were before endpoints existed.
const EndpointHeader = zautic.MessageEndpointHeader

// DefaultEndpoint is the endpoint label and log field of the top-level
// webhook section.
const DefaultEndpoint = telemetry.DefaultEndpoint

// Endpoint is what the handler of one endpoint reads beside Config: how it
// names its messages and what it adds to them.
type Endpoint struct {
	// Name is "" for the default endpoint (the top-level webhook section),
	// whose subjects, dedup keys and Nats-Msg-Ids are those of a forwarder
	// without endpoints.
	Name string
	// Subject renders the subject; the zero value is {prefix}.{type}.
	Subject zautic.SubjectTemplate
	// CloudEvents, when not nil, adds the binary-mode ce-* headers.
	CloudEvents *zautic.CloudEventsOptions
	// Named holds the names of the named endpoints, for the default one:
	// a dedup key of its own that starts with "<name>." is sent mapped, so
	// that it never meets the Nats-Msg-Id of a named endpoint's event.
	Named map[string]bool
}

// render sets the subject of the event d from the template, and the tokens
// the template adds, the event's CloudEvents subject.
func (h *Handler) render(d *delivery, body []byte) error {
	var err error
	d.subject, d.addedTokens, err = h.cfg.Endpoint.Subject.Render(h.cfg.SubjectPrefix, d.event.Type, body)
	return err
}

// applyEndpoint makes the message and the marks of d the endpoint's: a
// named endpoint scopes the KV keys and the Nats-Msg-Id with its name, so
// that two accounts' identical event ids never merge, and names itself in a
// header; CloudEvents attributes are added when configured. It runs before
// the payload check, which so counts the headers.
func (h *Handler) applyEndpoint(header map[string][]string, d *delivery, body []byte) {
	ep := h.cfg.Endpoint
	id := header[zautic.MessageIDHeader][0] // the event's key, or in delivery mode the signature's
	if ep.Name != "" {
		for i := range d.kvKeys.n {
			d.kvKeys.keys[i] = adminapi.EndpointKey(ep.Name, d.kvKeys.keys[i])
		}
		header[zautic.MessageIDHeader] = []string{adminapi.EndpointKey(ep.Name, id)}
		header[EndpointHeader] = []string{ep.Name}
	} else if name, _, found := strings.Cut(id, "."); found && ep.Named[name] {
		header[zautic.MessageIDHeader] = []string{adminapi.KVKey(id)}
	}
	if ce := ep.CloudEvents; ce != nil {
		zautic.NewCloudEvent(d.event, body, *ce, d.addedTokens).SetHeaders(header)
	}
}

// Endpoints are the handlers of the endpoints by name, "" for the default
// one; they redeliver a kept request to the endpoint that received it.
type Endpoints map[string]*Handler

// errUnknownEndpoint is returned when a kept request names an endpoint the
// configuration no longer has.
var errUnknownEndpoint = fmt.Errorf("%w: the endpoint that received it is not configured", zautic.ErrNoValidSignature)

// Redeliver runs r through the handler of r.Endpoint. An endpoint that is no
// longer configured has no secrets to verify with: the request stays
// rejected, as a signature mismatch, and stays kept.
func (e Endpoints) Redeliver(ctx context.Context, r Redelivery) Redelivered {
	h, ok := e[r.Endpoint]
	if !ok {
		err := fmt.Errorf("%w: %q", errUnknownEndpoint, r.Endpoint)
		rej := classify(err)
		return Redelivered{Outcome: rej.outcome, Reason: rej.reason, Err: err}
	}
	return h.Redeliver(ctx, r)
}

// Route is one endpoint's path on the webhook port, its handler, and the
// metrics of its early rejections (the handler's own).
type Route struct {
	Path    string
	Handler *Handler
	Metrics *telemetry.Metrics
}
