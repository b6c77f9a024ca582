package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/admin"
	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/promtest"
	"github.com/zautic/zautic-forwarder/internal/testfile"

	"github.com/zautic/zautic-forwarder/zautic"
)

const (
	secretA = "quarantine-secret-a"
	secretB = "quarantine-secret-b"
)

// quarantineHarness is a handler, a replayer and the admin routes on a real
// broker and nats-server, with the secrets in a file the test rewrites.
type quarantineHarness struct {
	t           testing.TB
	cfg         Config
	secrets     *secrets.Set
	secretsFile string
	broker      *store.Broker
	handler     *ingest.Handler
	reader      *quarantine.Reader
	replayer    *quarantine.Replayer
	web         *echo.Echo
	admin       http.Handler
	js          jetstream.JetStream
	registry    *prometheus.Registry
}

func newQuarantineHarness(t testing.TB, configure func(*Config)) *quarantineHarness {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	h := &quarantineHarness{t: t, cfg: DefaultConfig(), registry: prometheus.NewRegistry()}
	h.cfg.NATS.URL = ns.ClientURL()
	h.secretsFile = testfile.Write(t, t.TempDir(), "secrets", []byte(secretA+"\n"))
	h.cfg.Webhook.SecretsFile = h.secretsFile
	if configure != nil {
		configure(&h.cfg)
	}
	// A fuzz target may not log through the *testing.F it was built with.
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt)
	}
	m := telemetry.NewMetrics(h.registry, ingest.LabelledOutcomes())
	var err error
	if h.secrets, err = secrets.New(h.cfg.Webhook); err != nil {
		t.Fatal(err)
	}
	h.broker = runBroker(t, ns.ClientURL(), h.cfg, log, m)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, h.broker.Ready)
	reader, err := store.ConnectReader(ns.ClientURL(), h.cfg.NATS, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	readerJS := reader.JetStream()
	h.handler = ingest.NewHandler(h.cfg.ingestConfig(), h.secrets, h.broker, log, m, nil)
	if h.cfg.Quarantine.Enabled {
		h.handler.KeepRejected(quarantine.NewKeeper(h.cfg.Quarantine, h.cfg.NATS.PublishTimeout, h.broker, log, m))
		h.reader = quarantine.NewReader(readerJS, h.cfg.Quarantine)
		h.replayer = quarantine.NewReplayer(h.handler, h.reader, h.cfg.NATS.PublishTimeout, log, m)
	}
	h.web = ingest.NewServer(h.cfg.HTTP, h.handler, m)
	h.admin, err = admin.NewHandler(admin.Parts{
		Config: h.cfg.Admin, Status: h.broker, Replayer: h.replayer, WriteTimeout: h.cfg.HTTP.WriteTimeout, Gatherer: h.registry,
		Inspector: admin.NewInspector(readerJS, admin.InspectConfig{Stream: h.cfg.Stream.Name, Bucket: h.cfg.Dedup.Bucket}, h.broker.Ready),
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js, _ = jetstream.New(nc)
	return h
}

// setSecrets rewrites the secrets file and reloads it.
func (h *quarantineHarness) setSecrets(secrets ...string) {
	h.t.Helper()
	if err := os.WriteFile(h.secretsFile, []byte(strings.Join(secrets, "\n")), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := h.secrets.Reload(); err != nil {
		h.t.Fatal(err)
	}
}

// post sends a webhook signed with secret at ts and returns status and body.
func (h *quarantineHarness) post(secret string, ts time.Time, deliveryID string, body []byte) (int, map[string]any) {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, h.cfg.HTTP.Path, bytes.NewReader(body))
	req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(secret), ts.Unix(), body))
	req.Header.Set(zautic.RequestDeliveryIDHeader, deliveryID)
	req.Header.Set("X-Zautic-Event", "message.delivered")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.web.ServeHTTP(rec, req)
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		h.t.Fatalf("answer %d is not JSON: %q", rec.Code, rec.Body)
	}
	return rec.Code, answer
}

