package embedded

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// syncAlways is the nats.embedded.sync_interval that makes the embedded
// nats-server fsync every JetStream write before it sends the PubAck, so that
// a 2xx survives a machine crash or a power loss, not only a process crash.
const syncAlways = "always"

// errSyncInterval is returned for a nats.embedded.sync_interval that is
// neither "always" nor a positive duration.
var errSyncInterval = errors.New("invalid sync interval")

// syncPolicy is how often the embedded nats-server flushes JetStream writes
// to disk: before every PubAck (Always), or every Interval in the
// background, which loses up to Interval of acknowledged writes on power
// loss.
type syncPolicy struct {
	Always   bool
	Interval time.Duration
}

// parseSyncInterval reads nats.embedded.sync_interval: "always" or a
// positive Go duration. errSyncInterval is returned otherwise.
func parseSyncInterval(value string) (syncPolicy, error) {
	if strings.EqualFold(strings.TrimSpace(value), syncAlways) {
		return syncPolicy{Always: true}, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return syncPolicy{}, fmt.Errorf("%w: nats.embedded.sync_interval %q: want %q or a positive duration", errSyncInterval, value, syncAlways)
	}
	return syncPolicy{Interval: d}, nil
}

// ValidSyncInterval reports whether value is a valid
// nats.embedded.sync_interval.
func ValidSyncInterval(value string) bool {
	_, err := parseSyncInterval(value)
	return err == nil
}

// String is the policy as the log and the configuration spell it.
func (p syncPolicy) String() string {
	if p.Always {
		return syncAlways
	}
	return p.Interval.String()
}

// SyncInEffect is the sync policy the embedded server runs with, as it
// reports it, so that the start-up log shows what is in effect rather than
// what was asked for.
func SyncInEffect(ns *server.Server) string {
	jsc := ns.JetStreamConfig()
	if jsc == nil {
		return "unknown (JetStream off)"
	}
	return syncPolicy{Always: jsc.SyncAlways, Interval: jsc.SyncInterval}.String()
}
