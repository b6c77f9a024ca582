package ingest

import (
	"github.com/zautic/zautic-forwarder/zautic"
)

// EndpointHeader names, on every message a named endpoint publishes, the
// endpoint that received it; the default endpoint's messages do not carry it,
// so that they stay exactly as they were before endpoints existed.
const EndpointHeader = "Zautic-Endpoint"

// DefaultEndpoint is the endpoint label and log field of the top-level
// webhook section.
const DefaultEndpoint = "default"

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
}

// render sets the subject of the event d from the template, and the tokens
// the template adds, the event's CloudEvents subject.
func (h *Handler) render(d *delivery, body []byte) error {
	var err error
	d.subject, d.addedTokens, err = h.cfg.Endpoint.Subject.Render(h.cfg.SubjectPrefix, d.event.Type, body)
	return err
}

// addEndpointHeaders adds to header what the endpoint adds to every message:
// its name, and the CloudEvents attributes. It runs before the payload check,
// which so counts them.
func (h *Handler) addEndpointHeaders(header map[string][]string, d *delivery, body []byte) {
	if name := h.cfg.Endpoint.Name; name != "" {
		header[EndpointHeader] = []string{name}
	}
	if ce := h.cfg.Endpoint.CloudEvents; ce != nil {
		zautic.NewCloudEvent(d.event, body, *ce, d.addedTokens).SetHeaders(header)
	}
}
