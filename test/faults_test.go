package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// loadDeadline bounds the sending part of every load test; a delivery that
// has no 2xx by then fails the test with the reason.
const loadDeadline = 50 * time.Second

// startLoad runs s.Send in the background; the returned function waits for
// its report.
func startLoad(ctx context.Context, s *sender, events []zauticEvent) func() *sendReport {
	reports := make(chan *sendReport, 1)
	go func() { reports <- s.Send(ctx, events) }()
	return func() *sendReport { return <-reports }
}

// waitCount polls counter until it reaches want.
func waitCount(t testing.TB, what string, counter func() int64, want int64) {
	t.Helper()
	natstest.CheckFor(t, loadDeadline, 10*time.Millisecond, func() error {
		if got := counter(); got < want {
			return fmt.Errorf("%s: got %d, want at least %d", what, got, want)
		}
		return nil
	})
}

// requireAllAcked fails unless every delivery got its 2xx and every answer
// on the way was one of allowed, with Retry-After on each 429 and 503.
func requireAllAcked(t testing.TB, r *sendReport, allowed ...int) {
	t.Helper()
	if len(r.Failed) > 0 {
		t.Fatalf("%d deliveries never got a 2xx, e.g. %s", len(r.Failed), r.Failed[0])
	}
	checkStatuses(t, r, allowed...)
}

func checkStatuses(t testing.TB, r *sendReport, allowed ...int) {
	t.Helper()
	if bad := r.UnexpectedStatuses(allowed...); len(bad) > 0 {
		t.Errorf("statuses: got %v, want only %v (all: %v)", bad, allowed, r.Statuses)
	}
	if r.NoRetryAfter > 0 {
		t.Errorf("%d answers 429 or 503 without Retry-After, want 0", r.NoRetryAfter)
	}
	t.Logf("answers by status %v, 2xx by outcome %v, transport errors %d, slowest refusal %s",
		r.Statuses, r.Outcomes, r.TransportErrors, r.SlowestRefusal)
}

// assertExactlyOnce checks that the stream holds one message for each event
// and nothing else.
func assertExactlyOnce(t testing.TB, js jetstream.JetStream, events []zauticEvent) {
	t.Helper()
	msgs := streamMessages(t, js, "ZAUTIC")
	counts := countByEventID(msgs)
	for _, ev := range events {
		if counts[ev.ID] != 1 {
			t.Fatalf("event %s: got %d messages, want 1", ev.ID, counts[ev.ID])
		}
	}
	if len(msgs) != len(events) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(events))
	}
}

// assertAckedOnce checks that every acknowledged event is in the stream
// exactly once, and that no event is in it twice.
func assertAckedOnce(t testing.TB, js jetstream.JetStream, acked map[string]bool) {
	t.Helper()
	counts := countByEventID(streamMessages(t, js, "ZAUTIC"))
	for id := range acked {
		if counts[id] != 1 {
			t.Fatalf("event %s was answered 2xx: got %d messages, want 1", id, counts[id])
		}
	}
	for id, n := range counts {
		if n > 1 {
			t.Fatalf("event %s: got %d messages, want at most 1", id, n)
		}
	}
}

// TestNATSRestartsUnderRetryingLoad stops and restarts the nats-server twice
// (same store, same port) while a retrying sender delivers 5,000 events at
// concurrency 32: every refused delivery is retried and forwarded, and none
// is stored twice.
func TestNATSRestartsUnderRetryingLoad(t *testing.T) {
	storeDir := t.TempDir()
	ns := natstest.Start(t, storeDir, 0)
	port := natsPort(ns)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)

	events := newEvents("restart", 5000)
	s := newSender(p.WebhookURL)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	wait := startLoad(ctx, s, events)
	for _, at := range []int64{1200, 2400} {
		waitCount(t, "acknowledged deliveries", s.Acked, at)
		natstest.Stop(ns)
		// The restart waits until the outage has been felt by the sender.
		waitCount(t, "refused attempts", s.Refused, s.Refused()+int64(s.Concurrency))
		ns = natstest.Start(t, storeDir, port)
	}
	r := wait()
	requireAllAcked(t, r, http.StatusOK, http.StatusServiceUnavailable)
	_, js := connect(t, ns.ClientURL())
	assertExactlyOnce(t, js, events)
}

