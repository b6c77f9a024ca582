package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// replaceStreamSubjects is "nats stream rm ZAUTIC" then "nats stream add
// ZAUTIC --subjects <subjects>".
func replaceStreamSubjects(t *testing.T, js jetstream.JetStream, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "ZAUTIC"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: subjects, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
}

// TestStreamChangedUnderTheForwarder replaces the stream with one on other
// subjects while the real binary runs. With stream.manage the first failed
// publish wakes the check, which puts the subjects back (logging both values
// at error level), and Zautic's next retry is published; without it
// /readyz drops to 503 naming the difference, instead of staying 200 while
// every webhook gets 503.
func TestStreamChangedUnderTheForwarder(t *testing.T) {
	tests := []struct {
		name   string
		manage bool
	}{
		{"stream.manage true", true},
		{"stream.manage false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			_, js := connect(t, ns.ClientURL())
			env := forwarderEnv(ns.ClientURL())
			if !tt.manage {
				env["FORWARDER_STREAM_MANAGE"] = "false"
				env["FORWARDER_QUARANTINE_ENABLED"] = "false" // this test is about the event stream
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"}}); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "zautic-dedup"}); err != nil {
					t.Fatal(err)
				}
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			replaceStreamSubjects(t, js, "other.>")

			ev := newEvents("drift", 1)[0]
			if tt.manage {
				// Zautic retries until a 2xx; the check must not wait for its period.
				start := time.Now()
				natstest.CheckFor(t, 3*time.Second, 100*time.Millisecond, func() error {
					got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
					if got.Status != http.StatusOK {
						return fmt.Errorf("got %d %v", got.Status, got.Body)
					}
					return nil
				})
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("published after %s, want within the 3s before the periodic check", took)
				}
				if logs := p.Logs(); !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "subjects [other.>] -> [zautic.>]") {
					t.Errorf("no error log naming both subject lists:\n%s", trimmed(logs))
				}
				assertExactlyOnce(t, js, []zauticEvent{ev})
				return
			}
			got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
			if got.Status != http.StatusServiceUnavailable {
				t.Errorf("webhook to a stream on other subjects: got %d %v, want 503", got.Status, got.Body)
			}
			waitNotReady(t, p, "subjects [other.", "do not cover zautic.")
		})
	}
}

// TestReplicasWithDifferentStreamSettings runs two replicas on one stream
// with different stream.subject_prefix, as in a rolling change: each undoes
// the other's subjects, and each says so at error level, naming both values.
func TestReplicasWithDifferentStreamSettings(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	old := startForwarder(t, forwarderEnv(ns.ClientURL()))
	old.WaitReady(t)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_SUBJECT_PREFIX"] = "other"
	next := startForwarder(t, env)
	next.WaitReady(t)
	tests := []struct {
		name string
		p    *forwarderProcess
		want string
	}{
		{"the old replica", old, "subjects [other.>] -> [zautic.>]"},
		{"the new replica", next, "subjects [zautic.>] -> [other.>]"},
	}
	for _, tt := range tests {
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			for line := range strings.Lines(tt.p.Logs()) {
				if strings.Contains(line, `"level":"error"`) && strings.Contains(line, "replicas must share the stream settings") && strings.Contains(line, tt.want) {
					return nil
				}
			}
			return fmt.Errorf("%s logged no error naming %s", tt.name, tt.want)
		})
	}
}
