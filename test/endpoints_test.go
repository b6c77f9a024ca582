package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Two Zautic accounts beside the default endpoint: acme with a secrets
// file and the default prefix, beta with an inline secret, a prefix of its
// own and a device template.
const (
	acmeSecret  = "acme-secret"
	betaSecret  = "beta-secret"
	acmeRotated = "acme-secret-2"
)

// endpointsEnv is the environment of a forwarder with the default endpoint
// (unless withDefault is false) and the acme and beta endpoints.
func endpointsEnv(t *testing.T, withDefault bool) (env map[string]string, acmeFile string) {
	t.Helper()
	env = forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	if !withDefault {
		delete(env, zautic.SecretEnv)
	}
	acmeFile = filepath.Join(t.TempDir(), "acme.list")
	if err := os.WriteFile(acmeFile, []byte(acmeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["FORWARDER_ENDPOINTS"] = fmt.Sprintf(`[{name: acme, secrets_file: %q}, {name: beta, secrets: [%q], subject_prefix: zautic.b, subject: "{prefix}.{type}.{data.object.device_id}"}]`, acmeFile, betaSecret)
	return env, acmeFile
}

// startEndpoints starts a ready forwarder with the default, acme and beta
// endpoints and connects to its nats-server.
func startEndpoints(t *testing.T) (*forwarderProcess, jetstream.JetStream, string) {
	t.Helper()
	env, acmeFile := endpointsEnv(t, true)
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, env["FORWARDER_NATS_URL"])
	return p, js, acmeFile
}

// sendAs posts body to url signed with secret.
func sendAs(t *testing.T, url, secret string, body []byte) response {
	t.Helper()
	return send(t, url, webhook{body: body, signature: zautic.Sign([]byte(secret), time.Now().Unix(), body)})
}

// sendThroughAll delivers body through the default, acme and beta
// endpoints, each signing with its own secret.
func sendThroughAll(t *testing.T, p *forwarderProcess, body []byte) {
	t.Helper()
	for _, s := range []struct{ url, secret string }{
		{p.WebhookURL, testSecret}, {endpointURL(p, "acme"), acmeSecret}, {endpointURL(p, "beta"), betaSecret},
	} {
		if got := sendAs(t, s.url, s.secret, body); got.Status != http.StatusOK {
			t.Fatalf("%s: got %d %v, want 200", s.url, got.Status, got.Body)
		}
	}
}

// endpointURL is the URL of a named endpoint's default path.
func endpointURL(p *forwarderProcess, name string) string { return p.WebhookURL + "/" + name }

func TestEndpointsRouteByPath(t *testing.T) {
	p, js, _ := startEndpoints(t)

	body := sampleEvent("evt_ep_1", "message.delivered")
	sends := []struct {
		name, url, secret string
		wantStatus        int
		wantOutcome       string // status of a 200, or what a 400's error says
		wantSubject       string
	}{
		{"default", p.WebhookURL, testSecret, 200, "published", "zautic.message.delivered"},
		{"acme, same event id", endpointURL(p, "acme"), acmeSecret, 200, "published", "zautic.acme.message.delivered"},
		{"beta, same event id, template", endpointURL(p, "beta"), betaSecret, 200, "published", "zautic.b.message.delivered.114"},
		{"acme retry", endpointURL(p, "acme"), acmeSecret, 200, "duplicate", ""},
		{"default retry", p.WebhookURL, testSecret, 200, "duplicate", ""},
		{"acme signed with beta's secret", endpointURL(p, "acme"), betaSecret, 400, "no v1 signature", ""},
		{"beta signed with the default secret", endpointURL(p, "beta"), testSecret, 400, "no v1 signature", ""},
		{"default signed with acme's secret", p.WebhookURL, acmeSecret, 400, "no v1 signature", ""},
		{"unknown endpoint", p.WebhookURL + "/gamma", testSecret, 404, "no route", ""},
	}
	for _, s := range sends {
		got := sendAs(t, s.url, s.secret, body)
		switch {
		case got.Status != s.wantStatus:
			t.Errorf("%s: got %d %v, want %d", s.name, got.Status, got.Body, s.wantStatus)
		case s.wantStatus == 200 && (got.Body["status"] != s.wantOutcome || s.wantSubject != "" && got.Body["subject"] != s.wantSubject):
			t.Errorf("%s: got %v, want %s on %q", s.name, got.Body, s.wantOutcome, s.wantSubject)
		case s.wantStatus != 200 && !strings.Contains(fmt.Sprint(got.Body["error"]), s.wantOutcome):
			t.Errorf("%s: got %v, want an error naming %s", s.name, got.Body, s.wantOutcome)
		}
	}

	// Stored three times, once per endpoint, each scoped and named.
	byEndpoint := map[string]jetstream.Msg{}
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		byEndpoint[m.Headers().Get(zautic.MessageEndpointHeader)] = m
	}
	want := []struct{ endpoint, msgID, subject string }{
		{"", "evt_ep_1", "zautic.message.delivered"},
		{"acme", "acme.evt_ep_1", "zautic.acme.message.delivered"},
		{"beta", "beta.evt_ep_1", "zautic.b.message.delivered.114"},
	}
	if len(byEndpoint) != len(want) {
		t.Fatalf("the stream holds messages of %d endpoints, want %d", len(byEndpoint), len(want))
	}
	for _, w := range want {
		m, ok := byEndpoint[w.endpoint]
		switch {
		case !ok:
			t.Errorf("no message of endpoint %q", w.endpoint)
		case m.Subject() != w.subject || m.Headers().Get(zautic.MessageIDHeader) != w.msgID:
			t.Errorf("endpoint %q: stored on %s with Nats-Msg-Id %q, want %s and %q", w.endpoint, m.Subject(), m.Headers().Get(zautic.MessageIDHeader), w.subject, w.msgID)
		}
	}

	metrics := []struct {
		series string
		want   float64
	}{
		{`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="published",reason=""}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="duplicate",reason=""}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="default",outcome="rejected",reason="signature_mismatch"}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="acme",outcome="published",reason=""}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="acme",outcome="duplicate",reason=""}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="acme",outcome="rejected",reason="signature_mismatch"}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="beta",outcome="published",reason=""}`, 1},
		{`zautic_forwarder_webhook_requests_total{endpoint="beta",outcome="rejected",reason="signature_mismatch"}`, 1},
		{`zautic_forwarder_events_published_total{endpoint="beta",type="message.delivered"}`, 1},
		{`zautic_forwarder_signatures_verified_total{endpoint="acme",key_id="` + forwarder.KeyID([]byte(acmeSecret)) + `"}`, 2},
	}
	for _, m := range metrics {
		if got, err := metricValue(p.AdminURL, m.series); err != nil || got != m.want {
			t.Errorf("%s: got %v (%v), want %v", m.series, got, err, m.want)
		}
	}
	// Log lines are flushed every log.flush_interval.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, field := range []string{`"endpoint":"acme"`, `"endpoint":"beta"`, `"endpoint":"default"`} {
			if !strings.Contains(p.Logs(), `"msg":"delivery",`+field) {
				return fmt.Errorf("no delivery log line with %s", field)
			}
		}
		return nil
	})
	if strings.Contains(p.Logs(), betaSecret) {
		t.Errorf("the logs show beta's secret")
	}
}