// TestForwarderKilledUnderLoad kills the forwarder with SIGKILL while a
// retrying sender delivers, and starts it again on the same address: events
// whose PubAck came before the kill but whose KV mark did not are caught by
// the stream's duplicate window when retried.
func TestForwarderKilledUnderLoad(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_HTTP_ADDR"] = freeAddr(t)
	p := startForwarder(t, env)
	p.WaitReady(t)

	events := newEvents("kill", 2000)
	s := newSender(p.WebhookURL)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	wait := startLoad(ctx, s, events)
	waitCount(t, "acknowledged deliveries", s.Acked, int64(len(events)/3))
	p.Kill()
	waitCount(t, "refused attempts", s.Refused, s.Refused()+int64(s.Concurrency))
	startForwarder(t, env)
	r := wait()
	requireAllAcked(t, r, http.StatusOK, http.StatusServiceUnavailable)
	_, js := connect(t, ns.ClientURL())
	assertExactlyOnce(t, js, events)
}

// TestCrashBetweenPubAckAndMark replays the state a kill -9 leaves between
// the PubAck and the KV write: the event is in the stream, the delivery is
// not in the bucket. The retry is answered 200 and not stored again.
func TestCrashBetweenPubAckAndMark(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	ev := newEvents("crash", 1)[0]
	msg := &nats.Msg{Subject: "zautic." + ev.Type, Data: ev.Body, Header: nats.Header{}}
	msg.Header.Set(zautic.MessageIDHeader, ev.ID)
	msg.Header.Set(zautic.MessageEventIDHeader, ev.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish as the crashed forwarder did: %v", err)
	}

	got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
	if got.Status != http.StatusOK || got.Body["status"] != "duplicate" {
		t.Fatalf("retry after the crash: got %d %v, want 200 duplicate", got.Status, got.Body)
	}
	assertExactlyOnce(t, js, []zauticEvent{ev})
}

// TestDuplicateStorm delivers 1,000 events three times each at the same
// moment on separate connections: one message per event, and every copy is
// answered 2xx or a retryable status, never another 4xx.
func TestDuplicateStorm(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)

	events := newEvents("storm", 1000)
	s := newSender(p.WebhookURL)
	s.Copies = 3
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	r := s.Send(ctx, events)
	requireAllAcked(t, r, http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable)
	_, js := connect(t, ns.ClientURL())
	assertExactlyOnce(t, js, events)
}

// TestOverloadAnswers429 holds every slot of http.max_in_flight with
// requests whose body is still arriving, then sends more: the extra ones are
// answered 429 with Retry-After before their body is read, none 5xx, and
// once the slots free up every delivery is forwarded once.
func TestOverloadAnswers429(t *testing.T) {
	const maxInFlight = 4
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_HTTP_MAX_IN_FLIGHT"] = strconv.Itoa(maxInFlight)
	p := startForwarder(t, env)
	p.WaitReady(t)

	held := newEvents("held", maxInFlight)
	var holders []*halfSent
	for _, ev := range held {
		holders = append(holders, sendHalf(t, p.WebhookURL, ev))
	}
	waitInFlight(t, p, maxInFlight)

	// Headers alone, declaring a body that never comes: the 429 cannot
	// depend on reading it.
	probe := openRaw(t, newRequest(t, p.WebhookURL, webhook{body: []byte("{}")}), 512<<10)
	got, err := probe.response(20 * time.Second)
	if err != nil || got.Status != http.StatusTooManyRequests || got.RetryAfter == "" || got.Body["error"] == nil {
		t.Fatalf("request beyond max_in_flight: got %d %v (Retry-After %q, err %v), want 429 with Retry-After and a reason",
			got.Status, got.Body, got.RetryAfter, err)
	}

	events := newEvents("overload", 300)
	s := newSender(p.WebhookURL)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	wait := startLoad(ctx, s, events)
	waitCount(t, "refused attempts", s.Refused, 2*int64(s.Concurrency))
	for i, h := range holders {
		got, err := h.finish()
		if err != nil || got.Status != http.StatusOK {
			t.Fatalf("held request %d: got %d %v (err %v), want 200", i, got.Status, got.Body, err)
		}
	}
	r := wait()
	requireAllAcked(t, r, http.StatusOK, http.StatusTooManyRequests)
	if r.Statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("got no 429 with %d senders and max_in_flight %d, want some", s.Concurrency, maxInFlight)
	}
	_, js := connect(t, ns.ClientURL())
	assertExactlyOnce(t, js, append(held, events...))
}

