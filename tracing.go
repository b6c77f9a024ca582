package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// defaultServiceName is service.name unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise.
const defaultServiceName = "zautic-forwarder"

// OTLP protocols, the values of OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// tracingEnabled follows the OpenTelemetry environment specification: an
// OTLP endpoint (or tracing.enabled) turns tracing on; OTEL_SDK_DISABLED=true
// and OTEL_TRACES_EXPORTER=none turn it off whatever else is set.
func tracingEnabled(cfg forwarder.TracingConfig, getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return cfg.Enabled || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// tracesProtocol is the OTLP protocol for traces: the signal-specific
// variable wins over the general one; HTTP/protobuf is the default.
func tracesProtocol(getenv func(string) string) (string, error) {
	p := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", protocolHTTP:
		return protocolHTTP, nil
	case protocolGRPC:
		return protocolGRPC, nil
	}
	return "", fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want %s or %s", p, protocolHTTP, protocolGRPC)
}

// startTracing returns the forwarder's tracing option and the function that
// flushes and stops the exporter, or no option and a no-op when tracing is
// off. The exporter itself reads the rest of OTEL_EXPORTER_OTLP_* (endpoint,
// headers, timeout, TLS) and the SDK reads OTEL_TRACES_SAMPLER[_ARG] and
// OTEL_BSP_*. Nothing here dials: an unreachable collector costs dropped
// spans and a logged warning, never a request.
func startTracing(ctx context.Context, cfg forwarder.TracingConfig, log *zap.Logger) ([]forwarder.Option, func(context.Context), error) {
	if !tracingEnabled(cfg, os.Getenv) {
		log.Info("tracing off")
		return nil, func(context.Context) {}, nil
	}
	protocol, err := tracesProtocol(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := checkEndpoints(os.Getenv); err != nil {
		return nil, nil, err
	}
	exporter, err := newTraceExporter(ctx, protocol)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %s exporter: %w", protocol, err)
	}
	res, err := tracingResource(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The SDK reports export failures here; the default handler would print
	// them to stderr outside the JSON log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		// An exporter's error may quote the endpoint, user information included.
		log.Warn("tracing: export failed; spans are dropped, requests are not affected", zap.String("error", redactUserInfo(err.Error())))
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	log.Info("tracing on", zap.String("protocol", protocol), zap.String("endpoint", tracesEndpoint()),
		zap.String("service_name", serviceName(res)))
	stop := func(ctx context.Context) {
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at shutdown", zap.Error(err))
		}
	}
	return []forwarder.Option{forwarder.WithTracerProvider(tp)}, stop, nil
}

func newTraceExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	if protocol == protocolGRPC {
		return otlptracegrpc.New(ctx)
	}
	return otlptracehttp.New(ctx)
}

// tracingResource names the service: the defaults first, so that
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
func tracingResource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(defaultServiceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}

func serviceName(res *resource.Resource) string {
	v, _ := res.Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

// tracesEndpoint is the configured endpoint for the log line, its user
// information redacted whether it parses as a URL or not; empty means the
// exporter's default (localhost).
func tracesEndpoint() string {
	e := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if e == "" {
		e = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return forwarder.RedactURLs(e)
}

// redactUserInfo redacts the user information of every URL in a text, such
// as an error message that quotes one.
func redactUserInfo(text string) string {
	fields := strings.Fields(text)
	changed := false
	for i, f := range fields {
		if scheme := strings.Index(f, "://"); scheme >= 0 && strings.LastIndex(f, "@") > scheme {
			fields[i], changed = forwarder.RedactURLs(f), true
		}
	}
	if !changed {
		return text
	}
	return strings.Join(fields, " ")
}

// checkTracing makes the checks startTracing makes before it exports
// anything: the OTLP protocol and the resource attributes.
func checkTracing(cfg forwarder.TracingConfig, getenv func(string) string) error {
	if !tracingEnabled(cfg, getenv) {
		return nil
	}
	if _, err := tracesProtocol(getenv); err != nil {
		return err
	}
	if err := checkEndpoints(getenv); err != nil {
		return err
	}
	_, err := tracingResource(context.Background())
	return err
}

// checkEndpoints refuses an OTLP endpoint that does not parse as a URL: the
// exporter would otherwise log it, user information included, on every
// export. The error never shows the user information.
func checkEndpoints(getenv func(string) string) error {
	for _, key := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if raw := getenv(key); raw != "" {
			if _, err := url.Parse(raw); err != nil {
				return urlProblem(key, forwarder.RedactURLs(raw))
			}
		}
	}
	return nil
}

// startShutdownBudget notes when ctx ends (the signal) and returns a
// function giving a context that expires timeout after that moment, or after
// the call when ctx has not ended (a listener failed): whatever runs after
// the listeners have drained fits in the same http.shutdown_timeout that the
// pod's termination grace period is sized for.
func startShutdownBudget(ctx context.Context, timeout time.Duration) func() (context.Context, context.CancelFunc) {
	var signalled atomic.Int64
	stop := context.AfterFunc(ctx, func() { signalled.Store(time.Now().UnixNano()) })
	return func() (context.Context, context.CancelFunc) {
		stop()
		deadline := time.Now().Add(timeout)
		if at := signalled.Load(); at != 0 {
			deadline = time.Unix(0, at).Add(timeout)
		}
		return context.WithDeadline(context.WithoutCancel(ctx), deadline)
	}
}
