package store

import (
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
)

// StreamConfig describes the JetStream stream events are published to.
type StreamConfig struct {
	Name            string          `yaml:"name"`
	SubjectPrefix   string          `yaml:"subject_prefix"`
	Manage          bool            `yaml:"manage"`
	MaxAge          time.Duration   `yaml:"max_age"`
	DuplicateWindow time.Duration   `yaml:"duplicate_window"`
	Replicas        int             `yaml:"replicas"`
	Placement       PlacementConfig `yaml:"placement"`
	// MaxBytes bounds the stream's size; 0 is unlimited. At the limit new
	// publishes fail (DiscardNew): no acknowledged event is dropped.
	MaxBytes int64 `yaml:"max_bytes"`
}

// PlacementConfig pins the stream and bucket to a cluster and server tags.
type PlacementConfig struct {
	Cluster string   `yaml:"cluster"`
	Tags    []string `yaml:"tags"`
}

// DedupConfig describes the KV bucket that remembers forwarded deliveries.
type DedupConfig struct {
	Bucket   string        `yaml:"bucket"`
	TTL      time.Duration `yaml:"ttl"`
	Key      string        `yaml:"key"`
	Replicas int           `yaml:"replicas"`
	// RepairWindow is how far back the stream is scanned for events whose
	// mark is missing, at start and after every reconnect; 0 turns it off.
	RepairWindow time.Duration `yaml:"repair_window"`
	// RepairMax bounds the messages one repair scans.
	RepairMax int `yaml:"repair_max"`
	// MaxBytes bounds the bucket's size; 0 is unlimited. At the limit new
	// marks fail.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxPendingMarks bounds the marks sent and not yet acknowledged;
	// beyond it a request waits for room before it is answered.
	MaxPendingMarks int `yaml:"max_pending_marks"`
}

// DefaultStreamConfig returns the stream section's defaults.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		Name:            "ZAUTIC",
		SubjectPrefix:   "zautic",
		Manage:          true,
		MaxAge:          168 * time.Hour,
		DuplicateWindow: 2 * time.Minute,
		Replicas:        1,
	}
}

// DefaultDedupConfig returns the dedup section's defaults but the key,
// whose values the request path defines.
func DefaultDedupConfig() DedupConfig {
	return DedupConfig{Bucket: "zautic-dedup", TTL: 72 * time.Hour, Replicas: 1, RepairWindow: 15 * time.Minute, RepairMax: 100_000,
		MaxPendingMarks: 4096}
}

// QuarantineStream is what the store needs of the quarantine section: the
// stream it keeps in place beside the event stream, and writes to.
type QuarantineStream struct {
	Enabled       bool
	Stream        string
	SubjectPrefix string
	MaxAge        time.Duration
	MaxBytes      int64
}

// Config is what the store reads.
type Config struct {
	NATS       natsconn.Config
	Stream     StreamConfig
	Dedup      DedupConfig
	Quarantine QuarantineStream
	// MaxBodyBytes is http.max_body_bytes, which the server's max_payload
	// is compared with at connect.
	MaxBodyBytes int64
}
