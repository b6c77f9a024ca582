package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// fakeAdmin is an admin listener that requires the Bearer token "s3cret"
// as the forwarder does, and answers the quarantine routes with answers.
func fakeAdmin(t *testing.T, list forwarder.ListAnswer, replay forwarder.ReplayAnswer) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case !ok:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"admin token required: send Authorization: Bearer <admin.token>"}`))
			return
		case given != "s3cret":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"admin token does not match"}`))
			return
		}
		var answer any = list
		if r.URL.Path == "/quarantine/replay" {
			answer = replay
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestAdminCommandsToken: without a token, or with the wrong one, the
// commands say how to give it; a token with a trailing newline, from the
// flag or the environment, is the token.
func TestAdminCommandsToken(t *testing.T) {
	url := fakeAdmin(t, forwarder.ListAnswer{}, forwarder.ReplayAnswer{})
	tests := []struct {
		name    string
		env     string
		args    []string
		wantErr string // empty: success
	}{
		{"no token", "", nil, "401 the forwarder requires its admin.token: pass --token or set $FORWARDER_ADMIN_TOKEN"},
		{"wrong token in the flag", "", []string{"--token", "nope"}, "401 the token of --token is not the forwarder's admin.token"},
		{"wrong token in the environment", "nope", nil, "401 the token of $FORWARDER_ADMIN_TOKEN is not the forwarder's admin.token"},
		{"token with a newline in the flag", "", []string{"--token", "s3cret\n"}, ""},
		{"token with a newline in the environment", "s3cret\n", nil, ""},
		{"flag beats the environment", "nope", []string{"--token", "s3cret"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(adminTokenEnv, tt.env)
			for _, command := range [][]string{{"quarantine", "list"}, {"quarantine", "replay", "--all"}, {"deliveries", "list"}} {
				args := append(append(command, "--admin-url", url), tt.args...)
				_, _, err := runCommand(t, "", args...)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("%s: got error %v, want none", strings.Join(command, " "), err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("%s: got error %v, want one saying %q", strings.Join(command, " "), err, tt.wantErr)
				}
			}
		})
	}
}
