package natsconn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// outcomes records what an AsyncPublisher reports, by subject: the errors,
// and the first send time of the last one.
type outcomes struct {
	mu    sync.Mutex
	errs  map[string][]error
	first map[string]time.Time
}

func newOutcomes() *outcomes {
	return &outcomes{errs: map[string][]error{}, first: map[string]time.Time{}}
}

func (o *outcomes) record(m *nats.Msg, first time.Time, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs[m.Subject] = append(o.errs[m.Subject], err)
	o.first[m.Subject] = first
}

// wait returns the outcomes of subject once there is one, failing after
// total; a second outcome arriving meanwhile is returned too.
func (o *outcomes) wait(t *testing.T, subject string, total time.Duration) []error {
	t.Helper()
	var errs []error
	natstest.CheckFor(t, total, 10*time.Millisecond, func() error {
		o.mu.Lock()
		defer o.mu.Unlock()
		if errs = o.errs[subject]; len(errs) == 0 {
			return errors.New("no outcome yet")
		}
		return nil
	})
	return errs
}

// TestAsyncPublisherOutcomes publishes to a real nats-server and checks
// that each message's outcome is reported once, with the error
// jetstream's PublishMsgAsync would report.
func TestAsyncPublisherOutcomes(t *testing.T) {
	nc, js := connectJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	// A subscriber that never answers: the request reaches someone, and no
	// PubAck comes.
	if _, err := nc.Subscribe("silent", func(*nats.Msg) {}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	got := newOutcomes()
	const timeout = 300 * time.Millisecond
	p, err := NewAsyncPublisher(nc, "S", timeout, got.record)
	if err != nil {
		t.Fatalf("NewAsyncPublisher: %v", err)
	}
	firstOnly := nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}}
	if err := p.Publish(&nats.Msg{Subject: "s.taken", Data: []byte("first")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got.wait(t, "s.taken", 5*time.Second)

	tests := []struct {
		name    string
		subject string
		header  nats.Header
		check   func(error) bool
		want    string
	}{
		{"stored", "s.new", nil, func(err error) bool { return err == nil }, "nil"},
		{"refused by the stream", "s.taken", firstOnly, func(err error) bool {
			var apiErr *jetstream.APIError
			return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
		}, "wrong last sequence"},
		{"no stream, after jetstream's retries", "nostream", nil, func(err error) bool { return errors.Is(err, jetstream.ErrNoStreamResponse) }, "ErrNoStreamResponse"},
		{"no PubAck within the timeout", "silent", nil, func(err error) bool { return errors.Is(err, jetstream.ErrAsyncPublishTimeout) }, "ErrAsyncPublishTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.subject == "s.taken" {
				got.mu.Lock()
				delete(got.errs, tt.subject)
				got.mu.Unlock()
			}
			before := time.Now()
			if err := p.Publish(&nats.Msg{Subject: tt.subject, Header: tt.header, Data: []byte("x")}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			after := time.Now()
			got.wait(t, tt.subject, 5*time.Second)
			time.Sleep(2 * timeout) // a second outcome would come by now
			got.mu.Lock()
			errs, first := got.errs[tt.subject], got.first[tt.subject]
			got.mu.Unlock()
			if len(errs) != 1 || !tt.check(errs[0]) {
				t.Fatalf("outcomes: got %v, want one: %s", errs, tt.want)
			}
			// The first send, also after resends (no stream): what the
			// mark repair counts back from.
			if first.Before(before) || first.After(after) {
				t.Errorf("first send: got %v, want between %v and %v", first, before, after)
			}
		})
	}
	if n := p.inFlight(); n != 0 {
		t.Errorf("in flight: got %d, want 0", n)
	}
}

// TestAsyncPublisherDisconnect drops the connection while a message waits
// for its PubAck: it ends at once with nats.ErrDisconnected rather than at
// the timeout, since its PubAck was lost with the connection.
func TestAsyncPublisherDisconnect(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("silent", func(*nats.Msg) {}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	got := newOutcomes()
	p, err := NewAsyncPublisher(nc, "S", time.Minute, got.record)
	if err != nil {
		t.Fatalf("NewAsyncPublisher: %v", err)
	}
	if err := p.Publish(&nats.Msg{Subject: "silent", Data: []byte("x")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	natstest.Stop(ns)
	errs := got.wait(t, "silent", 10*time.Second)
	if len(errs) != 1 || !errors.Is(errs[0], nats.ErrDisconnected) {
		t.Fatalf("outcomes: got %v, want one nats.ErrDisconnected", errs)
	}
	if n := p.inFlight(); n != 0 {
		t.Errorf("in flight: got %d, want 0", n)
	}
}
