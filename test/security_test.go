package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// getAdmin fetches path from the forwarder's admin listener.
func getAdmin(t testing.TB, p *forwarderProcess, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.AdminURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// TestSecretsStayOutOfLogsAndMetrics runs the binary with every kind of
// secret set (webhook secrets from the environment and a file, NATS
// credentials as keys, in the URL, or wrong), exercises it (valid and
// forged webhooks, SIGHUP) and searches the logs and /metrics for the
// secret values and the signatures sent.
func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	const (
		envSecret  = "whsec_env_0a9b8c7d6e5f"
		fileSecret = "whsec_file_1f2e3d4c5b6a"
		natsUser   = "forwarder"
		natsPass   = "nats-pass-5e1f77c2"
		natsToken  = "nats-token-8b3d61fa"
	)
	tests := []struct {
		name      string
		server    func(*server.Options)
		env       func(url string) map[string]string
		wantReady bool
	}{
		{
			name:   "user and password keys",
			server: func(o *server.Options) { o.Username, o.Password = natsUser, natsPass },
			env: func(url string) map[string]string {
				return map[string]string{"FORWARDER_NATS_URL": url, "FORWARDER_NATS_USER": natsUser, "FORWARDER_NATS_PASSWORD": natsPass}
			},
			wantReady: true,
		},
		{
			name:   "password in the URL",
			server: func(o *server.Options) { o.Username, o.Password = natsUser, natsPass },
			env: func(url string) map[string]string {
				return map[string]string{"FORWARDER_NATS_URL": strings.Replace(url, "://", "://"+natsUser+":"+natsPass+"@", 1)}
			},
			wantReady: true,
		},
		{
			name:   "token key",
			server: func(o *server.Options) { o.Authorization = natsToken },
			env: func(url string) map[string]string {
				return map[string]string{"FORWARDER_NATS_URL": url, "FORWARDER_NATS_TOKEN": natsToken}
			},
			wantReady: true,
		},
		{
			name:   "wrong token",
			server: func(o *server.Options) { o.Authorization = "the-right-token-2c9a" },
			env: func(url string) map[string]string {
				return map[string]string{"FORWARDER_NATS_URL": url, "FORWARDER_NATS_TOKEN": natsToken}
			},
			wantReady: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0, tt.server)
			secretsFile := filepath.Join(t.TempDir(), "webhook-secrets")
			if err := os.WriteFile(secretsFile, []byte(fileSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := forwarderEnv("")
			env[zautic.SecretEnv] = envSecret
			env["FORWARDER_WEBHOOK_SECRETS_FILE"] = secretsFile
			for k, v := range tt.env(ns.ClientURL()) {
				env[k] = v
			}
			p := startForwarder(t, env)
			if tt.wantReady {
				p.WaitReady(t)
			} else {
				waitNotReady(t, p, "credentials rejected")
			}

			signatures := exerciseSecrets(t, p, envSecret, fileSecret)
			_, metrics := getAdmin(t, p, "/metrics")
			_, readyz := getAdmin(t, p, "/readyz")
			_, quarantine := getAdmin(t, p, "/quarantine")
			if tt.wantReady && !strings.Contains(quarantine, `"reason":"signature_mismatch"`) {
				t.Errorf("/quarantine does not list the forged delivery: %s", quarantine)
			}
			checkConfig := runBinary(t, env, "", "check-config")
			if checkConfig.Code != 0 || !strings.Contains(checkConfig.Stdout, forwarder.KeyID([]byte(fileSecret))) {
				t.Errorf("check-config: exit %d, want 0 and the key id of the file's secret:\n%s%s", checkConfig.Code, checkConfig.Stdout, checkConfig.Stderr)
			}
			haystacks := map[string]string{"logs": p.Logs(), "/metrics": metrics, "/readyz": readyz, "/quarantine": quarantine, "check-config": checkConfig.Stdout + checkConfig.Stderr}
			needles := append([]string{envSecret, fileSecret, natsPass, natsToken}, signatures...)
			for where, text := range haystacks {
				for i, needle := range needles {
					if strings.Contains(text, needle) {
						t.Errorf("%s contain secret value or signature #%d", where, i)
					}
				}
			}
		})
	}
}

// exerciseSecrets sends webhooks signed with each secret and a forged one,
// and a SIGHUP, and returns the signature values sent.
func exerciseSecrets(t testing.TB, p *forwarderProcess, secrets ...string) []string {
	t.Helper()
	var sigs []string
	for i, secret := range append(secrets, "forged-secret") {
		w := signedWith(secret, int64(i+1))
		sigs = append(sigs, strings.TrimPrefix(w.signature[strings.Index(w.signature, "v1="):], "v1="))
		send(t, p.WebhookURL, w)
	}
	p.Signal(syscall.SIGHUP)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(p.Logs(), "SIGHUP") {
			return fmt.Errorf("SIGHUP not handled yet")
		}
		return nil
	})
	return sigs
}

// TestWrongCredentialsEndToEnd starts the binary with a token the server
// refuses: the process stays up, /readyz answers 503 naming the credentials,
// the cause is logged once rather than once per retry, and restarting the
// nats-server with a configuration that accepts the token brings the
// forwarder to ready without restarting it.
func TestWrongCredentialsEndToEnd(t *testing.T) {
	storeDir := t.TempDir()
	ns := natstest.Start(t, storeDir, 0, func(o *server.Options) { o.Authorization = "server-token-a1" })
	port := natsPort(ns)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_NATS_TOKEN"] = "client-token-b2"
	p := startForwarder(t, env)
	waitNotReady(t, p, "credentials rejected")

	// Several retries, well past the point where nats.go would give up on
	// repeated authorization errors by default.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := natstest.AuthFailures(t, ns); n < 4 {
			return fmt.Errorf("%d rejected attempts so far", n)
		}
		return nil
	})
	if status, _ := getAdmin(t, p, "/healthz"); status != http.StatusOK {
		t.Errorf("healthz with wrong credentials: got %d, want 200", status)
	}
	if n := strings.Count(p.Logs(), `"msg":"nats connection failed; retrying"`); n != 1 {
		t.Errorf("connection failure log lines after several retries: got %d, want 1", n)
	}
	if !strings.Contains(p.Logs(), `"cause":"credentials rejected by the nats-server`) {
		t.Errorf("no log line names rejected credentials as the cause:\n%s", trimmed(p.Logs()))
	}

	natstest.Stop(ns)
	natstest.Start(t, storeDir, port, func(o *server.Options) { o.Authorization = "client-token-b2" })
	p.WaitReady(t)
	if got := send(t, p.WebhookURL, webhook{body: sampleEvent("evt_after_fix", "message.sent"), deliveryID: "dlv_after_fix"}); got.Status != http.StatusOK {
		t.Errorf("webhook after the fix: got %d %v, want 200", got.Status, got.Body)
	}
}
