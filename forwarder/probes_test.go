package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/forwarder/internal/admin"
	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// adminGet fetches path from the admin server and returns status, content
// type and body.
func adminGet(t testing.TB, base, path string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// newAdminServer serves newAdminHandler for b with a fresh registry.
func newAdminServer(t testing.TB, cfg admin.Config, b telemetry.Readiness) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	telemetry.NewMetrics(reg, ingest.LabelledOutcomes())
	srv := httptest.NewServer(newAdminHandler(cfg.Pprof, b, reg))
	t.Cleanup(srv.Close)
	return srv, reg
}

// TestAdminEndpoints checks every admin route against a ready broker, with
// pprof off (the default) and on.
func TestAdminEndpoints(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	cfg := DefaultConfig()
	b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, b.Ready)

	tests := []struct {
		name       string
		pprof      bool
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"healthz", false, http.MethodGet, "/healthz", http.StatusOK, `"status":"ok"`},
		{"readyz", false, http.MethodGet, "/readyz", http.StatusOK, `"status":"ready"`},
		{"metrics", false, http.MethodGet, "/metrics", http.StatusOK, "zautic_forwarder_webhook_requests_total"},
		{"metrics has the go collector", false, http.MethodGet, "/metrics", http.StatusOK, "go_goroutines"},
		{"metrics has the process collector", false, http.MethodGet, "/metrics", http.StatusOK, "process_cpu_seconds_total"},
		{"pprof off by default", false, http.MethodGet, "/debug/pprof/", http.StatusNotFound, ""},
		{"pprof cmdline off by default", false, http.MethodGet, "/debug/pprof/cmdline", http.StatusNotFound, ""},
		{"pprof index when enabled", true, http.MethodGet, "/debug/pprof/", http.StatusOK, "goroutine"},
		{"pprof heap when enabled", true, http.MethodGet, "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{"no webhook route on the admin port", false, http.MethodPost, cfg.HTTP.Path, http.StatusNotFound, ""},
		{"probes are GET only", false, http.MethodPost, "/readyz", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newAdminServer(t, admin.Config{Pprof: tt.pprof}, b)
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: got %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s: body does not contain %q:\n%.500s", tt.method, tt.path, tt.wantBody, body)
			}
		})
	}
}

// readyzState fetches /readyz and decodes its JSON body.
func readyzState(t testing.TB, base string) (int, map[string]string) {
	t.Helper()
	status, contentType, body := adminGet(t, base, "/readyz")
	if contentType != "application/json" {
		t.Errorf("readyz Content-Type: got %q, want application/json", contentType)
	}
	var decoded map[string]string
	if err := json.Unmarshal([]byte(body), &decoded); err != nil {
		t.Fatalf("readyz body is not a JSON object of strings: %q", body)
	}
	return status, decoded
}

// wantReadyz polls /readyz until it answers status with a reason containing
// reason (for 503).
func wantReadyz(t testing.TB, base string, status int, reason string) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got, body := readyzState(t, base)
		if got != status {
			return fmt.Errorf("status %d %v, want %d", got, body, status)
		}
		if status != http.StatusOK && !strings.Contains(body["error"], reason) {
			return fmt.Errorf("reason %q does not name %q", body["error"], reason)
		}
		return nil
	})
}

// TestReadyzFollowsTheConnection stops and restarts the nats-server on the
// same port and store: /readyz answers 503 with a JSON reason while it is
// gone and 200 again once the broker is back, without any restart.
func TestReadyzFollowsTheConnection(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	port, storeDir := ns.Addr().(*net.TCPAddr).Port, ns.JetStreamConfig().StoreDir
	b := runBroker(t, ns.ClientURL(), DefaultConfig(), zaptest.NewLogger(t), nil)
	srv, _ := newAdminServer(t, admin.Config{}, b)
	wantReadyz(t, srv.URL, http.StatusOK, "")

	ns.Shutdown()
	ns.WaitForShutdown()
	wantReadyz(t, srv.URL, http.StatusServiceUnavailable, "nats not ready")
	if status, _, _ := adminGet(t, srv.URL, "/healthz"); status != http.StatusOK {
		t.Errorf("healthz while NATS is down: got %d, want 200 (the process still serves)", status)
	}

	natstest.Start(t, storeDir, port)
	wantReadyz(t, srv.URL, http.StatusOK, "")
}

