package ingest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// serveOverHTTP puts handler behind newHTTPServer on a loopback
// listener, so that net/http's own limits and framing apply, and returns its
// base URL.
func serveOverHTTP(t *testing.T, cfg HTTPConfig, handler http.Handler) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	ts.Config = NewHTTPServer(cfg, handler, zaptest.NewLogger(t))
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.URL
}

func doRequest(t *testing.T, req *http.Request) answer {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	return decodeAnswer(t, res)
}

// overHTTP turns a request built for ServeHTTP into one for a real client.
func overHTTP(t *testing.T, base string, req *http.Request) *http.Request {
	t.Helper()
	out, err := http.NewRequest(req.Method, base+req.URL.Path, req.Body)
	if err != nil {
		t.Fatal(err)
	}
	out.Header = req.Header.Clone()
	out.ContentLength = req.ContentLength
	return out
}

func TestWebhookServerOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{configure: func(c *settings) { c.HTTP.MaxBodyBytes = 4096 }})
	base := serveOverHTTP(t, h.cfg.HTTP, h.echo)
	big := append(eventBody("evt_big", "message.sent"), bytes.Repeat([]byte(" "), 4096)...)

	t.Run("published", func(t *testing.T) {
		req := overHTTP(t, base, signedRequest(eventBody("evt_1", "message.sent"), "dlv_1", handlerSecret))
		doRequest(t, req).assertBody(t, publishedBody(1, "zautic.message.sent"))
	})
	t.Run("chunked body too large", func(t *testing.T) {
		req := overHTTP(t, base, signedRequest(big, "dlv_big", handlerSecret))
		req.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(big)})
		req.ContentLength = -1 // sent chunked
		doRequest(t, req).assertError(t, http.StatusRequestEntityTooLarge, "body too large", "exceeds 4096 bytes")
	})
	t.Run("declared body too large", func(t *testing.T) {
		req := overHTTP(t, base, signedRequest(big, "dlv_big", handlerSecret))
		doRequest(t, req).assertError(t, http.StatusRequestEntityTooLarge, "Content-Length", "exceeds 4096 bytes")
	})
	t.Run("headers above http.max_header_bytes answer 431 in JSON", func(t *testing.T) {
		req := overHTTP(t, base, signedRequest(eventBody("evt_h", "message.sent"), "dlv_h", handlerSecret))
		req.Header.Set("X-Padding", strings.Repeat("p", h.cfg.HTTP.MaxHeaderBytes))
		doRequest(t, req).assertError(t, http.StatusRequestHeaderFieldsTooLarge, "request headers are", "more than 16384")
	})
	t.Run("HEAD answers 405 without a body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodHead, base+h.cfg.HTTP.Path, nil)
		a := doRequest(t, req)
		if a.status != http.StatusMethodNotAllowed || a.raw != "" {
			t.Errorf("got %d %q, want 405 and no body", a.status, a.raw)
		}
	})
	t.Run("GET answers 405 in JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+h.cfg.HTTP.Path, nil)
		doRequest(t, req).assertError(t, http.StatusMethodNotAllowed, "method GET not allowed")
	})
	t.Run("OPTIONS answers 405 in JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, base+h.cfg.HTTP.Path, nil)
		doRequest(t, req).assertError(t, http.StatusMethodNotAllowed, "method OPTIONS not allowed")
	})
	h.assertCount(1)
}

// TestRequestIDBounded: an X-Request-Id is echoed only when it is at most
// 128 printable ASCII characters; otherwise one is generated.
func TestRequestIDBounded(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	tests := []struct {
		name string
		id   string
		kept bool
	}{
		{"short", "req-1", true},
		{"128 characters", strings.Repeat("r", maxRequestIDLength), true},
		{"129 characters", strings.Repeat("r", maxRequestIDLength+1), false},
		{"64 KiB", strings.Repeat("r", 64<<10), false},
		{"non-ASCII", "req-é", false},
	}
	for i, tt := range tests {
		req := signedRequest(eventBody("evt_rid_"+strconv.Itoa(i), "message.sent"), "", handlerSecret)
		req.Header.Set("X-Request-Id", tt.id)
		rec := httptest.NewRecorder()
		h.echo.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if tt.kept && got != tt.id || !tt.kept && (got == tt.id || got == "" || len(got) > maxRequestIDLength) {
			t.Errorf("%s: got X-Request-Id of %d characters %.40q, want kept %v (or a generated one)", tt.name, len(got), got, tt.kept)
		}
	}
}

