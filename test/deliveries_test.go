package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// adminJSON sends GET path to the admin listener with token (none when
// empty) and decodes the JSON answer.
func adminJSON(t testing.TB, p *forwarderProcess, path, token string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.AdminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	r, err := decodeResponse(resp)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// deliveryPath is the lookup path of id, escaped as the page and the
// command escape it.
func deliveryPath(id string) string {
	return "/deliveries/" + strings.ReplaceAll(url.PathEscape(id), ".", "%2E")
}

// publish sends one signed event and fails unless it was published; it
// returns the sequence.
func publish(t testing.TB, p *forwarderProcess, eventID, deliveryID, eventType string) float64 {
	t.Helper()
	got := send(t, p.WebhookURL, webhook{body: sampleEvent(eventID, eventType), deliveryID: deliveryID})
	if got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Fatalf("send %s: got %d %v, want 200 published", eventID, got.Status, got.Body)
	}
	return got.Body["seq"].(float64)
}

// TestDeliveryLookup finds a published delivery by its event id and by its
// delivery id with either dedup key, and again after a duplicate re-send.
func TestDeliveryLookup(t *testing.T) {
	for _, key := range []string{forwarder.DedupKeyDelivery, forwarder.DedupKeyEvent} {
		t.Run("dedup.key "+key, func(t *testing.T) {
			env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
			env["FORWARDER_DEDUP_KEY"] = key
			p := startForwarder(t, env)
			p.WaitReady(t)
			publish(t, p, "evt_other_1", "dlv_other_1", "message.sent")
			seq := publish(t, p, "evt_lookup_1", "dlv_lookup_1", "message.delivered")
			publish(t, p, "evt_other_2", "dlv_other_2", "message.read")
			again := send(t, p.WebhookURL, webhook{body: sampleEvent("evt_lookup_1", "message.delivered"), deliveryID: "dlv_lookup_1"})
			if again.Body["status"] != "duplicate" {
				t.Fatalf("re-send: got %v, want duplicate", again.Body)
			}
			want := map[string]any{
				"status": "published", "delivery_id": "dlv_lookup_1", "event_id": "evt_lookup_1",
				"type": "message.delivered", "subject": "zautic.message.delivered", "stream": "ZAUTIC",
				"seq": seq, "size": float64(len(sampleEvent("evt_lookup_1", "message.delivered"))),
			}
			for _, id := range []string{"dlv_lookup_1", "evt_lookup_1"} {
				got := adminJSON(t, p, deliveryPath(id), "")
				if got.Status != http.StatusOK {
					t.Fatalf("lookup %s: got %d %v, want 200", id, got.Status, got.Body)
				}
				for k, v := range want {
					if got.Body[k] != v {
						t.Errorf("lookup %s: %s: got %v, want %v", id, k, got.Body[k], v)
					}
				}
				if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Body["published_at"])); err != nil {
					t.Errorf("lookup %s: published_at %v: %v", id, got.Body["published_at"], err)
				}
			}
			resp, err := http.Get(p.AdminURL + deliveryPath("dlv_lookup_1") + "/body")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK || body != string(sampleEvent("evt_lookup_1", "message.delivered")) {
				t.Errorf("body: got %d %q, want 200 and the published body", resp.StatusCode, body)
			}
		})
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestDeliveryLookupRejects answers unknown and hostile ids with a precise
// JSON reason and without harm, and a delivery still looks up afterwards.
func TestDeliveryLookupRejects(t *testing.T) {
	p := startForwarder(t, forwarderEnv(natstest.Start(t, "", 0).ClientURL()))
	p.WaitReady(t)
	publish(t, p, "evt_safe_1", "dlv_safe_1", "message.sent")
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantError  string
	}{
		{"unknown", deliveryPath("dlv_unknown"), 404, `no delivery "dlv_unknown" in the dedup bucket, the stream or the quarantine`},
		{"dot dot slash", deliveryPath("../"), 404, `no delivery "../" in the dedup bucket`},
		{"dot dot", deliveryPath(".."), 404, `no delivery ".." in the dedup bucket`},
		{"slashes", deliveryPath("a/../../healthz"), 404, `no delivery "a/../../healthz"`},
		{"10 KB", deliveryPath(long), 400, "id is 10240 bytes, longer than 1024"},
		{"10 KB body", deliveryPath(long) + "/body", 400, "id is 10240 bytes, longer than 1024"},
		{"1025 bytes", deliveryPath(long[:1025]), 400, "id is 1025 bytes, longer than 1024"},
		{"1024 bytes is looked up", deliveryPath(long[:1024]), 404, "no delivery"},
		{"non-UTF-8", "/deliveries/%FF%FEdlv", 404, `no delivery "\xff\xfedlv"`},
		{"NUL", "/deliveries/dlv%00x", 404, `no delivery "dlv\x00x"`},
		{"subject wildcard", deliveryPath("dlv.*.>"), 404, `no delivery "dlv.*.>"`},
		{"unknown body", deliveryPath("dlv_unknown") + "/body", 404, `delivery not found: "dlv_unknown" has no message in stream ZAUTIC`},
		{"limit too large", "/deliveries?limit=501", 400, "limit must be an integer from 1 to 500"},
		{"limit zero", "/deliveries?limit=0", 400, "limit must be an integer from 1 to 500"},
		{"before_seq not a number", "/deliveries?before_seq=x", 400, "before_seq must be a positive integer"},
		{"type not a subject token", "/deliveries?type=a.%3E", 400, "invalid event type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := adminJSON(t, p, tt.path, "")
			if got.Status != tt.wantStatus || !strings.Contains(fmt.Sprint(got.Body["error"]), tt.wantError) {
				t.Errorf("got %d %v, want %d with error containing %q", got.Status, got.Body, tt.wantStatus, tt.wantError)
			}
		})
	}
	if got := adminJSON(t, p, deliveryPath("dlv_safe_1"), ""); got.Status != http.StatusOK {
		t.Errorf("lookup after hostile ids: got %d %v, want 200", got.Status, got.Body)
	}
}

