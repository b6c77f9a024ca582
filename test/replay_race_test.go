package test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/secretvolume"
	"github.com/zautic/zautic-forwarder/zautic"
)

// TestConcurrentReplaysStoreOneSignatureOnce runs, under dedup.key
// "delivery", thirty events each sent twice (same t and body, two delivery
// ids) signed with a secret the forwarder does not have yet; once it has
// it, two replays at once, over the odd and over the even sequences, race
// each copy against its twin. Both miss the lookup before either is
// marked, so only the stream's duplicate window, keyed on the signature,
// can keep the second: exactly thirty messages.
func TestConcurrentReplaysStoreOneSignatureOnce(t *testing.T) {
	const (
		secretA = "whsec_race_a_41c9d2"
		secretB = "whsec_race_b_7f02e8"
		events  = 30
	)
	ns := natstest.Start(t, "", 0)
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": secretA + "\n"})
	env := forwarderEnv(ns.ClientURL())
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
	env["FORWARDER_DEDUP_KEY"] = "delivery"
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false" // the two replays below are the only ones
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	signedAt := time.Now().Unix()
	for i := range events {
		body := sampleEvent(fmt.Sprintf("evt_race_%d", i), "message.delivered")
		sig := zautic.Sign([]byte(secretB), signedAt, body)
		for _, copyName := range []string{"a", "b"} {
			w := webhook{body: body, deliveryID: fmt.Sprintf("dlv_race_%d_%s", i, copyName), signature: sig}
			assertQuarantined(t, send(t, p.WebhookURL, w), "no v1 signature")
		}
	}
	vol.Update(t, map[string]string{"webhook-secrets": secretA + "\n" + secretB + "\n"})
	waitForReload(t, p, 0, 2)

	client := &adminapi.Client{BaseURL: p.AdminURL, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var listed adminapi.ListAnswer
	if _, err := client.Do(ctx, http.MethodGet, "/quarantine?limit=1000", nil, &listed); err != nil || len(listed.Entries) != 2*events {
		t.Fatalf("list: got %d entries (%v), want %d", len(listed.Entries), err, 2*events)
	}
	var halves [2][]uint64
	for _, e := range listed.Entries {
		halves[e.Seq%2] = append(halves[e.Seq%2], e.Seq)
	}
	var wg sync.WaitGroup
	answers := make([]adminapi.ReplayAnswer, len(halves))
	errs := make([]error, len(halves))
	for i, seqs := range halves {
		wg.Go(func() { answers[i], _, errs[i] = client.Replay(ctx, adminapi.ReplayRequest{Seqs: seqs}) })
	}
	wg.Wait()
	outcomes := map[string]int{}
	for i := range halves {
		if errs[i] != nil {
			t.Fatalf("replay %d: %v", i, errs[i])
		}
		for _, r := range answers[i].Results {
			outcomes[r.Outcome]++
		}
	}
	if outcomes["published"] != events || outcomes["duplicate"] != events {
		t.Errorf("replay outcomes: got %v, want %d published and %d duplicate", outcomes, events, events)
	}
	counts := countByEventID(streamMessages(t, js, eventsStream))
	if len(counts) != events {
		t.Errorf("distinct events: got %d, want %d", len(counts), events)
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("event %s stored %d times, want once", id, n)
		}
	}
}
