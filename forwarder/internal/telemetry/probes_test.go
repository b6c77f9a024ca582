package telemetry

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// TestWriteJSONNeverAnswersAnEmptyBody writes a value encoding/json
// refuses (a time after year 9999): the answer is a 500 whose JSON says
// why, not the status asked for with an empty body.
func TestWriteJSONNeverAnswersAnEmptyBody(t *testing.T) {
	tests := []struct {
		name       string
		v          any
		wantStatus int
		wantError  string
	}{
		{"encodable", map[string]int{"n": 1}, http.StatusOK, ""},
		{"a time after year 9999", struct{ At time.Time }{time.Unix(253402300800, 0).UTC()}, http.StatusInternalServerError, "year outside of range"},
		{"a channel", make(chan int), http.StatusInternalServerError, "unsupported type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteJSON(rec, http.StatusOK, tt.v)
			var answer adminapi.ErrorAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("got body %q, want JSON: %v", rec.Body.String(), err)
			}
			if rec.Code != tt.wantStatus || !strings.Contains(answer.Error, tt.wantError) {
				t.Errorf("got %d %q, want %d with an error containing %q", rec.Code, rec.Body.String(), tt.wantStatus, tt.wantError)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", got)
			}
		})
	}
}