// TestEndpointsOnly has endpoints and no top-level secret: the default path
// is no endpoint.
func TestEndpointsOnly(t *testing.T) {
	env, _ := endpointsEnv(t, false)
	p := startForwarder(t, env)
	p.WaitReady(t)
	body := sampleEvent("evt_only_1", "message.sent")
	if got := sendAs(t, p.WebhookURL, testSecret, body); got.Status != http.StatusNotFound {
		t.Errorf("default path: got %d %v, want 404", got.Status, got.Body)
	}
	if got := sendAs(t, endpointURL(p, "acme"), acmeSecret, body); got.Status != http.StatusOK || got.Body["status"] != "published" {
		t.Errorf("acme: got %d %v, want 200 published", got.Status, got.Body)
	}
}

// TestEndpointRotationMishap: acme's sender starts signing with a new secret
// before it is in acme's secrets file; the requests are quarantined, and
// adding the secret to that file replays them against acme, the keep and
// the replay counted under acme's endpoint label.
func TestEndpointRotationMishap(t *testing.T) {
	p, js, acmeFile := startEndpoints(t)

	body := sampleEvent("evt_rot_1", "message.read")
	got := sendAs(t, endpointURL(p, "acme"), acmeRotated, body)
	assertQuarantined(t, got, "no v1 signature")
	if err := os.WriteFile(acmeFile, []byte(acmeSecret+"\n"+acmeRotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, m := range streamMessages(t, js, "ZAUTIC") {
			if m.Headers().Get(zautic.MessageIDHeader) == "acme.evt_rot_1" {
				if m.Subject() != "zautic.acme.message.read" || m.Headers().Get(zautic.MessageEndpointHeader) != "acme" {
					return fmt.Errorf("replayed on %s with endpoint %q, want zautic.acme.message.read and acme", m.Subject(), m.Headers().Get(zautic.MessageEndpointHeader))
				}
				return nil
			}
		}
		return fmt.Errorf("not replayed yet")
	})
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(p.Logs(), `"endpoint":"acme","trigger":"reload","outcome":"published"`) {
			return fmt.Errorf("no replay log line naming acme")
		}
		return nil
	})
	// The keep and the replay count under acme, and nowhere else.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, m := range []struct {
			series string
			want   float64
		}{
			{`zautic_forwarder_quarantined_total{endpoint="acme",reason="signature_mismatch"}`, 1},
			{`zautic_forwarder_quarantined_total{endpoint="default",reason="signature_mismatch"}`, 0},
			{`zautic_forwarder_quarantined_total{endpoint="beta",reason="signature_mismatch"}`, 0},
			{`zautic_forwarder_quarantine_replayed_total{endpoint="acme",outcome="published",trigger="reload"}`, 1},
			{`zautic_forwarder_quarantine_replayed_total{endpoint="default",outcome="published",trigger="reload"}`, 0},
			{`zautic_forwarder_quarantine_replayed_total{endpoint="beta",outcome="published",trigger="reload"}`, 0},
			{`zautic_forwarder_quarantine_dropped_total{cause="rate",endpoint="acme"}`, 0},
		} {
			if got, err := metricValue(p.AdminURL, m.series); err != nil || got != m.want {
				return fmt.Errorf("%s: got %v (%v), want %v", m.series, got, err, m.want)
			}
		}
		return nil
	})
}