// TestDeliveryLookupExpired: a dedup mark whose message aged out of a
// stream with a short max_age answers "expired".
func TestDeliveryLookupExpired(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_STREAM_MAX_AGE"] = "1s"
	env["FORWARDER_STREAM_DUPLICATE_WINDOW"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)
	before := time.Now().Add(-time.Second) // slack: the nats-server stamps the mark with its own reading of the clock
	seq := publish(t, p, "evt_old_1", "dlv_old_1", "message.sent")
	var got response
	// The mark is kept under the dedup key, the event id (dedup.key event).
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		got = adminJSON(t, p, deliveryPath("evt_old_1"), "")
		if got.Body["status"] != "expired" {
			return fmt.Errorf("got %d %v, want expired", got.Status, got.Body)
		}
		return nil
	})
	if got.Status != http.StatusOK || got.Body["seq"] != seq || got.Body["dedup_key"] != "evt_old_1" || got.Body["stream"] != "ZAUTIC" {
		t.Errorf("got %d %v, want 200 expired with seq %v, dedup_key evt_old_1, stream ZAUTIC", got.Status, got.Body, seq)
	}
	// When it was marked: the time NATS stored the mark.
	_, js := connect(t, ns.ClientURL())
	kv, err := js.KeyValue(testContext(t), "zautic-dedup")
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(testContext(t), "evt_old_1")
	if err != nil {
		t.Fatal(err)
	}
	if want := entry.Created().UTC().Format(time.RFC3339Nano); got.Body["marked_at"] != want || entry.Created().Before(before) {
		t.Errorf("marked_at: got %v, want %s, when NATS stored the mark (after %v)", got.Body["marked_at"], want, before)
	}
	// A mark the repair recreated, or an earlier version wrote, carries a
	// time in its value: that one is marked_at.
	const stored = "2026-01-02T03:04:05.5Z"
	if _, err := kv.Put(testContext(t), "evt_old_1", fmt.Appendf(nil, "%v %s", seq, stored)); err != nil {
		t.Fatal(err)
	}
	if got := adminJSON(t, p, deliveryPath("evt_old_1"), ""); got.Body["marked_at"] != stored || got.Body["seq"] != seq {
		t.Errorf("mark with a time: got %d %v, want marked_at %s and seq %v", got.Status, got.Body, stored, seq)
	}
	// The delivery id is no dedup key and its message is gone: unknown.
	if got := adminJSON(t, p, deliveryPath("dlv_old_1"), ""); got.Status != http.StatusNotFound {
		t.Errorf("delivery id of an expired event: got %d %v, want 404", got.Status, got.Body)
	}
}

