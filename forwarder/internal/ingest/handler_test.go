package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// handlerSecret signs every request of the handler tests unless a case says
// otherwise.
const handlerSecret = "handler-test-secret"

// testConfig is the default configuration with the test secret.
func testConfig() settings {
	cfg := defaultSettings()
	cfg.Webhook.Secret = handlerSecret
	cfg.NATS.URL = "set by the harness"
	return cfg
}

// handlerHarness is a webhook handler wired to a real store.Broker on an
// in-process nats-server, driven through Echo's ServeHTTP so that the
// middleware runs.
type handlerHarness struct {
	t        testing.TB
	cfg      settings
	ns       *server.Server
	storeDir string
	broker   *store.Broker
	registry *prometheus.Registry
	echo     *echo.Echo
	js       jetstream.JetStream
}

// harnessOptions are the choices a test makes about its harness.
type harnessOptions struct {
	log       *zap.Logger               // zaptest when nil
	configure func(*settings)           // changes to testConfig
	setup     func(jetstream.JetStream) // runs before the broker starts
	tracer    trace.TracerProvider      // nil: tracing off
	// natsURL, when set, is a nats-server that the harness does not own
	// (the benchmarks' separate process); ns is then nil.
	natsURL string
}

// newHandlerHarness starts a nats-server and a broker, waits until the
// broker is ready, and builds the webhook server; all of it stops at cleanup.
func newHandlerHarness(t testing.TB, opts harnessOptions) *handlerHarness {
	t.Helper()
	h := &handlerHarness{t: t, cfg: testConfig(), storeDir: t.TempDir()}
	if opts.configure != nil {
		opts.configure(&h.cfg)
	}
	if h.cfg.NATS.URL = opts.natsURL; h.cfg.NATS.URL == "" {
		h.ns = natstest.Start(t, h.storeDir, 0)
		h.cfg.NATS.URL = h.ns.ClientURL()
	}
	h.js = clientJetStream(t, h.cfg.NATS.URL)
	if opts.setup != nil {
		opts.setup(h.js)
	}
	log := opts.log
	if log == nil {
		log = zaptest.NewLogger(t)
	}
	h.registry = prometheus.NewRegistry()
	metrics := telemetry.NewMetrics(h.registry, LabelledOutcomes())
	b := runBroker(t, h.cfg.NATS.URL, h.cfg, log, metrics)
	h.broker = b
	h.waitReady()
	secrets, err := secrets.New(h.cfg.Webhook)
	if err != nil {
		t.Fatalf("NewSecrets: %v", err)
	}
	h.echo = NewServer(h.cfg.HTTP, NewHandler(h.cfg.handlerConfig(), secrets, b, log, metrics, opts.tracer), metrics)
	return h
}

// clientJetStream connects a test client, closed at cleanup.
func clientJetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect test client: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (h *handlerHarness) waitReady() {
	h.t.Helper()
	natstest.CheckFor(h.t, 30*time.Second, 20*time.Millisecond, h.broker.Ready)
}

// serve sends req through Echo and returns the decoded answer.
func (h *handlerHarness) serve(req *http.Request) answer {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.echo.ServeHTTP(rec, req)
	// The answer does not wait for the mark; the tests look at the bucket
	// once it is there.
	if left := h.broker.WaitMarks(10 * time.Second); left != 0 {
		h.t.Fatalf("%d marks still in flight 10s after the answer", left)
	}
	return decodeAnswer(h.t, rec.Result())
}

// send posts body signed now with the test secret.
func (h *handlerHarness) send(body []byte, deliveryID string) answer {
	h.t.Helper()
	return h.serve(signedRequest(body, deliveryID, handlerSecret))
}

// count is the number of messages in the stream.
func (h *handlerHarness) count() uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := h.stream(ctx).Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// stream looks the forwarder's stream up.
func (h *handlerHarness) stream(ctx context.Context) jetstream.Stream {
	h.t.Helper()
	s, err := h.js.Stream(ctx, h.cfg.Stream.Name)
	if err != nil {
		h.t.Fatalf("stream %s: %v", h.cfg.Stream.Name, err)
	}
	return s
}

