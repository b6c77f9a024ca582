package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/secretvolume"
	"github.com/zautic/zautic-forwarder/zautic"
)

const (
	quarantineStream = "ZAUTIC_QUARANTINE"
	eventsStream     = "ZAUTIC"
)

// streamCount is the number of messages in stream now.
func streamCount(js jetstream.JetStream, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return s.CachedInfo().State.Msgs, nil
}

// sumMetric adds one series (name with its labels, as /metrics prints it)
// over several forwarders.
func sumMetric(procs []*forwarderProcess, series string) (float64, error) {
	total := 0.0
	for _, p := range procs {
		v, err := metricValue(p.AdminURL, series)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// signedAt is a webhook of event n signed with secret at t.
func signedAt(secret string, t time.Time, n int) webhook {
	body := sampleEvent(fmt.Sprintf("evt_q_%d", n), "message.delivered")
	return webhook{body: body, deliveryID: fmt.Sprintf("dlv_q_%d", n), signature: zautic.Sign([]byte(secret), t.Unix(), body)}
}

// assertQuarantined checks a 400 that says the request was kept.
func assertQuarantined(t testing.TB, got response, reason string) {
	t.Helper()
	if got.Status != http.StatusBadRequest || got.Body["quarantined"] != true || !strings.Contains(fmt.Sprint(got.Body["error"]), reason) {
		t.Fatalf("answer: got %d %v, want 400 with %q and \"quarantined\":true", got.Status, got.Body, reason)
	}
}

// TestRotationMishapReplaysByItself is the mishap the quarantine exists
// for: Zautic signs with a secret B the forwarder does not have yet. Every
// delivery is refused, kept, and nothing reaches zautic.>; once the secret
// volume gains B, every event arrives on its subject exactly once by
// itself, and the quarantine empties. Two replicas sharing NATS both
// replay, and still publish each event once.
func TestRotationMishapReplaysByItself(t *testing.T) {
	const (
		secretA = "whsec_mishap_a_5d20c1"
		secretB = "whsec_mishap_b_8e41f7"
		events  = 30
	)
	for _, replicas := range []int{1, 2} {
		t.Run(strconv.Itoa(replicas)+" replicas", func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			vol := secretvolume.New(t, map[string]string{"webhook-secrets": secretA + "\n"})
			env := forwarderEnv(ns.ClientURL())
			delete(env, zautic.SecretEnv)
			env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
			var procs []*forwarderProcess
			for range replicas {
				p := startForwarder(t, env)
				p.WaitReady(t)
				procs = append(procs, p)
			}
			nc, js := connect(t, ns.ClientURL())
			sub, err := nc.SubscribeSync("zautic.>")
			if err != nil {
				t.Fatal(err)
			}

			for i := range events {
				assertQuarantined(t, send(t, procs[i%replicas].WebhookURL, signedWith(secretB, int64(i))), "no v1 signature")
			}
			if n, err := streamCount(js, eventsStream); err != nil || n != 0 {
				t.Fatalf("events stream before the fix: got %d (%v), want 0", n, err)
			}
			// Nothing unverified was published, not even outside the stream.
			if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
				t.Fatalf("a message on %s before the fix: nothing unverified may appear under zautic.>", m.Subject)
			}

			vol.Update(t, map[string]string{"webhook-secrets": secretA + "\n" + secretB + "\n"})
			natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
				published, err := sumMetric(procs, `zautic_forwarder_quarantine_replayed_total{endpoint="default",outcome="published",trigger="reload"}`)
				if err != nil || published != events {
					return fmt.Errorf("replayed and published: got %v (%v), want %d", published, err, events)
				}
				if n, err := streamCount(js, quarantineStream); err != nil || n != 0 {
					return fmt.Errorf("quarantine: got %d entries (%v), want 0", n, err)
				}
				return nil
			})

			counts := countByEventID(streamMessages(t, js, eventsStream))
			if len(counts) != events {
				t.Errorf("distinct events published: got %d, want %d", len(counts), events)
			}
			for id, n := range counts {
				if n != 1 {
					t.Errorf("event %s published %d times, want once", id, n)
				}
			}
			if kept, err := sumMetric(procs, `zautic_forwarder_quarantined_total{endpoint="default",reason="signature_mismatch"}`); err != nil || kept != events {
				t.Errorf("quarantined_total: got %v (%v), want %d", kept, err, events)
			}
			if verified, err := sumMetric(procs, `zautic_forwarder_signatures_verified_total{endpoint="default",key_id="`+forwarder.KeyID([]byte(secretB))+`"}`); err != nil || verified < events {
				t.Errorf("verified with B's key id: got %v (%v), want at least %d", verified, err, events)
			}
		})
	}
}

