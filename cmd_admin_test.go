package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

// fakeAdmin is an admin listener that requires the Bearer token "s3cret"
// as the forwarder does, and answers the quarantine routes with answers.
func fakeAdmin(t *testing.T, list adminapi.ListAnswer, replay adminapi.ReplayAnswer) string {
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
	url := fakeAdmin(t, adminapi.ListAnswer{}, adminapi.ReplayAnswer{})
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

// hostile holds what an attacker may put in an unsigned header: C0 and C1
// controls (ESC and CSI start terminal sequences), a right-to-left override
// and a tab that shifts the table's columns.
const hostile = "dlv\x1b[2J\u009b31m\u202egpj.exe\tx"

// TestQuarantineCommandsEscapeUnsigned: the list and the replay print
// unsigned values escaped, as deliveries get does.
func TestQuarantineCommandsEscapeUnsigned(t *testing.T) {
	t.Setenv(adminTokenEnv, "s3cret")
	url := fakeAdmin(t,
		adminapi.ListAnswer{Entries: []adminapi.ListedEntry{{Seq: 7, Reason: "signature_mismatch", ReceivedAt: time.Now(), DeliveryID: hostile, EventType: hostile}}},
		adminapi.ReplayAnswer{Results: []adminapi.ReplayResult{{Seq: 7, Outcome: "rejected", Reason: "signature_mismatch", DeliveryID: hostile, EventID: hostile, Error: hostile}}})
	for _, command := range [][]string{{"quarantine", "list"}, {"quarantine", "replay", "--seq", "7"}} {
		t.Run(strings.Join(command, " "), func(t *testing.T) {
			out, _, _ := runCommand(t, "", append(command, "--admin-url", url)...)
			if !strings.Contains(out, `dlv\x1b[2J\u009b31m\u202egpj.exe\tx`) {
				t.Errorf("output lacks the escaped value:\n%s", out)
			}
			for _, raw := range []string{"\x1b", "\u009b", "\u202e", "exe\tx"} {
				if strings.Contains(out, raw) {
					t.Errorf("output holds %q raw:\n%q", raw, out)
				}
			}
		})
	}
}

// TestQuarantineReplaySuggestsIgnoreTolerance: entries rejected for their
// timestamp come with the flag that replays them.
func TestQuarantineReplaySuggestsIgnoreTolerance(t *testing.T) {
	t.Setenv(adminTokenEnv, "s3cret")
	tests := []struct {
		name   string
		reason string
		want   bool
	}{
		{"timestamp out of tolerance", "timestamp_out_of_tolerance", true},
		{"signature mismatch", "signature_mismatch", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeAdmin(t, adminapi.ListAnswer{},
				adminapi.ReplayAnswer{Results: []adminapi.ReplayResult{{Seq: 3, Outcome: "rejected", Reason: tt.reason}}})
			out, _, err := runCommand(t, "", "quarantine", "replay", "--seq", "3", "--admin-url", url)
			if err == nil {
				t.Error("a rejected entry: got no error, want the exit code to say so")
			}
			if got := strings.Contains(out, "1 rejected for their timestamp") && strings.Contains(out, "--ignore-tolerance"); got != tt.want {
				t.Errorf("mentions --ignore-tolerance: got %v, want %v:\n%s", got, tt.want, out)
			}
		})
	}
}

// TestAdminCommandsNotTheAdminListener: a 404 that is not the admin API's
// answer (an empty body, a plain-text page) says the URL may not be the
// forwarder's admin listener, with the path asked for under the URL's own.
func TestAdminCommandsNotTheAdminListener(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"empty 404", ""},
		{"plain-text 404", "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			_, _, err := runCommand(t, "", "deliveries", "get", "dlv_1", "--admin-url", srv.URL+"/under/a/path")
			want := "GET /under/a/path/deliveries/dlv_1: 404"
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "may not be the forwarder's admin listener") {
				t.Errorf("got %v, want an error saying %q and that the URL may not be the admin listener", err, want)
			}
		})
	}
}
