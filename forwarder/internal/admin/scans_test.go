package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// TestScanSlots holds every slot with lookups that wait, then checks that
// one more is answered 429 at once with Retry-After and a JSON reason, and
// that a slot given back serves the next lookup.
func TestScanSlots(t *testing.T) {
	tests := []struct {
		name  string
		slots int
	}{
		{"one slot", 1},
		{"the default two", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scans := newScanSlots(tt.slots)
			entered, release := make(chan struct{}), make(chan struct{})
			h := scans.limit(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				entered <- struct{}{}
				<-release
				w.WriteHeader(http.StatusNotFound)
			}))
			var wg sync.WaitGroup
			for range tt.slots {
				wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/deliveries/x", nil)) })
				<-entered
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/deliveries/y", nil))
			var answer adminapi.ErrorAnswer
			if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
				json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer.Error == "" {
				t.Errorf("with every slot taken: got %d, Retry-After %q, body %q; want 429, a Retry-After and a JSON reason",
					rec.Code, rec.Header().Get("Retry-After"), rec.Body)
			}
			close(release)
			wg.Wait()
			rec = httptest.NewRecorder()
			go func() { <-entered }()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/deliveries/z", nil))
			if rec.Code != http.StatusNotFound {
				t.Errorf("after the slots were given back: got %d, want the lookup served (404)", rec.Code)
			}
		})
	}
}