// quarantineCLI runs "zautic-forwarder quarantine args…" against p.
func quarantineCLI(t testing.TB, p *forwarderProcess, args ...string) commandResult {
	t.Helper()
	return runBinary(t, nil, "", append(append([]string{"quarantine"}, args...), "--admin-url", p.AdminURL)...)
}

// replayResults decodes the --json answer of "quarantine replay".
func replayResults(t testing.TB, res commandResult) []adminapi.ReplayResult {
	t.Helper()
	var answer adminapi.ReplayAnswer
	if err := json.Unmarshal([]byte(res.Stdout), &answer); err != nil {
		t.Fatalf("replay --json output is not the answer: %v\n%s%s", err, res.Stdout, res.Stderr)
	}
	return answer.Results
}

// TestReplayByHandThroughTheCLI keeps a delivery whose signature was too
// old when it arrived: the CLI refuses to replay it without
// --ignore-tolerance, changes nothing with --dry-run, publishes it with
// --ignore-tolerance, and calls the same delivery kept again a duplicate.
func TestReplayByHandThroughTheCLI(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())
	assertQuarantined(t, send(t, p.WebhookURL, signedAt(testSecret, time.Now().Add(-time.Hour), 1)), "outside tolerance")

	list := quarantineCLI(t, p, "list")
	if list.Code != 0 || !strings.Contains(list.Stdout, "timestamp_out_of_tolerance") || !strings.Contains(list.Stdout, "dlv_q_1") {
		t.Fatalf("list: exit %d, want 0 and the entry:\n%s%s", list.Code, list.Stdout, list.Stderr)
	}

	steps := []struct {
		name           string
		args           []string
		wantCode       int
		wantOutcome    string
		wantEvents     uint64
		wantQuarantine uint64
	}{
		{"refused without --ignore-tolerance", []string{"--all", "--reason", "timestamp_out_of_tolerance"}, 1, "rejected", 0, 1},
		{"dry run changes nothing", []string{"--all", "--ignore-tolerance", "--dry-run"}, 0, "would_publish", 0, 1},
		{"published with --ignore-tolerance", []string{"--all", "--ignore-tolerance"}, 0, "published", 1, 0},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			res := quarantineCLI(t, p, append([]string{"replay", "--json"}, tt.args...)...)
			results := replayResults(t, res)
			if res.Code != tt.wantCode || len(results) != 1 || results[0].Outcome != tt.wantOutcome {
				t.Fatalf("replay %v: exit %d, results %+v; want exit %d and one %s", tt.args, res.Code, results, tt.wantCode, tt.wantOutcome)
			}
			if n, err := streamCount(js, eventsStream); err != nil || n != tt.wantEvents {
				t.Errorf("events stream: got %d (%v), want %d", n, err, tt.wantEvents)
			}
			if n, err := streamCount(js, quarantineStream); err != nil || n != tt.wantQuarantine {
				t.Errorf("quarantine: got %d (%v), want %d", n, err, tt.wantQuarantine)
			}
		})
	}

	// The same delivery arrives stale again: replayed by its seq, it is a
	// duplicate, and the table says so.
	assertQuarantined(t, send(t, p.WebhookURL, signedAt(testSecret, time.Now().Add(-2*time.Hour), 1)), "outside tolerance")
	var listed adminapi.ListAnswer
	if err := json.Unmarshal([]byte(quarantineCLI(t, p, "list", "--json").Stdout), &listed); err != nil || len(listed.Entries) != 1 {
		t.Fatalf("list --json: got %+v (%v), want one entry", listed, err)
	}
	res := quarantineCLI(t, p, "replay", "--seq", strconv.FormatUint(listed.Entries[0].Seq, 10), "--ignore-tolerance")
	if res.Code != 0 || !strings.Contains(res.Stdout, "duplicate") {
		t.Errorf("second replay: exit %d, want 0 and duplicate:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if n, err := streamCount(js, eventsStream); err != nil || n != 1 {
		t.Errorf("events stream after the second replay: got %d (%v), want 1", n, err)
	}
}