// TestEndpointsCheckConfig: check-config lists the key ids of each
// endpoint's secrets and shows none of them, and refuses an endpoint
// without a secret naming its keys.
func TestEndpointsCheckConfig(t *testing.T) {
	env, _ := endpointsEnv(t, true)
	res := runBinary(t, env, "", "check-config")
	wantLines := []string{
		"# key ids of the webhook secrets (first 8 hex characters of SHA-256): " + forwarder.KeyID([]byte(testSecret)),
		"# key ids of endpoint acme (first 8 hex characters of SHA-256): " + forwarder.KeyID([]byte(acmeSecret)),
		"# key ids of endpoint beta (first 8 hex characters of SHA-256): " + forwarder.KeyID([]byte(betaSecret)),
	}
	for _, line := range wantLines {
		if res.Code != 0 || !strings.Contains(res.Stdout, line+"\n") {
			t.Errorf("check-config: exit %d, want 0 and the line %q:\n%s%s", res.Code, line, res.Stdout, res.Stderr)
		}
	}
	for _, secret := range []string{testSecret, acmeSecret, betaSecret} {
		if strings.Contains(res.Stdout+res.Stderr, secret) {
			t.Errorf("check-config shows the secret %q", secret)
		}
	}

	env["FORWARDER_ENDPOINTS"] = `[{name: acme}]`
	res = runBinary(t, env, "", "check-config")
	if res.Code == 0 || !strings.Contains(res.Stderr, "endpoints[0].secrets or endpoints[0].secrets_file") {
		t.Errorf("check-config of an endpoint without a secret: exit %d, want 1 naming endpoints[0].secrets:\n%s", res.Code, res.Stderr)
	}
}

