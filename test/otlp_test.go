package test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// otlpReceiver is an in-process OTLP trace collector: it decodes the
// protobuf export requests the SDK sends, over HTTP (POST /v1/traces) or
// gRPC, and keeps every span with its resource.
type otlpReceiver struct {
	URL string // the endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT

	mu       sync.Mutex
	spans    []receivedSpan
	requests int
}

// receivedSpan is one exported span and the attributes of its resource.
type receivedSpan struct {
	resource map[string]string
	*tracepb.Span
}

func (s receivedSpan) traceID() string  { return hex.EncodeToString(s.TraceId) }
func (s receivedSpan) spanID() string   { return hex.EncodeToString(s.SpanId) }
func (s receivedSpan) parentID() string { return hex.EncodeToString(s.ParentSpanId) }

// attrs renders the span's attributes as strings.
func (s receivedSpan) attrs() map[string]string {
	return attrMap(s.Attributes)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = fmt.Sprint(v.GetIntValue())
		case *commonpb.AnyValue_BoolValue:
			out[kv.Key] = fmt.Sprint(v.GetBoolValue())
		default:
			out[kv.Key] = v.String()
		}
	}
	return out
}

// startOTLPReceiver serves OTLP/HTTP on a loopback port until cleanup.
func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// startOTLPGRPCReceiver serves OTLP/gRPC on a loopback port until cleanup.
func startOTLPGRPCReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{URL: "http://" + ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcTraceService{r: r})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return r
}

type grpcTraceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (s grpcTraceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	body := io.Reader(req.Body)
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, "not an OTLP protobuf export request: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&export)
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

func (r *otlpReceiver) add(export *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range export.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{resource: res, Span: s})
			}
		}
	}
}

// exportRequests counts the export requests received so far.
func (r *otlpReceiver) exportRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// waitSpan polls until a span named name in trace traceID has arrived.
func (r *otlpReceiver) waitSpan(t *testing.T, traceID, name string) receivedSpan {
	t.Helper()
	var found receivedSpan
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		var names []string
		for _, s := range r.spans {
			if s.traceID() == traceID && s.Name == name {
				found = s
				return nil
			}
			if s.traceID() == traceID {
				names = append(names, s.Name)
			}
		}
		return fmt.Errorf("no span %q in trace %s yet; it has [%s]", name, traceID, strings.Join(names, ", "))
	})
	return found
}