// TestForwardedThenResentWithBadSignatureIsDuplicate forwards a delivery,
// receives it again signed with a secret the forwarder does not know yet,
// and replays it by hand once the secret is known: duplicate, not a second
// message.
func TestForwardedThenResentWithBadSignatureIsDuplicate(t *testing.T) {
	const other = "whsec_other_3c8e27"
	ns := natstest.Start(t, "", 0)
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": testSecret + "\n"})
	env := forwarderEnv(ns.ClientURL())
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false"
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	if got := send(t, p.WebhookURL, signedAt(testSecret, time.Now(), 7)); got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("first delivery: got %d %v, want 200 published", got.Status, got.Body)
	}
	assertQuarantined(t, send(t, p.WebhookURL, signedAt(other, time.Now(), 7)), "no v1 signature")
	vol.Update(t, map[string]string{"webhook-secrets": testSecret + "\n" + other + "\n"})
	waitForReload(t, p, 0, 2)

	results := replayResults(t, quarantineCLI(t, p, "replay", "--all", "--json"))
	if len(results) != 1 || results[0].Outcome != "duplicate" {
		t.Fatalf("replay: got %+v, want one duplicate", results)
	}
	if n, err := streamCount(js, eventsStream); err != nil || n != 1 {
		t.Errorf("events stream: got %d (%v), want 1", n, err)
	}
	if n, err := streamCount(js, quarantineStream); err != nil || n != 0 {
		t.Errorf("quarantine: got %d (%v), want 0 (a duplicate is settled)", n, err)
	}
}

// floodResult counts the answers of a flood.
type floodResult struct {
	mu       sync.Mutex
	statuses map[int]int
	errors   int
}

func (f *floodResult) add(status int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.errors++
		return
	}
	f.statuses[status]++
}

// TestForgedFloodIsBounded sends 20,000 forged but well-formed requests at
// high concurrency while valid deliveries keep arriving and /readyz is
// polled: the quarantine keeps at most what quarantine.rate,
// quarantine.burst and quarantine.max_bytes allow, every valid delivery is
// published, and the process stays ready throughout.
func TestForgedFloodIsBounded(t *testing.T) {
	const (
		forged      = 20000
		concurrency = 64
		valid       = 200
		rate        = 10
		burst       = 100
		maxBytes    = 32 << 10
	)
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_QUARANTINE_RATE"] = strconv.Itoa(rate)
	env["FORWARDER_QUARANTINE_BURST"] = strconv.Itoa(burst)
	env["FORWARDER_QUARANTINE_MAX_BYTES"] = strconv.Itoa(maxBytes)
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency + 8}}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		wg          sync.WaitGroup
		next        atomic.Int64
		flood       = floodResult{statuses: map[int]int{}}
		validResult = floodResult{statuses: map[int]int{}}
		notReady    atomic.Int64
		done        = make(chan struct{})
	)
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for n := next.Add(1); n <= forged && ctx.Err() == nil; n = next.Add(1) {
				w := signedAt("forged-secret", time.Now(), int(n))
				got, err := do(t, client, newRequest(t, p.WebhookURL, w).WithContext(ctx))
				flood.add(got.Status, err)
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < valid && ctx.Err() == nil; i++ {
			got, err := do(t, client, newRequest(t, p.WebhookURL, signedAt(testSecret, time.Now(), forged+i)).WithContext(ctx))
			validResult.add(got.Status, err)
		}
	})
	var probes sync.WaitGroup
	probes.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := client.Get(p.AdminURL + "/readyz")
			if err != nil || resp.StatusCode != http.StatusOK {
				notReady.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	probes.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the flood did not finish within 2 minutes")
	}
	t.Logf("%d forged and %d valid requests in %s", forged, valid, elapsed.Round(time.Millisecond))

	// Kept: 400; over the rate or the size, not kept: 503, so that a
	// genuine delivery among them would be retried.
	if flood.statuses[http.StatusBadRequest]+flood.statuses[http.StatusServiceUnavailable] != forged || flood.errors != 0 {
		t.Errorf("forged answers: got %v and %d transport errors, want %d 400s and 503s", flood.statuses, flood.errors, forged)
	}
	if validResult.statuses[http.StatusOK] != valid || validResult.errors != 0 {
		t.Errorf("valid answers: got %v and %d transport errors, want %d 200s", validResult.statuses, validResult.errors, valid)
	}
	if n := notReady.Load(); n != 0 {
		t.Errorf("/readyz failed %d times during the flood, want never", n)
	}
	if n, err := streamCount(js, eventsStream); err != nil || n != valid {
		t.Errorf("events stream: got %d (%v), want the %d valid deliveries", n, err, valid)
	}
	assertQuarantineBounded(t, js, p, forged, burst+rate*elapsed.Seconds()+1, maxBytes)
}

