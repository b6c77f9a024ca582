package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/promtest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// metricsRig is a webhook server wired to a real broker and nats-server,
// with its own registry.
type metricsRig struct {
	reg    *prometheus.Registry
	broker *store.Broker
	ns     *server.Server
	url    string
	cfg    settings
}

// newMetricsRig starts the rig. With checkLoop false the broker checks
// readiness once and never again, so that a test can change NATS under it
// without racing the periodic check.
func newMetricsRig(t *testing.T, checkLoop bool, mod func(*settings)) *metricsRig {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	cfg := defaultSettings()
	cfg.NATS.URL = ns.ClientURL()
	cfg.Webhook.Secret = "metrics-secret"
	cfg.HTTP.MaxInFlight = 1
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg, LabelledOutcomes())
	log := zaptest.NewLogger(t)
	var b *store.Broker
	if checkLoop {
		b = runBroker(t, cfg.NATS.URL, cfg, log, m)
		natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, b.Ready)
	} else {
		b = checkedOnceBroker(t, cfg, log, m)
	}
	secrets, err := secrets.New(cfg.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(cfg.HTTP, NewHandler(cfg.handlerConfig(), secrets, b, log, m, nil), m))
	t.Cleanup(srv.Close)
	return &metricsRig{reg: reg, broker: b, ns: ns, url: srv.URL + cfg.HTTP.Path, cfg: cfg}
}

// blankSignature is sent as the signature header's value: present but empty
// once trimmed, which the forwarder treats as unsigned.
const blankSignature = " "

// post sends body signed with the rig's secret (or the given signature) and
// returns the status.
func (r *metricsRig) post(t *testing.T, body []byte, deliveryID, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if signature == "" {
		signature = zautic.Sign([]byte(r.cfg.Webhook.Secret), time.Now().Unix(), body)
	}
	req.Header.Set(zautic.RequestSignatureHeader, signature)
	req.Header.Set(zautic.RequestDeliveryIDHeader, deliveryID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// checkedOnceBroker connects and polls check until ready, without Run.
func checkedOnceBroker(t *testing.T, cfg settings, log *zap.Logger, m *telemetry.Metrics) *store.Broker {
	t.Helper()
	b, err := store.Connect(cfg.NATS.URL, cfg.brokerConfig(), log, m)
	if err != nil {
		t.Fatalf("ConnectBroker: %v", err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		return b.CheckNow(context.Background())
	})
	return b
}

func (r *metricsRig) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return promtest.Value(t, r.reg, name, labels)
}

func testEvent(id, eventType string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + eventType + `","data":{}}`)
}

