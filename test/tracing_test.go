package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// tracingEnv is the forwarder's environment with traces exported to
// endpoint, in batches sent every 100ms instead of every 5s.
func tracingEnv(natsURL, endpoint, protocol string) map[string]string {
	env := forwarderEnv(natsURL)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
	env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
	if protocol != "" {
		env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
	}
	return env
}

// traceparent is a W3C traceparent as an ingress in front of the forwarder
// would send it, sampled.
func traceparent(traceID, spanID string) string {
	return "00-" + traceID + "-" + spanID + "-01"
}

// publishTraced sends the event evt_<name> as delivery dlv_<name>, its
// request carrying the given traceparent, and fails unless it is published.
func publishTraced(t *testing.T, p *forwarderProcess, name, eventType, parent string) {
	t.Helper()
	got := send(t, p.WebhookURL, webhook{
		body: sampleEvent("evt_"+name, eventType), deliveryID: "dlv_" + name,
		headers: map[string]string{"traceparent": parent},
	})
	if got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("got %d %v, want 200 published", got.Status, got.Body)
	}
}

// TestTracingEndToEnd follows one event from the webhook request, whose
// traceparent an ingress set, through the stream to the example consumer:
// every span lands in one trace at an in-process OTLP collector, over HTTP
// and over gRPC. A rejected request's span is an error with its reason.
func TestTracingEndToEnd(t *testing.T) {
	tests := []struct {
		name        string
		protocol    string
		receiver    func(*testing.T) *otlpReceiver
		traceID     string
		serviceName string // OTEL_SERVICE_NAME, when set
	}{
		{"OTLP over HTTP", "", startOTLPReceiver, "5b8efff798038103d269b633813fc60c", ""},
		{"OTLP over gRPC, OTEL_SERVICE_NAME", "grpc", startOTLPGRPCReceiver, "6c9f0008a9149214e37ac744924ad71d", "webhook-bridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			collector := tt.receiver(t)
			natsURL := natstest.Start(t, "", 0).ClientURL()
			env := tracingEnv(natsURL, collector.URL, tt.protocol)
			env["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment.name=e2e"
			wantResource := map[string]string{"service.name": "zautic-forwarder", "service.version": "dev", "deployment.environment.name": "e2e"}
			if tt.serviceName != "" {
				env["OTEL_SERVICE_NAME"] = tt.serviceName
				wantResource["service.name"] = tt.serviceName
			}
			p := startForwarder(t, env)
			p.WaitReady(t)

			const ingressSpanID = "eee19b7ec3c1b174"
			publishTraced(t, p, "trace_1", "message.delivered", traceparent(tt.traceID, ingressSpanID))

			server := collector.waitSpan(t, tt.traceID, "POST /webhooks/zautic")
			assertSpan(t, server, tracepb.Span_SPAN_KIND_SERVER, ingressSpanID, map[string]string{
				"http.request.method": "POST", "http.response.status_code": "200",
				"zautic.delivery_id": "dlv_trace_1", "zautic.event_id": "evt_trace_1",
				"zautic.event_type": "message.delivered", "zautic.outcome": "published",
			})
			for k, want := range wantResource {
				if got := server.resource[k]; got != want {
					t.Errorf("resource %s: got %q, want %q", k, got, want)
				}
			}
			producer := collector.waitSpan(t, tt.traceID, "send zautic.message.delivered")
			assertSpan(t, producer, tracepb.Span_SPAN_KIND_PRODUCER, server.spanID(), map[string]string{
				"messaging.system": "nats", "messaging.destination.name": "zautic.message.delivered",
				"messaging.message.id": "dlv_trace_1",
			})
			for _, name := range []string{"dedup lookup", "dedup mark"} {
				assertSpan(t, collector.waitSpan(t, tt.traceID, name), tracepb.Span_SPAN_KIND_CLIENT, server.spanID(), nil)
			}

			_, js := connect(t, natsURL)
			msgs := streamMessages(t, js, "ZAUTIC")
			wantParent := traceparent(tt.traceID, producer.spanID())
			if len(msgs) != 1 || msgs[0].Headers().Get(zautic.MessageTraceparentHeader) != wantParent {
				t.Fatalf("got %d messages, first traceparent %q, want 1 with %q", len(msgs), firstTraceparent(msgs), wantParent)
			}

			res := runProgram(t, consumerBinary(t), map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": tt.protocol,
			}, "", "--server", natsURL, "--max", "1")
			if res.Code != 0 {
				t.Fatalf("consumer exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
			}
			consumer := collector.waitSpan(t, tt.traceID, "process zautic.message.delivered")
			assertSpan(t, consumer, tracepb.Span_SPAN_KIND_CONSUMER, producer.spanID(), map[string]string{
				"messaging.system": "nats", "messaging.message.id": "dlv_trace_1", "zautic.outcome": "processed",
			})
			if got := consumer.resource["service.name"]; got != "zautic-consumer-example" {
				t.Errorf("consumer service.name: got %q, want zautic-consumer-example", got)
			}

			assertJoinedToTrace(t, p, "dlv_trace_1", tt.traceID, server.spanID())
			assertRejectedSpan(t, p, collector)
		})
	}
}