// assertQuarantineBounded checks that the kept entries stay within what the
// token bucket allowed over the flood and within max_bytes, and that every
// forged request was either kept or counted as dropped.
func assertQuarantineBounded(t *testing.T, js jetstream.JetStream, p *forwarderProcess, forged int, allowed float64, maxBytes uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, quarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	state := s.CachedInfo().State
	kept, err := metricValue(p.AdminURL, `zautic_forwarder_quarantined_total{endpoint="default",reason="signature_mismatch"}`)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0.0
	for _, cause := range []string{"rate", "full", "large_share"} {
		n, err := metricValue(p.AdminURL, `zautic_forwarder_quarantine_dropped_total{cause="`+cause+`",endpoint="default"}`)
		if err != nil {
			t.Fatal(err)
		}
		dropped += n
	}
	t.Logf("quarantine: %d entries, %d bytes; %v kept and %v dropped", state.Msgs, state.Bytes, kept, dropped)
	if kept > allowed {
		t.Errorf("kept: got %v, want at most %v (burst + rate x duration)", kept, allowed)
	}
	if float64(state.Msgs) > kept || state.Bytes > maxBytes {
		t.Errorf("quarantine stream: got %d entries and %d bytes, want at most %v entries and %d bytes", state.Msgs, state.Bytes, kept, maxBytes)
	}
	if kept+dropped != float64(forged) {
		t.Errorf("kept + dropped: got %v, want %d (every forged request accounted for)", kept+dropped, forged)
	}
}

// TestMismatchWhileNATSDownIsQuick stops NATS: a forged delivery still gets
// its answer at once, not after nats.publish_timeout: 503 with Retry-After
// and "quarantined":false, since it could not be kept, and is counted as
// dropped.
func TestMismatchWhileNATSDownIsQuick(t *testing.T) {
	const publishTimeout = 30 * time.Second
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = publishTimeout.String()
	p := startForwarder(t, env)
	p.WaitReady(t)
	natstest.Stop(ns)
	waitNotReady(t, p)

	// A client that gives up well before the publish timeout: the answer
	// must not wait for NATS.
	client := &http.Client{Timeout: publishTimeout / 3}
	got, err := do(t, client, newRequest(t, p.WebhookURL, signedAt("forged-secret", time.Now(), 1)))
	if err != nil {
		t.Fatalf("forged delivery with NATS down: %v, want a 503 before %s", err, publishTimeout/3)
	}
	if got.Status != http.StatusServiceUnavailable || got.Body["quarantined"] != false {
		t.Errorf("answer: got %d %v, want 503 with \"quarantined\":false", got.Status, got.Body)
	}
	if dropped, err := metricValue(p.AdminURL, `zautic_forwarder_quarantine_dropped_total{cause="unavailable",endpoint="default"}`); err != nil || dropped != 1 {
		t.Errorf("dropped for unavailable: got %v (%v), want 1", dropped, err)
	}
}

