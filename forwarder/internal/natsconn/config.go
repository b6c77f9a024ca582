package natsconn

import (
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/embedded"
)

// Config is the nats section: where NATS is (nats.url, or the embedded
// server's section when it is empty), how to authenticate, and the timeouts
// of a connection and of one request.
type Config struct {
	URL            string          `yaml:"url"`
	Name           string          `yaml:"name"`
	PublishTimeout time.Duration   `yaml:"publish_timeout"`
	ConnectTimeout time.Duration   `yaml:"connect_timeout"`
	PingInterval   time.Duration   `yaml:"ping_interval"` // see MaxPingsOutstanding
	CredsFile      string          `yaml:"creds_file"`
	NKeyFile       string          `yaml:"nkey_file"`
	Token          string          `yaml:"token"`
	User           string          `yaml:"user"`
	Password       string          `yaml:"password"`
	TLS            TLSConfig       `yaml:"tls"`
	Embedded       embedded.Config `yaml:"embedded"`
}

// TLSConfig holds file paths for TLS to NATS; cert and key enable mutual TLS.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultConfig returns the nats section's defaults: the embedded server,
// which fsyncs before every PubAck.
func DefaultConfig() Config {
	return Config{
		PublishTimeout: 5 * time.Second,
		ConnectTimeout: 2 * time.Second,
		PingInterval:   5 * time.Second,
		Embedded:       embedded.DefaultConfig(),
	}
}
