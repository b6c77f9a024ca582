package embedded

// Config is the nats.embedded section: the in-process nats-server used
// when nats.url is empty.
type Config struct {
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"store_dir"`
	// SyncInterval is "always" (fsync before every PubAck) or a duration
	// between background fsyncs; see syncPolicy.
	SyncInterval string `yaml:"sync_interval"`
}

// DefaultConfig returns the section's defaults: the nats port on the
// loopback, ./data, and an fsync before every PubAck.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:4222", StoreDir: "./data", SyncInterval: syncAlways}
}
