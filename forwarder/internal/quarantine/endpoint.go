package quarantine

import (
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// EndpointOf is the endpoint that received the kept request, as answers and
// logs show it: its Zautic-Endpoint header, which only the keeper sets, or
// "default" for the top-level webhook section.
func EndpointOf(e Entry) string {
	return endpointLabel(e.Header.Get(zautic.MessageEndpointHeader))
}

// endpointLabel is the label of the endpoint name: "default" for "", the
// top-level webhook section.
func endpointLabel(name string) string {
	if name != "" {
		return name
	}
	return telemetry.DefaultEndpoint
}
