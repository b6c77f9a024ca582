//go:build unix

package forwarder

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestNotifyHangup delivers a real SIGHUP to this process through
// NotifyHangup; while registered, the signal does not end the test binary.
func TestNotifyHangup(t *testing.T) {
	ch, stop := NotifyHangup()
	defer stop()
	fatalIf(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	select {
	case sig := <-ch:
		if sig != syscall.SIGHUP {
			t.Errorf("got %v, want SIGHUP", sig)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP not delivered within 10s")
	}
}
