package forwarder

import "testing"

// TestMemoryBoundCountsTheAdminPort: the bound logged at start holds the
// admin listener's connections too, and only while it is on.
func TestMemoryBoundCountsTheAdminPort(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   int64
	}{
		{"defaults: 144 MiB of the webhook port + 64 x (16 KiB + 32 KiB)", func(*Config) {}, 144<<20 + 3<<20},
		{"admin listener off", func(c *Config) { c.Admin.Addr = "" }, 144 << 20},
		{"fewer admin connections", func(c *Config) { c.Admin.MaxConnections = 16 }, 144<<20 + 768<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			if got := cfg.MemoryBound(); got != tt.want {
				t.Errorf("got %d KiB, want %d KiB", got>>10, tt.want>>10)
			}
		})
	}
}
