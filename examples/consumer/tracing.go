package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/zautic/zautic-forwarder/zautic"
)

// flushTimeout bounds the export of the last spans at exit.
const flushTimeout = 5 * time.Second

// startTracing returns the tracer of the consumer's spans and the function
// that flushes them at exit. Spans are exported over OTLP (HTTP/protobuf, or
// gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc) when an OTLP endpoint is set in
// the environment, as for the forwarder; otherwise the tracer does nothing.
func startTracing(ctx context.Context) (trace.Tracer, func(), error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return noop.NewTracerProvider().Tracer(""), func() {}, nil
	}
	var exporter sdktrace.SpanExporter
	var err error
	if os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc" {
		exporter, err = otlptracegrpc.New(ctx)
	} else {
		exporter, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName("zautic-consumer-example")), resource.WithFromEnv())
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}
	return tp.Tracer("zautic-consumer-example"), flush, nil
}

// startProcessSpan starts the consumer span of one message as a child of the
// forwarder's publish span, whose traceparent the message carries: the trace
// of a Zautic event runs from the webhook request to this work.
func startProcessSpan(ctx context.Context, tracer trace.Tracer, msg jetstream.Msg, consumer string) (context.Context, trace.Span) {
	ctx = propagation.TraceContext{}.Extract(ctx, zautic.MessageHeaderCarrier(msg.Headers()))
	return tracer.Start(ctx, "process "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(msg.Subject()),
			semconv.MessagingMessageID(msg.Headers().Get(zautic.MessageIDHeader)),
			semconv.MessagingConsumerGroupName(consumer),
		))
}

// endProcessSpan records what became of the message; a failed or terminated
// one is an error.
func endProcessSpan(span trace.Span, outcome string, err error) {
	span.SetAttributes(attribute.String("zautic.outcome", outcome))
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case outcome == outcomeFailed || outcome == outcomeTerminated:
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}