// readyz returns the status and body of /readyz.
func readyz(p *forwarderProcess) (int, string, error) {
	resp, err := http.Get(p.AdminURL + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitNotReady polls /readyz until it answers 503 with a reason that
// contains every one of want.
func waitNotReady(t testing.TB, p *forwarderProcess, want ...string) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		status, body, err := readyz(p)
		if err != nil {
			return err
		}
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz: got %d %s, want 503", status, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("readyz reason %s: want it to mention %q", body, w)
			}
		}
		return nil
	})
}

// requireHealthy checks /healthz: the process serves even when not ready.
func requireHealthy(t testing.TB, p *forwarderProcess) {
	t.Helper()
	resp, err := http.Get(p.AdminURL + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: got %d, want 200", resp.StatusCode)
	}
}

// requirePublished sends ev and checks that it is answered 200 published and
// stored once.
func requirePublished(t testing.TB, p *forwarderProcess, js jetstream.JetStream, ev zauticEvent) {
	t.Helper()
	got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
	if got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("valid event %s: got %d %v, want 200 published", ev.ID, got.Status, got.Body)
	}
	if n := countByEventID(streamMessages(t, js, "ZAUTIC"))[ev.ID]; n != 1 {
		t.Fatalf("event %s: got %d messages, want 1", ev.ID, n)
	}
}

// TestNATSUnreachableAtStart starts the forwarder before its nats-server:
// it serves, is not ready and says why, answers webhooks 503 with
// Retry-After at once, and forwards once the server comes up on that port,
// without a restart.
func TestNATSUnreachableAtStart(t *testing.T) {
	addr := freeAddr(t)
	env := forwarderEnv("nats://" + addr)
	// A webhook that waited for NATS would take this long to answer.
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "30s"
	p := startForwarder(t, env)

	requireHealthy(t, p)
	waitNotReady(t, p, "nats not ready")
	ev := newEvents("unreachable", 2)
	start := time.Now()
	got := send(t, p.WebhookURL, webhook{body: ev[0].Body, deliveryID: ev[0].DeliveryID})
	took := time.Since(start)
	if got.Status != http.StatusServiceUnavailable || got.RetryAfter == "" || got.Body["error"] == nil {
		t.Fatalf("webhook without NATS: got %d %v (Retry-After %q), want 503 with Retry-After and a reason", got.Status, got.Body, got.RetryAfter)
	}
	if took > 10*time.Second {
		t.Fatalf("webhook without NATS answered after %s, want at once rather than after nats.publish_timeout (30s)", took)
	}

	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	ns := natstest.Start(t, "", port)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())
	requirePublished(t, p, js, ev[0])
	requirePublished(t, p, js, ev[1])
}

