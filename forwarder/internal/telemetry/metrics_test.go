package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// metricValue returns the value of the series name{labels} in reg: the
// counter or gauge value, or the sample count of a histogram. A missing
// series fails the test.
func metricValue(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// labelValues lists the values label takes in the series of name.
func labelValues(t testing.TB, reg prometheus.Gatherer, name, label string) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var values []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					values = append(values, l.GetValue())
				}
			}
		}
	}
	return values
}

// TestNewMetricsExportsTheContract gathers a fresh registry: every metric the
// dashboard and alerts rely on exists before any traffic, at zero, with the
// Go and process collectors beside them.
func TestNewMetricsExportsTheContract(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetricSet(reg)
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomePublished}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeDuplicate}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeIgnored}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeUnavailable}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeOverloaded}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeOverloaded, "reason": reasonBodyMemory}},
		{"zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeRejected, "reason": "signature_mismatch"}},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "message.delivered"}},
		{"zautic_forwarder_events_published_total", map[string]string{"type": "other"}},
		{"zautic_forwarder_request_duration_seconds", nil},
		{"zautic_forwarder_publish_duration_seconds", nil},
		{"zautic_forwarder_in_flight_requests", nil},
		{"zautic_forwarder_body_memory_bytes", nil},
		{"zautic_forwarder_webhook_connections", nil},
		{"zautic_forwarder_ready", nil},
		{"zautic_forwarder_nats_connected", nil},
		{"zautic_forwarder_nats_reconnects_total", nil},
		{"zautic_forwarder_dedup_store_errors_total", map[string]string{"op": "get"}},
		{"zautic_forwarder_dedup_store_errors_total", map[string]string{"op": "put"}},
		{"zautic_forwarder_mark_failures_total", nil},
		{"zautic_forwarder_secret_reloads_total", map[string]string{"result": "ok"}},
		{"zautic_forwarder_quarantined_total", map[string]string{"reason": reasonSignatureMismatch}},
		{"zautic_forwarder_quarantined_total", map[string]string{"reason": reasonTimestampOld}},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{"cause": "rate"}},
		{"zautic_forwarder_quarantine_dropped_total", map[string]string{"cause": "store"}},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{"outcome": outcomePublished, "trigger": triggerReload}},
		{"zautic_forwarder_quarantine_replayed_total", map[string]string{"outcome": outcomeWouldPublish, "trigger": triggerAdmin}},
		{"zautic_forwarder_quarantine_entries", nil},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+fmt.Sprint(tt.labels), func(t *testing.T) {
			metricValue(t, reg, tt.name, tt.labels)
		})
	}
	if got, want := len(labelValues(t, reg, "zautic_forwarder_events_published_total", "type")), len(zautic.DocumentedTypes())+1; got != want {
		t.Errorf("type label values: got %d, want %d (the documented types and other)", got, want)
	}
}

// metricsRig is a webhook server wired to a real broker and nats-server,
// with its own registry.
type metricsRig struct {
	reg    *prometheus.Registry
	broker *natsBroker
	ns     *server.Server
	url    string
	cfg    Config
}

// newMetricsRig starts the rig. With checkLoop false the broker checks
// readiness once and never again, so that a test can change NATS under it
// without racing the periodic check.
func newMetricsRig(t *testing.T, checkLoop bool, mod func(*Config)) *metricsRig {
	t.Helper()
	ns, _ := startSecuredNATS(t, nil)
	cfg := DefaultConfig()
	cfg.NATS.URL = ns.ClientURL()
	cfg.Webhook.Secret = "metrics-secret"
	cfg.HTTP.MaxInFlight = 1
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	m := newMetricSet(reg)
	log := zaptest.NewLogger(t)
	var b *natsBroker
	if checkLoop {
		b = runBroker(t, cfg.NATS.URL, cfg, log, m)
		natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, b.Ready)
	} else {
		b = checkedOnceBroker(t, cfg, log, m)
	}
	secrets, err := newSecrets(cfg.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newWebhookServer(cfg.HTTP, newWebhookHandler(cfg.handlerConfig(), secrets, b, log, m), m))
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
func checkedOnceBroker(t *testing.T, cfg Config, log *zap.Logger, m *metricSet) *natsBroker {
	t.Helper()
	b, err := connectBroker(cfg.NATS.URL, cfg.brokerConfig(), log, m)
	if err != nil {
		t.Fatalf("ConnectBroker: %v", err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		b.check(context.Background())
		return b.Ready()
	})
	return b
}

func (r *metricsRig) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return metricValue(t, r.reg, name, labels)
}

func testEvent(id, eventType string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + eventType + `","data":{}}`)
}

// TestRequestMetrics drives each outcome through the real handler and
// checks the counters, the bounded type and reason labels and the latency
// histograms.
func TestRequestMetrics(t *testing.T) {
	rig := newMetricsRig(t, true, func(c *Config) {
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
		{reqs, map[string]string{"outcome": outcomePublished}, 2},
		{reqs, map[string]string{"outcome": outcomeDuplicate}, 1},
		{reqs, map[string]string{"outcome": outcomeIgnored}, 1},
		{reqs, map[string]string{"outcome": outcomeRejected, "reason": "signature_mismatch"}, 1},
		{reqs, map[string]string{"outcome": outcomeRejected, "reason": "signature_missing"}, 1},
		{reqs, map[string]string{"outcome": outcomeRejected, "reason": "invalid_event"}, 1},
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
	if got := labelValues(t, rig.reg, "zautic_forwarder_events_published_total", "type"); contains(got, "custom.thing") {
		t.Errorf("type label values %v include an undocumented type", got)
	}
	known := []string{""}
	for _, pair := range labelledOutcomes() {
		known = append(known, pair[1])
	}
	for _, reason := range labelValues(t, rig.reg, reqs, "reason") {
		if !contains(known, reason) {
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
	if got := rig.value(t, "zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeOverloaded}); got != 1 {
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
	if got := rig.value(t, "zautic_forwarder_webhook_requests_total", map[string]string{"outcome": outcomeUnavailable}); got != 1 {
		t.Errorf("unavailable requests: got %v, want 1", got)
	}

	startSecuredNATS(t, func(o *server.Options) { o.Port, o.StoreDir = port, storeDir })
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