// TestDeliveryList pages through more than one page, newest first, with
// and without a type filter.
func TestDeliveryList(t *testing.T) {
	p := startForwarder(t, forwarderEnv(natstest.Start(t, "", 0).ClientURL()))
	p.WaitReady(t)
	types := []string{"message.sent", "message.read"}
	var all []float64
	for i := range 7 {
		all = append(all, publish(t, p, fmt.Sprintf("evt_page_%d", i), fmt.Sprintf("dlv_page_%d", i), types[i%2]))
	}
	tests := []struct {
		name      string
		query     string
		wantPages [][]float64
	}{
		{"limit 3", "limit=3", [][]float64{{7, 6, 5}, {4, 3, 2}, {1}}},
		{"limit 7", "limit=7", [][]float64{{7, 6, 5, 4, 3, 2, 1}}},
		{"type message.read", "limit=2&type=message.read", [][]float64{{6, 4}, {2}}},
		{"type without events", "type=contact.created", [][]float64{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/deliveries?" + tt.query
			for i, want := range tt.wantPages {
				got := adminJSON(t, p, path, "")
				if got.Status != http.StatusOK {
					t.Fatalf("page %d: got %d %v, want 200", i, got.Status, got.Body)
				}
				var seqs []float64
				for _, d := range got.Body["deliveries"].([]any) {
					seqs = append(seqs, d.(map[string]any)["seq"].(float64))
				}
				if fmt.Sprint(seqs) != fmt.Sprint(want) {
					t.Fatalf("page %d: got seqs %v, want %v", i, seqs, want)
				}
				next := got.Body["next_before_seq"].(float64)
				if last := i == len(tt.wantPages)-1; last != (next == 0) {
					t.Fatalf("page %d: next_before_seq %v, want 0 only on the last page", i, next)
				}
				path = fmt.Sprintf("/deliveries?%s&before_seq=%d", tt.query, int(next))
			}
		})
	}
	if len(all) != 7 {
		t.Fatalf("published %d, want 7", len(all))
	}
}

// TestAdminToken: with admin.token or admin.token_file set, the data paths
// require the Bearer token, the probes and the page do not, a rotated file
// takes effect, and the token never reaches the logs.
func TestAdminToken(t *testing.T) {
	const token, rotated = "admin-token-5d1c9e", "admin-token-rotated-7a2f"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"admin.token", map[string]string{"FORWARDER_ADMIN_TOKEN": token}},
		{"admin.token_file", map[string]string{"FORWARDER_ADMIN_TOKEN_FILE": tokenFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
			env["FORWARDER_ADMIN_PPROF"] = "true"
			env["FORWARDER_LOG_LEVEL"] = "debug"
			for k, v := range tt.env {
				env[k] = v
			}
			p := startForwarder(t, env)
			p.WaitReady(t)
			publish(t, p, "evt_tok_1", "dlv_tok_1", "message.sent")
			checkAdminAccess(t, p, token)
			// The scheme is case-insensitive (RFC 7235).
			for _, scheme := range []string{"bearer", "BEARER"} {
				req, err := http.NewRequest(http.MethodGet, p.AdminURL+"/deliveries", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", scheme+" "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
					t.Errorf("Authorization: %s <token>: got %d %s, want 200", scheme, resp.StatusCode, body)
				}
			}
			if tt.name == "admin.token_file" {
				if err := os.WriteFile(tokenFile, []byte(rotated), 0o600); err != nil {
					t.Fatal(err)
				}
				natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
					if got := adminJSON(t, p, "/deliveries", rotated); got.Status != http.StatusOK {
						return fmt.Errorf("rotated token: got %d %v, want 200", got.Status, got.Body)
					}
					return nil
				})
				if got := adminJSON(t, p, "/deliveries", token); got.Status != http.StatusUnauthorized {
					t.Errorf("old token after rotation: got %d, want 401", got.Status)
				}
			}
			for _, secret := range []string{token, rotated} {
				if strings.Contains(p.Logs(), secret) {
					t.Errorf("logs contain the admin token %q", secret)
				}
			}
		})
	}
}