// TestUnmanagedResourcesMissing runs with stream.manage false, starting
// before NATS (had NATS answered at start, a missing stream would stop the
// start: TestUnmanagedMissingResourcesRefusesToStart). Once NATS is up
// without the stream and bucket: not ready, an error log naming both, 503s;
// once an operator creates them, ready and forwarding, the quarantine being
// optional: until it exists a mis-signed request is answered 503 (not kept),
// then 400 quarantined.
func TestUnmanagedResourcesMissing(t *testing.T) {
	addr := freeAddr(t)
	env := forwarderEnv("nats://" + addr)
	env["FORWARDER_STREAM_MANAGE"] = "false"
	p := startForwarder(t, env)
	waitNotReady(t, p, "nats not ready")
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	ns := natstest.Start(t, "", port)

	waitNotReady(t, p, `stream \"ZAUTIC\"`, `KV bucket \"zautic-dedup\"`)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for line := range strings.Lines(p.Logs()) {
			if strings.Contains(line, `"level":"error"`) && strings.Contains(line, "ZAUTIC") && strings.Contains(line, "zautic-dedup") {
				return nil
			}
		}
		return fmt.Errorf("no error log naming the stream ZAUTIC and the bucket zautic-dedup")
	})
	ev := newEvents("unmanaged", 1)[0]
	if got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID}); got.Status != http.StatusServiceUnavailable {
		t.Fatalf("webhook while the stream is missing: got %d %v, want 503", got.Status, got.Body)
	}

	_, js := connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "zautic-dedup"}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	// The quarantine is optional: ready without it, and a rejection it cannot
	// keep is answered 503 so that Zautic retries it.
	p.WaitReady(t)
	requirePublished(t, p, js, ev)
	misSigned := func() response {
		body := sampleEvent("evt_unmanaged_forged", "message.failed")
		return send(t, p.WebhookURL, webhook{body: body, deliveryID: "dlv_unmanaged_forged",
			signature: zautic.Sign([]byte("not-the-secret"), time.Now().Unix(), body)})
	}
	if got := misSigned(); got.Status != http.StatusServiceUnavailable || got.Body["quarantined"] != false || got.RetryAfter == "" {
		t.Fatalf("mis-signed while the quarantine is missing: got %d %v (Retry-After %q), want 503 quarantined:false with Retry-After", got.Status, got.Body, got.RetryAfter)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC_QUARANTINE", Subjects: []string{"zautic-quarantine.>"}}); err != nil {
		t.Fatalf("create quarantine stream: %v", err)
	}
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if got := misSigned(); got.Status != http.StatusBadRequest || got.Body["quarantined"] != true {
			return fmt.Errorf("mis-signed once the quarantine exists: got %d %v, want 400 quarantined:true", got.Status, got.Body)
		}
		return nil
	})
}

// TestNATSLostMidFlight silences the network between the forwarder and NATS
// (no reset, no close) while a retrying sender delivers: requests in flight
// are answered 503 within nats.publish_timeout, never 2xx without a PubAck,
// and after the partition heals every event is stored exactly once.
func TestNATSLostMidFlight(t *testing.T) {
	const publishTimeout = time.Second
	ns := natstest.Start(t, "", 0)
	proxy := startStallProxy(t, ns.Addr().String())
	env := forwarderEnv(proxy.URL())
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = publishTimeout.String()
	p := startForwarder(t, env)
	p.WaitReady(t)

	events := newEvents("partition", 600)
	s := newSender(p.WebhookURL)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	wait := startLoad(ctx, s, events)
	waitCount(t, "acknowledged deliveries", s.Acked, 150)
	proxy.Stall()
	acked := s.Acked()
	waitCount(t, "refused attempts", s.Refused, s.Refused()+2*int64(s.Concurrency))
	ackedDuringStall := s.Acked() - acked
	proxy.Resume()
	r := wait()

	requireAllAcked(t, r, http.StatusOK, http.StatusServiceUnavailable)
	// Requests already past their publish when the stall began may still be
	// answered; more than one round of them would be 2xx without a PubAck.
	if ackedDuringStall > int64(s.Concurrency) {
		t.Errorf("%d deliveries answered 2xx while NATS was silent, want at most the %d in flight", ackedDuringStall, s.Concurrency)
	}
	// Generous for a loaded machine: the point is that nothing hangs.
	if limit := publishTimeout + 5*time.Second; r.SlowestRefusal > limit {
		t.Errorf("slowest 503 took %s, want within nats.publish_timeout (%s) plus slack", r.SlowestRefusal, publishTimeout)
	}
	_, js := connect(t, ns.ClientURL())
	assertExactlyOnce(t, js, events)
}
