package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestMarkRepairAfterCrash leaves an event in the stream without its mark,
// as a forwarder killed between the PubAck and the KV write does, and
// re-sends the delivery after the stream's duplicate window has closed, to a
// forwarder started afterwards. With the repair (the default) the mark is
// back before the retry: duplicate, one message. Without it
// (dedup.repair_window 0) nothing but the window could have caught the
// retry, and the event is stored twice: what the repair buys.
func TestMarkRepairAfterCrash(t *testing.T) {
	tests := []struct {
		name         string
		repairWindow string
		wantOutcome  string
		wantCopies   int
	}{
		{name: "repair", repairWindow: "15m", wantOutcome: "duplicate", wantCopies: 1},
		{name: "repair off", repairWindow: "0", wantOutcome: "published", wantCopies: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			env := forwarderEnv(ns.ClientURL())
			env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = "1s"
			env["FORWARDER_DEDUP_REPAIR_WINDOW"] = tt.repairWindow
			crashed := startForwarder(t, env)
			crashed.WaitReady(t) // it created the stream with the short window
			crashed.Kill()

			_, js := connect(t, ns.ClientURL())
			ev := newEvents("repair", 1)[0]
			// Keyed as the forwarder keys it: the event id (dedup.key event).
			publishWithID(t, js, ev.Type, ev.Body, ev.ID, ev.ID)
			waitDuplicateWindowClosed(t, js)

			p := startForwarder(t, env)
			p.WaitReady(t)
			if tt.wantCopies == 1 {
				waitRepairLine(t, p, []string{ev.ID})
			}
			got := send(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
			if got.Status != http.StatusOK || got.Body["status"] != tt.wantOutcome {
				t.Fatalf("retry after the window: got %d %v, want 200 %s", got.Status, got.Body, tt.wantOutcome)
			}
			if n := countByEventID(streamMessages(t, js, "ZAUTIC"))[ev.ID]; n != tt.wantCopies {
				t.Fatalf("event %s: got %d messages, want %d", ev.ID, n, tt.wantCopies)
			}
			if tt.wantCopies != 1 && strings.Contains(p.Logs(), `"msg":"mark repair finished"`) {
				t.Fatalf("got a repair with dedup.repair_window 0, want none:\n%s", p.Logs())
			}
		})
	}
}

// publishWithID publishes body as the forwarder does, with its
// Nats-Msg-Id and event id headers, and returns the PubAck.
func publishWithID(t *testing.T, js jetstream.JetStream, eventType string, body []byte, eventID, id string) *jetstream.PubAck {
	t.Helper()
	msg := &nats.Msg{Subject: "zautic." + eventType, Data: body, Header: nats.Header{}}
	msg.Header.Set(zautic.MessageIDHeader, id)
	msg.Header.Set(zautic.MessageEventIDHeader, eventID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish %q: %v", id, err)
	}
	return ack
}

// waitDuplicateWindowClosed publishes a probe after the event and re-sends
// it until the stream no longer calls it a duplicate: the server has then
// forgotten every message id up to the probe's, the event's included. The
// probe's copies are on a subject of their own, and the probe gets its mark,
// so that only the event is left for the repair.
func waitDuplicateWindowClosed(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	const probeID = "window-probe"
	publishWithID(t, js, "probe", []byte(`{}`), probeID, probeID)
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if publishWithID(t, js, "probe", []byte(`{}`), probeID, probeID).Duplicate {
			return fmt.Errorf("the stream still remembers %s", probeID)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "zautic-dedup")
	if err != nil {
		t.Fatalf("dedup bucket: %v", err)
	}
	if _, err := kv.Put(ctx, probeID, []byte("probe")); err != nil {
		t.Fatalf("mark the probe: %v", err)
	}
}

// waitRepairLine waits for the log line of a finished repair that repaired
// exactly the marks of ids.
func waitRepairLine(t *testing.T, p *forwarderProcess, ids []string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		sc := bufio.NewScanner(strings.NewReader(p.Logs()))
		for sc.Scan() {
			var line struct {
				Msg         string   `json:"msg"`
				Scanned     int      `json:"scanned"`
				Repaired    int      `json:"repaired"`
				RepairedIDs []string `json:"repaired_ids"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "mark repair finished" {
				continue
			}
			if line.Repaired != len(ids) || !slices.Equal(line.RepairedIDs, ids) {
				return fmt.Errorf("got repair line %s, want %d repaired: %q", sc.Text(), len(ids), ids)
			}
			return nil
		}
		return fmt.Errorf("no mark repair line yet")
	})
}

// TestMarkRepairCoversTheNewest loses the marks of the first and the last of
// ten events, as a crash would, with dedup.repair_max 5: fewer than the
// window holds. The marks a crash loses are the newest, so the repair must
// read the newest repair_max messages of its window, not the oldest: the
// last event's mark comes back and its retry is a duplicate, while the
// first's, beyond repair_max, is left as the log says.
func TestMarkRepairCoversTheNewest(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = "1s"
	env["FORWARDER_DEDUP_REPAIR_MAX"] = "5"
	crashed := startForwarder(t, env)
	crashed.WaitReady(t)
	events := newEvents("rmax", 10)
	for _, ev := range events {
		if got := send(t, crashed.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID}); got.Status != http.StatusOK || got.Body["status"] != "published" {
			t.Fatalf("send %s: got %d %v, want 200 published", ev.ID, got.Status, got.Body)
		}
	}
	_, js := connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "zautic-dedup")
	if err != nil {
		t.Fatalf("dedup bucket: %v", err)
	}
	first, last := events[0], events[len(events)-1]
	for _, ev := range []zauticEvent{first, last} {
		if err := kv.Delete(ctx, ev.ID); err != nil {
			t.Fatalf("delete the mark of %s: %v", ev.ID, err)
		}
	}
	crashed.Kill()
	waitDuplicateWindowClosed(t, js)

	p := startForwarder(t, env)
	p.WaitReady(t)
	waitRepairLine(t, p, []string{last.ID})
	if !strings.Contains(p.Logs(), `"covered_from":"`) || !strings.Contains(p.Logs(), `"in_window":12`) {
		t.Errorf("repair line: want covered_from and in_window 12 (ten events, two probes):\n%s", p.Logs())
	}
	got := send(t, p.WebhookURL, webhook{body: last.Body, deliveryID: last.DeliveryID})
	if got.Status != http.StatusOK || got.Body["status"] != "duplicate" {
		t.Fatalf("retry of the last event after the window: got %d %v, want 200 duplicate", got.Status, got.Body)
	}
	if n := countByEventID(streamMessages(t, js, "ZAUTIC"))[last.ID]; n != 1 {
		t.Fatalf("event %s: got %d messages, want 1", last.ID, n)
	}
}
