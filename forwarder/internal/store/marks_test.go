package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/promtest"
)

// kvStream is the stream behind the default dedup bucket.
const kvStream = "KV_zautic-dedup"

// setKVMaxMsgSize changes the largest message the dedup bucket's stream
// takes; -1 is unlimited.
func setKVMaxMsgSize(ctx context.Context, t *testing.T, b *Broker, size int32) {
	t.Helper()
	s, err := b.js.Stream(ctx, kvStream)
	if err != nil {
		t.Fatalf("look up %s: %v", kvStream, err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = size
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update %s: %v", kvStream, err)
	}
}

// TestFailedMarkIsRepaired makes the bucket refuse a mark after its event
// is stored (a message size limit below a mark's), then lifts the limit:
// the mark was sent without waiting, its failure was logged and asked for
// the mark repair, and the repair recreates it while the connection stays
// up, with no reconnect or restart.
func TestFailedMarkIsRepaired(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	core, logs := observer.New(zapcore.InfoLevel)
	b := runBroker(t, ns.ClientURL(), defaultConfig(), zap.New(core), nil)
	waitRepairs(t, logs, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	setKVMaxMsgSize(ctx, t, b, 8)
	seq, _, err := b.Publish(ctx, "zautic.message.sent", map[string][]string{jetstream.MsgIDHeader: {"dlv_refused"}}, []byte(`{}`))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := b.Mark(ctx, "dlv_refused", seq); err != nil {
		t.Fatalf("Mark: got %v, want nil: the mark is sent, its outcome handled later", err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if logs.FilterMessageSnippet("mark delivery failed").FilterField(zap.String("key", "dlv_refused")).Len() == 0 {
			return errors.New("no log line of the failed mark yet")
		}
		return nil
	})
	setKVMaxMsgSize(ctx, t, b, -1)

	kv, err := b.bucket()
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		entry, err := kv.Get(ctx, "dlv_refused")
		if err != nil {
			return fmt.Errorf("mark of dlv_refused: %w", err)
		}
		if got := markSeq(entry.Value()); got != seq {
			return fmt.Errorf("mark of dlv_refused: got seq %d, want %d", got, seq)
		}
		return nil
	})
	if n := logs.FilterMessage("nats reconnected").Len(); n != 0 {
		t.Fatalf("got %d reconnects, want none: the repair must not wait for one", n)
	}
}

// markSeq is the stream sequence a mark's value names.
func markSeq(value []byte) uint64 {
	var seq uint64
	_, _ = fmt.Sscan(strings.SplitN(string(value), " ", 2)[0], &seq)
	return seq
}

// TestMarkInFlightIsSeen: a key whose mark is on its way is a duplicate to
// this process at once, before the bucket holds it, and only while it is;
// the marks_in_flight gauge counts it meanwhile.
func TestMarkInFlightIsSeen(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	reg := prometheus.NewRegistry()
	b := runBroker(t, ns.ClientURL(), defaultConfig(), zaptest.NewLogger(t), telemetry.NewMetrics(reg, nil))
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, b.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name     string
		inFlight bool
		want     bool
	}{
		{name: "in flight", inFlight: true, want: true},
		{name: "ended, not in the bucket", inFlight: false, want: false},
	}
	if err := b.marks.hold(ctx, "dlv_flying"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if !tt.inFlight {
			b.marks.release("dlv_flying")
		}
		got, err := b.Seen(ctx, "dlv_flying")
		if err != nil || got != tt.want {
			t.Errorf("%s: Seen got %v, %v, want %v, nil", tt.name, got, err, tt.want)
		}
		if got, want := promtest.Value(t, reg, "zautic_forwarder_marks_in_flight", nil), float64(b.MarksInFlight()); got != want || (want == 1) != tt.inFlight {
			t.Errorf("%s: marks_in_flight %v, with %v in flight", tt.name, got, want)
		}
	}
}