func (h *handlerHarness) assertCount(want uint64) {
	h.t.Helper()
	if got := h.count(); got != want {
		h.t.Errorf("stream holds %d messages, want %d", got, want)
	}
}

// message returns the stream message at seq.
func (h *handlerHarness) message(seq uint64) *jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.cfg.Stream.Name)
	if err != nil {
		h.t.Fatal(err)
	}
	msg, err := s.GetMsg(ctx, seq)
	if err != nil {
		h.t.Fatalf("get message %d: %v", seq, err)
	}
	return msg
}

// tapPublishes subscribes to the stream's subjects with core NATS and
// returns a function counting what was published there so far, duplicates
// that the stream discarded included. It tells a duplicate found in the KV
// bucket (nothing published) from one the stream's window caught.
func (h *handlerHarness) tapPublishes() func() int {
	h.t.Helper()
	nc := h.js.Conn()
	sub, err := nc.SubscribeSync(h.cfg.Stream.SubjectPrefix + ".>")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		h.t.Fatal(err)
	}
	return func() int {
		h.t.Helper()
		// The PubAck came before the answer, so the server had queued the
		// message to this connection before it answers the flush.
		if err := nc.Flush(); err != nil {
			h.t.Fatal(err)
		}
		n, _, err := sub.Pending()
		if err != nil {
			h.t.Fatal(err)
		}
		return n
	}
}

func (h *handlerHarness) kv() jetstream.KeyValue {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), h.cfg.Dedup.Bucket)
	if err != nil {
		h.t.Fatalf("KV bucket %s: %v", h.cfg.Dedup.Bucket, err)
	}
	return kv
}

// answer is a decoded HTTP answer of the webhook server.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func decodeAnswer(t testing.TB, res *http.Response) answer {
	t.Helper()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if res.Request != nil && res.Request.Method == http.MethodHead {
		return a
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("status %d: got Content-Type %q, want application/json (body %q)", a.status, ct, raw)
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Errorf("status %d: body %q is not a JSON object: %v", a.status, raw, err)
	}
	return a
}

// errorText is the "error" field of an error answer; it fails the test when
// the answer is not exactly {"error": "<non-empty>"}.
func (a answer) errorText(t testing.TB) string {
	t.Helper()
	msg, ok := a.body["error"].(string)
	// A rejection the quarantine kept says so; nothing else joins the reason.
	members := len(a.body)
	if a.body["quarantined"] == true {
		members--
	}
	if !ok || msg == "" || members != 1 {
		t.Errorf("status %d: got body %s, want {\"error\": \"<reason>\"} (and \"quarantined\":true when kept)", a.status, a.raw)
	}
	return msg
}

func (a answer) assertStatus(t testing.TB, want int) {
	t.Helper()
	if a.status != want {
		t.Fatalf("got status %d, want %d (body %s)", a.status, want, a.raw)
	}
}

// assertError checks an error answer: its status and that its reason
// mentions every one of reasons.
func (a answer) assertError(t testing.TB, status int, reasons ...string) {
	t.Helper()
	a.assertStatus(t, status)
	msg := a.errorText(t)
	for _, r := range reasons {
		if !strings.Contains(msg, r) {
			t.Errorf("status %d: got error %q, want it to mention %q", status, msg, r)
		}
	}
}

func (a answer) assertBody(t testing.TB, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(a.body, want) {
		t.Errorf("got body %s, want %v", a.raw, want)
	}
}