// TestRequestIDOnEveryAnswer: routing errors carry an X-Request-Id too,
// the request's own when it is usable.
func TestRequestIDOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e := NewServer(defaultSettings().HTTP, nil, nil)
	path := defaultSettings().HTTP.Path
	tests := []struct {
		name, method, path, id string
		status                 int
	}{
		{"404, generated", http.MethodPost, "/nowhere", "", http.StatusNotFound},
		{"405, generated", http.MethodGet, path, "", http.StatusMethodNotAllowed},
		{"OPTIONS, echoed", http.MethodOptions, path, "req-options", http.StatusMethodNotAllowed},
		{"405, unusable replaced", http.MethodGet, path, "req-é", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.id != "" {
			req.Header.Set("X-Request-Id", tt.id)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		echoed := tt.id != "" && usableRequestID(tt.id)
		if rec.Code != tt.status || got == "" || echoed != (got == tt.id) {
			t.Errorf("%s: got %d with X-Request-Id %q, want %d with the request's usable id or a generated one", tt.name, rec.Code, got, tt.status)
		}
	}
}

func TestNewHTTPServerLimits(t *testing.T) {
	cfg := defaultSettings().HTTP
	srv := NewHTTPServer(cfg, http.NotFoundHandler(), zaptest.NewLogger(t))
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"read header timeout", srv.ReadHeaderTimeout, cfg.ReadHeaderTimeout},
		{"read timeout", srv.ReadTimeout, cfg.ReadTimeout},
		{"write timeout", srv.WriteTimeout, cfg.WriteTimeout},
		{"idle timeout", srv.IdleTimeout, cfg.IdleTimeout},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// The net/http limit stays a little above the configured one, so that
	// the middleware, not net/http's plain-text 431, answers headers just
	// over it; and only a little, since each connection may hold that much.
	if srv.MaxHeaderBytes <= cfg.MaxHeaderBytes || srv.MaxHeaderBytes > cfg.MaxHeaderBytes+8<<10 {
		t.Errorf("got MaxHeaderBytes %d, want within 8 KiB above http.max_header_bytes %d", srv.MaxHeaderBytes, cfg.MaxHeaderBytes)
	}
}

func getAdmin(t *testing.T, base, path string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
}

func TestAdminHandlerReady(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	h.send(eventBody("evt_1", "message.sent"), "dlv_1").assertBody(t, publishedBody(1, "zautic.message.sent"))
	h.send(eventBody("evt_1", "message.sent"), "dlv_1").assertBody(t, duplicateBody)
	h.send([]byte("{}"), "dlv_x").assertError(t, http.StatusBadRequest, `"id"`)

	base := serveOverHTTP(t, h.cfg.HTTP, telemetry.NewProbes(false, h.broker, h.registry))
	tests := []struct {
		path   string
		status int
		want   []string // substrings of the body
	}{
		{"/healthz", http.StatusOK, []string{`{"status":"ok"}`}},
		{"/readyz", http.StatusOK, []string{`{"status":"ready"}`}},
		{"/metrics", http.StatusOK, []string{
			`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="published",reason=""} 1`,
			`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="duplicate",reason=""} 1`,
			`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="rejected",reason="invalid_event"} 1`,
			`zautic_forwarder_events_published_total{endpoint="default",type="message.sent"} 1`,
			"zautic_forwarder_ready 1",
			"go_goroutines",
		}},
		{"/debug/pprof/", http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := getAdmin(t, base, tt.path)
			if a.status != tt.status {
				t.Fatalf("got status %d, want %d (%s)", a.status, tt.status, a.raw)
			}
			for _, w := range tt.want {
				if !strings.Contains(a.raw, w) {
					t.Errorf("got body without %q:\n%s", w, a.raw)
				}
			}
		})
	}
}

func TestAdminHandlerPprof(t *testing.T) {
	t.Parallel()
	h := newHandlerHarness(t, harnessOptions{})
	base := serveOverHTTP(t, h.cfg.HTTP, telemetry.NewProbes(true, h.broker, h.registry))
	if a := getAdmin(t, base, "/debug/pprof/"); a.status != http.StatusOK || !strings.Contains(a.raw, "goroutine") {
		t.Errorf("got %d, want 200 and the pprof index", a.status)
	}
}

// freeLoopbackPort returns a loopback port nothing listens on.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestNotReadyWithoutNATS starts a broker whose server does not answer, with
// credentials in the URL: /readyz and the webhook answer 503 with a reason
// that does not reveal them.
func TestNotReadyWithoutNATS(t *testing.T) {
	t.Parallel()
	const password = "url-password-123"
	cfg := testConfig()
	cfg.NATS.URL = "nats://forwarder:" + password + "@" + freeLoopbackPort(t)
	cfg.NATS.ConnectTimeout = 200 * time.Millisecond
	log := zaptest.NewLogger(t)
	// store.Connect must not fail while NATS is down.
	b := runBroker(t, cfg.NATS.URL, cfg, log, nil)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "nats-server unreachable") {
			return errors.New("broker has not reported the missing connection yet")
		}
		return nil
	})

	base := serveOverHTTP(t, cfg.HTTP, telemetry.NewProbes(false, b, prometheus.NewRegistry()))
	a := getAdmin(t, base, "/readyz")
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.raw, "nats not ready") {
		t.Errorf("/readyz: got %d %s, want 503 naming the cause", a.status, a.raw)
	}
	if strings.Contains(a.raw, password) {
		t.Errorf("/readyz reveals the NATS password: %s", a.raw)
	}

	secrets, err := secrets.New(cfg.Webhook)
	if err != nil {
		t.Fatal(err)
	}
	e := NewServer(cfg.HTTP, NewHandler(cfg.handlerConfig(), secrets, b, log, nil, nil), nil)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, signedRequest(eventBody("evt_1", "message.sent"), "dlv_1", handlerSecret))
	w := decodeAnswer(t, rec.Result())
	w.assertError(t, http.StatusServiceUnavailable, "nats not ready", "nats-server unreachable")
	if got := w.header.Get("Retry-After"); got != "2" {
		t.Errorf("got Retry-After %q, want %q", got, "2")
	}
	if strings.Contains(w.raw, password) {
		t.Errorf("the webhook answer reveals the NATS password: %s", w.raw)
	}
}
