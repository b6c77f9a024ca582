package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
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

// TestReplayIgnoringToleranceRefusesBeyondDedupTTL captures a signed
// request, lets its mark expire (dedup.ttl 2s), and sends it again: kept as
// timestamp_out_of_tolerance. The listing and the lookup show the t it
// claims as signed_at; a replay ignoring the tolerance refuses it
// (beyond_dedup_ttl), since nothing would catch the second copy: one message.
func TestReplayIgnoringToleranceRefusesBeyondDedupTTL(t *testing.T) {
	const ttl = 2 * time.Second
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_DEDUP_TTL"] = ttl.String()
	env["FORWARDER_WEBHOOK_TOLERANCE"] = "1s"
	// Past the window too, as after any real dedup.ttl: only the refusal
	// stands between the capture and a second message.
	env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	ev := newEvents("ttl", 1)[0]
	signed := time.Now().Unix()
	captured := webhook{body: ev.Body, deliveryID: ev.DeliveryID, signature: zautic.Sign([]byte(testSecret), signed, ev.Body)}
	if got := send(t, p.WebhookURL, captured); got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("original: got %d %v, want 200 published", got.Status, got.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "zautic-dedup")
	if err != nil {
		t.Fatalf("dedup bucket: %v", err)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if _, err := kv.Get(ctx, ev.ID); err == nil || time.Since(time.Unix(signed, 0)) <= ttl+time.Second {
			return fmt.Errorf("the mark of %s has not expired yet (%v)", ev.ID, err)
		}
		return nil
	})
	assertQuarantined(t, send(t, p.WebhookURL, captured), "outside tolerance")

	wantSignedAt := time.Unix(signed, 0).UTC()
	var listed adminapi.ListAnswer
	res := quarantineCLI(t, p, "list", "--json")
	if err := json.Unmarshal([]byte(res.Stdout), &listed); err != nil || len(listed.Entries) != 1 {
		t.Fatalf("list --json: got %+v (%v), want one entry:\n%s%s", listed, err, res.Stdout, res.Stderr)
	}
	if got := listed.Entries[0].SignedAt; got == nil || !got.Equal(wantSignedAt) || !slices.Contains(listed.Unsigned, "signed_at") {
		t.Errorf("listed signed_at: got %v (unsigned %v), want %v, listed as unsigned", got, listed.Unsigned, wantSignedAt)
	}
	client := &adminapi.Client{BaseURL: p.AdminURL, Timeout: 30 * time.Second}
	var lookup map[string]any
	raw, err := client.Do(ctx, http.MethodGet, "/deliveries/"+ev.DeliveryID, nil, &lookup)
	if want := `"signed_at":"` + wantSignedAt.Format(time.RFC3339) + `"`; err != nil || !strings.Contains(string(raw), want) {
		t.Errorf("lookup: got %s (%v), want a quarantined entry with %s", raw, err, want)
	}

	res = quarantineCLI(t, p, "replay", "--json", "--all", "--ignore-tolerance")
	results := replayResults(t, res)
	if res.Code != 1 || len(results) != 1 || results[0].Outcome != "rejected" || results[0].Reason != "beyond_dedup_ttl" {
		t.Fatalf("replay --ignore-tolerance: exit %d, results %+v; want exit 1 and one rejected beyond_dedup_ttl", res.Code, results)
	}
	if n, err := streamCount(js, eventsStream); err != nil || n != 1 {
		t.Errorf("events stream: got %d (%v), want 1: the capture is not published again", n, err)
	}
	if n, err := streamCount(js, quarantineStream); err != nil || n != 1 {
		t.Errorf("quarantine: got %d (%v), want the entry kept", n, err)
	}
}
