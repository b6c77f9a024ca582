package forwarder

import (
	"io"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// ErrNoSecret is returned when no webhook secret is configured anywhere.
var ErrNoSecret = secrets.ErrNoSecret

// Option changes how Start builds the service.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
}

// WithTracerProvider makes the handler trace each request with tp's tracer
// and carry the trace context into every published message. Without it (or
// with a nil tp) nothing is traced and the request path pays nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// NewLogger builds the process logger of the log section, writing to w:
// JSON with RFC 3339 times by default, or a console encoder for humans.
func NewLogger(cfg telemetry.LogConfig, w io.Writer) (*zap.Logger, error) {
	return telemetry.NewLogger(cfg, w)
}

// KeyID names a secret without revealing it: the first 8 hex characters of
// its SHA-256, the key_id label of zautic_forwarder_signatures_verified_total.
func KeyID(secret []byte) string { return secrets.KeyID(secret) }

// SecretKeyIDs reads the secrets of cfg as Start does and returns their key
// ids, in order, or the error that would stop it: ErrNoSecret, or a secret
// file that cannot be read.
func SecretKeyIDs(cfg secrets.WebhookConfig) ([]string, error) { return secrets.KeyIDsOf(cfg) }

// ingestConfig is what the webhook handler reads.
func (c Config) ingestConfig() ingest.Config {
	return ingest.Config{
		HTTP: c.HTTP, Tolerance: c.Webhook.Tolerance, DedupTTL: c.Dedup.TTL, Stream: c.Stream.Name, SubjectPrefix: c.Stream.SubjectPrefix,
		DedupKey: c.Dedup.Key, Bucket: c.Dedup.Bucket, Allow: c.Events.Allow, PublishTimeout: c.NATS.PublishTimeout,
		Endpoint: c.defaultEndpoint(),
	}
}

// storeConfig is what the store reads.
func (c Config) storeConfig() store.Config {
	q := c.Quarantine
	return store.Config{
		NATS: c.NATS, Stream: c.Stream, Dedup: c.Dedup, MaxBodyBytes: c.HTTP.MaxBodyBytes,
		Quarantine: store.QuarantineStream{Enabled: q.Enabled, Stream: q.Stream, SubjectPrefix: q.SubjectPrefix, MaxAge: q.MaxAge, MaxBytes: q.MaxBytes},
	}
}
