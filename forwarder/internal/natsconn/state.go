package natsconn

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// State describes a connection for the admin page.
type State struct {
	Status    string `json:"status"`
	Connected bool   `json:"connected"`
	URL       string `json:"url,omitempty"`
	Server    string `json:"server,omitempty"`
}

// StateOf reports nc's state without touching the network; the URL has its
// user information removed.
func StateOf(nc *nats.Conn) State {
	s := State{Status: strings.ToLower(nc.Status().String()), Connected: nc.IsConnected()}
	if s.Connected {
		s.URL = RedactURLs(nc.ConnectedUrlRedacted())
		s.Server = nc.ConnectedServerName()
	}
	return s
}
