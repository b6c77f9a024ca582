package test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// configFile writes content as a configuration file and returns its path.
func configFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "forwarder.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigMistakesRefused runs check-config and serve on durations that
// can only be mistakes: a number without a unit (in the file as in the
// environment), a tolerance under a second, a publish timeout under 100ms.
// Each is refused with a message naming the key.
func TestConfigMistakesRefused(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		key  string
	}{
		{"tolerance without unit in the file", "webhook:\n  tolerance: 300\n", nil, "webhook.tolerance"},
		{"publish timeout without unit in the file", "nats:\n  publish_timeout: 5\n", nil, "nats.publish_timeout"},
		{"tolerance without unit in the environment", "", map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "300"}, "webhook.tolerance"},
		{"tolerance under a second", "", map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "300ms"}, "webhook.tolerance"},
		{"publish timeout under 100ms", "webhook:\n  tolerance: 5m\nnats:\n  publish_timeout: 5ms\n", nil, "nats.publish_timeout"},
		{"wildcard http.path", "", map[string]string{"FORWARDER_HTTP_PATH": "/webhooks/*"}, `http.path "/webhooks/*" has '*'`},
		{"two endpoint paths on one route", "endpoints:\n  - {name: eu, path: /hooks/acme:eu, secrets: [a]}\n  - {name: us, path: /hooks/acme:us, secrets: [b]}\n", nil,
			`endpoints[0].path "/hooks/acme:eu" has ':'`},
		{"unmatchable endpoint path", "", map[string]string{"FORWARDER_ENDPOINTS": "[{name: acme, path: /a/../webhooks/zautic, secrets: [a]}]"}, `endpoints[0].path "/a/../webhooks/zautic" has a ".." segment`},
		{"webhook and admin listeners on one port", "", map[string]string{"FORWARDER_HTTP_ADDR": ":8080", "FORWARDER_ADMIN_ADDR": ":8080"}, `admin.addr ":8080" takes the port of http.addr ":8080"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{zautic.SecretEnv: testSecret}
			for k, v := range tt.env {
				env[k] = v
			}
			var args []string
			if tt.file != "" {
				args = []string{"--config", configFile(t, tt.file)}
			}
			for _, command := range []string{"check-config", "serve"} {
				res := runBinary(t, env, "", append([]string{command}, args...)...)
				if res.Code == 0 || !strings.Contains(res.Stderr, tt.key) {
					t.Errorf("%s: got exit %d, stderr %q, want non-zero naming %s", command, res.Code, res.Stderr, tt.key)
				}
			}
		})
	}
}

// TestEmptyEnvironmentValuesCount sets variables to the empty string: they
// override the file and the defaults like any other value.
func TestEmptyEnvironmentValuesCount(t *testing.T) {
	file := configFile(t, "nats:\n  url: nats://127.0.0.1:1\n")
	tests := []struct {
		name string
		env  map[string]string
		want string // in check-config's output
	}{
		{"FORWARDER_ADMIN_ADDR= disables the admin listener", map[string]string{"FORWARDER_ADMIN_ADDR": ""}, "admin:\n    addr: \"\""},
		{"FORWARDER_NATS_URL= switches the file's URL back to the embedded server", map[string]string{"FORWARDER_NATS_URL": ""}, "url: \"\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{zautic.SecretEnv: testSecret}
			for k, v := range tt.env {
				env[k] = v
			}
			res := runBinary(t, env, "", "check-config", "--config", file)
			if res.Code != 0 || !strings.Contains(res.Stdout, tt.want) {
				t.Errorf("got exit %d, output:\n%s%s\nwant it to contain %q", res.Code, res.Stdout, res.Stderr, tt.want)
			}
		})
	}

	t.Run("serve without an admin listener", func(t *testing.T) {
		env := forwarderEnv("")
		env["FORWARDER_ADMIN_ADDR"] = ""
		env["FORWARDER_NATS_EMBEDDED_LISTEN"] = "127.0.0.1:0"
		env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = t.TempDir()
		p := launchForwarder(t, env)
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(p.Logs(), `"msg":"nats ready"`) {
				return errors.New("not ready yet")
			}
			return nil
		})
		if logs := p.Logs(); strings.Contains(logs, "admin listener started") || !strings.Contains(logs, "webhook listener started") {
			t.Errorf("want the webhook listener only:\n%s", trimmed(logs))
		}
	})
}