// TestMarksWaitForRoom fills dedup.max_pending_marks: the next Mark waits
// for room, and fails with a reason naming the key when its context ends
// first (never dropped in silence); once a slot frees, it goes out.
func TestMarksWaitForRoom(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	cfg := defaultConfig()
	cfg.Dedup.MaxPendingMarks = 1
	b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, b.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.marks.hold(ctx, "dlv_holder"); err != nil {
		t.Fatal(err)
	}
	// What the shutdown logs as marks_left: those still in flight when its
	// wait ends.
	if left := b.WaitMarks(50 * time.Millisecond); left != 1 {
		t.Fatalf("WaitMarks with one mark held: got %d left, want 1", left)
	}

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	err := b.Mark(short, "dlv_waiting", 1)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "dedup.max_pending_marks") {
		t.Fatalf("Mark with no room: got %v, want a deadline error naming dedup.max_pending_marks", err)
	}

	done := make(chan error, 1)
	go func() { done <- b.Mark(ctx, "dlv_waiting", 1) }()
	b.marks.release("dlv_holder")
	if err := <-done; err != nil {
		t.Fatalf("Mark once a slot freed: %v", err)
	}
	if left := b.WaitMarks(10 * time.Second); left != 0 {
		t.Fatalf("got %d marks in flight after 10s, want 0", left)
	}
}

// TestUnknownPublishOutcomeAsksForRepair: a publish that ends without an
// answer may still be stored, unmarked, so it starts a repair at once, with
// no reconnect.
func TestUnknownPublishOutcomeAsksForRepair(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	core, logs := observer.New(zapcore.InfoLevel)
	b := runBroker(t, ns.ClientURL(), defaultConfig(), zap.New(core), nil)
	waitRepairs(t, logs, 1)

	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, _, err := b.Publish(ctx, "zautic.message.sent", map[string][]string{jetstream.MsgIDHeader: {"dlv_unknown"}}, []byte(`{}`)); err == nil {
		t.Fatal("publish with an ended context: got nil, want an error")
	}
	waitRepairs(t, logs, 2)
	if n := logs.FilterMessage("nats reconnected").Len(); n != 0 {
		t.Fatalf("got %d reconnects, want none", n)
	}
}

// TestOutcomeUnknown sorts publish errors into those that may have been
// stored and those that cannot.
func TestOutcomeUnknown(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "deadline", err: context.DeadlineExceeded, want: true},
		{name: "stream refused", err: fmt.Errorf("publish: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}), want: false},
		{name: "no stream", err: fmt.Errorf("publish: %w", jetstream.ErrNoStreamResponse), want: false},
	}
	for _, tt := range tests {
		if got := outcomeUnknown(tt.err); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSeenWithAndWithoutDirectGets reads marks from a bucket that allows
// direct gets and from one that does not (an operator's, made with
// --no-allow-direct), whose NATS user may not send direct gets either: the
// lookup asks each bucket the way KV Get would, with the same answers.
func TestSeenWithAndWithoutDirectGets(t *testing.T) {
	tests := []struct {
		name        string
		allowDirect bool
		user        string
	}{
		{"direct gets", true, "all"},
		{"no direct gets, nor the permission", false, "nodirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0, func(o *server.Options) {
				o.Users = []*server.User{{Username: "all", Password: "pw"}, {Username: "nodirect", Password: "pw",
					Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.DIRECT.GET.>"}}}}}
			})
			url := func(user string) string { return fmt.Sprintf("nats://%s:pw@%s", user, ns.Addr()) }
			cfg := defaultConfig()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			js := jetStreamAt(t, url("all"))
			// The settings the forwarder checks match, so that it keeps the
			// operator's stream as it is.
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: kvStream, Subjects: []string{"$KV." + cfg.Dedup.Bucket + ".>"},
				MaxMsgsPerSubject: 1, MaxAge: cfg.Dedup.TTL, Replicas: 1, AllowDirect: tt.allowDirect, Storage: jetstream.FileStorage}); err != nil {
				t.Fatalf("create %s: %v", kvStream, err)
			}
			b := runBroker(t, url(tt.user), cfg, zaptest.NewLogger(t), nil)
			natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, b.Ready)
			if err := b.Mark(ctx, "dlv_marked", 1); err != nil {
				t.Fatalf("Mark: %v", err)
			}
			natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if n := b.MarksInFlight(); n > 0 {
					return fmt.Errorf("%d marks in flight", n)
				}
				return nil
			})
			for key, want := range map[string]bool{"dlv_marked": true, "dlv_absent": false} {
				if got, err := b.Seen(ctx, key); err != nil || got != want {
					t.Errorf("Seen(%s): got %v, %v; want %v, nil", key, got, err, want)
				}
			}
			s, err := js.Stream(ctx, kvStream)
			if err != nil {
				t.Fatalf("look up %s: %v", kvStream, err)
			}
			if got := s.CachedInfo().Config.AllowDirect; got != tt.allowDirect {
				t.Errorf("allow_direct: got %v, want the operator's %v", got, tt.allowDirect)
			}
		})
	}
}
