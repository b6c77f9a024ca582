package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

func TestTracingEnabled(t *testing.T) {
	tests := []struct {
		name    string
		enabled bool
		env     map[string]string
		want    bool
	}{
		{"nothing set", false, nil, false},
		{"tracing.enabled", true, nil, true},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", false, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"only a service name", false, map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
		{"OTEL_SDK_DISABLED beats an endpoint", false, map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false},
		{"OTEL_TRACES_EXPORTER=none beats tracing.enabled", true, map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{"OTEL_SDK_DISABLED=false", true, map[string]string{"OTEL_SDK_DISABLED": "false"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tracingEnabled(forwarder.TracingConfig{Enabled: tt.enabled}, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTracesProtocol(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"default", nil, protocolHTTP, false},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, protocolGRPC, false},
		{"traces variable wins", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, protocolHTTP, false},
		{"http/json is not supported", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracesProtocol(func(k string) string { return tt.env[k] })
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %q, %v, want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestShutdownBudget checks that the flush after the listeners' drain ends
// at signal + timeout, not at its own start + timeout.
func TestShutdownBudget(t *testing.T) {
	ctx, signal := context.WithCancel(context.Background())
	budget := startShutdownBudget(ctx, time.Hour)
	beforeSignal := time.Now()
	signal()
	// The signal time is noted by a goroutine: poll until a flush started
	// now ends earlier than an hour from now.
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		callAt := time.Now()
		flushCtx, cancel := budget()
		defer cancel()
		deadline, ok := flushCtx.Deadline()
		if !ok || !deadline.Before(callAt.Add(time.Hour)) || deadline.Before(beforeSignal.Add(time.Hour)) {
			return fmt.Errorf("got deadline %v, want an hour after the signal at %v", deadline, beforeSignal)
		}
		if flushCtx.Err() != nil {
			return fmt.Errorf("flush context: got %w, want it live although the signal context ended", flushCtx.Err())
		}
		return nil
	})
}

// TestTracingNeverLogsUserInfo: neither the "tracing on" line nor an
// export error shows the endpoint's user information, even when the
// endpoint does not parse as a URL.
func TestTracingNeverLogsUserInfo(t *testing.T) {
	const password = "Sup3rS3cret"
	tests := []struct {
		endpoint string
		wantErr  string // empty: tracing starts
	}{
		{"http://otel:" + password + "%zz@127.0.0.1:4318", "OTEL_EXPORTER_OTLP_ENDPOINT http://[redacted]@127.0.0.1:4318 is not a valid URL"},
		{"http://otel:" + password + "@127.0.0.1:4318", ""},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			core, logs := observer.New(zapcore.InfoLevel)
			_, stop, err := startTracing(context.Background(), forwarder.TracingConfig{}, zap.New(core))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), password) {
					t.Fatalf("got error %v, want one saying %q without the password", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stop(context.Background())
			on := logs.FilterMessage("tracing on").All()
			if len(on) != 1 {
				t.Fatalf(`got %d "tracing on" lines, want 1`, len(on))
			}
			if got, want := on[0].ContextMap()["endpoint"], "http://[redacted]@127.0.0.1:4318"; got != want {
				t.Errorf("endpoint: got %q, want %q", got, want)
			}
		})
	}
}

func TestRedactUserInfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{`failed to send to http://otel:Sup3r%zz@collector:4318/v1/traces: 401`, `failed to send to http://[redacted]@collector:4318/v1/traces: 401`},
		{`Post "https://u:Pw50%off@collector:4318/v1/traces": dial tcp: connection refused`, `Post "https://[redacted]@collector:4318/v1/traces": dial tcp: connection refused`},
		{"no URL at all, a@b", "no URL at all, a@b"},
		{"http://collector:4318 refused", "http://collector:4318 refused"},
	}
	for _, tt := range tests {
		if got := redactUserInfo(tt.in); got != tt.want {
			t.Errorf("redactUserInfo(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
