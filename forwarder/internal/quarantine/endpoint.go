package quarantine

import (
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// EndpointOf is the endpoint that received the kept request, as answers and
// logs show it: its Zautic-Endpoint header, which only the keeper sets, or
// "default" for the top-level webhook section.
func EndpointOf(e Entry) string {
	if name := e.Header.Get(zautic.MessageEndpointHeader); name != "" {
		return name
	}
	return telemetry.DefaultEndpoint
}
