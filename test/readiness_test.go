package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// requireUnavailable sends ev and checks that it is answered 503.
func requireUnavailable(t testing.TB, p *forwarderProcess, ev zauticEvent) {
	t.Helper()
	if got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID}); got.Status != http.StatusServiceUnavailable {
		t.Fatalf("webhook %s: got %d %v, want 503", ev.ID, got.Status, got.Body)
	}
}

// TestNotReadyWhenPublishDenied connects as a user who may not publish to
// the stream's subjects: the connection and the resources are fine, yet no
// event can be stored, so the forwarder is not ready, names the denied
// subject, and answers webhooks 503.
func TestNotReadyWhenPublishDenied(t *testing.T) {
	ns := natstest.Start(t, "", 0, func(o *server.Options) {
		o.Users = []*server.User{{Username: "fwd", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"zautic.>"}},
		}}}
	})
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_NATS_USER"], env["FORWARDER_NATS_PASSWORD"] = "fwd", "pw"
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "1s"
	p := startForwarder(t, env)

	waitNotReady(t, p, "cannot store events", "permission denied", `zautic._readiness`)
	requireUnavailable(t, p, newEvents("denied", 1)[0])
}

// TestReadinessFollowsStorage fills the nats-server's JetStream storage:
// the forwarder turns not ready naming the cause and answers 503 (its pod
// leaves the Service), and once room is made it is ready and forwards
// again without a restart.
func TestReadinessFollowsStorage(t *testing.T) {
	ns := natstest.Start(t, "", 0, func(o *server.Options) { o.JetStreamMaxStore = 1 << 20 })
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_QUARANTINE_ENABLED"] = "false" // its 64 MiB reservation does not fit
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())
	events := newEvents("storage", 2)
	requirePublished(t, p, js, events[0])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fillStorage(ctx, js, "zautic.fill", 100); err != nil {
		t.Fatal(err)
	}
	waitNotReady(t, p, "cannot store events", "insufficient resources")
	requireUnavailable(t, p, events[1])

	stream, err := js.Stream(ctx, "ZAUTIC")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject("zautic.fill")); err != nil {
		t.Fatalf("purge: %v", err)
	}
	p.WaitReady(t)
	requirePublished(t, p, js, events[1])
}

// fillStorage publishes 32 KiB messages to subject until JetStream refuses
// one for want of storage, at most max of them.
func fillStorage(ctx context.Context, js jetstream.JetStream, subject string, max int) error {
	body := make([]byte, 32<<10)
	for i := range max {
		_, err := js.Publish(ctx, subject, body)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
		case errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "insufficient resources"):
			return nil
		default:
			return fmt.Errorf("publish %d: got %w, want success or insufficient resources", i, err)
		}
	}
	return fmt.Errorf("%d messages of 32 KiB stored without filling the storage", max)
}

// TestHungNATSServerIsLeft freezes the nats-server process (SIGSTOP: its
// sockets stay open, nothing answers) under two forwarders. The one that
// pings every second leaves the server with both its connections (each is
// stale after 2 unanswered pings) and says so; the one that pings every minute is still
// connected, and its reason names the server not answering, not a stream
// to create. Once the server continues, both are ready and forward again.
func TestHungNATSServerIsLeft(t *testing.T) {
	ns := startNATSProcess(t)
	start := func(pingInterval string) *forwarderProcess {
		env := forwarderEnv(ns.URL)
		env["FORWARDER_NATS_PING_INTERVAL"] = pingInterval
		env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "1s"
		p := startForwarder(t, env)
		p.WaitReady(t)
		return p
	}
	pinging, quiet := start("1s"), start("1m")

	ns.Freeze(t)
	// Stale after 2 unanswered pings of 1s: within 3s, plus the time a
	// loaded machine takes to notice.
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		connected, err := metricValue(pinging.AdminURL, "zautic_forwarder_nats_connected")
		if err != nil {
			return err
		}
		if connected != 0 {
			return errors.New("still connected to the frozen server")
		}
		return nil
	})
	waitNotReady(t, pinging, "nats not ready")
	// The admin connection pings as the webhook path's does, and leaves
	// too: a lookup says so instead of waiting on the frozen server.
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		status, body := getAdmin(t, pinging, "/deliveries/evt_hung_0")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "the admin connection is") {
			return fmt.Errorf("lookup: got %d %s, want 503 naming the admin connection", status, body)
		}
		return nil
	})
	waitNotReady(t, quiet, "not answering within 1s", `look up stream \"ZAUTIC\"`)
	if _, body, err := readyz(quiet); err == nil && strings.Contains(body, "create stream") {
		t.Errorf("readiness reason %s: the stream exists, want no attempt to create it", body)
	}

	ns.Continue(t)
	_, js := connect(t, ns.URL)
	events := newEvents("hung", 2)
	for i, p := range []*forwarderProcess{pinging, quiet} {
		p.WaitReady(t)
		requirePublished(t, p, js, events[i])
	}
}
