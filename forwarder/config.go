package forwarder

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/admin"
	"github.com/zautic/zautic-forwarder/forwarder/internal/embedded"
	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// ErrInvalidConfig is returned by Validate and LoadConfig; the message names
// the offending key.
var ErrInvalidConfig = errors.New("invalid configuration")

// Config is the whole configuration. Keys are the yaml tags joined by dots.
// Each section is the configuration of the plane that reads it.
type Config struct {
	HTTP       ingest.HTTPConfig     `yaml:"http"`
	Admin      admin.Config          `yaml:"admin"`
	Webhook    secrets.WebhookConfig `yaml:"webhook"`
	NATS       natsconn.Config       `yaml:"nats"`
	Stream     store.StreamConfig    `yaml:"stream"`
	Dedup      store.DedupConfig     `yaml:"dedup"`
	Events     ingest.EventsConfig   `yaml:"events"`
	Quarantine quarantine.Config     `yaml:"quarantine"`
	Log        telemetry.LogConfig   `yaml:"log"`
	Tracing    TracingConfig         `yaml:"tracing"`
	Publish    PublishConfig         `yaml:"publish"`
	Endpoints  []EndpointConfig      `yaml:"endpoints"`
}

// TracingConfig turns OpenTelemetry tracing on. Everything else about it
// (endpoint, protocol, sampler, resource) comes from the standard OTEL_*
// environment variables, and setting an OTLP endpoint there turns it on too.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	dedup := store.DefaultDedupConfig()
	dedup.Key = DedupKeyEvent
	return Config{
		HTTP:       ingest.DefaultHTTPConfig(),
		Admin:      admin.DefaultConfig(),
		Webhook:    defaultWebhookConfig(),
		Publish:    PublishConfig{CloudEventsTypePrefix: zautic.DefaultCloudEventsTypePrefix},
		NATS:       natsconn.DefaultConfig(),
		Stream:     store.DefaultStreamConfig(),
		Dedup:      dedup,
		Quarantine: quarantine.DefaultConfig(),
		Log:        telemetry.DefaultLogConfig(),
	}
}

// Dedup key sources for dedup.key.
const (
	DedupKeyDelivery = ingest.DedupKeyDelivery
	DedupKeyEvent    = ingest.DedupKeyEvent
)

// minPublishTimeout is the shortest nats.publish_timeout that is not a
// mistake: a round trip to JetStream takes a few milliseconds on a good day.
const minPublishTimeout = 100 * time.Millisecond

// maxPendingMarks bounds dedup.max_pending_marks: each mark in flight holds
// its key and value in memory until its PubAck.
const maxPendingMarks = 1_000_000

// minPingInterval is the shortest nats.ping_interval: below it, pings are
// traffic of their own and a busy server's late pong looks like a hang.
const minPingInterval = 100 * time.Millisecond

