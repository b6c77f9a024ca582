package admin

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// errUnknownEndpoint is returned when a lookup or a listing names an
// endpoint the configuration does not have.
var errUnknownEndpoint = errors.New("unknown endpoint")

// checkEndpoint accepts "" (every endpoint) and the configured labels.
func (b *Inspector) checkEndpoint(endpoint string) error {
	if endpoint == "" || slices.Contains(b.cfg.Endpoints, endpoint) || endpoint == telemetry.DefaultEndpoint {
		return nil
	}
	return fmt.Errorf("%w %.40q: the endpoint parameter is one of %s", errUnknownEndpoint, endpoint, strings.Join(b.cfg.Endpoints, ", "))
}

// checkType refuses a type no event can have, as a subject filter would.
func (b *Inspector) checkType(eventType string) error {
	if eventType == "" {
		return nil
	}
	_, err := zautic.SubjectFor(b.cfg.SubjectPrefix, eventType)
	return err
}

// endpointOf is the endpoint label of a message's or a kept request's
// headers: Zautic-Endpoint, which only the forwarder writes, or default.
func endpointOf(h nats.Header) string {
	if name := h.Get(zautic.MessageEndpointHeader); name != "" {
		return name
	}
	return telemetry.DefaultEndpoint
}

// ofEndpoint reports whether headers h are of endpoint ("" is any).
func ofEndpoint(h nats.Header, endpoint string) bool {
	return endpoint == "" || endpointOf(h) == endpoint
}

// namedEndpoint is the name that scopes an endpoint's keys: "" for the
// default endpoint, and for a lookup that names none, which reads the
// default endpoint's mark and scans every endpoint's headers.
func namedEndpoint(endpoint string) string {
	if endpoint == telemetry.DefaultEndpoint {
		return ""
	}
	return endpoint
}

// endpointKVKey is the KV key of id as the endpoint's handler marks it.
func endpointKVKey(id, endpoint string) string {
	return adminapi.EndpointKey(namedEndpoint(endpoint), adminapi.KVKey(id))
}

// markedMessageID is the Nats-Msg-Id a mark of id points at: the id as the
// publisher sends it (mapped when a header cannot carry it exactly), scoped
// to a named endpoint.
func markedMessageID(id, endpoint string) string {
	return adminapi.EndpointKey(namedEndpoint(endpoint), adminapi.MessageID(id))
}
