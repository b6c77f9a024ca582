package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestEmbeddedServerSyncPolicy starts the embedded nats-server as the
// forwarder does and reads the sync policy back from the server's own
// JetStream configuration: fsync before every PubAck by default, a
// background flush every 2 minutes with sync_interval 2m.
func TestEmbeddedServerSyncPolicy(t *testing.T) {
	tests := []struct {
		name         string
		syncInterval string
		wantAlways   bool
		wantInterval time.Duration
		wantLogged   string
	}{
		{name: "default", syncInterval: DefaultConfig().SyncInterval, wantAlways: true, wantLogged: "always"},
		{name: "interval", syncInterval: "2m", wantAlways: false, wantInterval: 2 * time.Minute, wantLogged: "2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), SyncInterval: tt.syncInterval}
			ns, err := Start(context.Background(), cfg, zaptest.NewLogger(t))
			if err != nil {
				t.Fatalf("start embedded nats-server: %v", err)
			}
			t.Cleanup(func() {
				ns.Shutdown()
				ns.WaitForShutdown()
			})
			jsc := ns.JetStreamConfig()
			if jsc == nil {
				t.Fatal("got no JetStream configuration, want JetStream enabled")
			}
			if jsc.SyncAlways != tt.wantAlways {
				t.Errorf("got SyncAlways %v, want %v", jsc.SyncAlways, tt.wantAlways)
			}
			if !tt.wantAlways && jsc.SyncInterval != tt.wantInterval {
				t.Errorf("got SyncInterval %v, want %v", jsc.SyncInterval, tt.wantInterval)
			}
			if got := SyncInEffect(ns); got != tt.wantLogged {
				t.Errorf("got logged sync_interval %q, want %q", got, tt.wantLogged)
			}
		})
	}
}

func TestParseSyncInterval(t *testing.T) {
	tests := []struct {
		value   string
		want    syncPolicy
		wantErr error
	}{
		{value: "always", want: syncPolicy{Always: true}},
		{value: "Always", want: syncPolicy{Always: true}},
		{value: "2m", want: syncPolicy{Interval: 2 * time.Minute}},
		{value: "10s", want: syncPolicy{Interval: 10 * time.Second}},
		{value: "0s", wantErr: errSyncInterval},
		{value: "-1s", wantErr: errSyncInterval},
		{value: "never", wantErr: errSyncInterval},
		{value: "", wantErr: errSyncInterval},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := parseSyncInterval(tt.value)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