// TestReadyzFollowsTheResources deletes the stream or the bucket. Unmanaged,
// readiness drops with a reason naming what is missing until an operator
// recreates it; managed, the forwarder recreates it and stays (or becomes
// ready again).
func TestReadyzFollowsTheResources(t *testing.T) {
	tests := []struct {
		name       string
		manage     bool
		remove     func(context.Context, jetstream.JetStream, Config) error
		wantReason string
	}{
		{"unmanaged stream deleted", false, deleteStream, "stream"},
		{"unmanaged bucket deleted", false, deleteBucket, "KV bucket"},
		{"managed stream deleted", true, deleteStream, ""},
		{"managed bucket deleted", true, deleteBucket, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case waits for a periodic check; they overlap.
			t.Parallel()
			ns := natstest.Start(t, "", 0)
			js := testJetStream(t, ns.ClientURL())
			cfg := DefaultConfig()
			cfg.Stream.Manage = tt.manage
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			createResources(t, ctx, js, cfg)
			b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
			srv, _ := newAdminServer(t, admin.Config{}, b)
			wantReadyz(t, srv.URL, http.StatusOK, "")

			if err := tt.remove(ctx, js, cfg); err != nil {
				t.Fatalf("remove: %v", err)
			}
			if !tt.manage {
				wantReadyz(t, srv.URL, http.StatusServiceUnavailable, tt.wantReason)
				createResources(t, ctx, js, cfg)
			}
			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error { return resourcesExist(ctx, js, cfg) })
			wantReadyz(t, srv.URL, http.StatusOK, "")
		})
	}
}

func deleteStream(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	return js.DeleteStream(ctx, cfg.Stream.Name)
}

func deleteBucket(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	return js.DeleteKeyValue(ctx, cfg.Dedup.Bucket)
}

func createResources(t testing.TB, ctx context.Context, js jetstream.JetStream, cfg Config) {
	t.Helper()
	stream, bucket, quarantine := store.Resources(cfg.storeConfig())
	if _, err := js.CreateOrUpdateStream(ctx, stream); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, bucket); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, quarantine); err != nil {
		t.Fatalf("create quarantine stream: %v", err)
	}
}

func resourcesExist(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if _, err := js.Stream(ctx, cfg.Stream.Name); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if _, err := js.KeyValue(ctx, cfg.Dedup.Bucket); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	return nil
}

// testJetStream connects a plain client, closed at cleanup.
func testJetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestReadyzIsAnsweredFromState probes /readyz many times while the broker's
// check loop is stopped: every answer is 200 and the server sees no
// JetStream API request, so probes cost nothing on the NATS side.
func TestReadyzIsAnsweredFromState(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	cfg := DefaultConfig()
	cfg.NATS.URL = ns.ClientURL()
	b := checkedOnceBroker(t, cfg, zaptest.NewLogger(t), nil)
	srv, _ := newAdminServer(t, admin.Config{}, b)

	before := jetStreamAPIRequests(t, ns)
	const probes = 50
	for range probes {
		if status, _, body := adminGet(t, srv.URL, "/readyz"); status != http.StatusOK {
			t.Fatalf("readyz: got %d %s, want 200", status, body)
		}
	}
	if after := jetStreamAPIRequests(t, ns); after != before {
		t.Errorf("JetStream API requests during %d probes: got %d, want 0", probes, after-before)
	}
}

func jetStreamAPIRequests(t testing.TB, ns *server.Server) uint64 {
	t.Helper()
	varz, err := ns.Varz(nil)
	if err != nil {
		t.Fatalf("varz: %v", err)
	}
	return varz.JetStream.Stats.API.Total
}
