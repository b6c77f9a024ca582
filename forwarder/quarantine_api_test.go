package forwarder

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zautic/zautic-forwarder/forwarder/internal/admin"
	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/store"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"go.uber.org/zap/zaptest"
)

func TestQuarantineAPI(t *testing.T) {
	h := newQuarantineHarness(t, nil)
	for i := range 3 {
		h.post(secretB, time.Now(), "dlv_api_"+strconv.Itoa(i), testEvent("evt_api_"+strconv.Itoa(i), "message.delivered"))
	}
	h.post(secretA, time.Now().Add(-time.Hour), "dlv_api_old", testEvent("evt_api_old", "message.delivered"))

	status, raw := h.adminDo(http.MethodGet, "/quarantine?reason=signature_mismatch&since=1h&limit=2", "", "")
	if status != http.StatusOK {
		t.Fatalf("list: got %d %s, want 200", status, raw)
	}
	var list struct {
		Entries  []map[string]any `json:"entries"`
		Unsigned []string         `json:"unsigned"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if got, want := len(list.Entries), 2; got != want {
		t.Fatalf("entries: got %d, want %d: %s", got, want, raw)
	}
	first := list.Entries[0]
	for _, field := range []string{"seq", "reason", "received_at", "delivery_id", "event_type", "size"} {
		if _, ok := first[field]; !ok {
			t.Errorf("entry field %s: missing in %v", field, first)
		}
	}
	if first["delivery_id"] != "dlv_api_0" || first["event_type"] != "message.delivered" || first["reason"] != telemetry.ReasonSignatureMismatch {
		t.Errorf("first entry: got %v, want dlv_api_0, message.delivered, signature_mismatch", first)
	}
	if got, want := first["size"], float64(len(testEvent("evt_api_0", "message.delivered"))); got != want {
		t.Errorf("size: got %v, want %v", got, want)
	}
	if strings.Contains(string(raw), "v1=") {
		t.Errorf("list shows a signature: %s", raw)
	}

	tests := []struct {
		name, method, target, contentType, body string
		wantStatus                              int
		wantInBody                              string
	}{
		{"bad reason", http.MethodGet, "/quarantine?reason=nope", "", "", http.StatusBadRequest, "reason"},
		{"bad since", http.MethodGet, "/quarantine?since=yesterday", "", "", http.StatusBadRequest, "since"},
		{"limit too high", http.MethodGet, "/quarantine?limit=1001", "", "", http.StatusBadRequest, "limit"},
		{"rfc3339 since", http.MethodGet, "/quarantine?since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "", "", http.StatusOK, "dlv_api_old"},
		{"replay without content type", http.MethodPost, "/quarantine/replay", "", `{"all":true}`, http.StatusUnsupportedMediaType, "application/json"},
		{"replay as a form", http.MethodPost, "/quarantine/replay", "text/plain", `{"all":true}`, http.StatusUnsupportedMediaType, "application/json"},
		{"replay selecting nothing", http.MethodPost, "/quarantine/replay", "application/json", `{}`, http.StatusBadRequest, "seqs"},
		{"replay unknown field", http.MethodPost, "/quarantine/replay", "application/json", `{"everything":true}`, http.StatusBadRequest, "everything"},
		{"replay unknown reason", http.MethodPost, "/quarantine/replay", "application/json", `{"all":true,"reason":"nope"}`, http.StatusBadRequest, "reason"},
		{"dry run", http.MethodPost, "/quarantine/replay", "application/json; charset=utf-8", `{"all":true,"reason":"timestamp_out_of_tolerance","ignore_tolerance":true,"dry_run":true}`, http.StatusOK, `"outcome":"would_publish"`},
		{"refused without ignore_tolerance", http.MethodPost, "/quarantine/replay", "application/json", `{"all":true,"reason":"timestamp_out_of_tolerance"}`, http.StatusOK, `"reason":"timestamp_out_of_tolerance"`},
		{"published with ignore_tolerance", http.MethodPost, "/quarantine/replay", "application/json", `{"all":true,"reason":"timestamp_out_of_tolerance","ignore_tolerance":true}`, http.StatusOK, `"outcome":"published"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, raw := h.adminDo(tt.method, tt.target, tt.contentType, tt.body)
			if status != tt.wantStatus || !strings.Contains(string(raw), tt.wantInBody) {
				t.Errorf("answer: got %d %s, want %d containing %s", status, raw, tt.wantStatus, tt.wantInBody)
			}
		})
	}
	if got := h.streamCount(h.cfg.Quarantine.Stream); got != 3 {
		t.Errorf("quarantine: got %d entries, want the 3 mismatches", got)
	}
}

func TestQuarantineAPIDisabled(t *testing.T) {
	handler, err := admin.NewHandler(admin.Parts{Status: notReady{}, WriteTimeout: time.Minute, Gatherer: prometheus.NewRegistry()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := &quarantineHarness{t: t, admin: handler}
	status, raw := h.adminDo(http.MethodGet, "/quarantine", "", "")
	if status != http.StatusNotFound || !strings.Contains(string(raw), "quarantine.enabled") {
		t.Errorf("answer: got %d %s, want 404 naming quarantine.enabled", status, raw)
	}
}

type notReady struct{}

func (notReady) Ready() error               { return store.ErrNotReady }
func (notReady) Connection() natsconn.State { return natsconn.State{Status: "closed"} }