// adminDo sends a request to the admin routes.
func (h *quarantineHarness) adminDo(method, target, contentType, body string) (int, []byte) {
	h.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	// As an operator through kubectl port-forward: without admin.token the
	// admin paths answer loopback clients under a loopback Host only.
	req.RemoteAddr, req.Host = "127.0.0.1:50000", "localhost:9090"
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.admin.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (h *quarantineHarness) streamCount(name string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), name)
	if err != nil {
		h.t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State.Msgs
}

func TestRejectedDeliveriesAreQuarantined(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	now := time.Now()
	tests := []struct {
		name        string
		secret      string
		ts          time.Time
		wantStatus  int
		quarantined bool
		reason      string
	}{
		{"unknown secret", secretB, now, http.StatusBadRequest, true, telemetry.ReasonSignatureMismatch},
		{"old timestamp", secretA, now.Add(-time.Hour), http.StatusBadRequest, true, telemetry.ReasonTimestampOld},
		{"valid", secretA, now, http.StatusOK, false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, answer := h.post(tt.secret, tt.ts, "dlv_q_"+strconv.Itoa(i), testEvent("evt_q_"+strconv.Itoa(i), "message.delivered"))
			if status != tt.wantStatus {
				t.Errorf("status: got %d, want %d (%v)", status, tt.wantStatus, answer)
			}
			if got := answer["quarantined"] == true; got != tt.quarantined {
				t.Errorf("quarantined: got %v, want %v (%v)", got, tt.quarantined, answer)
			}
		})
	}
	entries, err := h.reader.Entries(context.Background(), quarantine.Filter{Limit: 10, Bodies: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(entries), 2; got != want {
		t.Fatalf("entries: got %d, want %d", got, want)
	}
	for i, e := range entries {
		if got, want := e.Reason, tests[i].reason; got != want {
			t.Errorf("entry %d reason: got %q, want %q", i, got, want)
		}
		if got, want := e.Header.Get(zautic.RequestDeliveryIDHeader), "dlv_q_"+strconv.Itoa(i); got != want {
			t.Errorf("entry %d delivery id: got %q, want %q", i, got, want)
		}
		if e.Header.Get(zautic.RequestSignatureHeader) == "" || quarantine.ReceivedAt(e).IsZero() {
			t.Errorf("entry %d headers: got %v, want the signature and %s", i, e.Header, store.ReceivedAtHeader)
		}
		if got, want := string(e.Body), string(testEvent("evt_q_"+strconv.Itoa(i), "message.delivered")); got != want {
			t.Errorf("entry %d body: got %q, want %q", i, got, want)
		}
	}
	if got := h.streamCount(h.cfg.Stream.Name); got != 1 {
		t.Errorf("events stream: got %d messages, want 1 (the valid delivery only)", got)
	}
}

func TestPlainRejectionsAreNotQuarantined(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	body := testEvent("evt_plain", "message.delivered")
	tests := []struct {
		name, signature string
	}{
		{"missing", ""},
		{"malformed", "t=abc,v1=00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, h.cfg.HTTP.Path, bytes.NewReader(body))
			req.Header.Set(zautic.RequestSignatureHeader, tt.signature)
			rec := httptest.NewRecorder()
			h.web.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "quarantined") {
				t.Errorf("answer: got %d %s, want 400 without quarantined", rec.Code, rec.Body)
			}
		})
	}
	if got := h.streamCount(h.cfg.Quarantine.Stream); got != 0 {
		t.Errorf("quarantine: got %d entries, want 0", got)
	}
}

