package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// logEntry is one JSON log line, decoded loosely.
type logEntry map[string]any

// deliveryLines returns the "delivery" log lines whose delivery_id is id.
func deliveryLines(logs, id string) []logEntry {
	var out []logEntry
	for line := range strings.Lines(logs) {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "delivery" && e["delivery_id"] == id {
			out = append(out, e)
		}
	}
	return out
}

// TestRequestIDInLogs sends webhooks with and without X-Request-Id: the id
// given is passed through to the answer, a missing one is generated and
// returned, and the request's JSON log line carries it with the delivery id,
// an RFC 3339 time, a level and a message.
func TestRequestIDInLogs(t *testing.T) {
	p := startForwarder(t, forwarderEnv(natstest.Start(t, "", 0).ClientURL()))
	p.WaitReady(t)
	tests := []struct {
		name       string
		requestID  string
		deliveryID string
		signature  string
		wantStatus int
	}{
		{"given id, published", "req-given-1234", "dlv_log_1", "", http.StatusOK},
		{"no id, published", "", "dlv_log_2", "", http.StatusOK},
		{"given id, rejected", "req-given-5678", "dlv_log_3", "t=1,v1=" + strings.Repeat("0", 64), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := webhook{body: sampleEvent("evt_"+tt.deliveryID, "message.sent"), deliveryID: tt.deliveryID, signature: tt.signature}
			req := newRequest(t, p.WebhookURL, w)
			if tt.requestID != "" {
				req.Header.Set("X-Request-Id", tt.requestID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			returned := resp.Header.Get("X-Request-Id")
			if tt.requestID != "" && returned != tt.requestID {
				t.Errorf("X-Request-Id answered: got %q, want %q passed through", returned, tt.requestID)
			}
			if returned == "" {
				t.Fatal("no X-Request-Id in the answer")
			}

			var lines []logEntry
			natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				if lines = deliveryLines(p.Logs(), tt.deliveryID); len(lines) != 1 {
					return fmt.Errorf("%d delivery lines for %s", len(lines), tt.deliveryID)
				}
				return nil
			})
			line := lines[0]
			if line["request_id"] != returned {
				t.Errorf("request_id in the log: got %v, want %q", line["request_id"], returned)
			}
			if line["level"] != "info" {
				t.Errorf("level: got %v, want info", line["level"])
			}
			if ts, _ := line["time"].(string); !validRFC3339(ts) {
				t.Errorf("time: got %q, want RFC 3339", ts)
			}
		})
	}
}

func validRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// TestShutdownLogs stops a ready forwarder with SIGTERM: the log says the
// shutdown timeout as a duration string and raises no "nats not ready"
// warning for the connection the forwarder closes itself.
func TestShutdownLogs(t *testing.T) {
	p := startForwarder(t, forwarderEnv(natstest.Start(t, "", 0).ClientURL()))
	p.WaitReady(t)
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	var sawShutdown bool
	for line := range strings.Lines(p.Logs()) {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e["msg"] {
		case "shutting down":
			sawShutdown = true
			if e["timeout"] != "20s" {
				t.Errorf("shutdown timeout: got %v, want \"20s\"", e["timeout"])
			}
		case "nats not ready":
			t.Errorf("normal shutdown logged %v", line)
		}
	}
	if !sawShutdown {
		t.Error("no \"shutting down\" line")
	}
}