// adminGet sends GET path to the admin listener under host (empty: the
// listener's own address) with token (none when empty), and returns the
// status and the body.
func adminGet(t testing.TB, p *forwarderProcess, path, host, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.AdminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, readAll(t, resp)
}

// TestAdminLoopbackOnlyWithoutToken: without admin.token the data and
// action paths answer a loopback client only under Host localhost,
// 127.0.0.1 or [::1]; another Host, as a page whose name was rebound to
// 127.0.0.1 sends, gets 403 naming admin.token. The open paths answer any
// Host. With a token, the token decides, whatever the Host.
func TestAdminLoopbackOnlyWithoutToken(t *testing.T) {
	const token = "rebind-token-81c4"
	tests := []struct {
		name   string
		token  string
		path   string
		host   string // empty: the listener's own 127.0.0.1:port
		bearer string
		want   int
	}{
		{"own address", "", "/deliveries", "", "", 200},
		{"localhost", "", "/quarantine", "localhost:9090", "", 200},
		{"[::1]", "", deliveryPath("dlv_rebind_1"), "[::1]", "", 200},
		{"rebound name", "", "/deliveries", "evil.example", "", 403},
		{"rebound name, a lookup", "", deliveryPath("dlv_rebind_1"), "evil.example:9090", "", 403},
		{"rebound name, the body", "", deliveryPath("dlv_rebind_1") + "/body", "evil.example", "", 403},
		{"rebound name, the quarantine", "", "/quarantine", "evil.example", "", 403},
		{"rebound name, pprof", "", "/debug/pprof/", "evil.example", "", 403},
		{"rebound name, the page", "", "/", "evil.example", "", 200},
		{"rebound name, overview", "", "/overview", "evil.example", "", 200},
		{"rebound name, metrics", "", "/metrics", "evil.example", "", 200},
		{"token, any Host", token, "/deliveries", "forwarder.example", token, 200},
		{"token missing, localhost", token, "/deliveries", "localhost", "", 401},
	}
	procs := map[string]*forwarderProcess{}
	for _, tok := range []string{"", token} {
		env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
		env["FORWARDER_ADMIN_PPROF"] = "true"
		if tok != "" {
			env["FORWARDER_ADMIN_TOKEN"] = tok
		}
		p := startForwarder(t, env)
		p.WaitReady(t)
		publish(t, p, "evt_rebind_1", "dlv_rebind_1", "message.sent")
		procs[tok] = p
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := adminGet(t, procs[tt.token], tt.path, tt.host, tt.bearer)
			if status != tt.want {
				t.Fatalf("GET %s with Host %q: got %d %s, want %d", tt.path, tt.host, status, trimmed(body), tt.want)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(body, `"error":"forbidden: admin.token is not set`) {
				t.Errorf("GET %s: got %s, want a JSON reason naming admin.token", tt.path, trimmed(body))
			}
		})
	}
}

