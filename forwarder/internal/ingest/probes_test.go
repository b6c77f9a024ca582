package ingest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

type readiness struct{ err error }

func (r readiness) Ready() error { return r.err }

// TestProbesOnWebhookPort: the webhook port answers the kubelet's probes,
// and says only whether it is ready: the cause, which may name streams,
// servers or users, is the admin port's to tell.
func TestProbesOnWebhookPort(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		ready      error
		wantStatus int
		wantBody   string
	}{
		{"alive", "/healthz", nil, http.StatusOK, `{"status":"ok"}`},
		{"alive while not ready", "/healthz", errors.New("nats not ready"), http.StatusOK, `{"status":"ok"}`},
		{"ready", "/readyz", nil, http.StatusOK, `{"status":"ready"}`},
		{"not ready", "/readyz", errors.New(`nats not ready: cannot store events: user zautic-forwarder`), http.StatusServiceUnavailable, `{"status":"not ready"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			AddProbes(e, readiness{tt.ready})
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("GET %s: got %d %s, want %d %s", tt.path, rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
