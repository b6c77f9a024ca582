package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// TestGuardAdmin checks who reaches a guarded path, by client address,
// Host and token: without admin.token only loopback clients naming a
// loopback Host; with one, whoever sends it, from anywhere and under any
// Host. Open paths answer everyone.
func TestGuardAdmin(t *testing.T) {
	const secret = "guard-s3cret"
	withToken, err := newAdminToken(Config{Token: secret}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	without, err := newAdminToken(Config{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		token      *adminToken
		path       string
		remote     string
		host       string
		bearer     string
		wantStatus int
		wantReason string // a part of the JSON reason
	}{
		{"loopback v4, Host 127.0.0.1:port", without, "/deliveries", "127.0.0.1:50000", "127.0.0.1:9090", "", 200, ""},
		{"loopback v4, Host localhost", without, "/deliveries", "127.0.0.1:50000", "localhost", "", 200, ""},
		{"loopback v4, Host LOCALHOST:port", without, "/deliveries", "127.0.0.1:50000", "LOCALHOST:9090", "", 200, ""},
		{"loopback 127.0.0.2", without, "/quarantine", "127.0.0.2:50000", "localhost:9090", "", 200, ""},
		{"loopback v6, Host [::1]:port", without, "/deliveries/dlv_1", "[::1]:50000", "[::1]:9090", "", 200, ""},
		{"loopback v6, Host [::1]", without, "/deliveries", "[::1]:50000", "[::1]", "", 200, ""},
		{"v4-mapped loopback", without, "/deliveries", "[::ffff:127.0.0.1]:50000", "localhost:9090", "", 200, ""},
		{"rebound name", without, "/deliveries", "127.0.0.1:50000", "evil.example", "", 403, `got Host \"evil.example\"`},
		{"rebound name with port", without, "/quarantine/replay", "127.0.0.1:50000", "evil.example:9090", "", 403, "admin.token"},
		{"name ending in localhost", without, "/deliveries", "127.0.0.1:50000", "localhost.evil.example", "", 403, "admin.token"},
		{"another loopback address as Host", without, "/deliveries", "127.0.0.1:50000", "127.0.0.2:9090", "", 403, "admin.token"},
		{"bare ::1 Host", without, "/deliveries", "[::1]:50000", "::1", "", 403, "admin.token"},
		{"port not a number", without, "/deliveries", "127.0.0.1:50000", "localhost:x", "", 403, "admin.token"},
		{"empty Host", without, "/deliveries", "127.0.0.1:50000", "", "", 403, "admin.token"},
		{"from the network", without, "/deliveries", "10.1.2.3:50000", "localhost:9090", "", 403, "only clients on loopback"},
		{"from the network, v6", without, "/debug/pprof/", "[2001:db8::1]:50000", "[::1]:9090", "", 403, "admin.token"},
		{"unparsable remote address", without, "/deliveries", "pipe", "localhost", "", 403, "admin.token"},
		{"open path from the network", without, "/healthz", "10.1.2.3:50000", "evil.example", "", 200, ""},
		{"page from the network", without, "/", "10.1.2.3:50000", "evil.example", "", 200, ""},
		{"static file from the network", without, "/static/app.js", "10.1.2.3:50000", "evil.example", "", 200, ""},
		{"overview from the network", without, "/overview", "10.1.2.3:50000", "evil.example", "", 200, ""},
		{"metrics from the network", without, "/metrics", "10.1.2.3:50000", "evil.example", "", 200, ""},
		{"token from the network", withToken, "/deliveries", "10.1.2.3:50000", "forwarder.example", secret, 200, ""},
		{"token under any Host", withToken, "/quarantine", "127.0.0.1:50000", "evil.example", secret, 200, ""},
		{"no token from loopback", withToken, "/deliveries", "127.0.0.1:50000", "localhost:9090", "", 401, "admin token required"},
		{"wrong token from the network", withToken, "/debug/pprof/", "10.1.2.3:50000", "forwarder.example", "wrong", 401, "admin token does not match"},
		{"open path without the token", withToken, "/readyz", "10.1.2.3:50000", "forwarder.example", "", 200, ""},
	}
	served := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.RemoteAddr, req.Host = tt.remote, tt.host
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			rec := httptest.NewRecorder()
			guardAdmin(tt.token, served).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			var answer struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("answer %s: %v", rec.Body, err)
			}
			if !strings.Contains(rec.Body.String(), tt.wantReason) || answer.Error == "" {
				t.Errorf("got %s, want a JSON reason with %q", rec.Body, tt.wantReason)
			}
		})
	}
}
