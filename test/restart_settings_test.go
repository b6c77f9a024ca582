package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestRestartChangesNoSettings starts the forwarder three times against
// one NATS server with the same configuration: the stream, the bucket and
// the quarantine it created at the first start are as it wants them, so no
// later start warns that it changed a setting (the server stores a default
// in place of a 0, which must not read as a change).
func TestRestartChangesNoSettings(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	for start := 1; start <= 3; start++ {
		p := startForwarder(t, forwarderEnv(ns.ClientURL()))
		p.WaitReady(t)
		natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(p.Logs(), "quarantine available") {
				return fmt.Errorf("start %d: the quarantine is not available yet", start)
			}
			return nil
		})
		if logs := p.Logs(); strings.Contains(logs, "settings changed") {
			t.Errorf("start %d warned of a settings change:\n%s", start, trimmed(logs))
		}
		p.Kill()
	}
}