func assertSpan(t *testing.T, s receivedSpan, kind tracepb.Span_SpanKind, parentID string, want map[string]string) {
	t.Helper()
	if s.Kind != kind || s.parentID() != parentID {
		t.Errorf("span %q: got kind %v, parent %s, want %v, parent %s", s.Name, s.Kind, s.parentID(), kind, parentID)
	}
	if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %q: got status error %q, want none", s.Name, s.GetStatus().GetMessage())
	}
	attrs := s.attrs()
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("span %q attribute %s: got %q, want %q", s.Name, k, attrs[k], v)
		}
	}
}

func firstTraceparent(msgs []jetstream.Msg) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[0].Headers().Get(zautic.MessageTraceparentHeader)
}

// assertJoinedToTrace checks the delivery log line's trace and span ids and
// the trace id exemplar of request_duration_seconds in the OpenMetrics
// scrape.
func assertJoinedToTrace(t *testing.T, p *forwarderProcess, deliveryID, traceID, spanID string) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		lines := deliveryLines(p.Logs(), deliveryID)
		if len(lines) != 1 {
			return fmt.Errorf("got %d delivery lines for %s, want 1", len(lines), deliveryID)
		}
		if lines[0]["trace_id"] != traceID || lines[0]["span_id"] != spanID {
			return fmt.Errorf("delivery line: got trace_id %v span_id %v, want %s %s", lines[0]["trace_id"], lines[0]["span_id"], traceID, spanID)
		}
		return nil
	})
	req, err := http.NewRequest(http.MethodGet, p.AdminURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	exemplar := `# {trace_id="` + traceID + `"}`
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "zautic_forwarder_request_duration_seconds_bucket") && strings.Contains(line, exemplar) {
			return
		}
	}
	t.Errorf("no request_duration_seconds bucket with exemplar %s in the OpenMetrics scrape (%s)", exemplar, resp.Header.Get("Content-Type"))
}

// assertRejectedSpan sends a webhook signed with the wrong secret: its span
// is an error whose description and zautic.reason name the reason, and it
// holds neither the signature nor the body.
func assertRejectedSpan(t *testing.T, p *forwarderProcess, collector *otlpReceiver) {
	t.Helper()
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	body := sampleEvent("evt_trace_bad", "message.sent")
	signature := zautic.Sign([]byte("not-the-secret"), time.Now().Unix(), body)
	got := send(t, p.WebhookURL, webhook{
		body: body, deliveryID: "dlv_trace_bad", signature: signature,
		headers: map[string]string{"traceparent": traceparent(traceID, "b7ad6b7169203331")},
	})
	if got.Status != http.StatusBadRequest {
		t.Fatalf("got %d %v, want 400", got.Status, got.Body)
	}
	s := collector.waitSpan(t, traceID, "POST /webhooks/zautic")
	if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || !strings.HasPrefix(s.GetStatus().GetMessage(), "signature_mismatch") {
		t.Errorf("rejected span status: got %v %q, want error starting with signature_mismatch", s.GetStatus().GetCode(), s.GetStatus().GetMessage())
	}
	attrs := s.attrs()
	if attrs["zautic.reason"] != "signature_mismatch" || attrs["zautic.outcome"] != "rejected" || attrs["http.response.status_code"] != "400" {
		t.Errorf("rejected span attributes: got %v, want reason signature_mismatch, outcome rejected, status 400", attrs)
	}
	for k, v := range attrs {
		if strings.Contains(v, signature) || strings.Contains(v, testSecret) || strings.Contains(v, string(body)) {
			t.Errorf("attribute %s holds the signature, the secret or the body: %q", k, v)
		}
	}
}

// TestTracingCollectorUnreachable points the exporter at a collector that
// refuses connections, or accepts them and never answers: every webhook is
// answered as without tracing, and SIGTERM still stops the process within
// the shutdown timeout, the unsent spans given up.
func TestTracingCollectorUnreachable(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
		endpoint func(*testing.T) string
	}{
		{"HTTP, connection refused", "", refusingEndpoint},
		{"gRPC, connection refused", "grpc", refusingEndpoint},
		{"HTTP, collector never answers", "", stallingEndpoint},
		{"gRPC, collector never answers", "grpc", stallingEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tracingEnv(natstest.Start(t, "", 0).ClientURL(), tt.endpoint(t), tt.protocol)
			env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = "4" // several exports start during the test
			env["FORWARDER_HTTP_SHUTDOWN_TIMEOUT"] = "2s"
			p := startForwarder(t, env)
			p.WaitReady(t)
			client := &http.Client{Timeout: 5 * time.Second}
			for i := range 20 {
				id := fmt.Sprintf("dlv_unreachable_%d", i)
				got, err := do(t, client, newRequest(t, p.WebhookURL, webhook{body: sampleEvent("evt_u_"+id, "message.sent"), deliveryID: id}))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got.Status != http.StatusOK || got.Body["status"] != "published" || got.Body["seq"] != float64(i+1) {
					t.Fatalf("request %d: got %d %v, want 200 published at seq %d", i, got.Status, got.Body, i+1)
				}
			}
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(t, 15*time.Second); code != 0 {
				t.Errorf("exit code: got %d, want 0", code)
			}
		})
	}
}

