package test

import (
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestUnmanagedMissingResourcesRefusesToStart: with stream.manage false and
// NATS reachable, missing resources are a configuration error: the process
// exits non-zero with a message naming them.
func TestUnmanagedMissingResourcesRefusesToStart(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_MANAGE"] = "false"
	p := launchForwarder(t, env)
	if code := p.Wait(t, 30*time.Second); code == 0 {
		t.Fatalf("exit code: got 0, want non-zero")
	}
	logs := p.Logs()
	if !strings.Contains(logs, `missing: stream \"ZAUTIC\", KV bucket \"zautic-dedup\"`) || !strings.Contains(logs, "stream.manage is false") {
		t.Errorf("output does not name the missing stream and stream.manage:\n%s", trimmed(logs))
	}
}
