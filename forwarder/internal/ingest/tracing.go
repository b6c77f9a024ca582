package ingest

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/zautic"
)

// tracerName is the instrumentation scope of the forwarder's spans.
const tracerName = "github.com/zautic/zautic-forwarder/forwarder"

// Attributes of the server span, beside the HTTP semantic conventions.
const (
	attrDeliveryID = attribute.Key("zautic.delivery_id")
	attrEventID    = attribute.Key("zautic.event_id")
	attrEventType  = attribute.Key("zautic.event_type")
	attrOutcome    = attribute.Key("zautic.outcome")
	attrReason     = attribute.Key("zautic.reason")
)

// traceContext reads and writes W3C traceparent and tracestate; it is fixed
// rather than the global propagator, because the message headers are a
// contract with consumers, not a deployment choice.
var traceContext = propagation.TraceContext{}

// natsSystem is messaging.system for NATS, which the conventions' enum does
// not list.
var natsSystem = semconv.MessagingSystemKey.String("nats")

// newTracer returns the handler's tracer, nil when tracing is off.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// startRequestSpan starts the server span of a webhook request, as a child
// of the incoming traceparent when there is one, and puts it in the request's
// context so that the NATS steps become its children. It returns nil when
// tracing is off.
func (h *Handler) startRequestSpan(c echo.Context) trace.Span {
	if h.tracer == nil {
		return nil
	}
	req := c.Request()
	ctx := traceContext.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := h.tracer.Start(ctx, req.Method+" "+h.cfg.HTTP.Path,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(req.Method),
			semconv.HTTPRoute(h.cfg.HTTP.Path),
			semconv.URLPath(req.URL.Path),
			semconv.URLScheme(requestScheme(c)),
			semconv.UserAgentOriginal(req.UserAgent()),
			semconv.ClientAddress(c.RealIP()),
		))
	c.SetRequest(req.WithContext(ctx))
	return span
}

func requestScheme(c echo.Context) string {
	if c.IsTLS() {
		return "https"
	}
	return "http"
}

// endRequestSpan records what the request learnt and its answer. A request
// answered with an error has an error status whose description starts with
// the reason label (signature_mismatch, …) or "unavailable", followed by the
// answer's error text; the span never holds a secret, a signature or the body.
func (h *Handler) endRequestSpan(span trace.Span, d *delivery, err error) {
	r := rejection{status: http.StatusOK, outcome: d.outcome}
	if err != nil {
		r = classify(err)
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(r.status), attrOutcome.String(r.outcome))
	// A request rejected early has no event yet: leave out what it lacks
	// rather than record empty values.
	for _, kv := range []attribute.KeyValue{
		attrDeliveryID.String(d.deliveryID), attrEventID.String(d.event.ID), attrEventType.String(d.event.Type),
	} {
		if kv.Value.AsString() != "" {
			span.SetAttributes(kv)
		}
	}
	if err != nil {
		errType := r.reason
		if errType == "" {
			errType = r.outcome
		}
		span.SetAttributes(attrReason.String(errType), semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, errType+": "+err.Error())
	}
	span.End()
}

// lookUp is the dedup lookup, in its own client span when tracing is on.
func (h *Handler) lookUp(ctx context.Context, kvKey string) (bool, error) {
	if h.tracer == nil {
		return h.store.Seen(ctx, kvKey)
	}
	ctx, span := h.tracer.Start(ctx, "dedup lookup", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(natsSystem, semconv.DBCollectionName(h.cfg.Bucket), semconv.DBOperationName("get")))
	defer span.End()
	seen, err := h.store.Seen(ctx, kvKey)
	setSpanError(span, err)
	span.SetAttributes(attribute.Bool("zautic.dedup.seen", seen))
	return seen, err
}

// send publishes the event. When tracing is on it does so in a producer
// span and adds that span's traceparent (and tracestate) to the header, so
// that a consumer's span is the publish span's child.
func (h *Handler) send(ctx context.Context, subject string, header map[string][]string, body []byte) (stored, error) {
	if h.tracer == nil {
		seq, dup, err := h.store.Publish(ctx, subject, header, body)
		return stored{Seq: seq, Duplicate: dup}, err
	}
	ctx, span := h.tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			natsSystem,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(subject),
			semconv.MessagingMessageID(zautic.MessageHeaderCarrier(header).Get(zautic.MessageIDHeader)),
			semconv.MessagingMessageBodySize(len(body)),
		))
	defer span.End()
	traceContext.Inject(ctx, zautic.MessageHeaderCarrier(header))
	seq, dup, err := h.store.Publish(ctx, subject, header, body)
	ack := stored{Seq: seq, Duplicate: dup}
	setSpanError(span, err)
	if err == nil {
		span.SetAttributes(
			attribute.String("messaging.nats.stream", h.cfg.Stream),
			attribute.Int64("messaging.nats.sequence", int64(ack.Seq)),
			attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
	}
	return ack, err
}

// markSpan starts the span of the dedup mark; it returns ctx and a nil span
// when tracing is off.
func (h *Handler) markSpan(ctx context.Context) (context.Context, trace.Span) {
	if h.tracer == nil {
		return ctx, nil
	}
	return h.tracer.Start(ctx, "dedup mark", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(natsSystem, semconv.DBCollectionName(h.cfg.Bucket), semconv.DBOperationName("put")))
}

// endMarkSpan ends a span from markSpan; nil is a no-op.
func endMarkSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	setSpanError(span, err)
	span.End()
}

func setSpanError(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// sampledSpan is the span context of ctx when tracing is on and the request
// is sampled: only then do its ids point at a trace someone can open.
func (h *Handler) sampledSpan(ctx context.Context) (trace.SpanContext, bool) {
	if h.tracer == nil {
		return trace.SpanContext{}, false
	}
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsSampled()
}

// traceFields joins the delivery log line to its trace.
func traceFields(sc trace.SpanContext) []zap.Field {
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}
