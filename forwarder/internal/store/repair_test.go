package store

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestRepairSince stores events as a forwarder that crashed before its
// marks would have, next to events with their mark and a message without a
// Nats-Msg-Id, and checks that a repair creates exactly the missing marks,
// keyed as the request path keys them, within dedup.repair_max.
func TestRepairSince(t *testing.T) {
	tests := []struct {
		name         string
		repairMax    int
		wantScanned  int
		wantRepaired []string
	}{
		{name: "every message", repairMax: 100, wantScanned: 5, wantRepaired: []string{"dlv_lost_1", "dlv lost:2"}},
		// A crash loses the newest marks: the newest repair_max are read.
		{name: "bounded by repair_max, the newest", repairMax: 2, wantScanned: 2, wantRepaired: []string{"dlv lost:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			cfg := defaultConfig()
			cfg.Dedup.RepairMax = tt.repairMax
			core, logs := observer.New(zapcore.InfoLevel)
			b := runBroker(t, ns.ClientURL(), cfg, zap.New(core), nil)
			waitRepairs(t, logs, 1) // the repair at start, on the empty stream
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			kv, err := b.bucket()
			if err != nil {
				t.Fatal(err)
			}
			publishAsCrashed(ctx, t, b, "dlv_marked", true)
			publishAsCrashed(ctx, t, b, "dlv_lost_1", false)
			publishAsCrashed(ctx, t, b, "", false)
			publishAsCrashed(ctx, t, b, "dlv lost:2", false) // not a valid KV key: stored as its hash
			publishAsCrashed(ctx, t, b, "dlv_marked_2", true)

			got, err := b.repairSince(ctx, time.Now().Add(-time.Minute))
			if err != nil {
				t.Fatalf("repair: %v", err)
			}
			if got.scanned != tt.wantScanned || got.repaired != len(tt.wantRepaired) || !slices.Equal(got.ids, tt.wantRepaired) {
				t.Fatalf("got scanned %d, repaired %d %q, want %d, %d %q",
					got.scanned, got.repaired, got.ids, tt.wantScanned, len(tt.wantRepaired), tt.wantRepaired)
			}
			for _, id := range tt.wantRepaired {
				checkRepairedValue(ctx, t, b, kv, id)
			}
			again, err := b.repairSince(ctx, time.Now().Add(-time.Minute))
			if err != nil || again.repaired != 0 {
				t.Errorf("second repair: got %d repaired (err %v), want 0: marks that exist are left alone", again.repaired, err)
			}
		})
	}
}

// checkRepairedValue checks that the mark of id exists and that its value
// is the stream sequence of its event and, since the entry's own time is the
// repair's, the time the event was stored.
func checkRepairedValue(ctx context.Context, t *testing.T, b *Broker, kv jetstream.KeyValue, id string) {
	t.Helper()
	entry, err := kv.Get(ctx, adminapi.KVKey(id))
	if err != nil {
		t.Errorf("mark of %q: got %v, want it created", id, err)
		return
	}
	seqText, _, _ := strings.Cut(string(entry.Value()), " ")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		t.Errorf("mark of %q: value %q, want \"<seq> <time>\": %v", id, entry.Value(), err)
		return
	}
	stream, err := b.js.Stream(ctx, b.cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		t.Errorf("mark of %q: message %d: %v", id, seq, err)
		return
	}
	// Exactly as the inspector reads it: one space, then RFC 3339.
	if want := fmt.Sprintf("%d %s", seq, msg.Time.UTC().Format(time.RFC3339Nano)); string(entry.Value()) != want || msg.Header.Get(zautic.MessageIDHeader) == "" {
		t.Errorf("mark of %q: value %q, want %q, the sequence and time of its event", id, entry.Value(), want)
	}
}