// refusingEndpoint is a loopback address nobody listens on.
func refusingEndpoint(t *testing.T) string {
	return "http://" + freeAddr(t)
}

// stallingEndpoint accepts connections and never reads or answers.
func stallingEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
				_ = c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestTracingOff runs the forwarder without an OTLP endpoint, or with one
// that OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none overrides: no exporter
// starts (the collector never hears from it) and no span is made (the
// message carries no traceparent, though the request had one).
func TestTracingOff(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no variables", map[string]string{"OTEL_SERVICE_NAME": "ignored-without-an-endpoint"}},
		{"OTEL_SDK_DISABLED", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}},
		{"OTEL_TRACES_EXPORTER=none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			collector := startOTLPReceiver(t)
			natsURL := natstest.Start(t, "", 0).ClientURL()
			env := forwarderEnv(natsURL)
			env["OTEL_BSP_SCHEDULE_DELAY"] = "10"
			for k, v := range tt.env {
				if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
					v = collector.URL
				}
				env[k] = v
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			publishTraced(t, p, "off", "message.sent", traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
			_, js := connect(t, natsURL)
			msgs := streamMessages(t, js, "ZAUTIC")
			if len(msgs) != 1 || firstTraceparent(msgs) != "" {
				t.Errorf("got %d messages, traceparent %q, want 1 without one", len(msgs), firstTraceparent(msgs))
			}
			p.Signal(syscall.SIGTERM)
			p.Wait(t, 30*time.Second)
			if n := collector.exportRequests(); n != 0 {
				t.Errorf("collector got %d export requests, want 0", n)
			}
			logs := p.Logs()
			if !strings.Contains(logs, `"msg":"tracing off"`) || strings.Contains(logs, `"msg":"tracing on"`) {
				t.Errorf("got logs without \"tracing off\" or with \"tracing on\":\n%s", trimmed(logs))
			}
			if lines := deliveryLines(logs, "dlv_off"); len(lines) != 1 || lines[0]["trace_id"] != nil {
				t.Errorf("delivery lines: got %v, want one without trace_id", lines)
			}
		})
	}
}

// TestTracingSamplerFromEnvironment turns tracing on with
// OTEL_TRACES_SAMPLER=always_off: the sampler beats the caller's sampled
// flag, so nothing is exported and the log line has no trace id, but the
// message still carries the trace context, marked not sampled, for the
// consumer to continue.
func TestTracingSamplerFromEnvironment(t *testing.T) {
	collector := startOTLPReceiver(t)
	natsURL := natstest.Start(t, "", 0).ClientURL()
	env := tracingEnv(natsURL, collector.URL, "")
	env["OTEL_TRACES_SAMPLER"] = "always_off"
	p := startForwarder(t, env)
	p.WaitReady(t)
	const traceID = "7d8a3c4b5e6f70819a2b3c4d5e6f7081"
	publishTraced(t, p, "unsampled", "message.sent", traceparent(traceID, "1a2b3c4d5e6f7081"))
	_, js := connect(t, natsURL)
	msgs := streamMessages(t, js, "ZAUTIC")
	if tp := firstTraceparent(msgs); !strings.HasPrefix(tp, "00-"+traceID+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("message traceparent: got %q, want trace %s, not sampled (flags 00)", tp, traceID)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(t, 30*time.Second)
	collector.mu.Lock()
	spans := len(collector.spans)
	collector.mu.Unlock()
	if spans != 0 {
		t.Errorf("collector got %d spans, want 0", spans)
	}
	if lines := deliveryLines(p.Logs(), "dlv_unsampled"); len(lines) != 1 || lines[0]["trace_id"] != nil {
		t.Errorf("delivery lines: got %v, want one without trace_id", lines)
	}
}

// TestTracingFlushesAtShutdown holds spans in the batch processor for a
// minute, longer than the test: only the flush at SIGTERM can deliver them.
func TestTracingFlushesAtShutdown(t *testing.T) {
	collector := startOTLPReceiver(t)
	env := tracingEnv(natstest.Start(t, "", 0).ClientURL(), collector.URL, "")
	env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"
	p := startForwarder(t, env)
	p.WaitReady(t)
	const traceID = "8e9f0a1b2c3d4e5f60718293a4b5c6d7"
	publishTraced(t, p, "flush", "message.sent", traceparent(traceID, "2b3c4d5e6f708192"))
	if n := collector.exportRequests(); n != 0 {
		t.Fatalf("collector got %d export requests before the shutdown, want 0: the batch delay is a minute", n)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
	for _, name := range []string{"POST /webhooks/zautic", "dedup lookup", "send zautic.message.sent", "dedup mark"} {
		collector.waitSpan(t, traceID, name)
	}
}
