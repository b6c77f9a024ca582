package ingest

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/zautic"
)

// Known ids of an incoming traceparent, as an ingress would send it.
const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
)

func incomingTraceparent(flags string) string {
	return "00-" + incomingTraceID + "-" + incomingSpanID + "-" + flags
}

// tracedHarness is a handler harness whose spans are recorded by the real
// SDK, sampling as the SDK does by default (parent-based, always on).
func tracedHarness(t *testing.T, log *zap.Logger) (*handlerHarness, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return newHandlerHarness(t, harnessOptions{log: log, tracer: tp}), rec
}

// spansByName indexes the ended spans; a name seen twice fails the test.
func spansByName(t *testing.T, rec *tracetest.SpanRecorder) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	out := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if _, dup := out[s.Name()]; dup {
			t.Fatalf("got two spans named %q", s.Name())
		}
		out[s.Name()] = s
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func assertAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g := got[attribute.Key(k)].String(); g != v {
			t.Errorf("span %q attribute %s: got %q, want %q", s.Name(), k, g, v)
		}
	}
}

func TestHandlerTracesPublishedDelivery(t *testing.T) {
	t.Parallel()
	h, rec := tracedHarness(t, nil)
	body := eventBody("evt_tr_1", "message.delivered")
	req := signedRequest(body, "dlv_tr_1", handlerSecret)
	req.Header.Set("Traceparent", incomingTraceparent("01"))
	req.Header.Set("Tracestate", "ingress=a1b2")
	h.serve(req).assertBody(t, publishedBody(1, "zautic.message.delivered"))

	spans := spansByName(t, rec)
	server, producer := spans["POST /webhooks/zautic"], spans["send zautic.message.delivered"]
	lookup, mark := spans["dedup lookup"], spans["dedup mark"]
	if server == nil || producer == nil || lookup == nil || mark == nil {
		t.Fatalf("got spans %v, want the server, send, dedup lookup and dedup mark spans", keys(spans))
	}
	if got := server.SpanContext().TraceID().String(); got != incomingTraceID {
		t.Errorf("server span trace id: got %s, want the incoming %s", got, incomingTraceID)
	}
	if got := server.Parent().SpanID().String(); got != incomingSpanID || !server.Parent().IsRemote() {
		t.Errorf("server span parent: got %s, want the remote %s", got, incomingSpanID)
	}
	if server.SpanKind() != trace.SpanKindServer || producer.SpanKind() != trace.SpanKindProducer {
		t.Errorf("kinds: got server %v, send %v, want server, producer", server.SpanKind(), producer.SpanKind())
	}
	for _, child := range []sdktrace.ReadOnlySpan{lookup, producer, mark} {
		if child.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("span %q: got parent %s, want the server span %s", child.Name(), child.Parent().SpanID(), server.SpanContext().SpanID())
		}
	}
	assertAttrs(t, server, map[string]string{
		"http.request.method": "POST", "http.route": "/webhooks/zautic", "http.response.status_code": "200",
		"zautic.delivery_id": "dlv_tr_1", "zautic.event_id": "evt_tr_1", "zautic.event_type": "message.delivered",
		"zautic.outcome": "published",
	})
	assertAttrs(t, producer, map[string]string{
		"messaging.system": "nats", "messaging.destination.name": "zautic.message.delivered",
		"messaging.message.id": "evt_tr_1", "messaging.operation.type": "send",
	})
	if server.Status().Code == codes.Error || producer.Status().Code == codes.Error {
		t.Errorf("status: got server %v, send %v, want neither an error", server.Status(), producer.Status())
	}

	want := "00-" + incomingTraceID + "-" + producer.SpanContext().SpanID().String() + "-01"
	header := h.message(1).Header
	if got := header.Get(zautic.MessageTraceparentHeader); got != want {
		t.Errorf("message traceparent: got %q, want %q (the send span's)", got, want)
	}
	if got := header.Get(zautic.MessageTracestateHeader); got != "ingress=a1b2" {
		t.Errorf("message tracestate: got %q, want the incoming ingress=a1b2", got)
	}
}

