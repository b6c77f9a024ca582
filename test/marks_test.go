package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestKilledWithMarksPending kills the forwarder with SIGKILL in the middle
// of a burst, right after a run of answers (whose marks, which the answers
// do not wait for, may still be in flight), lets the stream's duplicate
// window close, and retries every event through a new process: each is in
// the stream once, the marks lost with the process having been recreated by
// the repair at start.
func TestKilledWithMarksPending(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)

	events := newEvents("killmarks", 2000)
	s := newSender(p.WebhookURL)
	burst, stopBurst := context.WithCancel(context.Background())
	wait := startLoad(burst, s, events)
	waitCount(t, "acknowledged deliveries", s.Acked, int64(len(events)/2))
	p.Kill()
	stopBurst() // the sender gives up on the dead process; the retries below redeliver
	acked := len(wait().Acked)

	_, js := connect(t, ns.ClientURL())
	t.Logf("answered 2xx before the kill: %d; marks in the bucket after it: %d", acked, bucketKeys(t, js))
	waitDuplicateWindowClosed(t, js)

	again := startForwarder(t, env)
	again.WaitReady(t)
	waitLogLine(t, again, `"msg":"mark repair finished"`)
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	requireAllAcked(t, newSender(again.WebhookURL).Send(ctx, events), http.StatusOK)
	requireEachOnce(t, js, events)
}

// TestFrozenNodeUnknownPublishRepaired freezes the nats-server (a process
// of its own, stopped with SIGSTOP) in the middle of a burst spread over two
// forwarders, for longer than stream.duplicate_window. The publishes caught
// in its socket time out, are answered 503 with no mark, and are stored when
// the server is continued. Every event is then retried after the window has
// closed, as a sender's backoff does: each is in the stream once, because
// the timed-out publishes asked for the mark repair, which ran as soon as
// the server answered again, with no reconnect and no restart.
func TestFrozenNodeUnknownPublishRepaired(t *testing.T) {
	const window = 2 * time.Second
	nsp := startNATSProcess(t)
	env := forwarderEnv(nsp.URL)
	env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = window.String()
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "1s"
	replicas := []*forwarderProcess{startForwarder(t, env), startForwarder(t, env)}
	for _, p := range replicas {
		p.WaitReady(t)
	}

	// Whether a freeze catches a publish in flight (rather than only
	// lookups) depends on the moment: freeze again, a bounded number of
	// times, until one did. On a machine busy with other tests three
	// freezes in a row have caught lookups only, so up to six.
	var events []zauticEvent
	var answered, timedOut atomic.Int64
	for round := 0; round < maxFreezes && timedOut.Load() == 0; round++ {
		batch := newEvents(fmt.Sprintf("frozen%d", round), 600)
		events = append(events, batch...)
		freezeDuringBurst(t, nsp, replicas, batch, window, &answered, &timedOut)
	}
	if timedOut.Load() == 0 {
		t.Fatalf("no publish timed out during %d freezes: the test shows nothing", maxFreezes)
	}
	// The sender's backoff: every retry comes after the window of whatever
	// the server stored when it was continued.
	time.Sleep(window + time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	requireAllAcked(t, newSender(replicas[0].WebhookURL, replicas[1].WebhookURL).Send(ctx, events),
		http.StatusOK, http.StatusServiceUnavailable)
	_, js := connect(t, nsp.URL)
	requireEachOnce(t, js, events)
	t.Logf("%d attempts answered during the burst, %d of them 503 after a publish timeout", answered.Load(), timedOut.Load())
}

// maxFreezes bounds the freezes of TestFrozenNodeUnknownPublishRepaired.
const maxFreezes = 6

// freezeDuringBurst sends events once each through the replicas and
// freezes the server in the middle, for longer than the window.
func freezeDuringBurst(t *testing.T, nsp *natsProcess, replicas []*forwarderProcess, events []zauticEvent, window time.Duration, answered, timedOut *atomic.Int64) {
	t.Helper()
	start := answered.Load()
	burstDone := make(chan struct{})
	go func() {
		defer close(burstDone)
		sendOnce(t, replicas, events, 32, answered, timedOut)
	}()
	waitCount(t, "answered attempts", answered.Load, start+int64(len(events)/4))
	nsp.Freeze(t)
	for _, p := range replicas {
		waitNotReady(t, p)
	}
	// The freeze must outlast the window: what the frozen server takes in
	// is stored after every earlier copy's window has closed.
	time.Sleep(window + time.Second)
	nsp.Continue(t)
	<-burstDone
	for _, p := range replicas {
		p.WaitReady(t)
	}
}

// sendOnce delivers each event once, no retry, spread over the replicas
// with concurrency requests in flight; it counts the answers, and the 503s
// that came after the publish timeout (the server took the publish, or
// not: nobody knows).
func sendOnce(t testing.TB, replicas []*forwarderProcess, events []zauticEvent, concurrency int, answered, timedOut *atomic.Int64) {
	client := &http.Client{Timeout: 15 * time.Second}
	queue := make(chan int)
	var workers sync.WaitGroup
	for range concurrency {
		workers.Go(func() {
			for i := range queue {
				ev := events[i]
				req := newRequest(t, replicas[i%len(replicas)].WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
				r, err := do(t, client, req)
				if err != nil {
					continue
				}
				answered.Add(1)
				if reason, _ := r.Body["error"].(string); r.Status == http.StatusServiceUnavailable && strings.Contains(reason, "publish failed") {
					timedOut.Add(1)
				}
			}
		})
	}
	for i := range events {
		queue <- i
	}
	close(queue)
	workers.Wait()
}

// requireEachOnce fails unless every event is in the stream exactly once,
// whatever else the stream holds.
func requireEachOnce(t testing.TB, js jetstream.JetStream, events []zauticEvent) {
	t.Helper()
	counts := countByEventID(streamMessages(t, js, "ZAUTIC"))
	var doubled []string
	for _, ev := range events {
		switch n := counts[ev.ID]; {
		case n == 0:
			t.Fatalf("event %s: got no message, want 1", ev.ID)
		case n > 1:
			doubled = append(doubled, ev.ID)
		}
	}
	if len(doubled) > 0 {
		t.Fatalf("%d events stored more than once, e.g. %s", len(doubled), doubled[0])
	}
}

// bucketKeys counts the marks in the dedup bucket.
func bucketKeys(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "zautic-dedup")
	if err != nil {
		t.Fatalf("dedup bucket: %v", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatalf("list marks: %v", err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// waitLogLine waits until the process has logged a line containing text.
func waitLogLine(t testing.TB, p *forwarderProcess, text string) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(p.Logs(), text) {
			return errors.New("no line with " + text + " yet")
		}
		return nil
	})
}