// eventBody is a Zautic event as the quickstart shows it.
func eventBody(id, eventType string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"created":1767432000,"livemode":true,"data":{"object":{"message_id":"3EB0DC15F6ACF859FB492F","phone":"919876543210","device_id":114,"status":"delivered","direction":"outgoing"}}}`, id, eventType)
}

// signedRequest is a POST of body to the default path, signed now with
// secret, with the headers Zautic sends.
func signedRequest(body []byte, deliveryID, secret string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, defaultSettings().HTTP.Path, bytes.NewReader(body))
	now := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(secret), now, body))
	req.Header.Set("X-Zautic-Timestamp", strconv.FormatInt(now, 10))
	if ev, err := zautic.ParseEvent(body); err == nil {
		req.Header.Set("X-Zautic-Event", ev.Type)
	}
	if deliveryID != "" {
		req.Header.Set(zautic.RequestDeliveryIDHeader, deliveryID)
	}
	return req
}

func publishedBody(seq float64, subject string) map[string]any {
	return map[string]any{"status": "published", "subject": subject, "stream": "ZAUTIC", "seq": seq}
}

var duplicateBody = map[string]any{"status": "duplicate"}

func TestHandlerPublishes(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	body := eventBody("evt_1", "message.delivered")

	a := h.send(body, "dlv_1")
	a.assertStatus(t, http.StatusOK)
	a.assertBody(t, publishedBody(1, "zautic.message.delivered"))
	h.assertCount(1)

	msg := h.message(1)
	if !bytes.Equal(msg.Data, body) {
		t.Errorf("got data %q, want the body unchanged %q", msg.Data, body)
	}
	if got, want := msg.Subject, "zautic.message.delivered"; got != want {
		t.Errorf("got subject %q, want %q", got, want)
	}
	wantHeaders := map[string]string{
		zautic.MessageIDHeader:         "evt_1",
		zautic.MessageEventTypeHeader:  "message.delivered",
		zautic.MessageEventIDHeader:    "evt_1",
		zautic.MessageDeliveryIDHeader: "dlv_1",
		"Content-Type":                 "application/json",
	}
	for k, want := range wantHeaders {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	ts, err := strconv.ParseInt(msg.Header.Get(zautic.MessageTimestampHeader), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("header %s: got %q, want the signed t", zautic.MessageTimestampHeader, msg.Header.Get(zautic.MessageTimestampHeader))
	}
	entry, err := h.kv().Get(context.Background(), "evt_1")
	if err != nil {
		t.Fatalf("KV entry of evt_1: %v", err)
	}
	if seq, _, _ := strings.Cut(string(entry.Value()), " "); seq != "1" {
		t.Errorf("KV value %q: got sequence %q, want 1", entry.Value(), seq)
	}

	a = h.send(eventBody("evt_2", "webhook.test"), "dlv_2")
	a.assertBody(t, publishedBody(2, "zautic.webhook.test"))
	h.assertCount(2)
}

func TestHandlerDuplicateDelivery(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	published := h.tapPublishes()
	body := eventBody("evt_1", "message.read")
	h.send(body, "dlv_1").assertBody(t, publishedBody(1, "zautic.message.read"))
	for i := range 3 {
		a := h.send(body, "dlv_1")
		a.assertStatus(t, http.StatusOK)
		if !reflect.DeepEqual(a.body, duplicateBody) {
			t.Errorf("retry %d: got %s, want %v", i, a.raw, duplicateBody)
		}
	}
	h.assertCount(1)
	if got := published(); got != 1 {
		t.Errorf("got %d publishes, want 1: the KV bucket, not the stream, must catch the retries", got)
	}
	// Another delivery id does not make the same signed event new.
	h.send(body, "dlv_2").assertBody(t, duplicateBody)
	h.assertCount(1)
}

// TestHandlerDuplicateWindow loses the KV entry after the first publish: the
// stream's Nats-Msg-Id window must still catch the retry.
func TestHandlerDuplicateWindow(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	published := h.tapPublishes()
	body := eventBody("evt_1", "message.sent")
	h.send(body, "dlv_1").assertBody(t, publishedBody(1, "zautic.message.sent"))

	kv := h.kv()
	if err := kv.Purge(context.Background(), "evt_1"); err != nil {
		t.Fatalf("purge KV key: %v", err)
	}
	if _, err := kv.Get(context.Background(), "evt_1"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("KV key still there after purge: %v", err)
	}

	a := h.send(body, "dlv_1")
	a.assertStatus(t, http.StatusOK)
	a.assertBody(t, duplicateBody)
	h.assertCount(1)
	if got := published(); got != 2 {
		t.Errorf("got %d publishes, want 2: the retry must reach the stream and be dropped there", got)
	}
	if _, err := kv.Get(context.Background(), "evt_1"); err != nil {
		t.Errorf("the duplicate was not marked again: %v", err)
	}
}

func TestHandlerDedupKeyEvent(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.Dedup.Key = DedupKeyEvent }})
	body := eventBody("evt_1", "message.failed")
	h.send(body, "dlv_1").assertBody(t, publishedBody(1, "zautic.message.failed"))
	// A new delivery id for the same event is still the same event.
	h.send(body, "dlv_2").assertBody(t, duplicateBody)
	h.assertCount(1)
	if got := h.message(1).Header.Get(zautic.MessageIDHeader); got != "evt_1" {
		t.Errorf("got Nats-Msg-Id %q, want the event id", got)
	}
	if got := h.message(1).Header.Get(zautic.MessageDeliveryIDHeader); got != "dlv_1" {
		t.Errorf("got %s %q, want the delivery id", zautic.MessageDeliveryIDHeader, got)
	}
}

func TestHandlerMissingDeliveryIDUsesEventID(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	body := eventBody("evt_nodlv", "contact.created")
	h.send(body, "").assertBody(t, publishedBody(1, "zautic.contact.created"))
	h.send(body, "").assertBody(t, duplicateBody)
	h.assertCount(1)
	msg := h.message(1)
	if got := msg.Header.Get(zautic.MessageIDHeader); got != "evt_nodlv" {
		t.Errorf("got Nats-Msg-Id %q, want the event id", got)
	}
	if _, ok := msg.Header[zautic.MessageDeliveryIDHeader]; ok {
		t.Errorf("got header %s %q, want none without a delivery id", zautic.MessageDeliveryIDHeader, msg.Header.Get(zautic.MessageDeliveryIDHeader))
	}
	if _, err := h.kv().Get(context.Background(), "evt_nodlv"); err != nil {
		t.Errorf("KV entry of the event id: %v", err)
	}
}

// TestHandlerWeirdDeliveryIDs sends, under dedup.key "delivery", ids a KV
// key cannot hold: they are stored under their hashed form while
// Zautic-Delivery-Id carries them as received, and Nats-Msg-Id the
// signature's key, so that the stream's window dedups signatures.
func TestHandlerWeirdDeliveryIDs(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.Dedup.Key = DedupKeyDelivery }})
	tests := []struct {
		name string
		id   string
	}{
		{"spaces", "dlv with spaces"},
		{"unicode", "délivery-✓-配送"},
		{"500 chars", strings.Repeat("d", 500)},
		{"dots and wildcards", "dlv.*.>"},
		{"colon and slash", "urn:zautic:dlv/1"},
	}
	for i, tt := range tests {
		seq := uint64(i + 1)
		body := eventBody("evt_"+strconv.Itoa(i), "group.updated")
		h.send(body, tt.id).assertBody(t, publishedBody(float64(seq), "zautic.group.updated"))
		msg := h.message(seq)
		if got := msg.Header.Get(zautic.MessageIDHeader); !strings.HasPrefix(got, adminapi.SignatureKeyPrefix) {
			t.Errorf("%s: got Nats-Msg-Id %q, want the signature's key", tt.name, got)
		}
		if got := msg.Header.Get(zautic.MessageDeliveryIDHeader); got != tt.id {
			t.Errorf("%s: got %s %q, want %q", tt.name, zautic.MessageDeliveryIDHeader, got, tt.id)
		}
		key := adminapi.KVKey(tt.id)
		if !strings.HasPrefix(key, "sha256.") {
			t.Errorf("%s: got KV key %q, want the hashed form", tt.name, key)
		}
		if _, err := h.kv().Get(context.Background(), key); err != nil {
			t.Errorf("%s: KV entry %q: %v", tt.name, key, err)
		}
		h.send(body, tt.id).assertBody(t, duplicateBody)
	}
	h.assertCount(uint64(len(tests)))
}

func TestHandlerEventsAllow(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) {
		c.Events.Allow = []string{"message.received", "device.connected"}
	}})
	a := h.send(eventBody("evt_1", "message.delivered"), "dlv_1")
	a.assertStatus(t, http.StatusOK)
	a.assertBody(t, map[string]any{"status": "ignored"})
	h.assertCount(0)
	if _, err := h.kv().Get(context.Background(), "dlv_1"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("an ignored delivery was marked: %v", err)
	}
	h.send(eventBody("evt_2", "message.received"), "dlv_2").assertBody(t, publishedBody(1, "zautic.message.received"))
	h.assertCount(1)
}

// rejectCase is one request that must be refused; it differs from a request
// correctly signed now in what its fields set.
type rejectCase struct {
	name    string
	body    []byte                   // the signed body; eventBody when nil
	sign    func(body []byte) string // the signature header; Sign with the test secret now when nil
	mutate  func(r *http.Request)
	status  int
	reasons []string
}

func TestHandlerRejects(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) {
		c.HTTP.MaxBodyBytes = 4096
		c.HTTP.MaxHeaderBytes = 2048
	}})
	now := time.Now().Unix()
	signAt := func(secret string, at int64) func([]byte) string {
		return func(b []byte) string { return zautic.Sign([]byte(secret), at, b) }
	}
	header := func(v string) func([]byte) string { return func([]byte) string { return v } }
	big := append(eventBody("evt_big", "message.sent"), bytes.Repeat([]byte(" "), 4096)...)
	tests := []rejectCase{
		{name: "missing signature", sign: header(""), status: 400, reasons: []string{"missing X-Zautic-Signature"}},
		{name: "signature without t", sign: header("v1=" + strings.Repeat("00", 32)), status: 400, reasons: []string{"malformed", "no t"}},
		{name: "two t", sign: header("t=1,t=2,v1=" + strings.Repeat("00", 32)), status: 400, reasons: []string{"malformed", "more than one t"}},
		{name: "t not an integer", sign: header("t=now,v1=" + strings.Repeat("00", 32)), status: 400, reasons: []string{"malformed", "not an integer"}},
		{name: "no usable v1", sign: header("t=1,v1=abc"), status: 400, reasons: []string{"malformed", "no v1"}},
		{name: "wrong secret", sign: signAt("wrong-secret", now), status: 400, reasons: []string{"no v1 signature matches"}},
		{name: "body altered after signing", mutate: func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(flipLastByte(b)))
		}, status: 400, reasons: []string{"no v1 signature matches"}},
		{name: "signed too long ago", sign: signAt(handlerSecret, now-3600), status: 400, reasons: []string{"outside tolerance"}},
		{name: "signed in the future", sign: signAt(handlerSecret, now+3600), status: 400, reasons: []string{"outside tolerance"}},
		{name: "not JSON", body: []byte("hello"), status: 400, reasons: []string{"invalid event", "not a JSON object"}},
		{name: "JSON array", body: []byte(`[{"id":"a","type":"b"}]`), status: 400, reasons: []string{"not a JSON object"}},
		{name: "malformed JSON", body: []byte(`{"id":"a","type":"b"`), status: 400, reasons: []string{"malformed JSON"}},
		{name: "invalid UTF-8", body: []byte("{\"id\":\"\xff\",\"type\":\"b\"}"), status: 400, reasons: []string{"UTF-8"}},
		{name: "missing id", body: []byte(`{"type":"message.sent"}`), status: 400, reasons: []string{`"id"`}},
		{name: "id not a string", body: []byte(`{"id":7,"type":"message.sent"}`), status: 400, reasons: []string{`"id" must be a string`}},
		{name: "empty type", body: []byte(`{"id":"a","type":""}`), status: 400, reasons: []string{`"type"`}},
		{name: "wildcard type", body: eventBody("evt_w", "message.>"), status: 400, reasons: []string{"invalid event type", `'>'`}},
		{name: "type with space", body: eventBody("evt_s", "message sent"), status: 400, reasons: []string{"invalid event type", `' '`}},
		{name: "type with empty token", body: eventBody("evt_e", "message..sent"), status: 400, reasons: []string{"empty token"}},
		{name: "body too large with Content-Length", body: big, status: 413, reasons: []string{"body too large", "Content-Length", "4096"}},
		{name: "body too large without Content-Length", body: big, mutate: func(r *http.Request) {
			r.Body = io.NopCloser(struct{ io.Reader }{r.Body})
			r.ContentLength = -1
		}, status: 413, reasons: []string{"body too large", "exceeds 4096 bytes"}},
		{name: "Content-Length understated", body: big, mutate: func(r *http.Request) { r.ContentLength = 100 }, status: 413, reasons: []string{"body too large", "exceeds 4096 bytes"}},
		{name: "headers too large", mutate: func(r *http.Request) { r.Header.Set("X-Padding", strings.Repeat("p", 2048)) }, status: 431, reasons: []string{"request headers are", "more than 2048"}},
		{name: "GET", mutate: func(r *http.Request) { r.Method = http.MethodGet }, status: 405, reasons: []string{"method GET not allowed", "POST"}},
		{name: "PUT", mutate: func(r *http.Request) { r.Method = http.MethodPut }, status: 405, reasons: []string{"method PUT not allowed", "POST"}},
		{name: "DELETE", mutate: func(r *http.Request) { r.Method = http.MethodDelete }, status: 405, reasons: []string{"method DELETE not allowed"}},
		{name: "other path", mutate: func(r *http.Request) { r.URL.Path = "/webhooks/other" }, status: 404, reasons: []string{"no route for /webhooks/other"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = eventBody("evt_reject_"+strconv.Itoa(i), "message.sent")
			}
			req := signedRequest(body, "dlv_reject_"+strconv.Itoa(i), handlerSecret)
			if tt.sign != nil {
				req.Header.Set(zautic.RequestSignatureHeader, tt.sign(body))
			}
			if tt.mutate != nil {
				tt.mutate(req)
			}
			a := h.serve(req)
			a.assertError(t, tt.status, tt.reasons...)
			h.assertCount(0)
		})
	}
	// The same handler still publishes: the rejections did not wedge it.
	h.send(eventBody("evt_ok", "message.sent"), "dlv_ok").assertBody(t, publishedBody(1, "zautic.message.sent"))
}

// TestHandlerBodyAtLimit sends a body of exactly http.max_body_bytes.
func TestHandlerBodyAtLimit(t *testing.T) {
	t.Parallel()
	const limit = 2048
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.HTTP.MaxBodyBytes = limit }})
	body := eventBody("evt_limit", "message.sent")
	body = append(body[:len(body)-1], []byte(`,"pad":"`)...)
	body = append(body, bytes.Repeat([]byte("p"), limit-len(body)-2)...)
	body = append(body, '"', '}')
	if len(body) != limit {
		t.Fatalf("test body is %d bytes, want %d", len(body), limit)
	}
	req := signedRequest(body, "dlv_limit", handlerSecret)
	req.Body = io.NopCloser(struct{ io.Reader }{req.Body}) // no Content-Length
	req.ContentLength = -1
	h.serve(req).assertBody(t, publishedBody(1, "zautic.message.sent"))
}

