package forwarder

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// SyncAlways is the nats.embedded.sync_interval that makes the embedded
// nats-server fsync every JetStream write before it sends the PubAck, so that
// a 2xx survives a machine crash or a power loss, not only a process crash.
const SyncAlways = "always"

// SyncPolicy is how often the embedded nats-server flushes JetStream writes
// to disk: before every PubAck (Always), or every Interval in the
// background, which loses up to Interval of acknowledged writes on power
// loss.
type SyncPolicy struct {
	Always   bool
	Interval time.Duration
}

// ParseSyncInterval reads nats.embedded.sync_interval: "always" or a
// positive Go duration. ErrInvalidConfig is returned otherwise.
func ParseSyncInterval(value string) (SyncPolicy, error) {
	if strings.EqualFold(strings.TrimSpace(value), SyncAlways) {
		return SyncPolicy{Always: true}, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return SyncPolicy{}, fmt.Errorf("%w: nats.embedded.sync_interval %q: want %q or a positive duration", ErrInvalidConfig, value, SyncAlways)
	}
	return SyncPolicy{Interval: d}, nil
}

func validSyncInterval(value string) bool {
	_, err := ParseSyncInterval(value)
	return err == nil
}

// String is the policy as the log and the configuration spell it.
func (p SyncPolicy) String() string {
	if p.Always {
		return SyncAlways
	}
	return p.Interval.String()
}

// embeddedSync is the sync policy the embedded server runs with, as it
// reports it, so that the start-up log shows what is in effect rather than
// what was asked for.
func embeddedSync(ns *server.Server) string {
	jsc := ns.JetStreamConfig()
	if jsc == nil {
		return "unknown (JetStream off)"
	}
	return SyncPolicy{Always: jsc.SyncAlways, Interval: jsc.SyncInterval}.String()
}