func TestQuarantineRateLimit(t *testing.T) {
	h := newQuarantineHarness(t, func(c *Config) { c.Quarantine.Rate, c.Quarantine.Burst = 0.001, 3 })
	kept := 0
	for i := range 10 {
		_, answer := h.post(secretB, time.Now(), "dlv_rate_"+strconv.Itoa(i), testEvent("evt_rate_"+strconv.Itoa(i), "message.delivered"))
		if answer["quarantined"] == true {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("kept: got %d, want 3 (the burst)", kept)
	}
	if got := promtest.Value(t, h.registry, "zautic_forwarder_quarantine_dropped_total", map[string]string{telemetry.EndpointLabel: telemetry.DefaultEndpoint, "cause": "rate"}); got != 7 {
		t.Errorf("dropped for rate: got %v, want 7", got)
	}
}

// storeEntry quarantines a request directly, with headers the test chose.
func (h *quarantineHarness) storeEntry(header http.Header, body []byte) uint64 {
	h.t.Helper()
	seq, err := h.broker.Quarantine(context.Background(), telemetry.ReasonSignatureMismatch, header, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return seq
}

// entryHeader is what the handler would have stored for body signed with
// secret at signedAt and received at receivedAt.
func entryHeader(secret string, signedAt, receivedAt time.Time, deliveryID string, body []byte) http.Header {
	h := http.Header{}
	h.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(secret), signedAt.Unix(), body))
	h.Set(zautic.RequestDeliveryIDHeader, deliveryID)
	h.Set(store.ReceivedAtHeader, receivedAt.UTC().Format(time.RFC3339Nano))
	return h
}