// blockingBody is a request body whose first Read reports that the request
// is in the handler, then waits for release (bounded, so a broken test
// cannot hang).
type blockingBody struct {
	data    io.Reader
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingBody) Read(p []byte) (int, error) {
	b.once.Do(func() {
		close(b.started)
		select {
		case <-b.release:
		case <-time.After(30 * time.Second):
		}
	})
	return b.data.Read(p)
}

// holdRequests serves a request for each id (event "evt_<id>", delivery
// "dlv_<id>"), its body declaring contentLength (-1: chunked) and blocking
// on its first read, and returns once each has reached its body. release
// lets them finish and returns their answers; a cleanup registered after
// the harness, so that it runs first, releases them if the test has not, so
// that no held request outlives the test.
func (h *handlerHarness) holdRequests(t *testing.T, eventType string, contentLength int64, ids ...string) (release func() []answer) {
	t.Helper()
	unblock := make(chan struct{})
	unblockOnce := sync.OnceFunc(func() { close(unblock) })
	var wg sync.WaitGroup
	t.Cleanup(func() {
		unblockOnce()
		wg.Wait()
	})
	answers := make([]answer, len(ids))
	for i, id := range ids {
		body := eventBody("evt_"+id, eventType)
		req := signedRequest(body, "dlv_"+id, handlerSecret)
		bb := &blockingBody{data: bytes.NewReader(body), started: make(chan struct{}), release: unblock}
		req.Body, req.ContentLength = io.NopCloser(bb), contentLength
		wg.Go(func() { answers[i] = h.serve(req) })
		select {
		case <-bb.started:
		case <-time.After(30 * time.Second):
			t.Fatalf("held request %s never reached its body", id)
		}
	}
	return func() []answer {
		unblockOnce()
		wg.Wait()
		return answers
	}
}