func TestHandlerTracesRejectedDelivery(t *testing.T) {
	t.Parallel()
	h, rec := tracedHarness(t, nil)
	body := eventBody("evt_tr_bad", "message.sent")
	req := signedRequest(body, "dlv_tr_bad", "wrong-secret")
	signature := req.Header.Get(zautic.RequestSignatureHeader)
	h.serve(req).assertStatus(t, 400)

	spans := spansByName(t, rec)
	server := spans["POST /webhooks/zautic"]
	if len(spans) != 1 || server == nil {
		t.Fatalf("got spans %v, want only the server span: nothing reached NATS", keys(spans))
	}
	if server.Status().Code != codes.Error || !strings.HasPrefix(server.Status().Description, "signature_mismatch") {
		t.Errorf("status: got %v %q, want Error starting with signature_mismatch", server.Status().Code, server.Status().Description)
	}
	assertAttrs(t, server, map[string]string{
		"http.response.status_code": "400", "zautic.outcome": "rejected", "zautic.reason": "signature_mismatch",
		"zautic.delivery_id": "dlv_tr_bad", "error.type": "signature_mismatch",
	})
	if v, ok := attrs(server)["zautic.event_id"]; ok {
		t.Errorf("zautic.event_id: got %q, want none: the body is not parsed before the signature is verified", v.String())
	}
	for k, v := range attrs(server) {
		if s := v.String(); strings.Contains(s, signature) || strings.Contains(s, handlerSecret) || strings.Contains(s, string(body)) {
			t.Errorf("attribute %s holds a signature, a secret or the body: %q", k, s)
		}
	}
}

func TestHandlerWithoutTracerProvider(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	req := signedRequest(eventBody("evt_tr_off", "message.sent"), "dlv_tr_off", handlerSecret)
	req.Header.Set("Traceparent", incomingTraceparent("01"))
	h.serve(req).assertStatus(t, 200)
	for _, name := range []string{zautic.MessageTraceparentHeader, zautic.MessageTracestateHeader, "Traceparent"} {
		if got := h.message(1).Header.Get(name); got != "" {
			t.Errorf("header %s: got %q, want none: tracing is off", name, got)
		}
	}
}

// TestDeliveryJoinedToTrace checks the delivery log line and the duration
// exemplar: present when the request is sampled, absent when it is not.
func TestDeliveryJoinedToTrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flags   string
		sampled bool
	}{
		{"sampled", "01", true},
		{"not sampled", "00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.InfoLevel)
			h, _ := tracedHarness(t, zap.New(core))
			req := signedRequest(eventBody("evt_j", "message.sent"), "dlv_j", handlerSecret)
			req.Header.Set("Traceparent", incomingTraceparent(tt.flags))
			h.serve(req).assertStatus(t, 200)

			lines := logs.FilterMessage("delivery").All()
			if len(lines) != 1 {
				t.Fatalf("got %d delivery lines, want 1", len(lines))
			}
			fields := lines[0].ContextMap()
			wantTraceID := ""
			if tt.sampled {
				wantTraceID = incomingTraceID
			}
			if got, _ := fields["trace_id"].(string); got != wantTraceID {
				t.Errorf("trace_id: got %q, want %q", got, wantTraceID)
			}
			if _, ok := fields["span_id"]; ok != tt.sampled {
				t.Errorf("span_id present: got %v, want %v", ok, tt.sampled)
			}
			if got := exemplarTraceIDs(t, h); (len(got) == 1 && got[0] == incomingTraceID) != tt.sampled || len(got) > 1 {
				t.Errorf("request_duration_seconds exemplars: got %v, want %q only when sampled", got, incomingTraceID)
			}
		})
	}
}

func exemplarTraceIDs(t *testing.T, h *handlerHarness) []string {
	t.Helper()
	families, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range families {
		if f.GetName() != "zautic_forwarder_request_duration_seconds" {
			continue
		}
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			ids = append(ids, exemplarLabel(b.GetExemplar(), "trace_id")...)
		}
	}
	return ids
}

func exemplarLabel(e *dto.Exemplar, name string) []string {
	for _, l := range e.GetLabel() {
		if l.GetName() == name {
			return []string{l.GetValue()}
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