func TestReplayInputs(t *testing.T) {
	h := newQuarantineHarness(t, func(c *Config) { c.Events.Allow = []string{"message.delivered"} })
	arrived := time.Now().Add(-2 * time.Hour)
	body := testEvent("evt_in", "message.delivered")
	tests := []struct {
		name        string
		header      func() http.Header
		body        []byte
		req         adminapi.ReplayRequest
		wantOutcome string
		wantReason  string
		wantStays   bool
	}{
		{"signature header missing", func() http.Header {
			hd := entryHeader(secretA, arrived, arrived, "dlv_in_1", body)
			hd.Del(zautic.RequestSignatureHeader)
			return hd
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeRejected, "signature_missing", true},
		{"received-at missing", func() http.Header {
			hd := entryHeader(secretA, arrived, arrived, "dlv_in_2", body)
			hd.Del(store.ReceivedAtHeader)
			return hd
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeRejected, "received_at_malformed", true},
		{"received-at malformed", func() http.Header {
			hd := entryHeader(secretA, arrived, arrived, "dlv_in_3", body)
			hd.Set(store.ReceivedAtHeader, "yesterday")
			return hd
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeRejected, "received_at_malformed", true},
		{"body altered", func() http.Header {
			return entryHeader(secretA, arrived, arrived, "dlv_in_4", body)
		}, testEvent("evt_in_altered", "message.delivered"), adminapi.ReplayRequest{}, telemetry.OutcomeRejected, telemetry.ReasonSignatureMismatch, true},
		{"secret still unknown", func() http.Header {
			return entryHeader(secretB, arrived, arrived, "dlv_in_5", body)
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeRejected, telemetry.ReasonSignatureMismatch, true},
		{"stale when it arrived", func() http.Header {
			return entryHeader(secretA, arrived.Add(-time.Hour), arrived, "dlv_in_6", body)
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeRejected, telemetry.ReasonTimestampOld, true},
		{"stale, dry run ignoring tolerance", func() http.Header {
			return entryHeader(secretA, arrived.Add(-time.Hour), arrived, "dlv_in_7", body)
		}, body, adminapi.ReplayRequest{IgnoreTolerance: true, DryRun: true}, telemetry.OutcomeWouldPublish, "", true},
		{"type not allowed", func() http.Header {
			return entryHeader(secretA, arrived, arrived, "dlv_in_8", testEvent("evt_in_8", "device.connected"))
		}, testEvent("evt_in_8", "device.connected"), adminapi.ReplayRequest{}, telemetry.OutcomeIgnored, "", false},
		{"fresh when it arrived, hours ago", func() http.Header {
			return entryHeader(secretA, arrived, arrived, "dlv_in_9", body)
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomePublished, "", false},
		{"same delivery again", func() http.Header {
			return entryHeader(secretA, arrived, arrived, "dlv_in_9", body)
		}, body, adminapi.ReplayRequest{}, telemetry.OutcomeDuplicate, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := h.storeEntry(tt.header(), tt.body)
			req := tt.req
			req.Seqs = []uint64{seq}
			answer, err := h.replayer.Replay(context.Background(), req, telemetry.TriggerAdmin)
			if err != nil {
				t.Fatal(err)
			}
			res := answer.Results[0]
			if res.Outcome != tt.wantOutcome || res.Reason != tt.wantReason {
				t.Errorf("result: got %s/%s (%s), want %s/%s", res.Outcome, res.Reason, res.Error, tt.wantOutcome, tt.wantReason)
			}
			_, err = h.reader.Entry(context.Background(), seq)
			if stays := err == nil; stays != tt.wantStays {
				t.Errorf("entry stays: got %v, want %v", stays, tt.wantStays)
			}
		})
	}
	if got := h.streamCount(h.cfg.Stream.Name); got != 1 {
		t.Errorf("events stream: got %d messages, want 1", got)
	}
}

// TestReplayBeyondDedupTTL replays, ignoring the tolerance (5m), entries
// whose signed t is older than dedup.ttl − webhook.tolerance: their mark may
// be gone, so the replay refuses them (rejected, beyond_dedup_ttl) and they
// stay; with dedup.ttl 0 (marks for ever) the same entry is published. An
// entry signed more than the tolerance ahead is refused (signed_in_future)
// and stays, whatever dedup.ttl: published, its mark could expire before
// its t is old enough to be refused.
func TestReplayBeyondDedupTTL(t *testing.T) {
	tests := []struct {
		name        string
		ttl         time.Duration
		signedAgo   time.Duration // negative: ahead
		dryRun      bool
		wantOutcome string
		wantReason  string
		wantStays   bool
	}{
		{"signed beyond dedup.ttl", time.Hour, 2 * time.Hour, false, telemetry.OutcomeRejected, ingest.ReasonBeyondDedupTTL, true},
		{"signed beyond dedup.ttl, dry run", time.Hour, 2 * time.Hour, true, telemetry.OutcomeRejected, ingest.ReasonBeyondDedupTTL, true},
		{"signed within dedup.ttl", 3 * time.Hour, 2 * time.Hour, false, telemetry.OutcomePublished, "", false},
		{"signed within dedup.ttl but not within dedup.ttl − tolerance", 3 * time.Hour, 3*time.Hour - 4*time.Minute, false, telemetry.OutcomeRejected, ingest.ReasonBeyondDedupTTL, true},
		{"dedup.ttl 0: marks for ever", 0, 2 * time.Hour, false, telemetry.OutcomePublished, "", false},
		{"signed 10 years ahead", 3 * time.Hour, -10 * 365 * 24 * time.Hour, false, telemetry.OutcomeRejected, ingest.ReasonSignedInFuture, true},
		{"signed 10 years ahead, dedup.ttl 0", 0, -10 * 365 * 24 * time.Hour, false, telemetry.OutcomeRejected, ingest.ReasonSignedInFuture, true},
		{"signed an hour ahead, dry run", 3 * time.Hour, -time.Hour, true, telemetry.OutcomeRejected, ingest.ReasonSignedInFuture, true},
		{"signed ahead within the tolerance", 3 * time.Hour, -4 * time.Minute, false, telemetry.OutcomePublished, "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuarantineHarness(t, func(c *Config) { c.Dedup.TTL = tt.ttl })
			body := testEvent(fmt.Sprintf("evt_ttl_%d", i), "message.delivered")
			signed := time.Now().Add(-tt.signedAgo)
			seq := h.storeEntry(entryHeader(secretA, signed, signed, "dlv_ttl", body), body)
			answer, err := h.replayer.Replay(context.Background(), adminapi.ReplayRequest{Seqs: []uint64{seq}, IgnoreTolerance: true, DryRun: tt.dryRun}, telemetry.TriggerAdmin)
			if err != nil {
				t.Fatal(err)
			}
			res := answer.Results[0]
			if res.Outcome != tt.wantOutcome || res.Reason != tt.wantReason {
				t.Errorf("result: got %s/%s (%s), want %s/%s", res.Outcome, res.Reason, res.Error, tt.wantOutcome, tt.wantReason)
			}
			if want := map[string]string{ingest.ReasonBeyondDedupTTL: "dedup.ttl", ingest.ReasonSignedInFuture: "in the future"}[tt.wantReason]; !strings.Contains(res.Error, want) {
				t.Errorf("error: got %q, want it to contain %q", res.Error, want)
			}
			_, err = h.reader.Entry(context.Background(), seq)
			if stays := err == nil; stays != tt.wantStays {
				t.Errorf("entry stays: got %v, want %v", stays, tt.wantStays)
			}
		})
	}
}

func TestReplayNotFound(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	answer, err := h.replayer.Replay(context.Background(), adminapi.ReplayRequest{Seqs: []uint64{42}}, telemetry.TriggerAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if got := answer.Results[0].Outcome; got != adminapi.OutcomeNotFound {
		t.Errorf("outcome: got %s, want %s", got, adminapi.OutcomeNotFound)
	}
}

// TestReplayLogLines: a replay's log line carries the reason code in
// "reason" and the words in "error"; the automatic replay says whether it
// ran at start or after a secret change.
func TestReplayLogLines(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	core, logs := observer.New(zapcore.InfoLevel)
	replayer := quarantine.NewReplayer(h.handler, h.reader, h.cfg.NATS.PublishTimeout, zap.New(core), nil)
	if status, _ := h.post(secretB, time.Now(), "dlv_log_1", testEvent("evt_log_1", "message.delivered")); status != http.StatusBadRequest {
		t.Fatalf("status: got %d, want 400", status)
	}
	auto := quarantine.NewAutoReplayer(replayer, h.broker.Ready, zap.New(core))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		auto.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitForLines := func(msg string, n int) {
		t.Helper()
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if got := logs.FilterMessage(msg).Len(); got < n {
				return fmt.Errorf("%d %q lines, want %d", got, msg, n)
			}
			return nil
		})
	}
	waitForLines("automatic replay of the quarantine", 1) // at start, secret B still unknown
	h.setSecrets(secretA, secretB)
	auto.Trigger()
	waitForLines("automatic replay of the quarantine", 2)

	replays := logs.FilterMessage("replay").All()
	if len(replays) != 2 {
		t.Fatalf(`got %d "replay" lines, want 2`, len(replays))
	}
	rejected := replays[0].ContextMap()
	if rejected["outcome"] != telemetry.OutcomeRejected || rejected["reason"] != telemetry.ReasonSignatureMismatch || rejected["error"] == nil {
		t.Errorf(`first replay: got %v, want outcome rejected, reason %q and the words in "error"`, rejected, telemetry.ReasonSignatureMismatch)
	}
	if published := replays[1].ContextMap(); published["outcome"] != telemetry.OutcomePublished || published["reason"] != nil {
		t.Errorf("second replay: got %v, want outcome published without a reason", published)
	}
	var causes []any
	for _, e := range logs.FilterMessage("automatic replay of the quarantine").All() {
		causes = append(causes, e.ContextMap()["cause"])
	}
	if want := []any{"start", "secret change"}; !slices.Equal(causes, want) {
		t.Errorf("automatic replays: got causes %v, want %v", causes, want)
	}
}

func TestReplayAfterSecretChange(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	for i := range 5 {
		if status, _ := h.post(secretB, time.Now(), "dlv_auto_"+strconv.Itoa(i), testEvent("evt_auto_"+strconv.Itoa(i), "message.delivered")); status != http.StatusBadRequest {
			t.Fatalf("status: got %d, want 400", status)
		}
	}
	h.setSecrets(secretA, secretB)
	auto := quarantine.NewAutoReplayer(h.replayer, h.broker.Ready, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		auto.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := h.streamCount(h.cfg.Stream.Name); got != 5 {
			return errors.New("events: got " + strconv.FormatUint(got, 10) + ", want 5")
		}
		if got := h.streamCount(h.cfg.Quarantine.Stream); got != 0 {
			return errors.New("quarantine: got " + strconv.FormatUint(got, 10) + ", want 0")
		}
		return nil
	})
	if got := promtest.Value(t, h.registry, "zautic_forwarder_quarantine_replayed_total", map[string]string{telemetry.EndpointLabel: telemetry.DefaultEndpoint, "outcome": telemetry.OutcomePublished, "trigger": telemetry.TriggerReload}); got != 5 {
		t.Errorf("replayed published: got %v, want 5", got)
	}
	if got := promtest.Value(t, h.registry, "zautic_forwarder_signatures_verified_total", map[string]string{"key_id": secrets.KeyID([]byte(secretB))}); got != 5 {
		t.Errorf("verified with B: got %v, want 5", got)
	}
}

// FuzzReplayEntry stores entries with arbitrary signature, Zautic-Received-At
// and body, and replays them: the outcome is always one of the documented
// ones, and only an entry whose signature verifies against the secrets at
// the time it arrived is published.
func FuzzReplayEntry(f *testing.F) {
	now := time.Now().UTC()
	body := testEvent("evt_fuzz", "message.delivered")
	valid := zautic.Sign([]byte(secretA), now.Unix(), body)
	f.Add(body, valid, now.Format(time.RFC3339Nano), false, false)
	f.Add(body, "", now.Format(time.RFC3339Nano), false, false)
	f.Add(body, valid, "", false, false)
	f.Add(body, valid, "2026-13-01T00:00:00Z", false, false)
	f.Add(append(body, ' '), valid, now.Format(time.RFC3339Nano), false, false)
	f.Add(body, zautic.Sign([]byte(secretA), now.Add(-time.Hour).Unix(), body), now.Format(time.RFC3339Nano), true, true)
	f.Add([]byte("{"), zautic.Sign([]byte(secretA), now.Unix(), []byte("{")), now.Format(time.RFC3339Nano), false, false)
	h := newQuarantineHarness(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, signature, receivedAtValue string, ignoreTolerance, dryRun bool) {
		header := http.Header{}
		header.Set(zautic.RequestSignatureHeader, signature)
		header.Set(store.ReceivedAtHeader, receivedAtValue)
		seq, err := h.broker.Quarantine(context.Background(), telemetry.ReasonSignatureMismatch, header, body)
		if err != nil {
			t.Skip("not storable:", err)
		}
		answer, err := h.replayer.Replay(context.Background(), adminapi.ReplayRequest{Seqs: []uint64{seq}, IgnoreTolerance: ignoreTolerance, DryRun: dryRun}, telemetry.TriggerAdmin)
		if err != nil {
			t.Fatal(err)
		}
		res := answer.Results[0]
		if !slices.Contains(telemetry.ReplayOutcomes(), res.Outcome) {
			t.Fatalf("outcome: got %q, want one of %v", res.Outcome, telemetry.ReplayOutcomes())
		}
		arrived, parseErr := time.Parse(time.RFC3339Nano, receivedAtValue)
		if parseErr != nil && res.Reason != "received_at_malformed" {
			t.Fatalf("malformed %s %q: got %s/%s, want rejected received_at_malformed", store.ReceivedAtHeader, receivedAtValue, res.Outcome, res.Reason)
		}
		tolerance := h.cfg.Webhook.Tolerance
		if ignoreTolerance {
			tolerance = 0
		}
		if res.Outcome == telemetry.OutcomePublished || res.Outcome == telemetry.OutcomeWouldPublish {
			if _, err := zautic.VerifySignature(body, signature, h.secrets.Current(), tolerance, arrived); err != nil {
				t.Fatalf("got %s for an entry that does not verify: %v", res.Outcome, err)
			}
		}
	})
}

// TestDisabledQuarantineIsNotPartOfReadiness: with quarantine.enabled false
// and stream.manage false, the stream and the bucket are all it takes to be
// ready, and a forged request is a plain 400.
func TestDisabledQuarantineIsNotPartOfReadiness(t *testing.T) {
	h := newQuarantineHarness(t, func(c *Config) {
		c.Quarantine.Enabled = false
	})
	if _, err := h.js.Stream(context.Background(), h.cfg.Quarantine.Stream); err == nil {
		t.Errorf("quarantine stream %s exists, want none while disabled", h.cfg.Quarantine.Stream)
	}
	status, answer := h.post(secretB, time.Now(), "dlv_disabled", testEvent("evt_disabled", "message.delivered"))
	if status != 400 || answer["quarantined"] != nil {
		t.Errorf("answer: got %d %v, want 400 without quarantined", status, answer)
	}

	unmanaged := h.cfg
	unmanaged.Stream.Manage = false
	b := runBroker(t, h.cfg.NATS.URL, unmanaged, zap.NewNop(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.CheckNow(ctx); err != nil {
		t.Errorf("unmanaged, quarantine disabled: got %v, want ready", err)
	}
}

// TestNotKeptIsAnswered503: a rejection the quarantine would keep but
// cannot (over the rate, the stream full, the share for large entries used
// up) is answered 503 with "quarantined":false, so that Zautic retries it,
// and counted by cause; the entries already kept stay.
func TestNotKeptIsAnswered503(t *testing.T) {
	small := func(i int) []byte { return testEvent("evt_nk_"+strconv.Itoa(i), "message.delivered") }
	large := func(i int) []byte { return append(small(i), bytes.Repeat([]byte(" "), 100<<10)...) }
	tests := []struct {
		name      string
		configure func(*Config)
		bodies    []func(int) []byte // sent in order; each index is one request
		wantKept  []bool
		cause     string
	}{
		{"over the rate", func(c *Config) { c.Quarantine.Rate, c.Quarantine.Burst = 0.001, 2 },
			[]func(int) []byte{small, small, small}, []bool{true, true, false}, "rate"},
		{"quarantine full", func(c *Config) { c.Quarantine.MaxBytes = 2 << 10 },
			[]func(int) []byte{small, small, small, small, small, small, small, small}, nil, "full"},
		{"large entries past their share", func(c *Config) { c.Quarantine.MaxBytes = 1 << 20 },
			[]func(int) []byte{large, large, large, large, large, large, large, large, large, small},
			[]bool{true, true, true, true, true, true, true, false, false, true}, "large_share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuarantineHarness(t, tt.configure)
			var kept []bool
			for i, body := range tt.bodies {
				code, answer := h.post(secretB, time.Now(), "dlv_nk_"+strconv.Itoa(i), body(i))
				switch {
				case code == http.StatusBadRequest && answer["quarantined"] == true:
					kept = append(kept, true)
				case code == http.StatusServiceUnavailable && answer["quarantined"] == false &&
					strings.Contains(fmt.Sprint(answer["error"]), "not quarantined"):
					kept = append(kept, false)
				default:
					t.Fatalf("request %d: got %d %v, want 400 quarantined:true or 503 quarantined:false", i, code, answer)
				}
			}
			if tt.wantKept != nil && !slices.Equal(kept, tt.wantKept) {
				t.Errorf("kept: got %v, want %v", kept, tt.wantKept)
			}
			if !slices.Contains(kept, true) || !slices.Contains(kept, false) {
				t.Errorf("kept: got %v, want some kept, then some refused", kept)
			}
			refused := 0
			for _, k := range kept {
				if !k {
					refused++
				}
			}
			if got := promtest.Value(t, h.registry, "zautic_forwarder_quarantine_dropped_total", map[string]string{telemetry.EndpointLabel: telemetry.DefaultEndpoint, "cause": tt.cause}); got != float64(refused) {
				t.Errorf("dropped for %s: got %v, want %d", tt.cause, got, refused)
			}
			if got := h.streamCount(h.cfg.Quarantine.Stream); got != uint64(len(kept)-refused) {
				t.Errorf("quarantine: got %d entries, want the %d kept (none discarded)", got, len(kept)-refused)
			}
		})
	}
}