func assertAllPublished(t *testing.T, answers []answer) {
	t.Helper()
	for i, a := range answers {
		if a.status != http.StatusOK || a.body["status"] != "published" {
			t.Errorf("held request %d: got %d %s, want published", i, a.status, a.raw)
		}
	}
}

func TestHandlerOverloaded(t *testing.T) {
	t.Parallel()
	const maxInFlight = 2
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.HTTP.MaxInFlight = maxInFlight }})

	release := h.holdRequests(t, "campaign.started", -1, "held_0", "held_1")

	a := h.send(eventBody("evt_over", "campaign.started"), "dlv_over")
	a.assertError(t, http.StatusTooManyRequests, "overloaded", "2 requests in flight")
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want %q", got, "1")
	}
	h.assertCount(0)

	assertAllPublished(t, release())
	h.assertCount(maxInFlight)
	// The slots are free again.
	h.send(eventBody("evt_over", "campaign.started"), "dlv_over").assertBody(t, publishedBody(maxInFlight+1, "zautic.campaign.started"))
}

// TestHandlerNATSDown shuts the nats-server down under the handler: requests
// answer 503 with Retry-After, nothing is lost or marked, and once the server
// is back the retry publishes.
func TestHandlerNATSDown(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	h.send(eventBody("evt_1", "device.disconnected"), "dlv_1").assertBody(t, publishedBody(1, "zautic.device.disconnected"))
	port := h.ns.Addr().(*net.TCPAddr).Port

	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if h.broker.Ready() == nil {
			return errors.New("broker still ready")
		}
		return nil
	})
	body := eventBody("evt_2", "device.connected")
	a := h.send(body, "dlv_2")
	a.assertError(t, http.StatusServiceUnavailable, "nats not ready")
	if got := a.header.Get("Retry-After"); got != "2" {
		t.Errorf("got Retry-After %q, want %q", got, "2")
	}

	h.ns = natstest.Start(t, h.storeDir, port)
	h.waitReady()
	h.assertCount(1)
	h.send(body, "dlv_2").assertBody(t, publishedBody(2, "zautic.device.connected"))
	h.send(eventBody("evt_1", "device.disconnected"), "dlv_1").assertBody(t, duplicateBody)
	h.assertCount(2)
}

