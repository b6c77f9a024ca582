package store

import (
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// defaultConfig is the store's part of the default configuration (the
// quarantine section's defaults are the quarantine package's).
func defaultConfig() Config {
	return Config{
		NATS: natsconn.DefaultConfig(), Stream: DefaultStreamConfig(), Dedup: DefaultDedupConfig(), MaxBodyBytes: 256 << 10,
		Quarantine: QuarantineStream{Enabled: true, Stream: "ZAUTIC_QUARANTINE", SubjectPrefix: "zautic-quarantine", MaxAge: 72 * time.Hour, MaxBytes: 64 << 20},
	}
}