// TestForgedFloodKeepsGenuineEntry is issue 20's eviction: one genuine
// delivery signed with a secret not configured yet is kept; then forged
// requests with 256 KiB bodies at 12/s (inside quarantine.rate and burst)
// run into quarantine.max_bytes. The genuine entry stays (the stream
// refuses new entries, it never discards old ones); the forged requests
// past the limit are answered 503 with Retry-After and "quarantined":false;
// and once the secret is added the genuine delivery is published.
func TestForgedFloodKeepsGenuineEntry(t *testing.T) {
	const (
		secretA  = "whsec_flood_a_61c0de"
		secretB  = "whsec_flood_b_2f9a41"
		forged   = 40
		maxBytes = 4 << 20
	)
	ns := natstest.Start(t, "", 0)
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": secretA + "\n"})
	env := forwarderEnv(ns.ClientURL())
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
	env["FORWARDER_QUARANTINE_MAX_BYTES"] = strconv.Itoa(maxBytes)
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	body := sampleEvent("evt_legit", "message.delivered")
	legit := webhook{body: body, deliveryID: "dlv_legit", signature: zautic.Sign([]byte(secretB), time.Now().Unix(), body)}
	assertQuarantined(t, send(t, p.WebhookURL, legit), "no v1 signature")

	large := make([]byte, 256<<10)
	for i := range large {
		large[i] = 'x'
	}
	tick := time.NewTicker(time.Second / 12)
	defer tick.Stop()
	var kept, refused int
	for i := range forged {
		<-tick.C
		w := webhook{body: large, deliveryID: fmt.Sprintf("dlv_forged_%d", i), signature: zautic.Sign([]byte("forged-secret"), time.Now().Unix(), large)}
		got := send(t, p.WebhookURL, w)
		switch {
		case got.Status == http.StatusBadRequest && got.Body["quarantined"] == true:
			if refused > 0 {
				t.Fatalf("forged request %d kept after one was refused: the quarantine must stay full", i)
			}
			kept++
		case got.Status == http.StatusServiceUnavailable && got.Body["quarantined"] == false && got.RetryAfter != "":
			refused++
		default:
			t.Fatalf("forged request %d: got %d Retry-After %q %v, want 400 quarantined:true or 503 with Retry-After and quarantined:false",
				i, got.Status, got.RetryAfter, got.Body)
		}
	}
	t.Logf("forged: %d kept, %d refused", kept, refused)
	if refused == 0 {
		t.Fatalf("no forged request refused: %d of 256 KiB must not fit in %d bytes", forged, maxBytes)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, quarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	if state := s.CachedInfo().State; state.FirstSeq != 1 || state.Bytes > maxBytes {
		t.Fatalf("quarantine after the flood: first seq %d, %d bytes; want the genuine entry (seq 1) kept and at most %d bytes", state.FirstSeq, state.Bytes, maxBytes)
	}

	vol.Update(t, map[string]string{"webhook-secrets": secretA + "\n" + secretB + "\n"})
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		counts := countByEventID(streamMessages(t, js, eventsStream))
		if counts["evt_legit"] != 1 || len(counts) != 1 {
			return fmt.Errorf("events published: got %v, want evt_legit once", counts)
		}
		return nil
	})
}

// TestQuarantineUnavailableAutoReplayQuiet runs against a server too small
// for the quarantine's reservation: the forwarder is ready, logs
// "quarantine unavailable" once, and the automatic replay waits for the
// quarantine instead of logging "stopped; it is retried" at each retry.
func TestQuarantineUnavailableAutoReplayQuiet(t *testing.T) {
	ns := natstest.Start(t, "", 0, func(o *server.Options) { o.JetStreamMaxStore = 2 << 20 })
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(p.Logs(), "quarantine unavailable") {
			return fmt.Errorf("no quarantine unavailable line yet")
		}
		return nil
	})
	// The automatic replay retried 1, 2 and 4 s after the start: what it
	// logs in that time is what it would repeat for as long as the
	// quarantine is missing.
	time.Sleep(4 * time.Second)
	if got := strings.Count(p.Logs(), "quarantine unavailable"); got != 1 {
		t.Errorf(`"quarantine unavailable" lines: got %d, want 1`, got)
	}
	if got := strings.Count(p.Logs(), "automatic replay of the quarantine stopped"); got != 0 {
		t.Errorf(`"automatic replay of the quarantine stopped" lines: got %d, want 0 (the cause is logged as quarantine unavailable)`, got)
	}
}