// TestHandlerBucketMissing runs with stream.manage false and deletes the KV
// bucket: the broker turns not ready and requests answer 503 naming the
// bucket, without publishing.
func TestHandlerBucketMissing(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	h := newHandlerHarness(t, harnessOptions{
		configure: func(c *settings) { c.Stream.Manage = false },
		setup: func(js jetstream.JetStream) {
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream.Name, Subjects: []string{"zautic.>"}, Duplicates: time.Minute}); err != nil {
				t.Fatalf("create stream: %v", err)
			}
			if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cfg.Dedup.Bucket}); err != nil {
				t.Fatalf("create bucket: %v", err)
			}
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Quarantine.Stream, Subjects: []string{"zautic-quarantine.>"}}); err != nil {
				t.Fatalf("create quarantine stream: %v", err)
			}
		},
	})
	h.send(eventBody("evt_1", "template.created"), "dlv_1").assertBody(t, publishedBody(1, "zautic.template.created"))

	if err := h.js.DeleteKeyValue(context.Background(), cfg.Dedup.Bucket); err != nil {
		t.Fatalf("delete bucket: %v", err)
	}
	h.broker.Wake()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if h.broker.Ready() == nil {
			h.broker.Wake()
			return errors.New("broker still ready")
		}
		return nil
	})
	h.send(eventBody("evt_2", "template.updated"), "dlv_2").assertError(t, http.StatusServiceUnavailable, "nats not ready", "KV bucket", cfg.Dedup.Bucket, "missing")
	h.assertCount(1)
}

func flipLastByte(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 0x01
	return out
}