// TestEndpointsInspector looks the same event id up per endpoint, and lists
// the deliveries of one endpoint.
func TestEndpointsInspector(t *testing.T) {
	p, _, _ := startEndpoints(t)
	body := sampleEvent("evt_insp_1", "message.delivered")
	sendThroughAll(t, p, body)
	// Kept for acme: signed with beta's secret.
	assertQuarantined(t, sendAs(t, endpointURL(p, "acme"), betaSecret, body), "no v1 signature")

	lookups := []struct {
		query                     string
		wantEndpoint, wantSubject string
		wantQuarantined           int
	}{
		{"", "default", "zautic.message.delivered", 1}, // the quarantine of every endpoint
		{"?endpoint=default", "default", "zautic.message.delivered", 0},
		{"?endpoint=acme", "acme", "zautic.acme.message.delivered", 1},
		{"?endpoint=beta", "beta", "zautic.b.message.delivered.114", 0},
	}
	for _, l := range lookups {
		got := adminJSON(t, p, "/deliveries/evt_insp_1"+l.query, "")
		quarantined, _ := got.Body["quarantine"].([]any)
		if got.Status != http.StatusOK || got.Body["status"] != "published" || got.Body["endpoint"] != l.wantEndpoint ||
			got.Body["subject"] != l.wantSubject || len(quarantined) != l.wantQuarantined {
			t.Errorf("lookup%s: got %d %v, want published by %s on %s with %d quarantined", l.query, got.Status, got.Body, l.wantEndpoint, l.wantSubject, l.wantQuarantined)
		}
		for _, q := range quarantined {
			if e := q.(map[string]any)["endpoint"]; e != "acme" {
				t.Errorf("lookup%s: a quarantined entry of endpoint %v", l.query, e)
			}
		}
	}

	list := adminJSON(t, p, "/deliveries?endpoint=beta", "")
	deliveries, _ := list.Body["deliveries"].([]any)
	if list.Status != http.StatusOK || len(deliveries) != 1 || deliveries[0].(map[string]any)["endpoint"] != "beta" {
		t.Errorf("list of beta: got %d %v, want beta's one delivery", list.Status, list.Body)
	}
	typed := adminJSON(t, p, "/deliveries?type=message.delivered", "")
	if deliveries, _ := typed.Body["deliveries"].([]any); typed.Status != http.StatusOK || len(deliveries) != 3 {
		t.Errorf("list of message.delivered: got %d %v, want the three endpoints' deliveries", typed.Status, typed.Body)
	}
	if got := adminJSON(t, p, "/deliveries/evt_insp_1?endpoint=gamma", ""); got.Status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(got.Body["error"]), "acme") {
		t.Errorf("unknown endpoint: got %d %v, want 400 naming the endpoints", got.Status, got.Body)
	}
	listed := adminJSON(t, p, "/quarantine", "")
	if entries, _ := listed.Body["entries"].([]any); len(entries) != 1 || entries[0].(map[string]any)["endpoint"] != "acme" {
		t.Errorf("quarantine listing: got %v, want acme's one entry", listed.Body)
	}
}
