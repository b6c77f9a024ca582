package main

import (
	"fmt"
	"strings"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// appendKeyIDs appends to out, as YAML comments, the key ids of each
// endpoint's secrets: the default endpoint's on the line it always had, a
// named endpoint's on a line naming it.
func appendKeyIDs(out []byte, cfg forwarder.Config, keyIDs map[string][]string) []byte {
	for _, label := range forwarder.EndpointLabels(cfg) {
		ids := strings.Join(keyIDs[label], ", ")
		if label == forwarder.DefaultEndpoint {
			out = fmt.Appendf(out, "# key ids of the webhook secrets (first 8 hex characters of SHA-256): %s\n", ids)
			continue
		}
		out = fmt.Appendf(out, "# key ids of endpoint %s (first 8 hex characters of SHA-256): %s\n", label, ids)
	}
	return out
}