// Validate checks every value and returns an error naming the first bad key.
// Whether any secret is configured is checked when the secrets are loaded
// (LoadSecrets), since files may hold them.
func (c Config) Validate() error {
	pathWhy := pathProblem(c.HTTP.Path)
	checks := []struct {
		key string
		bad bool
		why string
	}{
		{"http.addr", !validAddr(c.HTTP.Addr), "must be host:port"},
		{"http.path", pathWhy != "", fmt.Sprintf("%q %s", c.HTTP.Path, pathWhy)},
		{"http.max_body_bytes", c.HTTP.MaxBodyBytes <= 0, "must be positive"},
		{"http.max_header_bytes", c.HTTP.MaxHeaderBytes <= 0, "must be positive"},
		{"http.max_in_flight", c.HTTP.MaxInFlight <= 0, "must be positive"},
		{"http.max_body_memory", ingest.BodyMemoryTooSmall(c.HTTP.MaxBodyMemory, c.HTTP.MaxBodyBytes),
			"must hold one body of http.max_body_bytes beside the quarter kept for ordinary bodies"},
		{"http.max_connections", c.HTTP.MaxConnections <= 0, "must be positive"},
		{"http.min_body_rate", c.HTTP.MinBodyRate < 0, "must not be negative (0 disables the floor)"},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout <= 0, "must be positive"},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout <= 0, "must be positive"},
		{"http.read_timeout", c.HTTP.ReadTimeout <= 0, "must be positive"},
		{"http.write_timeout", c.HTTP.WriteTimeout <= 0, "must be positive"},
		{"http.idle_timeout", c.HTTP.IdleTimeout <= 0, "must be positive"},
		{"admin.addr", c.Admin.Addr != "" && !validAddr(c.Admin.Addr), "must be host:port, or empty to disable"},
		{"admin.addr", c.Admin.Addr != "" && sharePort(c.HTTP.Addr, c.Admin.Addr),
			fmt.Sprintf("%q takes the port of http.addr %q: give the admin listener a port of its own", c.Admin.Addr, c.HTTP.Addr)},
		{"admin.token", c.Admin.Token != "" && strings.TrimSpace(c.Admin.Token) == "",
			"(FORWARDER_ADMIN_TOKEN) is only white space: set the token, or unset it to serve the data paths to loopback clients only"},
		{"admin.max_concurrent_scans", c.Admin.MaxConcurrentScans < 1, "must be at least 1"},
		{"admin.max_connections", c.Admin.MaxConnections < 1, "must be at least 1"},
		{"admin.idle_timeout", c.Admin.IdleTimeout <= 0, "must be positive"},
		{"webhook.tolerance", c.Webhook.Tolerance < 0, "must not be negative (0 disables the check)"},
		{"webhook.tolerance", c.Webhook.Tolerance > 0 && c.Webhook.Tolerance < time.Second, "must be at least 1s (0 disables the check)"},
		{"nats.publish_timeout", c.NATS.PublishTimeout < minPublishTimeout, "must be at least 100ms"},
		{"nats.connect_timeout", c.NATS.ConnectTimeout <= 0, "must be positive"},
		{"nats.ping_interval", c.NATS.PingInterval < minPingInterval, "must be at least 100ms"},
		{"nats.embedded.listen", c.NATS.URL == "" && !validAddr(c.NATS.Embedded.Listen), "must be host:port"},
		{"nats.embedded.store_dir", c.NATS.URL == "" && c.NATS.Embedded.StoreDir == "", "must not be empty"},
		{"nats.embedded.sync_interval", c.NATS.URL == "" && !embedded.ValidSyncInterval(c.NATS.Embedded.SyncInterval), `must be "always" or a positive duration`},
		{"nats.password", c.NATS.User != "" && c.NATS.Password == "", "must be set with nats.user (a user goes with its password)"},
		{"nats.user", c.NATS.User == "" && c.NATS.Password != "", "must be set with nats.password (a password goes with its user)"},
		{"nats.tls.key_file", (c.NATS.TLS.CertFile == "") != (c.NATS.TLS.KeyFile == ""), "cert_file and key_file go together"},
		{"stream.name", !validStreamName(c.Stream.Name), "must be non-empty without spaces, dots, * or >"},
		{"stream.subject_prefix", zautic.ValidateSubjectTokens(c.Stream.SubjectPrefix) != nil, "must be dot-separated tokens of [A-Za-z0-9_-]"},
		{"stream.max_age", c.Stream.MaxAge < 0, "must not be negative"},
		{"stream.duplicate_window", c.Stream.DuplicateWindow <= 0, "must be positive"},
		{"stream.duplicate_window", c.Stream.MaxAge > 0 && c.Stream.DuplicateWindow > c.Stream.MaxAge, "must not exceed stream.max_age"},
		{"stream.replicas", c.Stream.Replicas < 1 || c.Stream.Replicas > 5, "must be 1 to 5"},
		{"stream.max_bytes", c.Stream.MaxBytes < 0, "must not be negative (0 is unlimited)"},
		{"dedup.bucket", !validBucketName(c.Dedup.Bucket), "must be non-empty [A-Za-z0-9_-]"},
		{"dedup.ttl", c.Dedup.TTL < 0, "must not be negative"},
		{"dedup.ttl", c.Dedup.TTL > 0 && c.Dedup.TTL < c.Webhook.Tolerance, "must be at least webhook.tolerance (or 0), so that a request replayed while its signature is still accepted is still a duplicate"},
		{"dedup.key", c.Dedup.Key != DedupKeyDelivery && c.Dedup.Key != DedupKeyEvent, `must be "delivery" or "event"`},
		{"dedup.replicas", c.Dedup.Replicas < 1 || c.Dedup.Replicas > 5, "must be 1 to 5"},
		{"dedup.repair_window", c.Dedup.RepairWindow < 0, "must not be negative (0 turns the repair off)"},
		{"dedup.repair_max", c.Dedup.RepairMax <= 0, "must be positive"},
		{"dedup.max_bytes", c.Dedup.MaxBytes < 0, "must not be negative (0 is unlimited)"},
		{"dedup.max_pending_marks", c.Dedup.MaxPendingMarks < 1 || c.Dedup.MaxPendingMarks > maxPendingMarks, "must be 1 to 1000000"},
		{"quarantine.stream", c.Quarantine.Enabled && (!validStreamName(c.Quarantine.Stream) || c.Quarantine.Stream == c.Stream.Name), "must be a stream name other than stream.name"},
		{"quarantine.subject_prefix", c.Quarantine.Enabled && zautic.ValidateSubjectTokens(c.Quarantine.SubjectPrefix) != nil, "must be dot-separated tokens of [A-Za-z0-9_-]"},
		{"quarantine.subject_prefix", c.Quarantine.Enabled && quarantine.SubjectsOverlap(c.Quarantine.SubjectPrefix, c.Stream.SubjectPrefix), "must not overlap stream.subject_prefix: nothing unverified may appear under it"},
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
	return c.validateRouting()
}

func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

// sharePort reports whether two listen addresses would take one port: the
// same port on the same host, or on hosts of which one is every interface
// (an empty host, 0.0.0.0, ::). Port 0 asks for a free port and never
// conflicts. Host names are compared as written: localhost and 127.0.0.1
// are not known to be the same here.
func sharePort(a, b string) bool {
	hostA, portA, errA := net.SplitHostPort(a)
	hostB, portB, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || portA != portB || portA == "0" {
		return false
	}
	everyInterface := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	same := strings.EqualFold(hostA, hostB)
	if ipA, ipB := net.ParseIP(hostA), net.ParseIP(hostB); ipA != nil && ipB != nil {
		same = ipA.Equal(ipB)
	}
	return same || everyInterface(hostA) || everyInterface(hostB)
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
	r.Endpoints = redactEndpoints(c.Endpoints)
	r.NATS.URL = natsconn.RedactURLs(r.NATS.URL)
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
func RedactURLs(list string) string { return natsconn.RedactURLs(list) }

// MemoryBound is the most memory the listeners' limits let the forwarder
// hold: the webhook port's (ingest.HTTPConfig.MemoryBound) plus, when the
// admin listener is on, admin.max_connections connections each holding up
// to http.max_header_bytes of headers and their overhead. Set GOMEMLIMIT at
// or above it, and the pod's memory limit a quarter above GOMEMLIMIT.
func (c Config) MemoryBound() int64 {
	bound := c.HTTP.MemoryBound()
	if c.Admin.Addr != "" {
		bound += c.HTTP.ConnectionsMemory(c.Admin.MaxConnections)
	}
	return bound
}
