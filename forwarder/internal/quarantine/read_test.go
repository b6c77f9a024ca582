package quarantine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// TestReplayReadsWithoutConsumerPermission reads the replay's pages as a
// user that may not create consumers ($JS.API.CONSUMER.> denied): the
// entries, bodies included, come by message gets, so the automatic replay
// works with the permissions a webhook path needs.
func TestReplayReadsWithoutConsumerPermission(t *testing.T) {
	ns := natstest.Start(t, "", 0, forwarderUser)
	admin := jsFor(t, ns.ClientURL(), "admin")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	if _, err := admin.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.SubjectPrefix + ".>"}}); err != nil {
		t.Fatalf("create quarantine stream: %v", err)
	}
	reasons := []string{"signature_mismatch", "timestamp_out_of_tolerance", "signature_mismatch"}
	for i, reason := range reasons {
		msg := &nats.Msg{Subject: cfg.SubjectPrefix + "." + reason, Data: fmt.Appendf(nil, `{"id":"evt_%d"}`, i), Header: nats.Header{}}
		msg.Header.Set(store.QuarantineReasonHeader, reason)
		if _, err := admin.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("keep entry %d: %v", i, err)
		}
	}
	r := NewReader(jsFor(t, ns.ClientURL(), "forwarder"), cfg)
	tests := []struct {
		name     string
		filter   Filter
		wantSeqs []uint64
	}{
		{"every reason", Filter{Limit: 10, Bodies: true}, []uint64{1, 2, 3}},
		{"one reason", Filter{Reason: "signature_mismatch", Limit: 10, Bodies: true}, []uint64{1, 3}},
		{"after a sequence", Filter{Reason: "signature_mismatch", AfterSeq: 1, Limit: 10, Bodies: true}, []uint64{3}},
		{"limited", Filter{Limit: 2, Bodies: true}, []uint64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := r.Entries(ctx, tt.filter)
			if err != nil {
				t.Fatalf("entries: %v", err)
			}
			var seqs []uint64
			for _, e := range entries {
				seqs = append(seqs, e.Seq)
				if want := fmt.Sprintf(`{"id":"evt_%d"}`, e.Seq-1); string(e.Body) != want {
					t.Errorf("seq %d body: got %q, want %q", e.Seq, e.Body, want)
				}
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tt.wantSeqs) {
				t.Errorf("seqs: got %v, want %v", seqs, tt.wantSeqs)
			}
		})
	}
}

// forwarderUser may use the JetStream API but not create or read
// consumers; admin may do anything.
func forwarderUser(o *server.Options) {
	o.Users = []*server.User{
		{Username: "admin", Password: "admin"},
		{Username: "forwarder", Password: "forwarder", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>", "zautic.>", "zautic-quarantine.>"}, Deny: []string{"$JS.API.CONSUMER.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}},
	}
}

// jsFor connects as user (whose password is its name).
func jsFor(t *testing.T, url, user string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, user))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
