package forwarder

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// ErrInvalidConfig is returned by Validate and LoadConfig; the message names
// the offending key.
var ErrInvalidConfig = errors.New("invalid configuration")

// Config is the whole configuration. Keys are the yaml tags joined by dots.
type Config struct {
	HTTP       HTTPConfig       `yaml:"http"`
	Admin      AdminConfig      `yaml:"admin"`
	Webhook    WebhookConfig    `yaml:"webhook"`
	NATS       NATSConfig       `yaml:"nats"`
	Stream     StreamConfig     `yaml:"stream"`
	Dedup      DedupConfig      `yaml:"dedup"`
	Events     EventsConfig     `yaml:"events"`
	Quarantine QuarantineConfig `yaml:"quarantine"`
	Log        LogConfig        `yaml:"log"`
	Tracing    TracingConfig    `yaml:"tracing"`
}

// HTTPConfig configures the webhook listener.
type HTTPConfig struct {
	Addr              string        `yaml:"addr"`
	Path              string        `yaml:"path"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	MaxInFlight       int           `yaml:"max_in_flight"`
	MaxBodyMemory     int64         `yaml:"max_body_memory"`
	MaxConnections    int           `yaml:"max_connections"`
	MinBodyRate       int64         `yaml:"min_body_rate"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// AdminConfig configures the probe, metrics, pprof and inspector listener.
type AdminConfig struct {
	Addr  string `yaml:"addr"`
	Pprof bool   `yaml:"pprof"`
	// Token, and the content of TokenFile, are the Bearer tokens the admin
	// paths that return or change data accept; both empty leaves them open.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// WebhookConfig holds the secrets Zautic signs with and the replay window.
type WebhookConfig struct {
	Secret      string        `yaml:"secret"`
	Secrets     []string      `yaml:"secrets"`
	SecretFile  string        `yaml:"secret_file"`
	SecretsFile string        `yaml:"secrets_file"`
	Tolerance   time.Duration `yaml:"tolerance"`
}

// NATSConfig says where NATS is, or how to embed it, and how to authenticate.
type NATSConfig struct {
	URL            string         `yaml:"url"`
	Name           string         `yaml:"name"`
	PublishTimeout time.Duration  `yaml:"publish_timeout"`
	ConnectTimeout time.Duration  `yaml:"connect_timeout"`
	CredsFile      string         `yaml:"creds_file"`
	NKeyFile       string         `yaml:"nkey_file"`
	Token          string         `yaml:"token"`
	User           string         `yaml:"user"`
	Password       string         `yaml:"password"`
	TLS            TLSConfig      `yaml:"tls"`
	Embedded       EmbeddedConfig `yaml:"embedded"`
}

// TLSConfig holds file paths for TLS to NATS; cert and key enable mutual TLS.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// EmbeddedConfig configures the in-process nats-server used when nats.url is
// empty.
type EmbeddedConfig struct {
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"store_dir"`
	// SyncInterval is "always" (fsync before every PubAck) or a duration
	// between background fsyncs; see syncPolicy.
	SyncInterval string `yaml:"sync_interval"`
}

// StreamConfig describes the JetStream stream events are published to.
type StreamConfig struct {
	Name            string          `yaml:"name"`
	SubjectPrefix   string          `yaml:"subject_prefix"`
	Manage          bool            `yaml:"manage"`
	MaxAge          time.Duration   `yaml:"max_age"`
	DuplicateWindow time.Duration   `yaml:"duplicate_window"`
	Replicas        int             `yaml:"replicas"`
	Placement       PlacementConfig `yaml:"placement"`
}

// PlacementConfig pins the stream and bucket to a cluster and server tags.
type PlacementConfig struct {
	Cluster string   `yaml:"cluster"`
	Tags    []string `yaml:"tags"`
}

// Dedup key sources for DedupConfig.Key.
const (
	DedupKeyDelivery = "delivery"
	DedupKeyEvent    = "event"
)

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
}

// EventsConfig filters which event types are forwarded.
type EventsConfig struct {
	Allow []string `yaml:"allow"`
}

// LogConfig configures zap.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// FlushInterval buffers log writes for at most this long; 0 writes each
	// line at once.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// TracingConfig turns OpenTelemetry tracing on. Everything else about it
// (endpoint, protocol, sampler, resource) comes from the standard OTEL_*
// environment variables, and setting an OTLP endpoint there turns it on too.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		HTTP: HTTPConfig{
			Addr:              ":8080",
			Path:              "/webhooks/zautic",
			MaxBodyBytes:      256 << 10,
			MaxHeaderBytes:    16 << 10,
			MaxInFlight:       1024,
			MaxBodyMemory:     64 << 20,
			MaxConnections:    1024,
			MinBodyRate:       1024,
			ShutdownTimeout:   20 * time.Second,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
		Admin:   AdminConfig{Addr: ":9090"},
		Webhook: WebhookConfig{Tolerance: 5 * time.Minute},
		NATS: NATSConfig{
			PublishTimeout: 5 * time.Second,
			ConnectTimeout: 2 * time.Second,
			Embedded:       EmbeddedConfig{Listen: "127.0.0.1:4222", StoreDir: "./data", SyncInterval: syncAlways},
		},
		Stream: StreamConfig{
			Name:            "ZAUTIC",
			SubjectPrefix:   "zautic",
			Manage:          true,
			MaxAge:          168 * time.Hour,
			DuplicateWindow: 2 * time.Minute,
			Replicas:        1,
		},
		Dedup: DedupConfig{Bucket: "zautic-dedup", TTL: 72 * time.Hour, Key: DedupKeyEvent, Replicas: 1,
			RepairWindow: 15 * time.Minute, RepairMax: 100_000},
		Quarantine: defaultQuarantineConfig(),
		Log:        LogConfig{Level: "info", Format: "json", FlushInterval: 100 * time.Millisecond},
	}
}

// minPublishTimeout is the shortest nats.publish_timeout that is not a
// mistake: a round trip to JetStream takes a few milliseconds on a good day.
const minPublishTimeout = 100 * time.Millisecond

// Validate checks every value and returns an error naming the first bad key.
// Whether any secret is configured is checked when the secrets are loaded
// (LoadSecrets), since files may hold them.
func (c Config) Validate() error {
	checks := []struct {
		key string
		bad bool
		why string
	}{
		{"http.addr", !validAddr(c.HTTP.Addr), "must be host:port"},
		{"http.path", !strings.HasPrefix(c.HTTP.Path, "/"), "must start with /"},
		{"http.max_body_bytes", c.HTTP.MaxBodyBytes <= 0, "must be positive"},
		{"http.max_header_bytes", c.HTTP.MaxHeaderBytes <= 0, "must be positive"},
		{"http.max_in_flight", c.HTTP.MaxInFlight <= 0, "must be positive"},
		{"http.max_body_memory", bodyMemoryTooSmall(c.HTTP.MaxBodyMemory, c.HTTP.MaxBodyBytes),
			"must hold one body of http.max_body_bytes beside the quarter kept for ordinary bodies"},
		{"http.max_connections", c.HTTP.MaxConnections <= 0, "must be positive"},
		{"http.min_body_rate", c.HTTP.MinBodyRate < 0, "must not be negative (0 disables the floor)"},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout <= 0, "must be positive"},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout <= 0, "must be positive"},
		{"http.read_timeout", c.HTTP.ReadTimeout <= 0, "must be positive"},
		{"http.write_timeout", c.HTTP.WriteTimeout <= 0, "must be positive"},
		{"http.idle_timeout", c.HTTP.IdleTimeout <= 0, "must be positive"},
		{"admin.addr", c.Admin.Addr != "" && !validAddr(c.Admin.Addr), "must be host:port, or empty to disable"},
		{"admin.token", c.Admin.Token != "" && strings.TrimSpace(c.Admin.Token) == "", "must not be only white space (unset, it leaves the data paths open)"},
		{"webhook.tolerance", c.Webhook.Tolerance < 0, "must not be negative (0 disables the check)"},
		{"webhook.tolerance", c.Webhook.Tolerance > 0 && c.Webhook.Tolerance < time.Second, "must be at least 1s (0 disables the check)"},
		{"nats.publish_timeout", c.NATS.PublishTimeout < minPublishTimeout, "must be at least 100ms"},
		{"nats.connect_timeout", c.NATS.ConnectTimeout <= 0, "must be positive"},
		{"nats.embedded.listen", c.NATS.URL == "" && !validAddr(c.NATS.Embedded.Listen), "must be host:port"},
		{"nats.embedded.store_dir", c.NATS.URL == "" && c.NATS.Embedded.StoreDir == "", "must not be empty"},
		{"nats.embedded.sync_interval", c.NATS.URL == "" && !validSyncInterval(c.NATS.Embedded.SyncInterval), `must be "always" or a positive duration`},
		{"nats.tls.key_file", (c.NATS.TLS.CertFile == "") != (c.NATS.TLS.KeyFile == ""), "cert_file and key_file go together"},
		{"stream.name", !validStreamName(c.Stream.Name), "must be non-empty without spaces, dots, * or >"},
		{"stream.subject_prefix", zautic.ValidateSubjectTokens(c.Stream.SubjectPrefix) != nil, "must be dot-separated tokens of [A-Za-z0-9_-]"},
		{"stream.max_age", c.Stream.MaxAge < 0, "must not be negative"},
		{"stream.duplicate_window", c.Stream.DuplicateWindow <= 0, "must be positive"},
		{"stream.duplicate_window", c.Stream.MaxAge > 0 && c.Stream.DuplicateWindow > c.Stream.MaxAge, "must not exceed stream.max_age"},
		{"stream.replicas", c.Stream.Replicas < 1 || c.Stream.Replicas > 5, "must be 1 to 5"},
		{"dedup.bucket", !validBucketName(c.Dedup.Bucket), "must be non-empty [A-Za-z0-9_-]"},
		{"dedup.ttl", c.Dedup.TTL < 0, "must not be negative"},
		{"dedup.ttl", c.Dedup.TTL > 0 && c.Dedup.TTL < c.Webhook.Tolerance, "must be at least webhook.tolerance (or 0), so that a request replayed while its signature is still accepted is still a duplicate"},
		{"dedup.key", c.Dedup.Key != DedupKeyDelivery && c.Dedup.Key != DedupKeyEvent, `must be "delivery" or "event"`},
		{"dedup.replicas", c.Dedup.Replicas < 1 || c.Dedup.Replicas > 5, "must be 1 to 5"},
		{"dedup.repair_window", c.Dedup.RepairWindow < 0, "must not be negative (0 turns the repair off)"},
		{"dedup.repair_max", c.Dedup.RepairMax <= 0, "must be positive"},
		{"quarantine.stream", c.Quarantine.Enabled && (!validStreamName(c.Quarantine.Stream) || c.Quarantine.Stream == c.Stream.Name), "must be a stream name other than stream.name"},
		{"quarantine.subject_prefix", c.Quarantine.Enabled && zautic.ValidateSubjectTokens(c.Quarantine.SubjectPrefix) != nil, "must be dot-separated tokens of [A-Za-z0-9_-]"},
		{"quarantine.subject_prefix", c.Quarantine.Enabled && subjectsOverlap(c.Quarantine.SubjectPrefix, c.Stream.SubjectPrefix), "must not overlap stream.subject_prefix: nothing unverified may appear under it"},
		{"quarantine.max_age", c.Quarantine.MaxAge < 0, "must not be negative (0 keeps entries until quarantine.max_bytes)"},
		{"quarantine.max_bytes", c.Quarantine.Enabled && c.Quarantine.MaxBytes <= 0, "must be positive"},
		{"quarantine.rate", c.Quarantine.Enabled && c.Quarantine.Rate <= 0, "must be positive"},
		{"quarantine.burst", c.Quarantine.Enabled && c.Quarantine.Burst < 1, "must be at least 1"},
		{"log.level", !validLevel(c.Log.Level), "must be debug, info, warn or error"},
		{"log.format", c.Log.Format != "json" && c.Log.Format != "console", `must be "json" or "console"`},
		{"log.flush_interval", c.Log.FlushInterval < 0, "must not be negative (0 writes each line at once)"},
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("%w: %s %s", ErrInvalidConfig, ch.key, ch.why)
		}
	}
	for _, t := range c.Events.Allow {
		if err := zautic.ValidateSubjectTokens(t); err != nil {
			return fmt.Errorf("%w: events.allow entry %q: %w", ErrInvalidConfig, t, err)
		}
	}
	return nil
}

func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

func validStreamName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t\r\n.*>/\\")
}

func validBucketName(name string) bool {
	return name != "" && zautic.ValidateSubjectTokens(name) == nil && !strings.Contains(name, ".")
}

func validLevel(level string) bool {
	switch level {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// Embedded reports whether the forwarder runs its own nats-server.
func (c Config) Embedded() bool { return c.NATS.URL == "" }

const redacted = "[redacted]"

// Redacted returns a copy safe to log or print: secret values are replaced.
func (c Config) Redacted() Config {
	r := c
	if r.Webhook.Secret != "" {
		r.Webhook.Secret = redacted
	}
	if len(r.Webhook.Secrets) > 0 {
		r.Webhook.Secrets = []string{fmt.Sprintf("%s x%d", redacted, len(c.Webhook.Secrets))}
	}
	r.NATS.URL = redactURLs(r.NATS.URL)
	if r.NATS.Token != "" {
		r.NATS.Token = redacted
	}
	if r.Admin.Token != "" {
		r.Admin.Token = redacted
	}
	if r.NATS.Password != "" {
		r.NATS.Password = redacted
	}
	return r
}

// RedactURLs returns a comma-separated URL list (nats.url, an OTLP endpoint)
// with the user information of each URL (user:password, or a token)
// replaced. It does not parse the URLs: one that does not parse, such as a
// password with a bare %, is redacted as well.
func RedactURLs(list string) string { return redactURLs(list) }

// redactURLs hides the user information (user:password, or a token) of each
// URL in a comma-separated NATS URL list, so that nats.url can be logged.
func redactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	parts := strings.Split(list, ",")
	for i, u := range parts {
		at := strings.LastIndex(u, "@")
		if at < 0 {
			continue
		}
		start := 0
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			start = scheme + len("://")
		}
		parts[i] = u[:start] + redacted + u[at:]
	}
	return strings.Join(parts, ",")
}

// readSecretFile returns the file's content without a UTF-8 byte-order mark
// (some Windows editors write one, and it would become part of the first
// secret) and without surrounding white space (a trailing newline is common
// in mounted secrets).
func readSecretFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSpace(strings.TrimPrefix(string(raw), "\ufeff"))), nil
}