// TestRepairSinceSignatureKeyed stores, as a forwarder under dedup.key
// "delivery" that crashed before its marks, messages whose Nats-Msg-Id is
// the signature's key: the repair creates both marks the request path
// writes, the signature's and the delivery id's (the event id's without
// one).
func TestRepairSinceSignatureKeyed(t *testing.T) {
	tests := []struct {
		name       string
		deliveryID string
		eventID    string
		wantKeys   []string
	}{
		{name: "with a delivery id", deliveryID: "dlv_sig", eventID: "evt_sig_1", wantKeys: []string{"sig.01", "dlv_sig"}},
		{name: "without a delivery id", eventID: "evt_sig_2", wantKeys: []string{"sig.02", "evt_sig_2"}},
	}
	ns := natstest.Start(t, "", 0)
	core, logs := observer.New(zapcore.InfoLevel)
	b := runBroker(t, ns.ClientURL(), defaultConfig(), zap.New(core), nil)
	waitRepairs(t, logs, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			header := map[string][]string{jetstream.MsgIDHeader: {tt.wantKeys[0]}, zautic.MessageEventIDHeader: {tt.eventID}}
			if tt.deliveryID != "" {
				header[zautic.MessageDeliveryIDHeader] = []string{tt.deliveryID}
			}
			if _, _, err := b.Publish(ctx, "zautic.message.sent", header, []byte(`{}`)); err != nil {
				t.Fatalf("publish: %v", err)
			}
			got, err := b.repairSince(ctx, time.Now().Add(-time.Minute))
			if err != nil || got.repaired != 1 || !slices.Equal(got.ids, tt.wantKeys[:1]) {
				t.Fatalf("repair: got %d repaired %q (err %v), want 1 %q", got.repaired, got.ids, err, tt.wantKeys[:1])
			}
			kv, err := b.bucket()
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range tt.wantKeys {
				if _, err := kv.Get(ctx, key); err != nil {
					t.Errorf("mark %q: got %v, want it created", key, err)
				}
			}
		})
	}
}

// publishAsCrashed stores an event with Nats-Msg-Id id (none when empty),
// and its mark only when marked.
func publishAsCrashed(ctx context.Context, t *testing.T, b *Broker, id string, marked bool) {
	t.Helper()
	header := map[string][]string{}
	if id != "" {
		header[jetstream.MsgIDHeader] = []string{id}
	}
	seq, _, err := b.Publish(ctx, "zautic.message.sent", header, []byte(`{}`))
	if err != nil {
		t.Fatalf("publish %q: %v", id, err)
	}
	if marked {
		if err := b.Mark(ctx, adminapi.KVKey(id), seq); err != nil {
			t.Fatalf("mark %q: %v", id, err)
		}
		// Stored before the caller looks, as a mark awaited would be.
		if left := b.WaitMarks(10 * time.Second); left != 0 {
			t.Fatalf("mark %q: %d marks still in flight after 10s", id, left)
		}
	}
}

// TestRepairAfterReconnect restarts the nats-server under a running broker:
// the reconnect starts another repair, which creates the mark the first one
// could not know about.
func TestRepairAfterReconnect(t *testing.T) {
	dir := t.TempDir()
	ns := natstest.Start(t, dir, 0)
	port := ns.Addr().(*net.TCPAddr).Port
	core, logs := observer.New(zapcore.InfoLevel)
	b := runBroker(t, ns.ClientURL(), defaultConfig(), zap.New(core), nil)
	waitRepairs(t, logs, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	publishAsCrashed(ctx, t, b, "dlv_before_restart", false)

	natstest.Stop(ns)
	natstest.Start(t, dir, port)
	repairs := waitRepairs(t, logs, 2)
	fields := repairs[1].ContextMap()
	if fields["repaired"] != int64(1) || !slices.Equal(fields["repaired_ids"].([]any), []any{"dlv_before_restart"}) {
		t.Fatalf("repair after reconnect: got %v, want one repaired mark, dlv_before_restart", fields)
	}
}

// waitRepairs waits for n finished repairs and returns their log lines.
func waitRepairs(t *testing.T, logs *observer.ObservedLogs, n int) []observer.LoggedEntry {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := logs.FilterMessage("mark repair finished").Len(); got < n {
			return fmt.Errorf("got %d finished repairs, want %d", got, n)
		}
		return nil
	})
	return logs.FilterMessage("mark repair finished").All()
}