func checkAdminAccess(t *testing.T, p *forwarderProcess, token string) {
	t.Helper()
	tests := []struct {
		path       string
		token      string
		wantStatus int
	}{
		{"/deliveries", "", 401},
		{"/deliveries", "wrong", 401},
		{"/deliveries", token, 200},
		{deliveryPath("dlv_tok_1"), "", 401},
		{deliveryPath("dlv_tok_1"), token, 200},
		{deliveryPath("dlv_tok_1") + "/body", "", 401},
		{"/quarantine", "", 401},
		{"/quarantine/replay", "", 401},
		{"/debug/pprof/", "", 401},
		{"/debug/pprof/cmdline", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
		{"/overview", "", 200},
		{"/", "", 200},
		{"/static/app.js", "", 200},
		{"/static/app.css", "", 200},
	}
	for _, tt := range tests {
		status, body := adminGet(t, p, tt.path, "", tt.token)
		if status != tt.wantStatus {
			t.Errorf("GET %s with token %q: got %d %s, want %d", tt.path, tt.token, status, trimmed(body), tt.wantStatus)
		}
		if tt.wantStatus == http.StatusUnauthorized && !strings.Contains(body, `"error":"admin token`) {
			t.Errorf("GET %s: got %s, want a JSON reason", tt.path, trimmed(body))
		}
	}
}

// TestDeliveriesCommand runs "deliveries get" and "deliveries list"
// against the real binary: a table, JSON, and exit 1 for an unknown id.
func TestDeliveriesCommand(t *testing.T) {
	const token = "cli-token-3e8a"
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	env["FORWARDER_ADMIN_TOKEN"] = token
	p := startForwarder(t, env)
	p.WaitReady(t)
	publish(t, p, "evt_cli_1", "dlv_cli_1", "message.sent")
	publish(t, p, "evt_cli_2", "dlv_cli_2", "contact.created")
	quarantineDelivery(t, p, "evt_cli_q", "dlv_cli_q", "unknown-secret")
	tests := []struct {
		name     string
		args     []string
		wantExit int
		want     []string
	}{
		{"get by delivery id", []string{"get", "dlv_cli_1"}, 0, []string{"status", "published", "evt_cli_1", "zautic.message.sent"}},
		{"get by event id as JSON", []string{"get", "evt_cli_2", "--json"}, 0, []string{`"delivery_id": "dlv_cli_2"`, `"status": "published"`}},
		{"get unknown", []string{"get", "dlv_nowhere"}, 1, []string{`no delivery "dlv_nowhere"`}},
		{"list", []string{"list"}, 0, []string{"SEQ", "dlv_cli_2", "dlv_cli_1"}},
		{"list by type", []string{"list", "--type", "contact.created", "--limit", "5"}, 0, []string{"dlv_cli_2"}},
		{"list as JSON", []string{"list", "--json"}, 0, []string{`"next_before_seq": 0`}},
		{"wrong token", []string{"list", "--token", "wrong"}, 1, []string{"the token of --token is not the forwarder's admin.token"}},
		// Unverified fields are marked as quarantine list marks them.
		{"get quarantined", []string{"get", "dlv_cli_q"}, 0, []string{"status", "quarantined", "delivery_id*", "event_id*", "event_type*", "signed_at*",
			"DELIVERY ID*", "EVENT ID*", "* from the quarantined request's unsigned headers or body, not verified until replayed"}},
		{"admin URL without a scheme", []string{"get", "dlv_cli_1", "--admin-url", "localhost:19090"}, 1,
			[]string{`admin URL "localhost:19090" has no scheme: include it, as in http://localhost:19090`}},
		{"admin URL of the webhook port, with a path", []string{"get", "dlv_cli_1", "--admin-url", p.WebhookURL}, 1,
			[]string{"GET /webhooks/zautic/deliveries/dlv_cli_1: 404", p.WebhookURL + " may not be the forwarder's admin listener"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"deliveries", "--admin-url", p.AdminURL}, tt.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "FORWARDER_ADMIN_TOKEN=" + token}
			out, _ := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != tt.wantExit {
				t.Fatalf("exit: got %d, want %d\n%s", got, tt.wantExit, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// quarantineDelivery sends an event signed with secret, which the
// forwarder does not know yet, and fails unless it was refused (400) and so
// quarantined.
func quarantineDelivery(t testing.TB, p *forwarderProcess, eventID, deliveryID, secret string) {
	t.Helper()
	body := sampleEvent(eventID, "message.failed")
	got := send(t, p.WebhookURL, webhook{body: body, deliveryID: deliveryID, signature: zautic.Sign([]byte(secret), time.Now().Unix(), body),
		headers: map[string]string{"X-Zautic-Event": "message.failed"}})
	if got.Status != http.StatusBadRequest {
		t.Fatalf("mis-signed delivery: got %d %v, want 400", got.Status, got.Body)
	}
}

// TestDeliveryLookupQuarantined finds mis-signed deliveries in the
// quarantine by delivery id and by event id, lists every attempt, and never
// serves their unverified bodies.
func TestDeliveryLookupQuarantined(t *testing.T) {
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	env["FORWARDER_QUARANTINE_AUTO_REPLAY"] = "false"
	p := startForwarder(t, env)
	p.WaitReady(t)
	quarantineDelivery(t, p, "evt_quar_1", "dlv_quar_1", "unknown-secret")
	quarantineDelivery(t, p, "evt_quar_1", "dlv_quar_1", "unknown-secret")
	quarantineDelivery(t, p, "evt_quar_2", "dlv_quar_2", "unknown-secret")
	for _, id := range []string{"dlv_quar_1", "evt_quar_1"} {
		got := adminJSON(t, p, deliveryPath(id), "")
		if got.Status != http.StatusOK || got.Body["status"] != "quarantined" || got.Body["reason"] != "signature_mismatch" ||
			got.Body["quarantine_seq"] != float64(2) || got.Body["delivery_id"] != "dlv_quar_1" || got.Body["event_id"] != "evt_quar_1" {
			t.Errorf("lookup %s: got %d %v, want 200 quarantined for signature_mismatch at quarantine_seq 2", id, got.Status, got.Body)
		}
		entries, _ := got.Body["entries"].([]any)
		if len(entries) != 2 {
			t.Errorf("lookup %s: got %d entries, want both attempts", id, len(entries))
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Body["received_at"])); err != nil {
			t.Errorf("lookup %s: received_at %v: %v", id, got.Body["received_at"], err)
		}
		checkUnsigned(t, "lookup "+id, got.Body)
		for i, e := range entries {
			checkUnsigned(t, fmt.Sprintf("lookup %s: entry %d", id, i), e)
		}
	}
	if got := adminJSON(t, p, deliveryPath("dlv_quar_1")+"/body", ""); got.Status != http.StatusNotFound {
		t.Errorf("body of a quarantined delivery: got %d %v, want 404", got.Status, got.Body)
	}
	// Published later, signed right: the answer's own fields are verified,
	// its quarantine entries' are not, and each entry says so.
	publish(t, p, "evt_quar_2", "dlv_quar_2", "message.failed")
	got := adminJSON(t, p, deliveryPath("dlv_quar_2"), "")
	earlier, _ := got.Body["quarantine"].([]any)
	if got.Body["status"] != "published" || len(earlier) != 1 || got.Body["unsigned"] != nil {
		t.Fatalf("lookup dlv_quar_2: got %d %v, want published, one quarantine entry, no unsigned mark of its own", got.Status, got.Body)
	}
	checkUnsigned(t, "lookup dlv_quar_2: quarantine entry", earlier[0])
}

// checkUnsigned fails unless a quarantine record names its unverified
// fields, as GET /quarantine does.
func checkUnsigned(t *testing.T, what string, record any) {
	t.Helper()
	fields, _ := record.(map[string]any)
	if got, want := fmt.Sprint(fields["unsigned"]), "[delivery_id event_id event_type signed_at]"; got != want {
		t.Errorf("%s: unsigned: got %s, want %s", what, got, want)
	}
}

// asJSON is s as it comes back from a JSON answer: invalid UTF-8 turned
// into U+FFFD, byte by byte.
func asJSON(t testing.TB, s string) string {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// TestDeliveryLookupMappedIDs looks up published events whose dedup key
// the forwarder maps before it becomes a Nats-Msg-Id (white space at either
// end, a control character, invalid UTF-8, a "sha256." prefix): each is
// found as published with its body, through its dedup mark and, once the
// mark is gone, through the stream's headers; the event id shown is the
// body's, white space included.
func TestDeliveryLookupMappedIDs(t *testing.T) {
	type event struct {
		jsonID     string // the id as written in the body
		eventID    string // the id the body carries
		deliveryID string
		lookups    []string
	}
	tests := []struct {
		key    string
		events []event
	}{
		{forwarder.DedupKeyEvent, []event{
			{" evt_lead", " evt_lead", "dlv_map_lead", []string{" evt_lead", "dlv_map_lead"}},
			{"evt_trail ", "evt_trail ", "dlv_map_trail", []string{"evt_trail "}},
			{`evt_\u0001ctl`, "evt_\u0001ctl", "dlv_map_ctl", []string{"evt_\u0001ctl"}},
			{"sha256.evt_prefixed", "sha256.evt_prefixed", "dlv_map_prefixed", []string{"sha256.evt_prefixed"}},
		}},
		{forwarder.DedupKeyDelivery, []event{
			{"evt_map_utf8", "evt_map_utf8", "dlv_\xff\xfe_utf8", []string{"dlv_\xff\xfe_utf8"}},
			{"evt_map_prefixed", "evt_map_prefixed", "sha256.dlv_prefixed", []string{"sha256.dlv_prefixed"}},
			{" evt_map_lead", " evt_map_lead", "dlv_map_lead", []string{"dlv_map_lead"}},
		}},
	}
	for _, tt := range tests {
		t.Run("dedup.key "+tt.key, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			env := forwarderEnv(ns.ClientURL())
			env["FORWARDER_DEDUP_KEY"] = tt.key
			p := startForwarder(t, env)
			p.WaitReady(t)
			seqs := map[string]float64{}
			for _, ev := range tt.events {
				seqs[ev.eventID] = publish(t, p, ev.jsonID, ev.deliveryID, "message.sent")
			}
			check := func(t *testing.T, how string) {
				t.Helper()
				for _, ev := range tt.events {
					for _, id := range ev.lookups {
						got := adminJSON(t, p, deliveryPath(id), "")
						if got.Status != http.StatusOK || got.Body["status"] != "published" || got.Body["seq"] != seqs[ev.eventID] ||
							got.Body["event_id"] != ev.eventID || got.Body["delivery_id"] != asJSON(t, ev.deliveryID) {
							t.Errorf("%s: lookup %q: got %d %v, want published at seq %v with event_id %q", how, id, got.Status, got.Body, seqs[ev.eventID], ev.eventID)
						}
						resp, err := http.Get(p.AdminURL + deliveryPath(id) + "/body")
						if err != nil {
							t.Fatal(err)
						}
						if body := readAll(t, resp); resp.StatusCode != http.StatusOK || body != string(sampleEvent(ev.jsonID, "message.sent")) {
							t.Errorf("%s: body of %q: got %d %q, want 200 and the published body", how, id, resp.StatusCode, trimmed(body))
						}
					}
				}
			}
			check(t, "through the mark")
			_, js := connect(t, ns.ClientURL())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			kv, err := js.KeyValue(ctx, "zautic-dedup")
			if err != nil {
				t.Fatal(err)
			}
			keys, err := kv.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if err := kv.Purge(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			check(t, "without the mark")
		})
	}
}