// TestRequestMetrics drives each outcome through the real handler and
// checks the counters, the bounded type and reason labels and the latency
// histograms.
func TestRequestMetrics(t *testing.T) {
	rig := newMetricsRig(t, true, func(c *settings) {
		c.Events.Allow = []string{"message.delivered", "custom.thing"}
	})
	requests := []struct {
		name       string
		body       []byte
		deliveryID string
		signature  string
		wantStatus int
	}{
		{"published", testEvent("evt_1", "message.delivered"), "dlv_1", "", http.StatusOK},
		{"duplicate", testEvent("evt_1", "message.delivered"), "dlv_1", "", http.StatusOK},
		{"undocumented type", testEvent("evt_2", "custom.thing"), "dlv_2", "", http.StatusOK},
		{"ignored by events.allow", testEvent("evt_3", "message.read"), "dlv_3", "", http.StatusOK},
		{"bad signature", testEvent("evt_4", "message.read"), "dlv_4", "t=1,v1=" + string(bytes.Repeat([]byte("ab"), 32)), http.StatusBadRequest},
		{"unsigned", testEvent("evt_5", "message.read"), "dlv_5", blankSignature, http.StatusBadRequest},
		{"not an event", []byte(`[1,2]`), "dlv_6", "", http.StatusBadRequest},
	}
	for _, tt := range requests {
		if got := rig.post(t, tt.body, tt.deliveryID, tt.signature); got != tt.wantStatus {
			t.Fatalf("%s: status %d, want %d", tt.name, got, tt.wantStatus)
		}
	}

	const reqs = "zautic_forwarder_webhook_requests_total"
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{reqs, map[string]string{"outcome": telemetry.OutcomePublished}, 2},
		{reqs, map[string]string{"outcome": telemetry.OutcomeDuplicate}, 1},
		{reqs, map[string]string{"outcome": telemetry.OutcomeIgnored}, 1},
		{reqs, map[string]string{"outcome": telemetry.OutcomeRejected, "reason": "signature_mismatch"}, 1},
		{reqs, map[string]string{"outcome": telemetry.OutcomeRejected, "reason": "signature_missing"}, 1},
		{reqs, map[string]string{"outcome": telemetry.OutcomeRejected, "reason": "invalid_event"}, 1},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "message.delivered"}, 1},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "other"}, 1},
		{"zautic_forwarder_request_duration_seconds", nil, float64(len(requests))},
		{"zautic_forwarder_publish_duration_seconds", nil, 2},
		{"zautic_forwarder_in_flight_requests", nil, 0},
		{"zautic_forwarder_nats_connected", nil, 1},
		{"zautic_forwarder_ready", nil, 1},
	}
	for _, w := range want {
		if got := rig.value(t, w.name, w.labels); got != w.value {
			t.Errorf("%s%v: got %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	if got := promtest.LabelValues(t, rig.reg, "zautic_forwarder_events_published_total", "type"); slices.Contains(got, "custom.thing") {
		t.Errorf("type label values %v include an undocumented type", got)
	}
	known := []string{""}
	for _, pair := range LabelledOutcomes() {
		known = append(known, pair[1])
	}
	for _, reason := range promtest.LabelValues(t, rig.reg, reqs, "reason") {
		if !slices.Contains(known, reason) {
			t.Errorf("reason label %q is not one of %v", reason, known)
		}
	}
}

// TestInFlightAndOverloaded holds one request in flight by streaming its body
// slowly: the gauge shows it, and with http.max_in_flight 1 the next request
// is answered 429 and counted as overloaded.
func TestInFlightAndOverloaded(t *testing.T) {
	rig := newMetricsRig(t, true, nil)
	body := testEvent("evt_slow", "message.sent")
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, rig.url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(rig.cfg.Webhook.Secret), time.Now().Unix(), body))
	slow := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	if _, err := pw.Write(body[:5]); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if v := rig.value(t, "zautic_forwarder_in_flight_requests", nil); v != 1 {
			return fmt.Errorf("in flight %v", v)
		}
		return nil
	})
	if got := rig.post(t, testEvent("evt_other", "message.sent"), "dlv_other", ""); got != http.StatusTooManyRequests {
		t.Errorf("second request while one is in flight: got %d, want 429", got)
	}
	if _, err := pw.Write(body[5:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := <-slow; got != http.StatusOK {
		t.Errorf("slow request: got %d, want 200", got)
	}
	if got := rig.value(t, "zautic_forwarder_webhook_requests_total", map[string]string{"outcome": telemetry.OutcomeOverloaded}); got != 1 {
		t.Errorf("overloaded requests: got %v, want 1", got)
	}
	if got := rig.value(t, "zautic_forwarder_in_flight_requests", nil); got != 0 {
		t.Errorf("in flight after both answered: got %v, want 0", got)
	}
}

// TestConnectionMetrics restarts the nats-server: the connected gauge drops
// and rises again, reconnects are counted, and a request while disconnected
// is counted as unavailable.
func TestConnectionMetrics(t *testing.T) {
	rig := newMetricsRig(t, true, nil)
	port := rig.ns.Addr().(*net.TCPAddr).Port
	storeDir := rig.ns.JetStreamConfig().StoreDir
	rig.ns.Shutdown()
	rig.ns.WaitForShutdown()
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if v := rig.value(t, "zautic_forwarder_nats_connected", nil); v != 0 {
			return fmt.Errorf("connected gauge %v", v)
		}
		return nil
	})
	if got := rig.post(t, testEvent("evt_down", "message.sent"), "dlv_down", ""); got != http.StatusServiceUnavailable {
		t.Errorf("request while NATS is down: got %d, want 503", got)
	}
	if got := rig.value(t, "zautic_forwarder_webhook_requests_total", map[string]string{"outcome": telemetry.OutcomeUnavailable}); got != 1 {
		t.Errorf("unavailable requests: got %v, want 1", got)
	}

	natstest.Start(t, storeDir, port)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if v := rig.value(t, "zautic_forwarder_nats_connected", nil); v != 1 {
			return fmt.Errorf("connected gauge %v", v)
		}
		return rig.broker.Ready()
	})
	if got := rig.value(t, "zautic_forwarder_nats_reconnects_total", nil); got != 1 {
		t.Errorf("reconnects: got %v, want 1", got)
	}
}

// TestDedupStoreErrors deletes the KV bucket under a broker that does not
// manage it: the next lookup fails, is counted, and the request is answered
// 503 so that Zautic retries.
func TestDedupStoreErrors(t *testing.T) {
	rig := newMetricsRig(t, false, nil)
	nc, err := nats.Connect(rig.cfg.NATS.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The broker checks no more: it still holds the bucket and finds out on
	// the next lookup, as it would between two periodic checks.
	if err := js.DeleteKeyValue(ctx, rig.cfg.Dedup.Bucket); err != nil {
		t.Fatalf("delete bucket: %v", err)
	}
	if got := rig.post(t, testEvent("evt_kv", "message.sent"), "dlv_kv", ""); got != http.StatusServiceUnavailable {
		t.Errorf("request with the bucket gone: got %d, want 503", got)
	}
	if got := rig.value(t, "zautic_forwarder_dedup_store_errors_total", map[string]string{"op": "get"}); got != 1 {
		t.Errorf("dedup get errors: got %v, want 1", got)
	}
}
